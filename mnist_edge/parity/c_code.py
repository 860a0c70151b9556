"""Verify generated C: regenerate it, compile it, run it, compare every output byte with its engine.

The C is code, not data, so nothing here compiles a file it finds on disk. :func:`regenerate`
reads the ``.tflite`` the manifest names (its sha256 must still be the recorded one), generates
the C again with the recorded options and compares the bytes with the ``.c`` and ``.h`` beside
the manifest; only when both match is the *regenerated* text compiled, in a fresh temporary
folder, with the host C compiler into a shared library loaded through ``ctypes``.

:func:`check` then runs that library on the images given plus ``random`` uniformly random
images (seeded) and counts the bytes that differ from the engine the rounding promises:
LiteRT int8 for ``litert``, the ``tflite-micro`` interpreter for ``tflm``. The goal is 0.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from mnist_edge._files import sha256_bytes
from mnist_edge._mnist import IMAGE_SHAPE, NUM_CLASSES, PIXELS
from mnist_edge.errors import ModelLoadError, ToolchainError
from mnist_edge.manifest import Manifest, read_manifest

__all__ = [
    "COMPILE_FLAGS",
    "RANDOM_IMAGES",
    "BitExactCheck",
    "CLibrary",
    "check",
    "check_row",
    "engine_outputs",
    "find_compiler",
    "regenerate",
]

#: Random images checked on top of the test set (the issue's floor).
RANDOM_IMAGES = 20_000
#: Host flags: C99 as shipped, float rounded as written (no fused multiply-add contraction).
COMPILE_FLAGS = ("-std=c99", "-O2", "-ffp-contract=off", "-fPIC", "-shared")
#: Flags a firmware build is expected to use without a single warning.
WARNING_FLAGS = ("-Wall", "-Wextra", "-Wconversion", "-pedantic", "-Werror")
_COMPILERS = ("cc", "gcc", "clang")


def find_compiler() -> str:
    """``$CC`` if set, else the first of cc, gcc, clang on PATH; :class:`ToolchainError` if none."""
    wanted = os.environ.get("CC")
    for name in (wanted,) if wanted else _COMPILERS:
        found = shutil.which(name)
        if found:
            return found
    tried = f"$CC={wanted}" if wanted else ", ".join(_COMPILERS)
    raise ToolchainError(
        f"no C compiler found (tried {tried}): install one (Debian/Ubuntu: apt-get install gcc) or set CC"
    )


def regenerate(c_path: str | os.PathLike[str], manifest: Manifest | None = None) -> tuple[Any, bytes]:
    """The :class:`~mnist_edge.export.c.CSource` that ``c_path`` must be and the ``.tflite`` bytes
    it comes from, after checking that the ``.c`` and ``.h`` on disk are byte for byte what this
    mnist-edge generates from the recorded ``.tflite``. Raises :class:`ModelLoadError` saying
    which file differs and what to do."""
    from mnist_edge.errors import ExportError
    from mnist_edge.export.c import generate

    path = Path(c_path)
    manifest = manifest if manifest is not None else read_manifest(path)
    origin = None if manifest is None else manifest.generated_from
    if manifest is None or manifest.format != "c" or not isinstance(origin, dict):
        raise ModelLoadError(
            f"{path.name} has no manifest saying what it was generated from; mnist-edge compiles only "
            "C it generated itself: run `mnist-edge export --format c`"
        )
    source_name = str(origin.get("artifact", ""))
    if not source_name or Path(source_name).name != source_name:
        raise ModelLoadError(f"{path.name}'s manifest names no usable source .tflite ({source_name!r})")
    tflite = path.parent / source_name
    try:
        data = tflite.read_bytes()
    except OSError as exc:
        raise ModelLoadError(
            f"{path.name} was generated from {source_name}, which cannot be read ({exc.strerror or exc}): "
            "re-run `mnist-edge export --format c`"
        ) from None
    if sha256_bytes(data) != origin.get("sha256"):
        raise ModelLoadError(
            f"{source_name} changed since {path.name} was generated from it: "
            "re-run `mnist-edge export --format c`"
        )
    try:
        source = generate(
            data,
            rounding=str(origin.get("rounding", "")),
            prefix=str(origin.get("prefix", "")),
            c_name=path.name,
            source_name=source_name,
        )
    except ExportError as exc:
        raise ModelLoadError(f"{path.name} cannot be regenerated: {exc}") from None
    for name, expected in ((source.c_name, source.c_bytes), (source.h_name, source.h_bytes)):
        try:
            actual = (path.parent / name).read_bytes()
        except OSError:
            actual = None
        if actual != expected:
            raise ModelLoadError(
                f"{name} is not the C mnist-edge generates from {source_name} "
                f"(rounding {source.rounding}, prefix {source.prefix}): it was edited or comes from "
                "elsewhere, and C that mnist-edge did not generate is never compiled. "
                "Re-run `mnist-edge export --format c`"
            )
    return source, data


class CLibrary:
    """Generated C compiled into a temporary shared library; ``with CLibrary(source) as lib:``."""

    def __init__(
        self, source: Any, *, flags: Sequence[str] = COMPILE_FLAGS, compiler: str | None = None
    ) -> None:
        self.source = source
        self.compiler = compiler or find_compiler()
        self._folder = tempfile.TemporaryDirectory(prefix="mnist-edge-c-")
        folder = Path(self._folder.name)
        (folder / source.c_name).write_bytes(source.c_bytes)
        (folder / source.h_name).write_bytes(source.h_bytes)
        library = folder / "model.so"
        command = [self.compiler, *flags, "-o", str(library), str(folder / source.c_name)]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            self.close()
            raise ToolchainError(f"could not run {self.compiler}: {exc}") from None
        self.warnings = done.stderr
        if done.returncode != 0:
            self.close()
            raise ToolchainError(f"{self.compiler} failed on the generated C: {done.stderr.strip()[:2000]}")
        self._library = ctypes.CDLL(str(library))
        self._infer = getattr(self._library, f"{source.prefix}_infer")
        self._infer.argtypes = (ctypes.c_void_p, ctypes.c_void_p)
        self._infer.restype = ctypes.c_int

    def run(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """uint8 images ``(N, 28, 28)`` or ``(N, 784)`` -> (probability bytes ``(N, 10)``, top digits)."""
        pixels = np.ascontiguousarray(images, dtype=np.uint8).reshape(-1, PIXELS)
        out = np.zeros((len(pixels), NUM_CLASSES), np.uint8)
        tops = np.zeros(len(pixels), np.int64)
        infer = self._infer
        row_in, row_out = pixels.ctypes.data, out.ctypes.data
        for i in range(len(pixels)):
            tops[i] = infer(row_in + i * PIXELS, row_out + i * NUM_CLASSES)
        return out, tops

    def close(self) -> None:
        self._folder.cleanup()

    def __enter__(self) -> CLibrary:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


def engine_outputs(tflite: bytes, images: np.ndarray, rounding: str) -> tuple[np.ndarray, str]:
    """The uint8 probabilities the engine ``rounding`` promises gives for ``images``, and its name."""
    pixels = np.ascontiguousarray(images, dtype=np.uint8).reshape(-1, *IMAGE_SHAPE)
    if rounding == "tflm":
        return _tflm_outputs(tflite, pixels)
    from importlib.metadata import version

    from mnist_edge.runtime.litert import new_interpreter

    interpreter = new_interpreter(tflite, threads=1)
    detail = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(detail["index"], list(pixels.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(detail["index"], pixels)
    interpreter.invoke()
    out = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    return np.asarray(out, np.uint8).reshape(-1, NUM_CLASSES), f"LiteRT {version('ai-edge-litert')}"


def _tflm_outputs(tflite: bytes, pixels: np.ndarray) -> tuple[np.ndarray, str]:
    try:
        from tflite_micro import __version__ as tflm_version
        from tflite_micro import runtime
    except ImportError:
        raise ToolchainError(
            "checking --rounding tflm needs the TensorFlow Lite Micro interpreter: pip install tflite-micro"
        ) from None
    interpreter = runtime.Interpreter.from_bytes(tflite)  # arena: 10x the model, far above the need
    out = np.zeros((len(pixels), NUM_CLASSES), np.uint8)
    for i, image in enumerate(pixels):
        interpreter.set_input(image[None], 0)
        interpreter.invoke()
        out[i] = np.asarray(interpreter.get_output(0)).reshape(-1)
    return out, f"tflite-micro {tflm_version}"


@dataclass(frozen=True)
class BitExactCheck:
    """The generated C against its engine on the given images plus random ones."""

    engine: str
    rounding: str
    images: int
    random_images: int
    differing_bytes: int
    differing_images: int
    seconds: float

    @property
    def passed(self) -> bool:
        return self.differing_bytes == 0

    def describe(self) -> str:
        total = self.images + self.random_images
        return (
            f"bit-exact check against {self.engine} ({self.rounding} rounding) on {total:,} images "
            f"({self.images:,} given + {self.random_images:,} random): "
            f"{self.differing_bytes} differing bytes in {self.differing_images} images"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check(
    c_path: str | os.PathLike[str],
    images: np.ndarray,
    *,
    random: int = RANDOM_IMAGES,
    seed: int = 0,
    manifest: Manifest | None = None,
) -> tuple[BitExactCheck, np.ndarray]:
    """Regenerate, compile and run the C at ``c_path`` on ``images`` and ``random`` random images;
    returns the comparison with its engine and the C's probability bytes for ``images``."""
    started = time.perf_counter()
    source, tflite = regenerate(c_path, manifest)
    given = np.ascontiguousarray(images, dtype=np.uint8).reshape(-1, PIXELS)
    noise = np.random.default_rng(seed).integers(0, 256, (random, PIXELS), dtype=np.uint8)
    everything = np.concatenate([given, noise])
    with CLibrary(source) as library:
        produced, tops = library.run(everything)
    expected, engine = engine_outputs(tflite, everything, source.rounding)
    if not np.array_equal(tops, produced.argmax(axis=1)):
        raise ToolchainError("the compiled C returned a top digit that is not its highest probability")
    differ = produced != expected
    result = BitExactCheck(
        engine=engine,
        rounding=source.rounding,
        images=len(given),
        random_images=random,
        differing_bytes=int(differ.sum()),
        differing_images=int(differ.any(axis=1).sum()),
        seconds=time.perf_counter() - started,
    )
    return result, produced[: len(given)]


def check_row(
    c_path: Path, manifest: Manifest | None, images: np.ndarray
) -> tuple[BitExactCheck, np.ndarray]:
    """What verify needs for a C row: the bit-exact check and float probabilities whose rows sum
    to 1, made from the C's bytes exactly as the runtime makes them from the int8 model's."""
    from mnist_edge.manifest import TensorSpec
    from mnist_edge.runtime.preprocess import make_output_converter

    result, produced = check(c_path, images, manifest=manifest)
    spec = TensorSpec("probabilities", (NUM_CLASSES,), "uint8", 1.0 / 256.0, 0)
    return result, np.array(make_output_converter(spec, normalize=False, logits=False)(produced))
