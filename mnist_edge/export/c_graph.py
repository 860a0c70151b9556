"""Read an int8 ``.tflite`` into the layers the C generator emits, with every constant computed.

The file is first vetted by the runtime's structural check (``runtime/guard/tflite_check.py``),
then read with the same bounds-checked flatbuffer reader (``runtime/guard/flatbuffer.py``), so the
generator never trusts an offset it did not check. The graph must be a chain from one uint8 pixel
input to one uint8 probability output; each operator is turned into a layer by one function of
:data:`LOWERINGS` (adding an operator is one function there, an emitter in ``c_layers.py`` and a
kernel in ``c_templates/``). Any other operator is refused by name.

Activations are kept in one representation everywhere: an int8 tensor's value ``q`` is stored as
the byte ``q + 128`` (a uint8 tensor as itself). Then the model's input quantisation (uint8 pixels
with zero point 0 to int8 with zero point -128, same scale) and its output quantisation (back to
uint8) are the identity and cost nothing, and a layer's input zero point folds into its bias.

Two sets of constants are computed for each layer, one per rounding mode of :mod:`c`:

* ``litert``: what LiteRT runs on x86 (its default XNNPACK delegate): per-channel float32 scales
  ``input_scale * filter_scale / output_scale`` evaluated in float32, and the softmax's float
  table ``expf(-input_scale * beta * d)``.
* ``tflm``: what TensorFlow Lite Micro runs: the reference kernels' int32 multipliers and shifts
  (``QuantizeMultiplier`` on doubles) and the fixed-point softmax's input multiplier, shift and
  ``diff_min``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from mnist_edge._mnist import NUM_CLASSES, PIXEL_SCALE, PIXELS
from mnist_edge.errors import ExportError
from mnist_edge.export.c_conv import ConvGeometry, conv_geometry
from mnist_edge.runtime.guard import flatbuffer as fb  # the bounds-checked reader and field slots
from mnist_edge.runtime.guard import tflite_check as guard
from mnist_edge.runtime.guard.limits import MAX_RANK

__all__ = ["LOWERINGS", "Conv", "Dense", "Layer", "Model", "Softmax", "read_model"]

_FLOAT32, _INT32, _UINT8, _INT8 = 0, 2, 3, 9
_DTYPES = {_FLOAT32: "float32", _INT32: "int32", _UINT8: "uint8", _INT8: "int8"}
#: The option field read (FullyConnectedOptions.fused_activation_function, SoftmaxOptions.beta:
#: both field 0).
_OPTION_0 = 4
_ACTIVATIONS = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}
#: The softmax output every int8 TFLite model has (TFLM refuses any other).
SOFTMAX_OUTPUT_SCALE, SOFTMAX_OUTPUT_ZERO_POINT = 1.0 / 256.0, -128
#: ``struct dense`` counts its columns in 16 bits.
_MAX_COLUMNS = 65535
_ROUNDING_REACH = 4_000_000


@dataclass(frozen=True)
class Tensor:
    index: int
    shape: tuple[int, ...]
    dtype: str
    scales: tuple[float, ...]
    zero_points: tuple[int, ...]
    axis: int
    data: bytes | None

    @property
    def elements(self) -> int:
        return math.prod(self.shape)

    @property
    def scale(self) -> float:
        return self.scales[0] if self.scales else 0.0

    @property
    def zero_point(self) -> int:
        return self.zero_points[0] if self.zero_points else 0

    @property
    def offset(self) -> int:
        """What is added to a quantised value to store it as a byte (128 for int8, 0 for uint8)."""
        return 128 if self.dtype == "int8" else 0

    def array(self) -> np.ndarray:
        if self.data is None:
            raise ExportError(f"tensor {self.index} should be a constant but has no data")
        return np.frombuffer(self.data, dtype=np.dtype(self.dtype).newbyteorder("<")).reshape(self.shape)


@dataclass(frozen=True)
class Operator:
    position: int
    name: str
    inputs: tuple[int, ...]
    output: int
    options: fb._Table | None


@dataclass(frozen=True)
class Dense:
    """A fully-connected layer: ``y = requantise(bias + W @ x)`` on stored bytes."""

    rows: int
    cols: int
    weights: np.ndarray  # (rows, cols) int8
    bias: np.ndarray  # (rows,) int64: the model's bias with the input zero point folded in
    output_zero_point: int
    act_min: int  # clamp of the quantised output, in the output's own type
    act_max: int
    float_scales: np.ndarray  # (rows,) float32, litert
    multipliers: np.ndarray  # (rows,) int32, tflm
    shifts: np.ndarray  # (rows,) int32, tflm
    output_offset: int
    macs: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "macs", self.rows * self.cols)

    @property
    def size(self) -> int:
        return self.rows


@dataclass(frozen=True)
class Softmax:
    """Softmax over ``size`` stored bytes into probabilities with scale 1/256."""

    size: int
    table: np.ndarray  # (256,) float32, litert: table[255 - d] = expf(-input_scale * beta * d)
    input_multiplier: int  # tflm
    input_left_shift: int  # tflm
    diff_min: int  # tflm
    output_offset: int
    macs: int = 0


@dataclass(frozen=True)
class Conv:
    """A convolution: ``dense`` applied to the input patch under the filter at each output pixel
    (padding taps read ``pad``, the input's stored zero point, so they add nothing)."""

    dense: Dense
    geometry: ConvGeometry
    pad: int
    macs: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "macs", self.dense.macs * self.geometry.pixels)

    @property
    def size(self) -> int:
        return self.geometry.pixels * self.geometry.out_c


