"""LiteRT (``ai-edge-litert``) backend for ``.tflite`` files.

A LiteRT interpreter is not thread-safe (8 threads sharing one failed 2,393 of 2,400 calls in
our measurements), so each thread gets its own, built lazily from the same verified bytes and
kept in a ``threading.local``. The thread that loaded the model uses the first interpreter, found
by comparing thread ids: cheaper than the ``threading.local`` lookup, which measured about 2 % of a
batch-1 call. A batch of a new size resizes that thread's input tensor.

Speed: the per-call path uses the interpreter's pybind wrapper (``Interpreter._interpreter``)
directly. The public methods add a ``sys.getrefcount`` safety check per call that guards against
callers holding views of tensor memory; we never hold one, and the wrapper saves ~0.5 us of a
~6 us int8 call. If a future LiteRT drops the wrapper, we fall back to the public methods.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from mnist_edge.errors import ModelLoadError
from mnist_edge.manifest import TensorSpec
from mnist_edge.runtime import preprocess
from mnist_edge.runtime.base import Backend, Finish, Runner, Writer

__all__ = ["LiteRTBackend", "new_interpreter"]


def new_interpreter(model_content: bytes, threads: int) -> Any:
    """A LiteRT ``Interpreter`` over ``model_content`` with ``threads`` threads, built as the
    backend builds each of its own; the benchmark's bare engine uses it too."""
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_content=model_content, num_threads=threads)


class _ThreadState:
    """One interpreter and its pre-bound calls, owned by one thread."""

    __slots__ = ("allocate", "base", "get", "interpreter", "invoke", "n", "resize", "set", "view")

    def __init__(self, interpreter: Any, input_index: int) -> None:
        self.interpreter = interpreter  # owns the delegates and keeps the model bytes alive
        raw = getattr(interpreter, "_interpreter", None)
        needed = ("SetTensor", "Invoke", "GetTensor", "ResizeInputTensor", "AllocateTensors")
        if raw is not None and all(hasattr(raw, name) for name in needed):
            # Same signatures as the public set_tensor(index, value) / invoke() / get_tensor(index).
            self.set, self.invoke, self.get = raw.SetTensor, raw.Invoke, raw.GetTensor
            resize, self.allocate = raw.ResizeInputTensor, raw.AllocateTensors
            # view(base, index): a numpy view of a tensor's buffer; base keeps the memory's owner alive.
            self.view, self.base = raw.tensor, raw

            def resize_input(shape: list[int]) -> None:
                resize(input_index, np.array(shape, dtype=np.int32), False)

        else:  # pragma: no cover - only on a LiteRT without the pybind wrapper attribute
            self.set, self.invoke = interpreter.set_tensor, interpreter.invoke
            self.get = interpreter.get_tensor
            self.allocate = interpreter.allocate_tensors
            self.view, self.base = (lambda _base, index: interpreter.tensor(index)()), None

            def resize_input(shape: list[int]) -> None:
                interpreter.resize_tensor_input(input_index, shape, strict=False)

        self.resize = resize_input
        self.n = -1  # batch size the tensors are allocated for; -1: not yet


class LiteRTBackend(Backend):
    name = "litert"
    aliases = ("tflite",)
    format = "tflite"

    @classmethod
    def check_file(cls, path: Path, data: bytes) -> None:
        """Refuse, before LiteRT parses them, files that would crash or exhaust it (see tflite_check)."""
        from mnist_edge.runtime.tflite_check import TFLiteStructureError, check_tflite

        try:
            check_tflite(data)
        except TFLiteStructureError as exc:
            raise ModelLoadError(
                f"{cls.name} cannot load {path}: {exc}; refused by the structural pre-check before "
                "LiteRT read it - the file is corrupt or not one of our models: re-run `mnist-edge export`"
            ) from None

    def __init__(self, path: Path, data: bytes, *, threads: int = 1) -> None:
        self._data, self._threads = data, threads
        interpreter = self._interpreter()
        inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelLoadError(
                f"{path} has {len(inputs)} inputs and {len(outputs)} outputs; an MNIST classifier "
                "has one of each"
            )
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
        from ``self._data``). A thread id is reused only after its thread has ended, so a later
        thread with the same id never shares the interpreter with a live one."""
        self._owner = threading.get_ident()
        self._main = _ThreadState(interpreter, self._input_index)
        self._local = threading.local()
        self._run = self.runner()

    def fold_input_scale(self, divide_by: float) -> bool:
        """Swap in the model with ``/ divide_by`` folded into its first layer (dynamic-range models
        only, see :mod:`~mnist_edge.runtime.tflite_fold`), after checking that it gives the
        original's outputs on the load-time check images; keep the original otherwise."""
        from mnist_edge.runtime.tflite_fold import fold_input_division

        folded = fold_input_division(self._data, divide_by)
        if folded is None:
            return False
        pixels = preprocess.check_images().reshape(-1, *self._inner).astype(np.float32)
        pixels = np.resize(pixels, (self.fixed_batch or len(pixels), *self._inner))
        before = self._outputs(self._interpreter(), pixels / np.float32(divide_by))
        after = self._outputs(self._interpreter(folded), pixels)
        if before.shape != after.shape or not np.allclose(after, before, rtol=1e-4, atol=1e-5):
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
            return self._outputs(self._interpreter(), zeros).shape == (2, 10)
        except Exception:
            return False

    def _state(self, n: int) -> _ThreadState:
        """This thread's interpreter (made on first use), its input resized for a batch of ``n``."""
        if threading.get_ident() == self._owner:
            state = self._main
        else:
            try:
                state = self._local.state
            except AttributeError:
                state = self._local.state = _ThreadState(self._interpreter(), self._input_index)
        if n != state.n:
            state.resize([n, *self._inner])
            state.allocate()
            state.n = n
        return state

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self._run(batch)

    def runner(self, finish: Finish | None = None) -> Runner:
        return self._runner(None, finish)

    def converted_runner(self, write: Writer, finish: Finish | None = None) -> Runner:
        return self._runner(write, finish)

    def _runner(self, write: Writer | None, finish: Finish | None) -> Runner:
        """The per-call function behind both: ``set_tensor`` of ready model input, or (``write``)
        the converted pixels written straight into the input tensor - no temporary, no copy.

        The common case is inline (the loading thread, same batch size as last time), constants
        in closure cells: at batch 1 the int8 model's whole inference is ~6-15 us, so every lookup
        shows. A view of the input tensor must be gone before invoke: the engine may move its
        buffers (on a resize, or inside invoke for a graph with data-dependent shapes), so one is
        made per call.
        """
        index, out_index, state_for = self._input_index, self._output_index, self._state
        get_ident, owner, main = threading.get_ident, self._owner, self._main

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
