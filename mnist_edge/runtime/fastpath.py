"""The hot path: every trick that makes a small-batch call cheap, in one place.

At batch 1 an engine call takes 6-60 us, and the runtime's wrapper must stay within a quarter of
it (``benchmarks/runtime_overhead.py``). Between two engine calls every Python and numpy
operation runs with cold caches, so a few hundred nanoseconds per avoided step add up. Each trick
below is here because removing it was measured to cost a share of that budget:

- the Classifier tests for the hot case (a uint8 ndarray shaped ``(n, *image shape)``, n up to
  :data:`HOT_BATCH_MAX`) inline, with one lookup in a cached set of shapes (:func:`hot_shapes`);
- LiteRT through its pybind wrapper (:class:`LiteRTCalls`), the loading thread's interpreter
  found by thread id rather than ``threading.local`` (:func:`litert_bind`), float pixels
  converted straight into the input tensor;
- onnxruntime through its C++ session (:func:`onnx_call`), float pixels converted into a warm
  per-thread buffer (:func:`onnx_bind`);
- quantised batch-1 outputs remembered by their bytes (:func:`remember_rows`).

Every trick that reaches into an engine's private API falls back to the public one when the
attribute is missing (an engine upgrade may rename it); ``tests/test_fastpath.py`` runs every
artifact kind both ways and requires identical outputs. The division folded into a
dynamic-range model's first layer is a model rewrite, not a per-call step: it lives in
:mod:`~mnist_edge.runtime.tflite_fold`.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from mnist_edge.runtime.base import Finish, Runner, Writer

__all__ = [
    "HOT_BATCH_MAX",
    "MEMO_ROWS",
    "PRIVATE_ATTRIBUTES",
    "LiteRTCalls",
    "hot_shapes",
    "litert_bind",
    "onnx_bind",
    "onnx_call",
    "remember_rows",
]

#: uint8 batches up to this size take the Classifier's inline hot path; larger ones go the general
#: way, whose extra microsecond or two is lost in the milliseconds such a batch takes to infer.
HOT_BATCH_MAX = 64
#: Rows the batch-1 normaliser remembers (about 250 bytes each).
MEMO_ROWS = 2048
#: The engines' private attributes used per call, by engine. Read at model load; an engine
#: without them runs through its public methods.
PRIVATE_ATTRIBUTES = {"litert": "_interpreter", "onnxruntime": "_sess"}


# --------------------------------------------------------------------------- Classifier


@functools.cache
def hot_shapes(inner: tuple[int, ...], max_batch: int) -> frozenset[tuple[int, ...]]:
    """Every input shape ``(n, *inner)``, 1 <= n <= ``max_batch``, that the Classifier's inline
    hot path takes as it is: one set lookup (hash a small tuple) instead of slicing the shape,
    comparing the slice and range-checking the batch."""
    return frozenset((n, *inner) for n in range(1, max_batch + 1))


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
        raw = getattr(interpreter, PRIVATE_ATTRIBUTES["litert"], None)
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
    main: LiteRTCalls,
    owner: int,
    index: int,
    out_index: int,
    write: Writer | None,
    finish: Finish | None,
) -> Runner:
    """The LiteRT per-call function: ``set_tensor`` of ready model input, or (``write``) the
    converted pixels written straight into the input tensor - no temporary, no copy.

    ``main`` is the loading thread's interpreter, found by comparing thread ids (``owner``);
    ``state_for(n)`` gives any other thread's, or resizes for a new batch size. A view of the
    input tensor must be gone before invoke: the engine may move its buffers (on a resize, or
    inside invoke for a graph with data-dependent shapes), so one is made per call.
    """
    get_ident = threading.get_ident

    def run(batch: np.ndarray) -> np.ndarray:
        state = main
        if get_ident() != owner or len(batch) != state.n:  # len(): cheaper than .shape[0]
            state = state_for(len(batch))
        if write is None:
            state.set(index, batch)
        else:
            view = state.view(state.base, index)
            write(batch, view)
            del view
        state.invoke()
        return state.get(out_index) if finish is None else finish(state.get(out_index))

    return run


# --------------------------------------------------------------------------- onnxruntime


def onnx_call(session: Any, input_name: str, output_name: str) -> Runner:
    """``session.run`` for our one input and one output, as a function of the batch.

    The public ``InferenceSession.run`` re-validates the feed's names and OrtValue ownership on
    every call; our feed is one numpy array under the one input name, so the C++ session
    underneath is called directly.
    """
    output_names = [output_name]
    inner = getattr(session, PRIVATE_ATTRIBUTES["onnxruntime"], None)
    if inner is not None and hasattr(inner, "run"):
        import onnxruntime as ort

        run, run_options = inner.run, ort.RunOptions()
        return lambda batch: run(output_names, {input_name: batch}, run_options)[0]
    public_run = session.run
    return lambda batch: public_run(output_names, {input_name: batch})[0]


def onnx_bind(call: Runner, dtype: np.dtype, write: Writer | None, finish: Finish | None) -> Runner:
    """The onnxruntime per-call function. Pixels are converted into an input buffer the calling
    thread keeps, sized for its last batch (as LiteRT keeps its tensor arena): onnxruntime reads
    the input only during ``run``, and a warm buffer has no fresh pages to fault in. The
    Classifier never passes more than ``MAX_BATCH_CHUNK`` images here."""
    if write is None:
        return call if finish is None else lambda batch: finish(call(batch))
    local = threading.local()

    def run_pixels(pixels: np.ndarray) -> np.ndarray:
        buffer = getattr(local, "buffer", None)
        if buffer is None or len(buffer) != len(pixels):  # pixels are always (n, *inner)
            buffer = local.buffer = np.empty(pixels.shape, dtype=dtype)
        write(pixels, buffer)
        return call(buffer) if finish is None else finish(call(buffer))

    return run_pixels


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
