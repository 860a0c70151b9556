"""The hot path: every per-call speed trick of the runtime, in one place.

At batch 1 an engine call takes a few microseconds, and the runtime's wrapper must stay within
a quarter of it (``benchmarks/runtime_overhead.py``: wrapper / bare engine <= 1.25 at batch 1,
<= 1.05 at batch 1,024, every artifact). Between two engine calls every Python and numpy
operation runs with cold caches, so a few hundred nanoseconds per avoided step add up. A trick
stays only while taking it out breaks a budget. The Classifier tests for the hot case (a uint8
ndarray shaped ``(n, *image shape)``, 1 <= n <= :data:`HOT_BATCH_MAX`) inline in ``predict`` and
``predict_proba`` and calls a function bound here.

What taking each trick out did to that ratio (median of runs of that script with the trick
patched out, on the 30-epoch exports, a 2-CPU VM shared with other jobs; as of the runs of
benchmarks/runtime_overhead.py on 2026-11-30, before and after the change):

- :func:`remember_rows`, quantised batch-1 outputs remembered by their bytes: int8 .tflite
  1.14 -> 1.73, int8 .onnx 0.95 -> 1.21 at batch 1. Kept.
- :class:`LiteRTCalls`, LiteRT's pybind wrapper instead of its public methods: int8 .tflite
  1.14 -> 1.21, dynamic 1.07 -> 1.20 at batch 1; with the removals below, 1.24 and 1.23, and two
  of six runs over 1.25. Kept.
- :func:`litert_bind` writing converted float pixels straight into LiteRT's input tensor:
  dynamic .tflite 1.01 -> 1.11 at batch 1,024, 1.07 -> 1.17 at batch 1. Kept.
- :func:`divide_in_place`, cast then divide in place for float32 input: with the ONNX buffer
  below gone, fp32 .onnx at batch 1,024 is 1.03 with it and 1.12 without (six runs, 1.04-1.22).
  Kept: fp32 .tflite and any float model the folds below do not handle go this way.
- The division folded into the dynamic-range model's first layer
  (:mod:`~mnist_edge.runtime.tflite_fold`, a model rewrite at load): dynamic .tflite
  1.01 -> 1.06 at batch 1,024. Kept.
- The division folded into a float ONNX model's first weights (:mod:`~mnist_edge.runtime.onnx_fold`,
  a model rewrite at load), leaving one cast per call: fp32 .onnx 1.045 -> 1.026 at batch 1,024
  and 1.12 -> 1.08 at batch 1 (three rounds each, run of 2026-11-30 02:40 UTC); warm load
  3.4 -> 4.9 ms. Kept.

Taken out, the budgets holding without them: onnxruntime's private C++ session instead of
``InferenceSession.run`` (fp32 .onnx 0.99 -> 1.10, int8 .onnx 0.95 -> 1.07 at batch 1); a warm
per-thread input buffer for onnxruntime (+0.02 at batch 1); finding the loading thread's LiteRT
interpreter by thread id before ``threading.local`` (+0.01); a cached set of the hot input
shapes instead of comparing the shape (within the noise, +-0.02).

The LiteRT wrapper falls back to the public methods when an engine upgrade renames it
(:data:`LITERT_WRAPPER`); ``tests/test_fastpath.py`` runs every artifact kind both ways and
requires identical outputs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from mnist_edge.runtime.base import Finish, Runner, Writer

__all__ = [
    "HOT_BATCH_MAX",
    "LITERT_WRAPPER",
    "MEMO_ROWS",
    "LiteRTCalls",
    "divide_in_place",
    "litert_bind",
    "remember_rows",
]

#: uint8 batches up to this size take the Classifier's inline hot path; larger ones go the general
#: way, whose extra microsecond or two is lost in the milliseconds such a batch takes to infer.
HOT_BATCH_MAX = 64
#: Rows the batch-1 normaliser remembers (about 250 bytes each).
MEMO_ROWS = 2048
#: LiteRT's private pybind wrapper, read at model load; an interpreter without it runs through
#: its public methods.
LITERT_WRAPPER = "_interpreter"


# --------------------------------------------------------------------------- LiteRT


class LiteRTCalls:
    """One interpreter's per-call functions, owned by one thread (an interpreter is not
    thread-safe), and the batch size its tensors are allocated for.

    The pybind wrapper's methods have the public ``set_tensor(index, value)`` / ``invoke()`` /
    ``get_tensor(index)`` signatures without the ``sys.getrefcount`` safety check the public ones
    make per call (it guards against callers holding views of tensor memory; we never hold one).
    """

    __slots__ = ("allocate", "base", "get", "interpreter", "invoke", "n", "resize", "set", "view")

    def __init__(self, interpreter: Any, input_index: int) -> None:
        self.interpreter = interpreter  # owns the delegates and keeps the model bytes alive
        raw = getattr(interpreter, LITERT_WRAPPER, None)
        needed = ("SetTensor", "Invoke", "GetTensor", "ResizeInputTensor", "AllocateTensors", "tensor")
        if raw is not None and all(hasattr(raw, name) for name in needed):
            self.set, self.invoke, self.get = raw.SetTensor, raw.Invoke, raw.GetTensor
            resize, self.allocate = raw.ResizeInputTensor, raw.AllocateTensors
            # view(base, index): a numpy view of a tensor's buffer; base keeps the memory's owner alive.
            self.view, self.base = raw.tensor, raw

            def resize_input(shape: list[int]) -> None:
                resize(input_index, np.array(shape, dtype=np.int32), False)

        else:
            self.set, self.invoke = interpreter.set_tensor, interpreter.invoke
            self.get = interpreter.get_tensor
            self.allocate = interpreter.allocate_tensors
            self.view, self.base = _public_view(interpreter), None

            def resize_input(shape: list[int]) -> None:
                interpreter.resize_tensor_input(input_index, shape, strict=False)

        self.resize = resize_input
        self.n = -1  # batch size the tensors are allocated for; -1: not yet


def _public_view(interpreter: Any) -> Callable[[Any, int], np.ndarray]:
    return lambda _base, index: interpreter.tensor(index)()


def litert_bind(
    state_for: Callable[[int], LiteRTCalls],
    index: int,
    out_index: int,
    write: Writer | None,
    finish: Finish | None,
) -> Runner:
    """The LiteRT per-call function: ``set_tensor`` of ready model input, or (``write``) the
    converted pixels written straight into the input tensor - no temporary, no copy.

    ``state_for(n)`` gives the calling thread's interpreter, its input sized for ``n`` images. A
    view of the input tensor must be gone before invoke: the engine may move its buffers (on a
    resize, or inside invoke for a graph with data-dependent shapes), so one is made per call.
    """

    def run(batch: np.ndarray) -> np.ndarray:
        state = state_for(len(batch))  # len(): cheaper than .shape[0]
        if write is None:
            state.set(index, batch)
        else:
            view = state.view(state.base, index)
            write(batch, view)
            del view
        state.invoke()
        return state.get(out_index) if finish is None else finish(state.get(out_index))

    return run


# --------------------------------------------------------------------------- input


def divide_in_place(divisor: np.ndarray) -> Writer:
    """``write(pixels, out)`` for a float32 input: cast the uint8 pixels into ``out``, then divide
    in place - the same float32 division as ``pixels / divisor``, bit for bit, but two tight loops
    instead of one buffered mixed-type loop. (Item assignment, not ``np.copyto``, whose
    Python-level dispatcher costs more than the copy of one image.)"""
    divide = np.divide

    def write(pixels: np.ndarray, out: np.ndarray) -> object:
        out[...] = pixels
        return divide(out, divisor, out)

    return write


# --------------------------------------------------------------------------- output


def remember_rows(compute: Finish) -> Finish:
    """``compute`` with the answers for single rows remembered, keyed by the row's raw bytes.

    For quantised probabilities: a confident classifier's int8 softmax has few distinct rows,
    so real batch-1 traffic mostly hits, and a hit is one ``tobytes``, one dict lookup and a
    copy instead of ``compute``'s numpy calls. The answer is a copy of what ``compute`` gave
    the first time - the function every batch goes through - so a row's result never depends on
    the batch it came in. The memo stops growing at :data:`MEMO_ROWS` rows.
    """
    rows: dict[bytes, np.ndarray] = {}

    def remembered(raw: np.ndarray) -> np.ndarray:
        if raw.shape[0] != 1:
            return compute(raw)
        key = raw.tobytes()
        row = rows.get(key)
        if row is None:
            row = compute(raw)
            if len(rows) < MEMO_ROWS:
                rows[key] = row
        return row.copy()

    return remembered
