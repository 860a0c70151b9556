"""onnxruntime backend for ``.onnx`` files.

One ``InferenceSession`` serves every thread: onnxruntime documents concurrent ``run`` calls on a
session as safe. The session is built from the verified bytes (never re-read from disk), on the
CPU provider, with ``threads`` intra-op threads and sequential execution - the edge setting.
Calls go through the public ``InferenceSession.run``: :mod:`~mnist_edge.runtime.fastpath` says why
no shortcut is taken here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mnist_edge.errors import ModelLoadError
from mnist_edge.manifest import TensorSpec
from mnist_edge.runtime import preprocess
from mnist_edge.runtime.base import Backend

__all__ = ["ORT_TYPES", "OnnxBackend", "session_options", "tensor_spec"]

#: onnxruntime's type names -> the manifest's dtypes: the types our models use.
ORT_TYPES = {
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
        from mnist_edge.runtime.guard.onnx_check import OnnxStructureError, check_onnx

        try:
            check_onnx(data)
        except OnnxStructureError as exc:
            raise cls.refused(path, exc, "onnxruntime", "re-export it") from None

    def __init__(self, path: Path, data: bytes, *, threads: int = 1) -> None:
        self._data, self._threads = data, threads
        session = self._new_session(data)
        inputs, outputs = session.get_inputs(), session.get_outputs()
        self.one_input_one_output(path, inputs, outputs)
        self.input = tensor_spec(inputs[0])
        self.output = tensor_spec(outputs[0])
        if self.input.shape and self.input.shape[0] is not None:
            self.fixed_batch = self.input.shape[0]
        self._session = session
        self._input_name, self._output_names = inputs[0].name, [outputs[0].name]

    def _new_session(self, data: bytes) -> Any:
        import onnxruntime as ort

        options = session_options(self._threads)
        return ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self._session.run(self._output_names, {self._input_name: batch})[0]

    def fold_input_scale(self, divide_by: float) -> bool:
        """Swap in the model with ``/ divide_by`` folded into its first layer (float32 input
        only, see :mod:`~mnist_edge.runtime.onnx_fold`), after checking that it gives the
        original's outputs on the load-time check images; keep the original otherwise."""
        from mnist_edge.runtime.onnx_fold import fold_input_division

        inner = self.input.shape[1:]
        if self.input.dtype != "float32" or None in inner:
            return False
        folded = fold_input_division(self._data, divide_by)
        if folded is None:
            return False
        session = self._new_session(folded)
        if not preprocess.fold_keeps_answers(
            self.run,
            lambda batch: session.run(self._output_names, {self._input_name: batch})[0],
            inner,
            divide_by,
            self.fixed_batch,
        ):
            return False
        self._session, self._data = session, folded
        return True

    def close(self) -> None:
        self._session = None


def tensor_spec(node: Any) -> TensorSpec:
    """An onnxruntime ``NodeArg`` (``session.get_inputs()[0]``) as a TensorSpec; the exporter reads
    the files it writes back through this too."""
    dtype = ORT_TYPES.get(node.type)
    if dtype is None:
        raise ModelLoadError(
            f"tensor {node.name!r} has type {node.type}; the runtime supports {', '.join(ORT_TYPES)}"
        )
    # Symbolic ('N', 'unk__20') and missing dimensions are dynamic.
    shape = tuple(d if isinstance(d, int) and d > 0 else None for d in (node.shape or []))
    return TensorSpec(name=str(node.name), shape=shape, dtype=dtype)
