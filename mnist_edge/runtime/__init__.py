"""The embeddable runtime: classify MNIST digits with an exported model, without TensorFlow.

>>> from mnist_edge.runtime import load
>>> with load("artifacts/model.int8.tflite") as clf:  # or .onnx; engine chosen by suffix or backend=
...     clf.predict(images)                           # (N,) int64
...     clf.predict_proba(images)                     # (N, 10) float32, rows sum to 1
...     clf.top_k(images, k=3)                        # per image: [Prediction(label, name, probability), ...]
...     clf.class_names                               # ("Zero", ..., "Nine")

``import mnist_edge.runtime`` costs numpy and nothing else; the engine a model needs (LiteRT or
onnxruntime) is imported when that model is loaded, and TensorFlow/Keras only for the ``.keras``
reference backend. The package: :mod:`.classifier` (the engine-agnostic Classifier),
:mod:`.registry` (which backend reads which file), :mod:`.base` and one module per engine,
:mod:`.preprocess` (validation and (de)quantisation), :mod:`.fastpath` (the per-call speed
tricks), :mod:`.guard` (structural pre-checks and the isolated trial load).
"""

from __future__ import annotations

import os
from pathlib import Path

from mnist_edge.errors import MnistEdgeError
from mnist_edge.runtime._open import MAX_MODEL_BYTES, open_bytes, read_checked
from mnist_edge.runtime.classifier import MAX_BATCH_CHUNK, Classifier, ManifestWarning
from mnist_edge.runtime.prediction import Prediction
from mnist_edge.runtime.registry import BACKENDS, backend_for

__all__ = [
    "BACKENDS",
    "MAX_BATCH_CHUNK",
    "MAX_MODEL_BYTES",
    "Classifier",
    "ManifestWarning",
    "Prediction",
    "load",
]


def load(
    path: str | os.PathLike[str],
    *,
    backend: str | None = None,
    threads: int = 1,
    verify_hash: bool = True,
    isolate: bool = False,
) -> Classifier:
    """Open an exported model (``.tflite``, ``.onnx``; ``.keras`` for the reference) as a Classifier.

    ``backend`` names the engine ("litert"/"tflite", "onnxruntime"/"onnx", "keras") instead of the
    file suffix choosing it. ``threads`` is the engine's intra-op thread count (1 suits the edge).
    With ``verify_hash`` (the default) a file whose sha256 differs from its manifest is refused
    before any engine reads it, and one whose answers on the load-time probe images differ from
    the known answers in its manifest is refused once the engine has run them
    (:mod:`~mnist_edge.runtime.known_answers`). Every file passes its backend's structural pre-check.
    ``isolate=True`` is for files from elsewhere: the exact bytes are first loaded and run once in
    a child process limited to 2 GiB and 30 s (:mod:`~mnist_edge.runtime.guard.sandbox`), so a file that
    would crash or exhaust the engine costs a child, not the app. Raises
    :class:`~mnist_edge.errors.ModelLoadError` for anything wrong with the file, whatever the
    engine raised.
    """
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise MnistEdgeError(f"threads must be a positive integer, got {threads!r}")
    path = Path(path)
    backend_cls = backend_for(path, backend)
    data, manifest = read_checked(path, backend_cls, verify_hash=verify_hash)
    return open_bytes(
        path, data, backend=backend_cls.name, manifest=manifest, threads=threads, isolate=isolate
    )