Layer = Dense | Conv | Softmax


@dataclass(frozen=True)
class Model:
    """The layers in order, from the stored pixels to the stored probabilities."""

    layers: tuple[Layer, ...]
    operators: tuple[str, ...]
    input_scale: float
    output_scale: float

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)


# --------------------------------------------------------------------------- reading


def _graph(data: bytes) -> tuple[list[Tensor], list[Operator], list[int], list[int]]:
    try:
        guard.check_tflite(data)
    except fb.TFLiteStructureError as exc:
        raise ExportError(f"not a usable .tflite file: {exc}") from None
    buf = fb._Buffer(data)
    model = buf.table(buf.follow(0))
    codes = [
        guard._builtin_code(c) for c in model.tables(fb._MODEL_OPCODES, guard.MAX_OPERATOR_CODES, "opcodes")
    ]
    buffers = model.tables(fb._MODEL_BUFFERS, guard.MAX_BUFFERS, "buffers")
    subgraph = model.tables(fb._MODEL_SUBGRAPHS, 1, "subgraphs")[0]
    tensors = [
        _tensor(i, t, buffers, buf)
        for i, t in enumerate(subgraph.tables(fb._SG_TENSORS, guard.MAX_TENSORS, "t"))
    ]
    operators = []
    for position, op in enumerate(subgraph.tables(fb._SG_OPERATORS, guard.MAX_OPERATORS, "operators")):
        code = codes[op.scalar(fb._OP_OPCODE, "I")]
        (output,) = guard._ints(op, fb._OP_OUTPUTS, "outputs")
        operators.append(
            Operator(
                position=position,
                name=guard.ALLOWED_OPERATORS[code].name,
                inputs=tuple(guard._ints(op, fb._OP_INPUTS, "inputs")),
                output=output,
                options=op.table(fb._OP_OPTIONS),
            )
        )
    inputs = list(guard._ints(subgraph, fb._SG_INPUTS, "inputs"))
    outputs = list(guard._ints(subgraph, fb._SG_OUTPUTS, "outputs"))
    return tensors, operators, inputs, outputs


def _tensor(index: int, table: fb._Table, buffers: list[fb._Table], buf: fb._Buffer) -> Tensor:
    kind = table.scalar(fb._T_TYPE, "b")
    shape = tuple(int(d) for d in table.scalars(fb._T_SHAPE, "i", MAX_RANK, "shape"))
    data = None
    found = buffers[table.scalar(fb._T_BUFFER, "I")].vector(fb._BUF_DATA, 1, guard.MAX_TENSOR_BYTES, "buffer")
    if found is not None and found[1]:
        start, length = found
        data = bytes(buf.data[start : start + length])
    scales: tuple[float, ...] = ()
    zeros: tuple[int, ...] = ()
    axis = 0
    quant = table.table(fb._T_QUANT)
    if quant is not None:
        scales = tuple(float(s) for s in quant.scalars(fb._Q_SCALE, "f", guard.MAX_TENSOR_BYTES, "scales"))
        zeros = tuple(
            int(z) for z in quant.scalars(fb._Q_ZERO_POINT, "q", guard.MAX_TENSOR_BYTES, "zero points")
        )
        axis = quant.scalar(fb._Q_DIMENSION, "i")
    return Tensor(index, shape, _DTYPES.get(kind, f"type {kind}"), scales, zeros, axis, data)


