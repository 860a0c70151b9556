"""LiteRT (``ai-edge-litert``) backend for ``.tflite`` files.

A LiteRT interpreter is not thread-safe (threads sharing one fail most of their calls), so each
thread gets its own, built lazily from the same verified bytes and kept in a ``threading.local``;
the thread that loaded the model keeps the first. A batch of a new size resizes that thread's
input tensor. The per-call function is built by :func:`~mnist_edge.runtime.fastpath.litert_bind`.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from mnist_edge._mnist import NUM_CLASSES
from mnist_edge.manifest import TensorSpec
from mnist_edge.runtime import fastpath, preprocess
from mnist_edge.runtime.base import Backend, Finish, Runner, Writer
from mnist_edge.runtime.fastpath import LiteRTCalls

__all__ = ["LiteRTBackend", "new_interpreter"]


def new_interpreter(model_content: bytes, threads: int) -> Any:
    """A LiteRT ``Interpreter`` over ``model_content`` with ``threads`` threads and its tensors
    allocated, built as the backend builds each of its own; the benchmark's bare engine uses it too.

    LiteRT applies its XNNPACK delegate at the first allocation and says so on stderr, from C++
    ("INFO: Created TensorFlow Lite XNNPACK delegate for CPU."), every time: creation and first
    allocation happen here with fd 2 silenced (``MNIST_EDGE_VERBOSE=1`` keeps the line).
    """
    from ai_edge_litert.interpreter import Interpreter

    from mnist_edge._quiet import silenced_native_stderr

    with silenced_native_stderr():
        interpreter = Interpreter(model_content=model_content, num_threads=threads)
        interpreter.allocate_tensors()
    return interpreter


class LiteRTBackend(Backend):
    name = "litert"
    aliases = ("tflite",)
    format = "tflite"

    @classmethod
    def check_file(cls, path: Path, data: bytes) -> None:
        """Refuse, before LiteRT parses them, files that would crash or exhaust it (see tflite_check)."""
        from mnist_edge.runtime.guard.tflite_check import TFLiteStructureError, check_tflite

        try:
            check_tflite(data)
        except TFLiteStructureError as exc:
            raise cls.refused(path, exc, "LiteRT", "re-run `mnist-edge export`") from None

    def __init__(self, path: Path, data: bytes, *, threads: int = 1) -> None:
        self._data, self._threads = data, threads
        interpreter = self._interpreter()
        inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
        self.one_input_one_output(path, inputs, outputs)
        self._input_index = int(inputs[0]["index"])
        self._output_index = int(outputs[0]["index"])
        self.input = _spec(inputs[0])
        self.output = _spec(outputs[0])
        self._inner = [int(d) for d in inputs[0]["shape"][1:]]
        if self.input.shape[0] is not None and not self._resizable():
            self.fixed_batch = self.input.shape[0]
        self._start(interpreter)

    def _interpreter(self, data: bytes | None = None) -> Any:
        """A new interpreter over ``data`` (default: the model this backend runs)."""
        return new_interpreter(self._data if data is None else data, self._threads)

    def _start(self, interpreter: Any) -> None:
        """Make ``interpreter`` the loading thread's and reset the other threads' (built lazily
        from ``self._data``)."""
        self._local = threading.local()
        self._local.state = LiteRTCalls(interpreter, self._input_index)
        self._run = self.bind()

    def fold_input_scale(self, divide_by: float) -> bool:
        """Swap in the model with ``/ divide_by`` folded into its first layer (dynamic-range models
        only, see :mod:`~mnist_edge.runtime.tflite_fold`), after checking that it gives the
        original's outputs on the load-time check images; keep the original otherwise."""
        from mnist_edge.runtime.tflite_fold import fold_input_division

        folded = fold_input_division(self._data, divide_by)
        if folded is None:
            return False
        original, rewritten = self._interpreter(), self._interpreter(folded)
        if not preprocess.fold_keeps_answers(
            lambda batch: self._outputs(original, batch),
            lambda batch: self._outputs(rewritten, batch),
            tuple(self._inner),
            divide_by,
            self.fixed_batch,
        ):
            return False
        self._data = folded
        self._start(self._interpreter())
        return True

    def _outputs(self, interpreter: Any, batch: np.ndarray) -> np.ndarray:
        """One run of a scratch interpreter through the public API."""
        interpreter.resize_tensor_input(self._input_index, list(batch.shape), strict=False)
        interpreter.allocate_tensors()
        interpreter.set_tensor(self._input_index, batch)
        interpreter.invoke()
        return np.array(interpreter.get_tensor(self._output_index), dtype=np.float64)

    def _resizable(self) -> bool:
        """Whether a model exported with a static batch still runs at another batch size (tried on
        a scratch interpreter: a failed resize may leave one unusable)."""
        try:
            zeros = np.zeros([2, *self._inner], dtype=self.input.dtype)
            return self._outputs(self._interpreter(), zeros).shape == (2, NUM_CLASSES)
        except Exception:
            return False

    def _state(self, n: int) -> LiteRTCalls:
        """This thread's interpreter (made on first use), its input resized for a batch of ``n``."""
        try:
            state = self._local.state
        except AttributeError:
            state = self._local.state = LiteRTCalls(self._interpreter(), self._input_index)
        if n != state.n:
            state.resize([n, *self._inner])
            state.allocate()
            state.n = n
        return state

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self._run(batch)

    def bind(self, write: Writer | None = None, finish: Finish | None = None) -> Runner:
        return fastpath.litert_bind(self._state, self._input_index, self._output_index, write, finish)

    def close(self) -> None:
        # Every thread's interpreter lives in the one threading.local: dropping it (and the model
        # bytes) frees them all, and a call after close fails instead of running a stale engine.
        self._local = self._data = self._run = None  # type: ignore[assignment]


def _spec(detail: dict[str, Any]) -> TensorSpec:
    signature = detail.get("shape_signature")
    shape = detail["shape"] if signature is None or len(signature) == 0 else signature
    dims = tuple(None if int(d) < 0 else int(d) for d in shape)
    dtype = np.dtype(detail["dtype"]).name
    scale, zero_point = detail.get("quantization", (0.0, 0))
    quantized = dtype in ("uint8", "int8") and scale > 0
    return TensorSpec(
        name=str(detail["name"]),
        shape=dims,
        dtype=dtype,
        scale=float(scale) if quantized else None,
        zero_point=int(zero_point) if quantized else None,
    )
