"""Keras reference backend for ``.keras`` files: the trained model itself, for verify and benchmark.

It is the one backend that needs TensorFlow, so Keras is imported inside ``__init__`` (through
:func:`mnist_edge.model.load_model`, which loads safely and checks the architecture) and only when
someone loads a ``.keras`` file. Not meant for embedding: that is what the exported artifacts are for.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from mnist_edge._mnist import NUM_CLASSES
from mnist_edge.manifest import TensorSpec
from mnist_edge.runtime.base import Backend

__all__ = ["KerasBackend"]


class KerasBackend(Backend):
    name = "keras"
    aliases = ("reference",)
    format = "keras"
    reference = True

    def __init__(self, path: Path, data: bytes, *, threads: int = 1) -> None:
        from mnist_edge.model import load_model, output_kind

        # load_model reads the path (Keras needs a file); ``data`` was hashed by load() already.
        self._model = load_model(path)
        inner = tuple(int(d) for d in tuple(self._model.inputs[0].shape)[1:])
        self.input = TensorSpec(name="pixels", shape=(None, *inner), dtype="float32")
        self.output = TensorSpec(name="probabilities", shape=(None, NUM_CLASSES), dtype="float32")
        self.output_kind = output_kind(self._model)
        self._lock = threading.Lock()  # a Keras model call is not documented as thread-safe

    def close(self) -> None:
        self._model = None

    def run(self, batch: np.ndarray) -> np.ndarray:
        with self._lock:
            out = self._model(batch, training=False)
        return np.asarray(out, dtype=np.float32)