# --------------------------------------------------------------------------- lowering


def read_model(data: bytes) -> Model:
    """The layers of the int8 MNIST classifier in ``data``; raises :class:`ExportError` naming
    what the generator cannot turn into C (an operator, a data type, a quantisation)."""
    tensors, operators, inputs, outputs = _graph(data)
    if len(inputs) != 1 or len(outputs) != 1:
        raise ExportError(
            f"the model has {len(inputs)} inputs and {len(outputs)} outputs; C needs one of each"
        )
    first, last = tensors[inputs[0]], tensors[outputs[0]]
    _check_io(first, "input", PIXELS, 1.0 / PIXEL_SCALE)
    _check_io(last, "output", NUM_CLASSES, SOFTMAX_OUTPUT_SCALE)
    layers: list[Layer] = []
    current = first
    for op in operators:
        data_inputs = [i for i in op.inputs if i >= 0 and tensors[i].data is None]
        if data_inputs != [current.index]:
            raise ExportError(
                f"operator {op.position} ({op.name}) does not continue the chain from the input; "
                "the C generator handles a single chain of operators"
            )
        lower = LOWERINGS.get(op.name)
        if lower is None:
            raise ExportError(
                f"the C generator does not support operator {op.name} (operator {op.position}); "
                f"it supports {', '.join(LOWERINGS)}"
            )
        output = tensors[op.output]
        layer = lower(op, [tensors[i] if i >= 0 else None for i in op.inputs], output)
        if layer is not None:
            layers.append(layer)
        current = output
    if current.index != last.index:
        raise ExportError("the chain of operators does not end at the model's output")
    if not layers or not isinstance(layers[-1], Softmax):
        raise ExportError("the model does not end in a SOFTMAX; the C API returns probabilities")
    return Model(tuple(layers), tuple(op.name for op in operators), first.scale, last.scale)


def _check_io(tensor: Tensor, what: str, elements: int, scale: float) -> None:
    if tensor.dtype != "uint8" or tensor.elements != elements:
        raise ExportError(
            f"the model's {what} is {tensor.dtype} {list(tensor.shape)}; the C API takes uint8 pixels "
            f"[{PIXELS}] and gives uint8 probabilities [{NUM_CLASSES}]: export with --quantize int8"
        )
    if tensor.zero_point != 0 or not math.isclose(tensor.scale, scale, rel_tol=1e-6):
        raise ExportError(
            f"the model's {what} has scale {tensor.scale:g} and zero point {tensor.zero_point}; "
            f"the C API needs {scale:g} and 0"
        )


def _activation_tensor(tensor: Tensor, what: str) -> None:
    if tensor.dtype not in ("int8", "uint8") or len(tensor.scales) != 1:
        raise ExportError(
            f"{what} is {tensor.dtype} with {len(tensor.scales)} scales; C needs per-tensor int8"
        )


def _quantize(op: Operator, inputs: list[Tensor | None], output: Tensor) -> None:
    (source,) = inputs
    assert source is not None
    _activation_tensor(source, f"QUANTIZE (operator {op.position})'s input")
    _activation_tensor(output, f"QUANTIZE (operator {op.position})'s output")
    # Between equal scales the requantisation is exact (q_out = q_in - zp_in + zp_out), in TFLM's
    # reference kernel and in LiteRT's alike; in the stored representation it is the identity
    # exactly when both tensors store the same bytes.
    if source.scale != output.scale:
        raise ExportError(
            f"QUANTIZE (operator {op.position}) changes the scale ({source.scale:g} -> {output.scale:g}); "
            "the C generator supports only a change of type at equal scale"
        )
    if source.offset + source.zero_point != output.offset + output.zero_point:
        raise ExportError(
            f"QUANTIZE (operator {op.position}) moves the zero point ({source.zero_point} -> "
            f"{output.zero_point}); the C generator supports only uint8 <-> int8 at offset 128"
        )
    return None


