"""Structural pre-check of ``.tflite`` files, in pure Python, before LiteRT sees a byte.

Why: LiteRT trusts the model it is given. Its flatbuffer verifier catches broken offsets, but not a
model that is well-formed and nonsensical: zeroing the 2-byte vtable entry of ``subgraphs`` (the
field is then absent) makes ``Interpreter(...)`` segfault, and a float32 activation declared
(1, 2^31-1) makes the first ``invoke()`` take 8.2 GB and 26 s (ai-edge-litert 2.3.0; the files
are in ``tests/reliability/corpus``). No ``try``/``except`` helps against either, so
:func:`check_tflite` reads the schema itself - every offset bounds-checked - and refuses what
LiteRT would choke on or what an image classifier never needs:

- the ``TFL3`` identifier, schema version 3, exactly one subgraph, at least one operator;
- every tensor, buffer, operator-code and signature index in range;
- tensor types with a fixed element size, ranks up to :data:`MAX_RANK`, no negative dimension,
  declared bytes per tensor and in total under :data:`MAX_TENSOR_BYTES` / :data:`MAX_TOTAL_BYTES`,
  constant data exactly as long as its tensor, per-channel quantisation that matches its axis;
- quantisation scales in [1e-20, 1e20] and zero points inside their integer type;
- each operator with its own options type, the option values (strides, windows, dilations,
  enums, floats) in the ranges of :mod:`.tflite_options`, its number of inputs and one output;
  an absent input (-1) only where a layer's bias may be absent; integer constants other than
  biases (shapes, axes) of at most :data:`MAX_RANK` entries; no operator writing into a
  constant, the model input or a tensor another operator writes;
- no buffers outside the flatbuffer (the > 2 GB layout), no sparse or variable tensors;
- only the builtin operators of :data:`ALLOWED_OPERATORS` (dense, convolutional and pooling layers,
  activations, reshaping, (de)quantisation): no control flow, which would reference other
  subgraphs, no variables or hash tables, no custom operators, and no PAD, whose output size comes
  from tensor values rather than declared shapes.

The bytes are read through :mod:`.flatbuffer`, whose every read is bounds-checked; its reader
and field slots are imported here too, for the readers of files this check has passed
(``runtime/tflite_fold.py``, ``export/c_graph.py``).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import NamedTuple

from mnist_edge.runtime.guard.flatbuffer import (
    _BUF_DATA,
    _BUF_OFFSET,
    _BUF_SIZE,
    _META_BUFFER,
    _MODEL_BUFFERS,
    _MODEL_METADATA,
    _MODEL_METADATA_BUFFER,
    _MODEL_OPCODES,
    _MODEL_SIGNATURES,
    _MODEL_SUBGRAPHS,
    _MODEL_VERSION,
    _OC_BUILTIN_CODE,
    _OC_DEPRECATED_CODE,
    _OP_INPUTS,
    _OP_INTERMEDIATES,
    _OP_LARGE_CUSTOM_OFFSET,
    _OP_LARGE_CUSTOM_SIZE,
    _OP_OPCODE,
    _OP_OPTIONS,
    _OP_OPTIONS_TYPE,
    _OP_OUTPUTS,
    _Q_DIMENSION,
    _Q_SCALE,
    _Q_ZERO_POINT,
    _SG_INPUTS,
    _SG_OPERATORS,
    _SG_OUTPUTS,
    _SG_TENSORS,
    _SIG_INPUTS,
    _SIG_OUTPUTS,
    _SIG_SUBGRAPH,
    _T_BUFFER,
    _T_IS_VARIABLE,
    _T_QUANT,
    _T_SHAPE,
    _T_SIGNATURE,
    _T_SPARSITY,
    _T_TYPE,
    _TMAP_TENSOR,
    TFLiteStructureError,
    _Buffer,
    _Table,
)
from mnist_edge.runtime.guard.limits import MAX_RANK, MAX_TENSOR_BYTES, MAX_TOTAL_BYTES, tensor_size
from mnist_edge.runtime.guard.tflite_options import options_problem

__all__ = [
    "ALLOWED_OPERATORS",
    "MAX_RANK",
    "MAX_TENSOR_BYTES",
    "MAX_TOTAL_BYTES",
    "TFLiteStructureError",
    "check_tflite",
]

#: Counts far above any image classifier's (our largest, fp16: 19 tensors, 11 operators).
MAX_TENSORS = 10_000
MAX_OPERATORS = 10_000
MAX_BUFFERS = 10_000
MAX_OPERATOR_CODES = 1_000
MAX_SIGNATURE_TENSORS = 100
SCHEMA_VERSION = 3
IDENTIFIER = b"TFL3"

#: Element sizes of the tensor types a classifier can use (``TensorType`` in schema.fbs).
#: STRING (5), RESOURCE (13), VARIANT (14) and INT4 (17) are refused.
ELEMENT_BYTES: dict[int, int] = {
    0: 4,  # FLOAT32
    1: 2,  # FLOAT16
    2: 4,  # INT32
    3: 1,  # UINT8
    4: 8,  # INT64
    6: 1,  # BOOL
    7: 2,  # INT16
    8: 8,  # COMPLEX64
    9: 1,  # INT8
    10: 8,  # FLOAT64
    11: 16,  # COMPLEX128
    12: 8,  # UINT64
    15: 4,  # UINT32
    16: 2,  # UINT16
    18: 2,  # BFLOAT16
}


class _Op(NamedTuple):
    name: str
    #: The ``BuiltinOptions`` union type its options must have (0: none).
    options: int
    min_inputs: int
    max_inputs: int


_MANY = 1000

#: Builtin operators a dense or convolutional image classifier is built from (``BuiltinOperator``),
#: with their options type and input count: each has exactly one output. LiteRT's kernels trust
#: both - a SHAPE operator relabelled STRIDED_SLICE (one input, ShapeOptions) segfaults in Prepare.
ALLOWED_OPERATORS: dict[int, _Op] = {
    0: _Op("ADD", 11, 2, 2),
    1: _Op("AVERAGE_POOL_2D", 5, 1, 1),
    2: _Op("CONCATENATION", 10, 1, _MANY),
    3: _Op("CONV_2D", 1, 2, 3),
    4: _Op("DEPTHWISE_CONV_2D", 2, 2, 3),
    6: _Op("DEQUANTIZE", 38, 1, 1),
    9: _Op("FULLY_CONNECTED", 8, 2, 3),
    11: _Op("L2_NORMALIZATION", 12, 1, 1),
    14: _Op("LOGISTIC", 0, 1, 1),
    17: _Op("MAX_POOL_2D", 5, 1, 1),
    18: _Op("MUL", 21, 2, 2),
    19: _Op("RELU", 0, 1, 1),
    20: _Op("RELU_N1_TO_1", 0, 1, 1),
    21: _Op("RELU6", 0, 1, 1),
    22: _Op("RESHAPE", 17, 1, 2),
    25: _Op("SOFTMAX", 9, 1, 1),
    28: _Op("TANH", 0, 1, 1),
    39: _Op("TRANSPOSE", 26, 2, 2),
    40: _Op("MEAN", 27, 2, 2),
    41: _Op("SUB", 28, 2, 2),
    42: _Op("DIV", 29, 2, 2),
    43: _Op("SQUEEZE", 30, 1, 1),
    45: _Op("STRIDED_SLICE", 32, 4, 4),
    47: _Op("EXP", 33, 1, 1),
    50: _Op("LOG_SOFTMAX", 36, 1, 1),
    53: _Op("CAST", 37, 1, 1),
    54: _Op("PRELU", 0, 2, 2),
    55: _Op("MAXIMUM", 39, 2, 2),
    57: _Op("MINIMUM", 39, 2, 2),
    59: _Op("NEG", 42, 1, 1),
    65: _Op("SLICE", 48, 3, 3),
    70: _Op("EXPAND_DIMS", 52, 2, 2),
    74: _Op("SUM", 27, 2, 2),
    75: _Op("SQRT", 0, 1, 1),
    76: _Op("RSQRT", 0, 1, 1),
    77: _Op("SHAPE", 55, 1, 1),
    82: _Op("REDUCE_MAX", 27, 2, 2),
    83: _Op("PACK", 59, 1, _MANY),
    98: _Op("LEAKY_RELU", 75, 1, 1),
    99: _Op("SQUARED_DIFFERENCE", 76, 2, 2),
    101: _Op("ABS", 78, 1, 1),
    111: _Op("ELU", 0, 1, 1),
    114: _Op("QUANTIZE", 89, 1, 1),
    117: _Op("HARD_SWISH", 91, 1, 1),
    126: _Op("BATCH_MATMUL", 101, 2, 2),
    150: _Op("GELU", 116, 1, 1),
}

#: Inputs that may be absent (index -1), by builtin operator: the bias of dense and convolution
#: layers. Any other -1 makes the kernel dereference a null tensor (measured: a FULLY_CONNECTED
#: without weights, a STRIDED_SLICE without strides - both segfault).
_OPTIONAL_INPUTS: dict[int, tuple[int, ...]] = {3: (2,), 4: (2,), 9: (2,)}
#: Integer constants (INT32, INT64) outside a layer's bias are shapes, axes or permutations: at most
#: MAX_RANK entries (measured: a RESHAPE handed a 300-entry bias as its shape segfaults).
_INTEGER_OPERANDS = (2, 4)
#: Quantisation scales outside this range are refused (LiteRT crashes from 1e-38 down, and at 0).
MIN_SCALE, MAX_SCALE = 1e-20, 1e20
#: Zero points must fit the tensor's integer type (others: int32).
_ZERO_POINT_RANGE: dict[int, tuple[int, int]] = {
    3: (0, 255),
    9: (-128, 127),
    7: (-32768, 32767),
    16: (0, 65535),
}


def check_tflite(data: bytes) -> None:
    """Raise :class:`TFLiteStructureError` unless ``data`` is a well-formed, plausible TFLite model."""
    try:
        _check_model(_Buffer(data))
    except TFLiteStructureError:
        raise
    except (struct.error, IndexError, OverflowError, ValueError) as exc:  # a reader bug guard
        raise TFLiteStructureError(f"unreadable flatbuffer ({type(exc).__name__}: {exc})") from None


# --------------------------------------------------------------------------- semantic checks


def _check_model(buf: _Buffer) -> None:
    if buf.size < 8 or buf.data[4:8] != IDENTIFIER:
        raise TFLiteStructureError("no TFL3 identifier: this is not a TFLite flatbuffer")
    model = buf.table(buf.follow(0))
    version = model.scalar(_MODEL_VERSION, "I")
    if version != SCHEMA_VERSION:
        raise TFLiteStructureError(f"schema version {version}, not {SCHEMA_VERSION}")

    opcodes = model.tables(_MODEL_OPCODES, MAX_OPERATOR_CODES, "operator_codes")
    codes = [_builtin_code(code) for code in opcodes]
    for code in codes:
        if code not in ALLOWED_OPERATORS:
            raise TFLiteStructureError(
                f"builtin operator {code} is not one an image classifier uses "
                "(control flow, variables, hash tables and custom operators are refused)"
            )

    buffers = model.tables(_MODEL_BUFFERS, MAX_BUFFERS, "buffers")
    data_lengths = []
    for i, buffer in enumerate(buffers):
        if buffer.scalar(_BUF_OFFSET, "Q") or buffer.scalar(_BUF_SIZE, "Q"):
            raise TFLiteStructureError(
                f"buffer {i} lies outside the flatbuffer (the layout of models over 2 GB)"
            )
        data_lengths.append(buffer.byte_length(_BUF_DATA, f"buffer {i}"))

    subgraphs = model.tables(_MODEL_SUBGRAPHS, MAX_TENSORS, "subgraphs")
    if len(subgraphs) != 1:
        raise TFLiteStructureError(f"{len(subgraphs)} subgraphs; a classifier has exactly one")
    n_tensors = _check_subgraph(subgraphs[0], codes, data_lengths)

    for index in model.scalars(_MODEL_METADATA_BUFFER, "i", MAX_BUFFERS, "metadata_buffer"):
        _in_range(int(index), len(buffers), "a metadata buffer index")
    for entry in model.tables(_MODEL_METADATA, MAX_BUFFERS, "metadata"):
        _in_range(entry.scalar(_META_BUFFER, "I"), len(buffers), "a metadata buffer index")
    for signature in model.tables(_MODEL_SIGNATURES, MAX_SIGNATURE_TENSORS, "signature_defs"):
        _in_range(signature.scalar(_SIG_SUBGRAPH, "I"), 1, "a signature's subgraph index")
        for slot in (_SIG_INPUTS, _SIG_OUTPUTS):
            for tensor_map in signature.tables(slot, MAX_SIGNATURE_TENSORS, "signature tensors"):
                _in_range(tensor_map.scalar(_TMAP_TENSOR, "I"), n_tensors, "a signature's tensor index")


def _check_subgraph(subgraph: _Table, codes: list[int], data_lengths: list[int]) -> int:
    tensors = subgraph.tables(_SG_TENSORS, MAX_TENSORS, "tensors")
    n_tensors = len(tensors)
    if n_tensors == 0:
        raise TFLiteStructureError("the subgraph has no tensors")
    infos = [_check_tensor(i, tensor, data_lengths) for i, tensor in enumerate(tensors)]
    total = 0
    for info in infos:
        total += info.nbytes
        if total > MAX_TOTAL_BYTES:
            raise TFLiteStructureError(
                f"the tensors declare over {MAX_TOTAL_BYTES >> 20} MiB; an MNIST classifier needs about 1"
            )

    model_inputs: set[int] = set()
    for slot, what in ((_SG_INPUTS, "subgraph inputs"), (_SG_OUTPUTS, "subgraph outputs")):
        indices = subgraph.scalars(slot, "i", MAX_TENSORS, what)
        if slot == _SG_INPUTS:
            model_inputs.update(int(index) for index in indices)
        if not indices:
            raise TFLiteStructureError(f"the subgraph has no {what.split()[1]}")
        for index in indices:
            _in_range(int(index), n_tensors, f"one of the {what}")
            if slot == _SG_INPUTS and infos[int(index)].constant:
                raise TFLiteStructureError(f"the model input, tensor {index}, is a constant")

    operators = subgraph.tables(_SG_OPERATORS, MAX_OPERATORS, "operators")
    if not operators:
        raise TFLiteStructureError("the subgraph has no operators")
    produced: set[int] = set()
    for i, op in enumerate(operators):
        opcode = op.scalar(_OP_OPCODE, "I")
        _in_range(opcode, len(codes), f"operator {i}'s opcode index")
        code = codes[opcode]
        spec = ALLOWED_OPERATORS[code]
        options_type = op.scalar(_OP_OPTIONS_TYPE, "B")
        if options_type not in (0, spec.options):
            raise TFLiteStructureError(f"operator {i} ({spec.name}) carries another operator's options")
        problem = options_problem(spec.options, op.table(_OP_OPTIONS) if options_type else None)
        if problem:
            raise TFLiteStructureError(f"operator {i} ({spec.name}) {problem}")
        if op.scalar(_OP_LARGE_CUSTOM_OFFSET, "Q") or op.scalar(_OP_LARGE_CUSTOM_SIZE, "Q"):
            raise TFLiteStructureError(f"operator {i} keeps options outside the flatbuffer")
        inputs = list(_ints(op, _OP_INPUTS, f"operator {i}'s inputs"))
        outputs = list(_ints(op, _OP_OUTPUTS, f"operator {i}'s outputs"))
        if not spec.min_inputs <= len(inputs) <= spec.max_inputs or len(outputs) != 1:
            raise TFLiteStructureError(
                f"operator {i} ({spec.name}) has {len(inputs)} inputs and {len(outputs)} outputs"
            )
        for position, index in enumerate(inputs):
            if index == -1 and position in _OPTIONAL_INPUTS.get(code, ()):
                continue  # a layer without bias
            _in_range(index, n_tensors, f"operator {i}'s input {position}")
            info = infos[index]
            if (
                info.constant
                and info.kind in _INTEGER_OPERANDS
                and info.elements > MAX_RANK
                and position not in _OPTIONAL_INPUTS.get(code, ())
            ):
                raise TFLiteStructureError(
                    f"operator {i} ({spec.name}) takes a {info.elements}-entry integer constant as input "
                    f"{position}; shapes, axes and permutations have at most {MAX_RANK} entries"
                )
        for index in (*outputs, *_ints(op, _OP_INTERMEDIATES, f"operator {i}'s intermediates")):
            _in_range(index, n_tensors, f"operator {i}'s outputs")
        for index in outputs:
            if infos[index].constant:
                raise TFLiteStructureError(f"operator {i} ({spec.name}) writes into constant tensor {index}")
            if index in model_inputs:
                raise TFLiteStructureError(f"operator {i} ({spec.name}) writes into the model input")
            if index in produced:
                raise TFLiteStructureError(f"tensor {index} is written by two operators")
            produced.add(index)
    return n_tensors


def _ints(table: _Table, slot: int, what: str) -> Iterator[int]:
    for value in table.scalars(slot, "i", MAX_TENSORS, what):
        yield int(value)


class _TensorInfo(NamedTuple):
    nbytes: int
    elements: int
    kind: int
    constant: bool  # its buffer holds data


def _check_tensor(i: int, tensor: _Table, data_lengths: list[int]) -> _TensorInfo:
    """Checks one tensor on its own."""
    kind = tensor.scalar(_T_TYPE, "b")
    itemsize = ELEMENT_BYTES.get(kind)
    if itemsize is None:
        raise TFLiteStructureError(f"tensor {i} has type {kind}, which a classifier does not use")
    if tensor.has(_T_SPARSITY):
        raise TFLiteStructureError(f"tensor {i} is sparse; sparse tensors are not supported")
    shape = [int(d) for d in tensor.scalars(_T_SHAPE, "i", MAX_RANK, f"tensor {i}'s shape")]
    if any(d < 0 for d in shape):
        raise TFLiteStructureError(f"tensor {i} has a negative dimension {shape}")
    elements, nbytes = tensor_size(f"tensor {i}", shape, itemsize, TFLiteStructureError)
    signature = [int(d) for d in tensor.scalars(_T_SIGNATURE, "i", MAX_RANK, f"tensor {i}'s shape signature")]
    if signature and (
        len(signature) != len(shape) or any(s != d and s != -1 for s, d in zip(signature, shape, strict=True))
    ):
        raise TFLiteStructureError(f"tensor {i}'s shape signature {signature} contradicts its shape {shape}")
    buffer = tensor.scalar(_T_BUFFER, "I")
    _in_range(buffer, len(data_lengths), f"tensor {i}'s buffer index")
    stored = data_lengths[buffer]
    if stored and stored != nbytes:
        raise TFLiteStructureError(
            f"tensor {i} (shape {shape}) needs {nbytes} bytes but its buffer holds {stored}"
        )
    if tensor.scalar(_T_IS_VARIABLE, "B"):
        raise TFLiteStructureError(f"tensor {i} is a variable; a classifier has none")
    quantization = tensor.table(_T_QUANT)
    if quantization is not None:
        _check_quantization(i, kind, shape, quantization)
    return _TensorInfo(nbytes, elements, kind, stored > 0)


def _check_quantization(i: int, kind: int, shape: list[int], quantization: _Table) -> None:
    scales = quantization.scalars(_Q_SCALE, "f", MAX_TENSOR_BYTES, f"tensor {i}'s scales")
    zeros = quantization.scalars(_Q_ZERO_POINT, "q", MAX_TENSOR_BYTES, f"tensor {i}'s zero points")
    if zeros and len(zeros) != len(scales):
        raise TFLiteStructureError(f"tensor {i} has {len(scales)} scales but {len(zeros)} zero points")
    # A zero, negative, NaN or near-denormal scale, or a zero point outside the integer type,
    # makes LiteRT's requantisation arithmetic crash (measured: scale 0, -1 and 1e-38, zero point
    # 128 on int8 all segfault ai-edge-litert 2.3.0).
    for scale in scales:
        if not MIN_SCALE <= scale <= MAX_SCALE:  # also False for NaN
            raise TFLiteStructureError(f"tensor {i} has quantisation scale {scale!r}")
    low, high = _ZERO_POINT_RANGE.get(kind, (-(1 << 31), (1 << 31) - 1))
    for zero in zeros:
        if not low <= zero <= high:
            raise TFLiteStructureError(f"tensor {i} has zero point {zero} outside {low}..{high}")
    if len(scales) > 1:
        axis = quantization.scalar(_Q_DIMENSION, "i")
        if not 0 <= axis < len(shape) or shape[axis] != len(scales):
            raise TFLiteStructureError(
                f"tensor {i} (shape {shape}) has {len(scales)} per-channel scales along axis {axis}"
            )


def _builtin_code(code: _Table) -> int:
    # As LiteRT reads it: the larger of the int8 field (old files) and the int32 one.
    return max(code.scalar(_OC_DEPRECATED_CODE, "b"), code.scalar(_OC_BUILTIN_CODE, "i"))


def _in_range(index: int, count: int, what: str) -> None:
    if not 0 <= index < count:
        raise TFLiteStructureError(f"{what} is {index}, outside 0..{count - 1}")
