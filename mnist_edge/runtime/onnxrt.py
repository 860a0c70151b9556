"""onnxruntime backend for ``.onnx`` files.

One ``InferenceSession`` serves every thread: onnxruntime documents concurrent ``run`` calls on a
session as safe. The session is built from the verified bytes (never re-read from disk), on the
CPU provider, with ``threads`` intra-op threads and sequential execution - the edge setting.

Speed: ``InferenceSession.run`` re-validates the feed's names and OrtValue ownership on every call
(~10 us of a ~30 us batch-1 call here). Our feed is built by us - one numpy array under the one
input name - so we call the underlying C++ session (``InferenceSession._sess``) directly, and fall
back to the public method if a future onnxruntime renames it.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from mnist_edge.errors import ModelLoadError
from mnist_edge.manifest import TensorSpec
from mnist_edge.runtime.base import Backend, Finish, Runner, Writer

__all__ = ["OnnxBackend", "session_options"]

_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(uint8)": "uint8",
    "tensor(int8)": "int8",
}


def session_options(threads: int) -> Any:
    """The ``onnxruntime.SessionOptions`` every session of ours is built with: ``threads`` intra-op
    threads, sequential execution, errors-only logging. The benchmark's bare engine uses it too,
    so backend and baseline differ only in the runtime's own code."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # errors only: warnings would go to the embedding app's stderr
    return options


class OnnxBackend(Backend):
    name = "onnxruntime"
    aliases = ("onnx", "ort")
    format = "onnx"

    @classmethod
    def check_file(cls, path: Path, data: bytes) -> None:
        """Refuse external data, oversized tensors and unchecked graphs before onnxruntime parses
        the file (see onnx_check)."""
        from mnist_edge.runtime.onnx_check import OnnxStructureError, check_onnx

        try:
            check_onnx(data)
        except OnnxStructureError as exc:
            raise ModelLoadError(
                f"{cls.name} cannot load {path}: {exc}; refused by the structural pre-check before "
                "onnxruntime read it - the file is corrupt or not one of our models: re-export it"
            ) from None

    def __init__(self, path: Path, data: bytes, *, threads: int = 1) -> None:
        import onnxruntime as ort

        session = ort.InferenceSession(
            data, sess_options=session_options(threads), providers=["CPUExecutionProvider"]
        )
        inputs, outputs = session.get_inputs(), session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelLoadError(
                f"{path} has {len(inputs)} inputs and {len(outputs)} outputs; an MNIST classifier "
                "has one of each"
            )
        self.input = _spec(inputs[0])
        self.output = _spec(outputs[0])
        if self.input.shape and self.input.shape[0] is not None:
            self.fixed_batch = self.input.shape[0]
        self._session = session
        self._local = threading.local()
        input_name, output_names = inputs[0].name, [outputs[0].name]
        inner = getattr(session, "_sess", None)
        if inner is not None and hasattr(inner, "run"):
            run, run_options = inner.run, ort.RunOptions()
            self._call = lambda batch: run(output_names, {input_name: batch}, run_options)[0]
        else:  # pragma: no cover - only on an onnxruntime without the private session attribute
            run = session.run
            self._call = lambda batch: run(output_names, {input_name: batch})[0]

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self._call(batch)

    def runner(self, finish: Finish | None = None) -> Runner:
        call = self._call
        return call if finish is None else lambda batch: finish(call(batch))

    def converted_runner(self, write: Writer, finish: Finish | None = None) -> Runner:
        # Pixels are converted into an input buffer this thread keeps, sized for the last batch
        # (as LiteRT keeps its tensor arena): onnxruntime reads the input only during run(), and a
        # warm buffer saves ~2 us of a ~30 us batch-1 call and ~4 % of a batch of 1,024 (no fresh
        # pages to fault in). The Classifier never passes more than MAX_BATCH_CHUNK images here.
        local, call, dtype = self._local, self._call, np.dtype(self.input.dtype)

        def run_pixels(pixels: np.ndarray) -> np.ndarray:
            buffer = getattr(local, "buffer", None)
            if buffer is None or len(buffer) != len(pixels):  # pixels are always (n, *inner)
                buffer = local.buffer = np.empty(pixels.shape, dtype=dtype)
            write(pixels, buffer)
            return call(buffer) if finish is None else finish(call(buffer))

        return run_pixels


def _spec(node: Any) -> TensorSpec:
    dtype = _ORT_TYPES.get(node.type)
    if dtype is None:
        raise ModelLoadError(
            f"tensor {node.name!r} has type {node.type}; the runtime supports {', '.join(_ORT_TYPES)}"
        )
    # Symbolic ('N', 'unk__20') and missing dimensions are dynamic.
    shape = tuple(d if isinstance(d, int) and d > 0 else None for d in (node.shape or []))
    return TensorSpec(name=str(node.name), shape=shape, dtype=dtype)