def _reshape(op: Operator, inputs: list[Tensor | None], output: Tensor) -> None:
    source = inputs[0]
    assert source is not None
    if source.elements != output.elements or (source.scales, source.zero_points, source.dtype) != (
        output.scales,
        output.zero_points,
        output.dtype,
    ):
        raise ExportError(f"RESHAPE (operator {op.position}) changes more than the shape")
    return None


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's ``QuantizeMultiplier`` (the double-rounding build): ``real ~= m * 2^(shift - 31)``."""
    if real == 0.0:
        return 0, 0
    fraction, shift = math.frexp(real)
    scaled = fraction * (1 << 31)  # exact: a power-of-two multiple
    fixed = math.floor(scaled + 0.5) if scaled >= 0 else -math.floor(-scaled + 0.5)  # half away from 0
    if fixed == 1 << 31:
        fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return fixed, shift


def _dense(op: Operator, inputs: list[Tensor | None], output: Tensor) -> Dense:
    source, weights, bias = (*inputs, None)[:3]
    assert source is not None and weights is not None
    where = f"FULLY_CONNECTED (operator {op.position})"
    if weights.dtype != "int8" or weights.data is None or len(weights.shape) != 2:
        raise ExportError(f"{where} has {weights.dtype} weights; C needs constant int8 weights (rows, cols)")
    rows, cols = weights.shape
    if cols != source.elements or rows != output.elements:
        raise ExportError(
            f"{where} maps {source.elements} values to {output.elements} with {rows}x{cols} weights"
        )
    activation = op.options.scalar(_OPTION_0, "b") if op.options else 0
    return _filtered(where, source, weights, bias, output, activation)


def _conv(op: Operator, inputs: list[Tensor | None], output: Tensor) -> Conv:
    source, weights, bias = (*inputs, None)[:3]
    assert source is not None and weights is not None
    where = f"CONV_2D (operator {op.position})"
    if weights.dtype != "int8" or weights.data is None:
        raise ExportError(f"{where} has {weights.dtype} weights; C needs constant int8 weights")
    geometry = conv_geometry(where, op.options, source.shape, weights.shape, output.shape)
    if geometry.patch > _MAX_COLUMNS:
        raise ExportError(f"{where} multiplies {geometry.patch} values per output; C handles {_MAX_COLUMNS}")
    dense = _filtered(where, source, weights, bias, output, geometry.activation_code)
    return Conv(dense=dense, geometry=geometry, pad=source.zero_point + source.offset)


