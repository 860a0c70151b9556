"""The C target: dependency-free C99, bit-exact with the int8 ``.tflite`` it is generated from.

:func:`generate` reads the int8 model (:mod:`c_graph` turns it into layers with every constant
computed) and fills the kernels in ``c_templates/`` with them: ``model.int8.c`` holds the weights
as ``const`` arrays and one entry function, ``model.int8.h`` declares it::

    int mnist_edge_infer(const uint8_t pixels[784], uint8_t probabilities[10]);

No heap, no libm, no mutable static data (so it is reentrant), working memory on the stack
(``MNIST_EDGE_STACK_BYTES``). The output is deterministic: the same ``.tflite``, rounding and
prefix give the same bytes, which is what lets ``verify`` regenerate the C and compare bytes
before it compiles anything (:mod:`mnist_edge.parity.c_code`).

Two roundings, because the two engines a model runs on round differently:

* ``litert`` (default): bit-exact with what :mod:`mnist_edge.runtime` runs, LiteRT on x86 with
  its default XNNPACK delegate - float32 requantisation rounding half to even, and the float
  table softmax;
* ``tflm``: bit-exact with TensorFlow Lite Micro's reference kernels - gemmlowp's double
  rounding and its fixed-point softmax; integer arithmetic only (no FPU needed).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mnist_edge._files import sha256_bytes
from mnist_edge._mnist import IMAGE_SHAPE, NUM_CLASSES, PIXELS
from mnist_edge.errors import ExportError
from mnist_edge.export._base import INPUT_NAME, INT8_PREPROCESSING, OUTPUT_NAME, ExportJob, Written
from mnist_edge.export.c_graph import Conv, Layer, Model, read_model
from mnist_edge.export.c_layers import EMITTERS, PATCH, Emitter, padded_columns, template
from mnist_edge.manifest import TensorSpec

__all__ = ["DEFAULT_PREFIX", "DEFAULT_ROUNDING", "ROUNDINGS", "CSource", "check_prefix", "generate"]

#: Rounding name -> the engine the generated C is bit-exact with.
ROUNDINGS: dict[str, str] = {
    "litert": "LiteRT int8 on x86 (XNNPACK fully-connected, float-table softmax)",
    "tflm": "TensorFlow Lite Micro's reference kernels (double rounding, fixed-point softmax)",
}
DEFAULT_ROUNDING = "litert"
DEFAULT_PREFIX = "mnist_edge"
#: The file the C target writes (``artifact_name("c", "int8")``); its header is ``model.int8.h``.
C_NAME = "model.int8.c"
_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,39}$")


@dataclass(frozen=True)
class CSource:
    """The generated pair of files and what they cost."""

    c_name: str
    h_name: str
    c_text: str
    h_text: str
    rounding: str
    prefix: str
    macs: int
    #: Working memory of one call (the activation arena on the stack), bytes.
    arena_bytes: int
    #: Bytes of constant data (weights, biases, scales, tables) as emitted.
    constant_bytes: int

    @property
    def c_bytes(self) -> bytes:
        return self.c_text.encode("ascii")

    @property
    def h_bytes(self) -> bytes:
        return self.h_text.encode("ascii")

    def to_dict(self) -> dict[str, Any]:
        return {
            "c": self.c_name,
            "header": self.h_name,
            "rounding": self.rounding,
            "prefix": self.prefix,
            "macs": self.macs,
            "arena_bytes": self.arena_bytes,
            "constant_bytes": self.constant_bytes,
            "header_sha256": sha256_bytes(self.h_bytes),
        }


def check_rounding(rounding: str) -> str:
    name = rounding.strip().lower()
    if name not in ROUNDINGS:
        raise ExportError(f"unknown rounding {rounding!r}: use one of {', '.join(ROUNDINGS)}")
    return name


def check_prefix(prefix: str) -> str:
    """A C identifier prefix: a letter, then letters, digits or '_' (at most 40)."""
    if not _PREFIX.match(prefix):
        raise ExportError(
            f"--prefix {prefix!r} is not a usable C name prefix: start with a letter, then letters, "
            "digits or '_' (at most 40 characters), e.g. --prefix digits"
        )
    return prefix


def generate(
    tflite: bytes,
    *,
    rounding: str = DEFAULT_ROUNDING,
    prefix: str = DEFAULT_PREFIX,
    c_name: str = C_NAME,
    source_name: str = "model.int8.tflite",
) -> CSource:
    """The C for the int8 model in ``tflite``; raises :class:`ExportError` for a model or an
    option the generator cannot honour (naming the operator, type or option)."""
    rounding, prefix = check_rounding(rounding), check_prefix(prefix)
    if not c_name.endswith(".c") or "/" in c_name or "\\" in c_name:
        raise ExportError(f"C file name {c_name!r} must be a plain name ending in .c")
    model = read_model(tflite)
    h_name = c_name[:-2] + ".h"
    macro = prefix.upper()
    names = {
        "source_name": source_name,
        "source_sha256": sha256_bytes(tflite),
        "header_name": h_name,
        "prefix": prefix,
        "macro": macro,
        "engine": ROUNDINGS[rounding],
        "pixels": str(PIXELS),
        "classes": str(NUM_CLASSES),
    }
    data, constant_bytes = _data(model, rounding)
    body, arena = _body(model, rounding)
    c_text = template("model.c").substitute(
        names,
        source_name_c=c_name,
        rounding=rounding,
        operators=" -> ".join(model.operators),
        macs=f"{model.macs:,}",
        data=data,
        kernels=_kernels(model, rounding),
        body=body,
    )
    h_text = template("header.h").substitute(
        names,
        guard=re.sub(r"[^A-Z0-9]", "_", f"{macro}_{h_name.upper()}"),
        rows=str(IMAGE_SHAPE[0]),
        cols=str(IMAGE_SHAPE[1]),
        arena=str(arena),
    )
    return CSource(
        c_name=c_name,
        h_name=h_name,
        c_text=c_text,
        h_text=h_text,
        rounding=rounding,
        prefix=prefix,
        macs=model.macs,
        arena_bytes=arena,
        constant_bytes=constant_bytes,
    )


# --------------------------------------------------------------------------- assembly


def _emitter(layer: Layer, rounding: str) -> Emitter:
    emitter = EMITTERS.get((type(layer), rounding))
    if emitter is None:  # a lowering without C: a bug in the generator, not in the model
        raise ExportError(f"no C emitter for {type(layer).__name__} layers ({rounding} rounding)")
    return emitter


def _kernels(model: Model, rounding: str) -> str:
    """Each kernel the layers need, once, in first-use order, then argmax; the convolutions'
    kernels after the offset of the second patch in the patch buffer, which they need as a
    constant."""
    parts: dict[str, None] = {}
    if stride := _patch_stride(model):
        parts[f"#define PATCH_STRIDE {stride}\n"] = None
    for layer in model.layers:
        parts.update(dict.fromkeys(_emitter(layer, rounding).kernels(rounding)))
    parts[template("argmax.c").template] = None
    return "\n".join(parts)


def _data(model: Model, rounding: str) -> tuple[str, int]:
    """Every layer's constant arrays and descriptor, and their size in bytes."""
    chunks, total = [], 0
    for index, layer in enumerate(model.layers):
        text, size = _emitter(layer, rounding).data(f"layer{index}", layer, rounding)
        if text:
            chunks.append(text)
        total += size
    return "\n".join(chunks), total


