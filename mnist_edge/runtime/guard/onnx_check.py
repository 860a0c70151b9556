"""Structural pre-check of ``.onnx`` files before onnxruntime sees them.

Why: onnxruntime builds whatever graph it is given, and an ONNX file can point outside itself.
A tensor with *external data* names a file that onnxruntime opens relative to the working directory
(``../../home/you/.ssh/id_rsa`` is a valid location), so a model could read any file the app can and
return it through its weights. Our models are about 1 MB with every weight inside the file, so
:func:`check_onnx` refuses external data outright, then bounds what the graph may declare and
runs ``onnx.checker`` (full check, with strict shape inference) on the parsed model:

- a ModelProto that parses, no model-local functions, no subgraph attributes (If/Loop/Scan bodies);
- only the operators of :data:`ALLOWED_OPERATORS`, in the default domain: the layers of a dense or
  convolutional classifier. Ops whose output size comes from tensor *values* (``Expand``, ``Tile``,
  ``ConstantOfShape``, ``Pad``, ``Resize``, ``Range``) are refused, so memory is bounded by the
  declared weights times the batch;
- the windows, strides, dilations, paddings and groups of convolutions and pools within
  :data:`ATTRIBUTE_RANGES`;
- every tensor in the file (initializers and ``Constant`` values): a known fixed-size type, no
  negative dimension, under :data:`MAX_TENSOR_BYTES` (and :data:`MAX_TOTAL_BYTES` together), its
  stored data exactly as long as its shape says.

``onnx`` is imported when a model is checked, never when the runtime is imported.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from mnist_edge._text import first_line
from mnist_edge.runtime.guard.limits import (
    MAX_RANK,
    MAX_TENSOR_BYTES,
    MAX_TOTAL_BYTES,
    MAX_WINDOW,
    tensor_size,
)

__all__ = [
    "ALLOWED_OPERATORS",
    "ATTRIBUTE_RANGES",
    "MAX_TENSOR_BYTES",
    "MAX_TOTAL_BYTES",
    "OnnxStructureError",
    "check_onnx",
]

MAX_NODES = 10_000

#: Operators of the default ONNX domain that dense and convolutional classifiers are built from.
ALLOWED_OPERATORS = frozenset(
    {
        "Abs",
        "Add",
        "AveragePool",
        "BatchNormalization",
        "Cast",
        "Clip",
        "Concat",
        "Constant",
        "Conv",
        "ConvInteger",
        "DequantizeLinear",
        "Div",
        "Dropout",
        "DynamicQuantizeLinear",
        "Elu",
        "Erf",
        "Exp",
        "Flatten",
        "Gelu",
        "Gemm",
        "GlobalAveragePool",
        "GlobalMaxPool",
        "HardSigmoid",
        "HardSwish",
        "Identity",
        "LeakyRelu",
        "LogSoftmax",
        "MatMul",
        "MatMulInteger",
        "Max",
        "MaxPool",
        "Min",
        "Mul",
        "Neg",
        "PRelu",
        "QLinearConv",
        "QLinearMatMul",
        "QuantizeLinear",
        "ReduceMax",
        "ReduceMean",
        "ReduceSum",
        "Relu",
        "Reshape",
        "Shape",
        "Sigmoid",
        "Slice",
        "Softmax",
        "Sqrt",
        "Squeeze",
        "Sub",
        "Sum",
        "Tanh",
        "Transpose",
        "Unsqueeze",
    }
)
_DEFAULT_DOMAINS = ("", "ai.onnx")

_WINDOW = range(1, MAX_WINDOW + 1)
_SPATIAL: dict[str, range] = {"kernel_shape": _WINDOW, "strides": _WINDOW, "dilations": _WINDOW}
_PADS = {"pads": range(0, MAX_WINDOW + 1)}
_FLAG = range(0, 2)
#: Integer attributes of the windowed operators and the values each may hold. onnxruntime sizes
#: its buffers from them before any check of its own: a Conv padded by 100,000 asked for 7 TB
#: (measured, onnxruntime 1.32), and the checker's shape inference does not bound them.
ATTRIBUTE_RANGES: dict[str, dict[str, range]] = {
    "Conv": {**_SPATIAL, **_PADS, "group": _WINDOW},
    "ConvInteger": {**_SPATIAL, **_PADS, "group": _WINDOW},
    "QLinearConv": {**_SPATIAL, **_PADS, "group": _WINDOW},
    "MaxPool": {**_SPATIAL, **_PADS, "ceil_mode": _FLAG, "storage_order": _FLAG},
    "AveragePool": {**_SPATIAL, **_PADS, "ceil_mode": _FLAG, "count_include_pad": _FLAG},
}

#: TensorProto.DataType -> bytes per element, for the fixed-size types (STRING and the packed
#: 2/4/6-bit types are refused).
ELEMENT_BYTES: dict[int, int] = {
    1: 4,  # FLOAT
    2: 1,  # UINT8
    3: 1,  # INT8
    4: 2,  # UINT16
    5: 2,  # INT16
    6: 4,  # INT32
    7: 8,  # INT64
    9: 1,  # BOOL
    10: 2,  # FLOAT16
    11: 8,  # DOUBLE
    12: 4,  # UINT32
    13: 8,  # UINT64
    14: 8,  # COMPLEX64
    15: 16,  # COMPLEX128
    16: 2,  # BFLOAT16
    17: 1,  # FLOAT8E4M3FN
    18: 1,  # FLOAT8E4M3FNUZ
    19: 1,  # FLOAT8E5M2
    20: 1,  # FLOAT8E5M2FNUZ
}
# Which repeated field holds a tensor's values when raw_data is empty, and how many per element.
_TYPED_FIELD: dict[int, tuple[str, int]] = {
    1: ("float_data", 1),
    14: ("float_data", 2),
    6: ("int32_data", 1),
    7: ("int64_data", 1),
    11: ("double_data", 1),
    15: ("double_data", 2),
    12: ("uint64_data", 1),
    13: ("uint64_data", 1),
}
_EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL
_INT, _GRAPH, _TENSOR, _GRAPHS, _TENSORS = 2, 5, 4, 10, 9  # AttributeProto.AttributeType
_SPARSE_TENSOR, _SPARSE_TENSORS = 11, 12


class OnnxStructureError(ValueError):
    """The bytes are not an ONNX model this runtime will hand to onnxruntime (the reason is the message)."""


def check_onnx(data: bytes) -> None:
    """Raise :class:`OnnxStructureError` unless ``data`` is a self-contained, plausible ONNX classifier."""
    import onnx
    from google.protobuf.message import DecodeError

    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise OnnxStructureError(f"not an ONNX protobuf ({type(exc).__name__}: {exc})") from None
    if not model.HasField("graph"):
        raise OnnxStructureError("the file has no graph: it is not an ONNX model")
    if len(model.functions):
        raise OnnxStructureError("the model defines local functions, which a classifier does not need")

    graph = model.graph
    if len(graph.node) > MAX_NODES:
        raise OnnxStructureError(f"{len(graph.node)} nodes (limit {MAX_NODES})")
    total = 0
    for tensor in _tensors(graph):
        total += _check_tensor(tensor)
        if total > MAX_TOTAL_BYTES:
            raise OnnxStructureError(f"the tensors declare over {MAX_TOTAL_BYTES >> 20} MiB")

    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:  # ValidationError, InferenceError, and whatever shape inference raises
        raise OnnxStructureError(f"onnx.checker: {type(exc).__name__}: {first_line(exc)}") from None


def _tensors(graph: Any) -> Iterator[Any]:
    """Every tensor stored in the graph: initializers, sparse initializers and attribute values.

    Also refuses the nodes themselves: an operator outside the allow-list, or any graph-valued
    attribute (control flow), is an error here.
    """
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        if node.domain not in _DEFAULT_DOMAINS or node.op_type not in ALLOWED_OPERATORS:
            where = f"{node.domain}." if node.domain else ""
            raise OnnxStructureError(
                f"operator {where}{node.op_type or '(empty)'} is not one an image classifier uses"
            )
        ranges = ATTRIBUTE_RANGES.get(node.op_type, {})
        for attribute in node.attribute:
            if attribute.type in (_GRAPH, _GRAPHS) or attribute.HasField("g") or len(attribute.graphs):
                raise OnnxStructureError(f"node {node.name or node.op_type} has a subgraph attribute")
            allowed = ranges.get(attribute.name)
            values = [attribute.i] if attribute.type == _INT else list(attribute.ints)
            if allowed is not None and (len(values) > 2 * MAX_RANK or any(v not in allowed for v in values)):
                raise OnnxStructureError(
                    f"node {node.name or node.op_type} ({node.op_type}) has {attribute.name} {values[:8]}, "
                    f"outside {allowed.start}..{allowed.stop - 1}"
                )
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            if attribute.HasField("sparse_tensor"):
                yield attribute.sparse_tensor.values
                yield attribute.sparse_tensor.indices
            for sparse in attribute.sparse_tensors:
                yield sparse.values
                yield sparse.indices


def _check_tensor(tensor: Any) -> int:
    """Checks one stored tensor; returns the bytes it declares."""
    name = tensor.name or "(unnamed)"
    if tensor.data_location == _EXTERNAL or len(tensor.external_data):
        raise OnnxStructureError(
            f"tensor {name!r} keeps its data in an external file; mnist-edge refuses external data "
            "(a model must be one self-contained file)"
        )
    itemsize = ELEMENT_BYTES.get(tensor.data_type)
    if itemsize is None:
        raise OnnxStructureError(f"tensor {name!r} has data type {tensor.data_type}, which is not supported")
    dims = list(tensor.dims)
    if len(dims) > MAX_RANK or any(d < 0 for d in dims):
        raise OnnxStructureError(f"tensor {name!r} has shape {dims}")
    elements, nbytes = tensor_size(f"tensor {name!r}", dims, itemsize, OnnxStructureError)
    if tensor.raw_data:
        if len(tensor.raw_data) != nbytes:
            raise OnnxStructureError(
                f"tensor {name!r} (shape {dims}) needs {nbytes} bytes but holds {len(tensor.raw_data)}"
            )
    else:
        field, per_element = _TYPED_FIELD.get(tensor.data_type, ("int32_data", 1))
        stored = len(getattr(tensor, field))
        if stored != elements * per_element:
            raise OnnxStructureError(
                f"tensor {name!r} (shape {dims}) needs {elements * per_element} values but holds {stored}"
            )
    return nbytes
