"""Fold the input's ``/ 255`` into a dynamic-range model's first layer, so uint8 pixels need one cast.

Why: a dynamic-range (hybrid) ``.tflite`` takes float32 pixels in [0, 1], and turning a uint8
image into those is two numpy calls (cast, divide). Between two engine calls every numpy call
runs with cold caches, and the divide alone is a large share of this small model's batch-1
call: :mod:`~mnist_edge.runtime.fastpath` lists what the fold saved when measured.

The first layer of such a model is a FULLY_CONNECTED with int8 weights ``q`` and per-channel (or
per-tensor) float scales ``s``: it computes ``(q * s) @ x + b``. Feeding ``255 * x`` instead and
dividing every ``s`` by 255 gives the same product - the int8 weights, the bias and every other
operator are untouched. The kernel quantises its float input per batch row with a scale taken
from the row's own maximum, so the int8 levels it computes from ``255 * x`` are those it computed
from ``x`` (they can differ by one level where ``x * 127 / max(x)`` falls within a float rounding
of a half: probabilities move by far less than a hundredth and labels not at all, as
``tests/test_tflite_fold.py`` checks). This changes only the scale vector's bytes, in a copy of
the model in memory; the file and its hash stay as exported, and a bare LiteRT user still feeds ``x / 255``.

Only this exact shape of graph is folded: the model input feeds one operator, either that layer
or a RESHAPE whose output feeds only that layer, as its data input; the weights are constant int8,
used by no other operator, with a scale vector no other tensor shares. Anything else (float or
float16 weights, an integer input, a convolution first) returns ``None`` and runs unfolded.
The caller (:meth:`LiteRTBackend.fold_input_scale`) also checks the folded model's outputs
against the original's before using it.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from mnist_edge.runtime.guard.tflite_check import (
    _BUF_DATA,
    _MODEL_BUFFERS,
    _MODEL_OPCODES,
    _MODEL_SUBGRAPHS,
    _OP_INPUTS,
    _OP_OPCODE,
    _OP_OUTPUTS,
    _Q_SCALE,
    _SG_INPUTS,
    _SG_OPERATORS,
    _SG_OUTPUTS,
    _SG_TENSORS,
    _T_BUFFER,
    _T_QUANT,
    _T_TYPE,
    MAX_BUFFERS,
    MAX_OPERATOR_CODES,
    MAX_OPERATORS,
    MAX_TENSOR_BYTES,
    MAX_TENSORS,
    _Buffer,
    _builtin_code,
    _ints,
    _Table,
)

__all__ = ["fold_input_division"]

_FULLY_CONNECTED, _RESHAPE = 9, 22
_FLOAT32, _INT8 = 0, 9


def fold_input_division(data: bytes, divide_by: float) -> bytes | None:
    """A copy of the model that takes ``pixels`` where ``data`` takes ``pixels / divide_by``, or
    ``None`` when the graph is not one this fold is exact for (see the module docstring).

    ``data`` must already have passed :func:`~mnist_edge.runtime.guard.tflite_check.check_tflite`.
    """
    buf = _Buffer(data)
    model = buf.table(buf.follow(0))
    codes = [_builtin_code(code) for code in model.tables(_MODEL_OPCODES, MAX_OPERATOR_CODES, "opcodes")]
    subgraph = model.tables(_MODEL_SUBGRAPHS, 1, "subgraphs")[0]
    tensors = subgraph.tables(_SG_TENSORS, MAX_TENSORS, "tensors")
    buffers = model.tables(_MODEL_BUFFERS, MAX_BUFFERS, "buffers")
    graph_inputs = list(_ints(subgraph, _SG_INPUTS, "inputs"))
    graph_outputs = set(_ints(subgraph, _SG_OUTPUTS, "outputs"))
    if len(graph_inputs) != 1 or tensors[graph_inputs[0]].scalar(_T_TYPE, "b") != _FLOAT32:
        return None

    ops = [
        (
            codes[op.scalar(_OP_OPCODE, "I")],
            list(_ints(op, _OP_INPUTS, "inputs")),
            list(_ints(op, _OP_OUTPUTS, "outputs")),
        )
        for op in subgraph.tables(_SG_OPERATORS, MAX_OPERATORS, "operators")
    ]
    uses = Counter(index for _, inputs, _ in ops for index in inputs)  # an index twice in one op counts twice

    def only_consumer(tensor: int) -> tuple[int, list[int], list[int]] | None:
        if tensor in graph_outputs or uses[tensor] != 1:
            return None
        return next(op for op in ops if tensor in op[1])

    feeds = graph_inputs[0]
    layer = only_consumer(feeds)
    if layer is not None and layer[0] == _RESHAPE and layer[1][0] == feeds:
        feeds = layer[2][0]
        layer = only_consumer(feeds)
    if layer is None or layer[0] != _FULLY_CONNECTED or layer[1][0] != feeds or len(layer[1]) < 2:
        return None

    weights = layer[1][1]
    if weights < 0 or only_consumer(weights) is None or tensors[weights].scalar(_T_TYPE, "b") != _INT8:
        return None
    if not buffers[tensors[weights].scalar(_T_BUFFER, "I")].byte_length(_BUF_DATA, "weights"):
        return None  # not a constant: computed at run time
    scales = _scale_vector(tensors[weights])
    if scales is None or any(_scale_vector(t) == scales for i, t in enumerate(tensors) if i != weights):
        return None
    start, count = scales
    old = np.frombuffer(data, dtype="<f4", count=count, offset=start)
    folded = bytearray(data)
    folded[start : start + 4 * count] = (old / np.float32(divide_by)).astype("<f4").tobytes()
    return bytes(folded)


def _scale_vector(tensor: _Table) -> tuple[int, int] | None:
    quantization = tensor.table(_T_QUANT)
    found = None if quantization is None else quantization.vector(_Q_SCALE, 4, MAX_TENSOR_BYTES, "scales")
    return found if found is not None and found[1] > 0 else None