def _filtered(
    where: str, source: Tensor, weights: Tensor, bias: Tensor | None, output: Tensor, activation_code: int
) -> Dense:
    """The requantised product of ``weights`` (one filter per output channel, flattened) with an
    input vector: a fully-connected layer, or a convolution at one output pixel."""
    _activation_tensor(source, f"{where}'s input")
    _activation_tensor(output, f"{where}'s output")
    rows = weights.shape[0]
    if any(weights.zero_points) or len(weights.scales) != rows or weights.axis != 0:
        raise ExportError(f"{where}'s weights are not symmetric per-output-channel int8")
    activation = _ACTIVATIONS.get(activation_code, "unknown")
    # Only the activations whose clamp is the same in LiteRT's delegate and TFLM's reference kernels
    # (zero maps to the zero point exactly); RELU6 and RELU_N1_TO_1 round a float bound.
    if activation not in ("NONE", "RELU"):
        raise ExportError(f"{where} has fused activation {activation}; C supports NONE and RELU")
    w = weights.array().astype(np.int64).reshape(rows, -1)
    b = np.zeros(rows, np.int64) if bias is None else bias.array().astype(np.int64)
    if bias is not None and (bias.dtype != "int32" or b.shape != (rows,)):
        raise ExportError(
            f"{where} has a {bias.dtype} bias of shape {list(bias.shape)}; C needs int32 [{rows}]"
        )
    # acc = bias + sum w * (q - zp) and q = stored - offset: fold (offset + zp) * sum(w) into the bias.
    folded = b - (source.offset + source.zero_point) * w.sum(axis=1)
    if np.abs(folded).max(initial=0) + 255 * np.abs(w).sum(axis=1).max(initial=0) >= 1 << 31:
        raise ExportError(f"{where} could overflow a 32-bit accumulator")
    filter_scales = np.array(weights.scales, np.float32)
    in_scale, out_scale = np.float32(source.scale), np.float32(output.scale)
    float_scales = ((in_scale * filter_scales).astype(np.float32) / out_scale).astype(np.float32)
    # The litert kernel rounds by adding 1.5 * 2^23, exact only below 2^22 (with a margin for the
    # float product's own rounding).
    reach = (np.abs(folded) + 255 * np.abs(w).sum(axis=1)) * float_scales.astype(np.float64)
    if reach.max(initial=0) >= _ROUNDING_REACH:
        raise ExportError(
            f"{where}'s scaled accumulator could reach {reach.max():.3g}; C's float requantisation "
            f"handles magnitudes below {_ROUNDING_REACH:,}"
        )
    quantized = [
        quantize_multiplier(float(in_scale) * float(s) / float(out_scale)) for s in filter_scales.tolist()
    ]
    lowest = -128 if output.dtype == "int8" else 0
    return Dense(
        rows=rows,
        cols=w.shape[1],
        weights=w.astype(np.int8),
        bias=folded,
        output_zero_point=output.zero_point,
        act_min=max(lowest, output.zero_point) if activation == "RELU" else lowest,
        act_max=lowest + 255,
        float_scales=float_scales,
        multipliers=np.array([m for m, _ in quantized], np.int64),
        shifts=np.array([s for _, s in quantized], np.int64),
        output_offset=output.offset,
    )


def _softmax(op: Operator, inputs: list[Tensor | None], output: Tensor) -> Softmax:
    (source,) = inputs
    assert source is not None
    where = f"SOFTMAX (operator {op.position})"
    _activation_tensor(source, f"{where}'s input")
    if (
        output.dtype != "int8"
        or source.dtype != "int8"
        or output.scale != SOFTMAX_OUTPUT_SCALE
        or output.zero_point != SOFTMAX_OUTPUT_ZERO_POINT
    ):
        raise ExportError(f"{where} is not int8 -> int8 with output scale 1/256 and zero point -128")
    beta = _float_option(op.options)
    if not beta > 0:
        raise ExportError(f"{where} has beta {beta:g}; C needs a positive beta")
    # LiteRT: table[255 - d] = expf(scale * d) with scale = -input_scale * beta, all in float32.
    scale = np.float32(-np.float32(source.scale) * np.float32(beta))
    table = np.empty(256, np.float32)
    for d in range(256):
        table[255 - d] = np.float32(math.exp(float(np.float32(scale * np.float32(d)))))
    # TFLM: PreprocessSoftmaxScaling and CalculateInputRadius with 5 integer bits, on doubles.
    integer_bits = 5
    real = min(beta * float(np.float32(source.scale)) * (1 << (31 - integer_bits)), (1 << 31) - 1.0)
    multiplier, left_shift = quantize_multiplier(real)
    radius = ((1 << integer_bits) - 1) * (1 << (31 - integer_bits)) / (1 << left_shift)
    return Softmax(
        size=source.elements,
        table=table,
        input_multiplier=multiplier,
        input_left_shift=left_shift,
        diff_min=-math.floor(radius),
        output_offset=output.offset,
    )


def _float_option(options: fb._Table | None) -> float:
    """Field 0 of an options table as float32 (absent: the schema's default, 0.0)."""
    bits = 0 if options is None else options.scalar(_OPTION_0, "i")
    return float(np.array([bits], np.int32).view(np.float32)[0])


#: Operator name -> the function that turns it into a layer (or into nothing, for operators that
#: only relabel the stored bytes). Each layer type's C comes from ``c_layers.EMITTERS``.
LOWERINGS: dict[str, Callable[[Operator, list[Tensor | None], Tensor], Layer | None]] = {
    "QUANTIZE": _quantize,
    "RESHAPE": _reshape,
    "CONV_2D": _conv,
    "FULLY_CONNECTED": _dense,
    "SOFTMAX": _softmax,
}