def _patch_stride(model: Model) -> int:
    """The largest patch of the model's convolutions, in whole groups of four (0 without any)."""
    return max((padded_columns(layer) for layer in model.layers if isinstance(layer, Conv)), default=0)


def _body(model: Model, rounding: str) -> tuple[str, int]:
    """The entry function's statements and its working memory: consecutive activations alternate
    between the two ends of one stack array, so it holds the largest adjacent pair, and the
    convolutions share one patch buffer, which holds two patches (they compute two output pixels
    at a time)."""
    inner = [layer.size for layer in model.layers[:-1]]  # the last layer writes the caller's buffer
    pairs = [a + b for a, b in itertools.pairwise(inner)] or inner or [1]
    arena = max(max(pairs), *inner) if inner else 1
    patch = 2 * _patch_stride(model)
    lines = [f"    uint8_t arena[{arena}];"]
    if patch:
        lines.append(f"    uint8_t {PATCH}[{patch}] ALIGNED4;")
    source = "pixels"
    for index, layer in enumerate(model.layers):
        if index == len(model.layers) - 1:
            target = "probabilities"
        else:
            target = "arena" if index % 2 == 0 else f"arena + {arena - layer.size}"
        lines.append("    " + _emitter(layer, rounding).call(f"layer{index}", layer, source, target))
        source = target
    lines.append(f"    return argmax(probabilities, {NUM_CLASSES});")
    return "\n".join(lines), arena + patch


def export_int8(job: ExportJob, path: Path) -> Written:
    """The C target's exporter: generate from the job's int8 .tflite, write the .c to ``path``
    and hand the header back as a companion file."""
    tflite = job.input_artifact("tflite", "int8")
    data = tflite.read_bytes()
    source = generate(data, rounding=job.rounding, prefix=job.prefix, c_name=C_NAME, source_name=tflite.name)
    path.write_bytes(source.c_bytes)
    model = read_model(data)
    return Written(
        input=TensorSpec(INPUT_NAME, (PIXELS,), "uint8", model.input_scale, 0),
        output=TensorSpec(OUTPUT_NAME, (NUM_CLASSES,), "uint8", model.output_scale, 0),
        preprocessing=INT8_PREPROCESSING,
        companions=((source.h_name, source.h_bytes),),
        generated_from={"artifact": tflite.name, "sha256": sha256_bytes(data), **source.to_dict()},
    )
