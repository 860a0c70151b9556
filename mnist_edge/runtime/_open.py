"""Opening a model file: read it (size-capped), check it against its manifest, pre-check its
structure, optionally trial-load it in a limited child, start the engine, wrap it in a Classifier.

:func:`mnist_edge.runtime.load` is the public entry; the isolated child
(:mod:`~mnist_edge.runtime.guard.sandbox`) runs :func:`open_bytes` on the bytes it is sent.
"""

from __future__ import annotations

from pathlib import Path

from mnist_edge._files import sha256_bytes
from mnist_edge._text import first_line
from mnist_edge.errors import MnistEdgeError, ModelLoadError
from mnist_edge.manifest import Manifest, manifest_path, read_manifest
from mnist_edge.runtime.base import Backend
from mnist_edge.runtime.classifier import Classifier
from mnist_edge.runtime.registry import backend_for

__all__ = ["MAX_MODEL_BYTES", "open_bytes", "read_checked"]

#: Larger files are refused before they are read: our models are about 0.3-1 MB.
MAX_MODEL_BYTES = 256 << 20


def read_checked(
    path: Path, backend_cls: type[Backend], *, verify_hash: bool
) -> tuple[bytes, Manifest | None]:
    """The file's bytes and its manifest, checked against each other: the manifest's format must
    be the backend's, and (``verify_hash``) the bytes must have the manifest's size and sha256.
    Without ``verify_hash`` the manifest's known answers are dropped too: both checks ask whether
    this is the file that was exported, and the caller said it may not be."""
    data = _read_model_bytes(path)
    manifest = read_manifest(path)
    if manifest is not None:
        if manifest.format != backend_cls.format:
            raise ModelLoadError(
                f"{manifest_path(path)} describes a {manifest.format} model but {path} is being opened "
                f"with {backend_cls.name}: check the file name, or re-run `mnist-edge export`"
            )
        if verify_hash:
            _verify_hash(path, data, manifest)
        elif manifest.known_answers is not None:
            manifest = manifest.replace(known_answers=None)
    return data, manifest


def open_bytes(
    path: Path,
    data: bytes,
    *,
    backend: str | None = None,
    manifest: Manifest | None = None,
    threads: int = 1,
    isolate: bool = False,
) -> Classifier:
    """The part of :func:`load` after the file is read and its hash verified: the structural
    pre-check, the isolated trial run, the engine, the Classifier. The sandbox child runs exactly
    this on the bytes it is sent."""
    backend_cls = backend_for(path, backend)
    backend_cls.check_file(path, data)
    if isolate:
        if backend_cls.reference:
            raise ModelLoadError(
                f"isolate=True is for exported .tflite and .onnx files; {path} runs through TensorFlow, "
                "which a limited child cannot hold: load .keras files only if you trust them"
            )
        from mnist_edge.runtime.guard.sandbox import check_isolated

        check_isolated(path, data, backend_cls.name)
    try:
        engine = backend_cls(path, data, threads=threads)
    except MnistEdgeError:
        raise
    except Exception as exc:  # engines raise many types for a bad file (ValueError, RuntimeError, Fail, ...)
        raise ModelLoadError(
            f"{backend_cls.name} cannot load {path}: {type(exc).__name__}: {first_line(exc)}; the file is "
            "corrupt or not a model - re-run `mnist-edge export`"
        ) from None
    try:
        return Classifier(engine, manifest=manifest, path=path)
    except (ModelLoadError, Warning):  # a ManifestWarning is raised when warnings are errors
        raise
    except Exception as exc:  # anything else about a file that loads but is not a usable classifier
        raise ModelLoadError(
            f"{path} loads but is not a usable MNIST classifier: {type(exc).__name__}: {first_line(exc)}"
        ) from None


def _read_model_bytes(path: Path) -> bytes:
    if path.is_dir():
        raise ModelLoadError(f"{path} is a folder; give a model file (.tflite, .onnx)")
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ModelLoadError(
            f"model file {path} does not exist; export one with `mnist-edge export`"
        ) from None
    except OSError as exc:
        raise ModelLoadError(f"cannot read {path}: {exc.strerror}") from None
    if size == 0:
        raise ModelLoadError(f"model file {path} is empty; re-run `mnist-edge export`")
    if size > MAX_MODEL_BYTES:
        raise ModelLoadError(
            f"model file {path} is {size / 2**20:.0f} MiB, over the {MAX_MODEL_BYTES >> 20} MiB limit "
            "for an MNIST classifier: this is not one of our models"
        )
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ModelLoadError(f"cannot read {path}: {exc.strerror}") from None


def _verify_hash(path: Path, data: bytes, manifest: Manifest) -> None:
    redo = "re-run `mnist-edge export`, or load with verify_hash=False if you changed it on purpose"
    if len(data) != manifest.size_bytes:
        raise ModelLoadError(
            f"{path} is {len(data)} bytes but its manifest says {manifest.size_bytes}: the file is "
            f"truncated or was replaced; {redo}"
        )
    digest = sha256_bytes(data)
    if digest != manifest.sha256:
        raise ModelLoadError(
            f"{path} does not match its manifest (sha256 {digest[:12]}... != {manifest.sha256[:12]}...): "
            f"the file was corrupted or modified; {redo}"
        )
