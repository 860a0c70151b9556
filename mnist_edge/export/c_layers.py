"""The C side of each layer type: the kernels it needs, its constant data, and its call.

:data:`EMITTERS` maps a layer type of :mod:`c_graph` to one :class:`Emitter`; with the operator's
lowering in ``c_graph.LOWERINGS`` and its kernel in ``c_templates/``, that is all a new operator
needs. Kernels are layer-independent C functions (every constant is an argument or lives in the
layer's data), so a model with several layers of a type includes the kernel once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import resources
from string import Template
from typing import Any

import numpy as np

from mnist_edge.export.c_graph import Conv, Dense, Layer, Softmax

__all__ = ["EMITTERS", "PATCH", "Emitter", "c_array", "c_float", "template"]

_VALUES_PER_LINE = 24
#: The name of the entry function's patch buffer, which convolutions gather their inputs into.
PATCH = "patch"
#: The fields of ``struct dense`` that hold each rounding's requantisation constants.
_REQUANTIZATION = {
    "litert": "    const float *scale; /* input_scale * filter_scale / output_scale, in float */\n",
    "tflm": "    const int32_t *multiplier; /* QuantizeMultiplier(in_scale * filter_scale / out_scale) */\n"
    "    const int8_t *shift;\n"
    "    const int64_t *nudge; /* 2^30 + 2^(30 - shift) where shift < 0: see requantize */\n",
}


@dataclass(frozen=True)
class Emitter:
    """How one layer type becomes C, for a rounding (``litert`` or ``tflm``)."""

    #: rounding -> the C (types and functions) its layers call, in order.
    kernels: Callable[[str], list[str]]
    #: (name, layer, rounding) -> the layer's constant definitions and their size in bytes.
    data: Callable[[str, Any, str], tuple[str, int]]
    #: (name, layer, input, output) -> the statement that runs the layer.
    call: Callable[[str, Any, str, str], str]


def template(name: str) -> Template:
    text = resources.files("mnist_edge.export").joinpath("c_templates", name).read_text(encoding="ascii")
    return Template(text)


def c_float(value: float) -> str:
    """An exact C float literal (hexadecimal, so no decimal rounding can creep in)."""
    value = float(np.float32(value))
    return "0.0f" if value == 0 else f"{value.hex()}f"


def c_array(declaration: str, values: Iterable[Any]) -> str:
    items = [str(v) for v in values]
    lines = [
        "    " + ", ".join(items[i : i + _VALUES_PER_LINE]) + ","
        for i in range(0, len(items), _VALUES_PER_LINE)
    ]
    return f"{declaration} = {{\n" + "\n".join(lines) + "\n};\n"


# --------------------------------------------------------------------------- fully connected


def _fixed_point(rounding: str) -> list[str]:
    return [template("fixedpoint_tflm.c").template] if rounding == "tflm" else []


def _dense_kernels(rounding: str) -> list[str]:
    return [
        *_fixed_point(rounding),
        template("layer.c").substitute(requantization=_REQUANTIZATION[rounding]),
        template(f"requantize_{rounding}.c").template,
        template("dense.c").template,
    ]


def _dense_data(name: str, layer: Dense, rounding: str) -> tuple[str, int]:
    rows = -(-layer.rows // 4) * 4  # padded to whole blocks of four
    weights = np.zeros((rows, layer.cols), np.int8)
    weights[: layer.rows] = layer.weights
    bias = np.zeros(rows, np.int64)
    bias[: layer.rows] = layer.bias
    parts = [
        c_array(f"static const int8_t {name}_weights[{rows * layer.cols}] ALIGNED4", interleave(weights)),
        c_array(f"static const int32_t {name}_bias[{rows}]", bias.tolist()),
    ]
    size = rows * layer.cols + 4 * rows
    if rounding == "litert":
        parts.append(
            c_array(f"static const float {name}_scale[{layer.rows}]", map(c_float, layer.float_scales))
        )
        requant = f"{name}_scale"
        size += 4 * layer.rows
    else:
        parts.append(
            c_array(f"static const int32_t {name}_multiplier[{layer.rows}]", layer.multipliers.tolist())
        )
        parts.append(c_array(f"static const int8_t {name}_shift[{layer.rows}]", layer.shifts.tolist()))
        parts.append(c_array(f"static const int64_t {name}_nudge[{layer.rows}]", tflm_nudges(layer.shifts)))
        requant = f"{name}_multiplier, {name}_shift, {name}_nudge"
        size += 13 * layer.rows
    parts.append(
        f"static const struct dense {name} = {{{name}_weights, {name}_bias, {requant}, {layer.rows}, "
        f"{layer.cols}, {layer.output_zero_point}, {layer.act_min}, {layer.act_max}, "
        f"{layer.output_offset}}};\n"
    )
    return "\n".join(parts), size + 24  # + the descriptor (pointers and six 16-bit fields)


def tflm_nudges(shifts: Iterable[int]) -> list[int]:
    """The tflm requantisation's per-row constant, 2^30 + 2^(30 - shift) for a right shift (see
    ``c_templates/requantize_tflm.c``); rows with a left shift do not read it."""
    return [(1 << 30) + (1 << (30 - s)) if s < 0 else 0 for s in map(int, shifts)]


def interleave(weights: np.ndarray) -> list[int]:
    """Rows in blocks of four; each block's columns four at a time (row 0's four bytes, row 1's,
    row 2's, row 3's), then the remaining columns one at a time for the four rows: the order in
    which the kernel reads them."""
    rows, cols = weights.shape
    grouped = cols - cols % 4
    blocks = []
    for start in range(0, rows, 4):
        block = weights[start : start + 4]
        blocks.append(block[:, :grouped].reshape(4, grouped // 4, 4).transpose(1, 0, 2).ravel())
        blocks.append(block[:, grouped:].T.ravel())
    return np.concatenate(blocks).astype(np.int64).tolist()


# --------------------------------------------------------------------------- convolution


def padded_columns(layer: Conv) -> int:
    """The patch as the kernel multiplies it: rounded up to whole groups of four columns."""
    return -(-layer.dense.cols // 4) * 4


def _conv_kernels(rounding: str) -> list[str]:
    return [*_dense_kernels(rounding), template("conv.c").template]


def _conv_data(name: str, layer: Conv, rounding: str) -> tuple[str, int]:
    dense = layer.dense
    cols = padded_columns(layer)
    weights = np.zeros((dense.rows, cols), np.int8)
    weights[:, : dense.cols] = dense.weights
    padded = dataclasses.replace(dense, cols=cols, weights=weights)
    text, size = _dense_data(f"{name}_filter", padded, rounding)
    g = layer.geometry
    fields = (g.in_c, g.in_h, g.in_w, g.out_h, g.out_w, g.k_h, g.k_w, g.stride_h, g.stride_w, g.pad_top)
    text += (
        f"static const struct conv {name} = {{&{name}_filter, {', '.join(map(str, fields))}, "
        f"{g.pad_left}, {layer.pad}}};\n"
    )
    return text, size + 16  # + the descriptor (a pointer and twelve narrow fields)


def _conv_call(name: str, layer: Conv, source: str, target: str) -> str:
    return f"conv(&{name}, {source}, {target}, {PATCH});"


# --------------------------------------------------------------------------- softmax


def _softmax_kernels(rounding: str) -> list[str]:
    return [*_fixed_point(rounding), template(f"softmax_{rounding}.c").template]


def _softmax_data(name: str, layer: Softmax, rounding: str) -> tuple[str, int]:
    if rounding != "litert":
        return "", 0  # three integers, passed in the call
    return c_array(f"static const float {name}_exps[256]", map(c_float, layer.table.tolist())), 4 * 256


def _softmax_call(name: str, layer: Softmax, source: str, target: str) -> str:
    return f"softmax({name}_exps, {source}, {target}, {layer.size});"


def _softmax_call_tflm(name: str, layer: Softmax, source: str, target: str) -> str:
    constants = f"{layer.input_multiplier}, {layer.input_left_shift}, {layer.diff_min}"
    return f"softmax({constants}, {source}, {target}, {layer.size});"


#: Layer type -> its emitter, for each rounding.
EMITTERS: dict[tuple[type[Layer], str], Emitter] = {
    **{
        (Dense, rounding): Emitter(
            kernels=_dense_kernels,
            data=_dense_data,
            call=lambda name, layer, source, target: f"dense(&{name}, {source}, {target});",
        )
        for rounding in ("litert", "tflm")
    },
    **{
        (Conv, rounding): Emitter(kernels=_conv_kernels, data=_conv_data, call=_conv_call)
        for rounding in ("litert", "tflm")
    },
    (Softmax, "litert"): Emitter(kernels=_softmax_kernels, data=_softmax_data, call=_softmax_call),
    (Softmax, "tflm"): Emitter(kernels=_softmax_kernels, data=_softmax_data, call=_softmax_call_tflm),
}
