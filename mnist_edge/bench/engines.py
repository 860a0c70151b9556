"""The bare engines: each model run the way its engine's documentation shows, as a baseline.

A bare engine is built with the same settings as the runtime's backend for that file (the
interpreter from :func:`mnist_edge.runtime.litert.new_interpreter`, the session options from
:func:`mnist_edge.runtime.onnxrt.session_options`) and chosen through the runtime's backend
registry, so wrapper and baseline differ only in the runtime's own code. It is fed input already
in the model's own form (:func:`model_input`): the baseline does no conversion.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from mnist_edge.errors import ModelLoadError
from mnist_edge.manifest import TensorSpec

__all__ = ["RawEngine", "model_input", "raw_engine"]


def model_input(pixels: np.ndarray, spec: TensorSpec, inner: Sequence[int], divide_by: float) -> np.ndarray:
    """uint8 pixels as the model's own input: quantised integers, or ``float32(pixels) / divide_by`` in
    the model's float dtype. Computed once, outside the timed loop: the raw baseline does no conversion."""
    from mnist_edge.runtime.preprocess import quantize

    real = pixels.astype(np.float32) / np.float32(divide_by)
    x = quantize(real, spec) if spec.quantized else real.astype(spec.dtype)
    return np.ascontiguousarray(x.reshape(len(pixels), *inner))


class RawEngine:
    """What both bare engines offer: ``caller(shape)`` -> ``call(x)``, and a call on a fixed input."""

    #: The model's input shape without the batch dimension.
    inner: list[int]

    def caller(self, shape: Sequence[int]) -> Callable[[np.ndarray], np.ndarray]:
        raise NotImplementedError

    def runner(self, x: np.ndarray) -> Callable[[], np.ndarray]:
        call = self.caller(x.shape)
        return lambda: call(x)


class _RawLiteRT(RawEngine):
    """A bare LiteRT interpreter, used the way its documentation shows."""

    def __init__(self, path: Path, threads: int) -> None:
        from mnist_edge.runtime.litert import new_interpreter

        self.interpreter = new_interpreter(path.read_bytes(), threads)
        detail = self.interpreter.get_input_details()[0]
        self.index = detail["index"]
        self.out_index = self.interpreter.get_output_details()[0]["index"]
        self.inner = [int(d) for d in detail["shape"][1:]]

    def caller(self, shape: Sequence[int]) -> Callable[[np.ndarray], np.ndarray]:
        """``call(x)`` for model input ``x`` of ``shape`` (the input tensor is resized once, here)."""
        interpreter, index, out_index = self.interpreter, self.index, self.out_index
        interpreter.resize_tensor_input(index, list(shape), strict=False)
        interpreter.allocate_tensors()

        def call(x: np.ndarray) -> np.ndarray:
            interpreter.set_tensor(index, x)
            interpreter.invoke()
            return interpreter.get_tensor(out_index)

        return call


class _RawOnnx(RawEngine):
    """A bare onnxruntime session through its public ``run``."""

    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime as ort

        from mnist_edge.runtime.onnxrt import session_options

        self.session = ort.InferenceSession(
            path.read_bytes(), sess_options=session_options(threads), providers=["CPUExecutionProvider"]
        )
        node = self.session.get_inputs()[0]
        self.name = node.name
        self.outputs = [self.session.get_outputs()[0].name]
        self.inner = [int(d) for d in node.shape[1:]]

    def caller(self, shape: Sequence[int]) -> Callable[[np.ndarray], np.ndarray]:
        run, name, outputs = self.session.run, self.name, self.outputs
        return lambda x: run(outputs, {name: x})[0]


#: Runtime backend name -> its bare engine.
_RAW_ENGINES: dict[str, type[RawEngine]] = {"litert": _RawLiteRT, "onnxruntime": _RawOnnx}


def raw_engine(path: Path, threads: int) -> RawEngine:
    """The bare engine for the backend the runtime would pick for ``path``."""
    from mnist_edge.runtime.registry import backend_for

    name = backend_for(path).name
    try:
        engine = _RAW_ENGINES[name]
    except KeyError:
        raise ModelLoadError(f"{path}: the {name} backend has no bare engine to benchmark against") from None
    return engine(path, threads)
