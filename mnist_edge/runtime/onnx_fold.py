"""Fold the input's ``/ 255`` into a float ONNX model's first layer, so uint8 pixels need one cast.

Why: a float ``.onnx`` takes float32 pixels in [0, 1], and turning a uint8 batch into those is a
cast and a divide, two whole passes over the batch that show against the engine call at large
batches (:mod:`~mnist_edge.runtime.fastpath` lists what the fold saved when measured). The first
layer of our float models is linear in its input: a ``MatMul``/``Gemm`` (``x @ W``) or a ``Conv``
(``W * x``, zero padding). Feeding ``255 * x`` and dividing ``W`` by 255 gives the same product up
to float rounding; the bias and every other node are untouched. The caller
(:meth:`~mnist_edge.runtime.onnxrt.OnnxBackend.fold_input_scale`) checks the folded model's
outputs against the original's before using it.

Only this shape of graph is folded: the graph input feeds exactly one node, either that layer
(as its data input) or a ``Reshape``/``Flatten`` whose output feeds only that layer; the weight
is a float32 initializer used by no other node and not a graph input (which a caller could
override). Anything else returns ``None`` and runs unfolded. The change is made in a copy of the
model in memory, after the hash check: the file stays as exported, and a bare onnxruntime user
still feeds ``x / 255``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

__all__ = ["fold_input_division"]

#: The linear first layers, with the position of their weight among the node's inputs.
_WEIGHT_INPUT = {"MatMul": 1, "Gemm": 1, "Conv": 1}
_PASS_THROUGH = frozenset({"Reshape", "Flatten"})


def fold_input_division(data: bytes, divide_by: float) -> bytes | None:
    """The serialised model ``data`` with its first layer's weight divided by ``divide_by``, or
    ``None`` when the graph is not one this fold handles exactly (see the module docstring)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load_from_string(data)
    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    inputs = [i.name for i in graph.input if i.name not in initializers]
    if len(inputs) != 1:
        return None
    # A graph output counts as a use: a value read from outside must not change.
    uses = Counter(name for node in graph.node for name in node.input)
    uses.update(output.name for output in graph.output)
    layer = _first_layer(graph.node, inputs[0], uses)
    if layer is None:
        return None
    weight_name = layer.input[_WEIGHT_INPUT[layer.op_type]]
    weight = initializers.get(weight_name)
    if weight is None or uses[weight_name] != 1 or weight_name in {i.name for i in graph.input}:
        return None
    if weight.data_type != onnx.TensorProto.FLOAT or weight.data_location == onnx.TensorProto.EXTERNAL:
        return None
    values = numpy_helper.to_array(weight)
    folded = numpy_helper.from_array(values / np.float32(divide_by), name=weight_name)
    weight.CopyFrom(folded)
    return model.SerializeToString()


def _first_layer(nodes: Any, input_name: str, uses: Counter[str]) -> Any | None:
    """The linear node the graph input reaches, directly or through one reshape, if that is the
    only way it is used."""
    if uses[input_name] != 1:
        return None
    node = next(n for n in nodes if input_name in n.input)
    if node.op_type in _PASS_THROUGH and node.input[0] == input_name and len(node.output) == 1:
        (through,) = node.output
        if uses[through] != 1:
            return None
        input_name = through
        node = next(n for n in nodes if through in n.input)
    if node.op_type not in _WEIGHT_INPUT or len(node.input) <= 1 or node.input[0] != input_name:
        return None
    return node
