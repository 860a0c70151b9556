"""The backend interface: the small part of the runtime that differs per inference engine.

A backend owns one engine and nothing else: it opens a model from bytes, reports the model's
input and output as :class:`~mnist_edge.manifest.TensorSpec` (read from the engine, not from the
manifest) and runs a batch that is already in the model's dtype and shape. Validation,
(de)quantisation, batching and class names live once, in
:class:`~mnist_edge.runtime.classifier.Classifier`. (Polygraphy's runners and HTTPX's transports
follow the same split.)

Adding an engine is one module with a :class:`Backend` subclass plus one line in
:mod:`~mnist_edge.runtime.registry`. This module imports none of the backends: they import it.
"""

from __future__ import annotations

from collections.abc import Callable, Sized
from pathlib import Path
from typing import ClassVar

import numpy as np

from mnist_edge.errors import ModelLoadError
from mnist_edge.manifest import TensorSpec

__all__ = ["Backend", "Finish", "Runner", "Writer"]

#: ``write(pixels, out)``: turn uint8 pixels into model input, in place in ``out``.
Writer = Callable[[np.ndarray, np.ndarray], object]
#: ``finish(raw)``: the raw engine output -> what the caller gets (probabilities).
Finish = Callable[[np.ndarray], np.ndarray]
#: A prepared per-call function: model input (or pixels) -> output.
Runner = Callable[[np.ndarray], np.ndarray]


class Backend:
    """One engine holding one model. Subclasses set the class attributes and implement ``run``.

    Contract for ``run(batch)``: ``batch`` has the model's input dtype and shape
    ``(n, *input.shape[1:])`` with ``n >= 1`` (and ``n == fixed_batch`` when that is set), in any
    memory layout (LiteRT's ``SetTensor`` and onnxruntime both copy a strided array in correctly);
    the result is the raw output ``(n, 10)`` in the model's output dtype, in memory the caller
    may keep (never a view into engine buffers). ``run`` may be called from many threads at once:
    a backend whose engine is not thread-safe must handle that itself.
    """

    #: Short name, as accepted by ``load(..., backend=name)``.
    name: ClassVar[str] = "base"
    #: Other names accepted for ``backend=`` (e.g. the artifact format: "tflite", "onnx").
    aliases: ClassVar[tuple[str, ...]] = ()
    #: The artifact format this backend reads, as the manifest spells it ("tflite", "onnx", "keras").
    format: ClassVar[str] = ""
    #: True for the reference backend, whose files carry no manifest and need no warning about it.
    reference: ClassVar[bool] = False

    #: The model's input and output as the engine reports them (batch dimension None if dynamic).
    input: TensorSpec
    output: TensorSpec
    #: Set when the engine can only run this exact batch size; the Classifier chunks and pads.
    fixed_batch: int | None = None
    #: "probabilities" or "logits" when the engine knows what its model outputs (the Keras
    #: reference reads its last layer); None leaves it to the manifest or the load-time probe.
    output_kind: str | None = None

    @classmethod
    def check_file(cls, path: Path, data: bytes) -> None:
        """Structural checks on the exact bytes the engine is about to see; raise ModelLoadError.

        Called by ``load()`` after the hash gate and before ``__init__``. The default accepts
        everything; a backend overrides it to refuse files that would crash or exhaust its engine
        (the engine runs in-process, so a check after the fact is too late).
        """

    @classmethod
    def refused(cls, path: Path, reason: Exception, engine: str, fix: str) -> ModelLoadError:
        """The error ``check_file`` raises for a file its pre-check refused before ``engine`` read it."""
        return ModelLoadError(
            f"{cls.name} cannot load {path}: {reason}; refused by the structural pre-check before "
            f"{engine} read it - the file is corrupt or not one of our models: {fix}"
        )

    @staticmethod
    def one_input_one_output(path: Path, inputs: Sized, outputs: Sized) -> None:
        """Refuse a model with other than one input and one output, as every MNIST classifier has."""
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelLoadError(
                f"{path} has {len(inputs)} inputs and {len(outputs)} outputs; an MNIST classifier "
                "has one of each"
            )

    def __init__(self, path: Path, data: bytes, *, threads: int = 1) -> None:
        """Open the model. ``data`` are the file's bytes, already hashed and checked.

        May raise anything: ``load()`` wraps every exception into ModelLoadError.
        """
        raise NotImplementedError

    def run(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:
        """Let go of the engine and its memory. The default drops nothing: the engine goes when
        the backend does."""

    def fold_input_scale(self, divide_by: float) -> bool:
        """Make the model take float pixels 0..255 where it took ``pixels / divide_by``, if the
        engine's model allows that (up to float rounding); return whether it did. Called once, before anything
        is bound, only for float-input models.

        Why: the division is a whole numpy pass per call that the model can absorb for free (see
        :mod:`~mnist_edge.runtime.tflite_fold`, :mod:`~mnist_edge.runtime.onnx_fold`). The default
        folds nothing.
        """
        return False

    def bind(self, write: Writer | None = None, finish: Finish | None = None) -> Runner:
        """The per-call function: model input (or, with ``write``, uint8 pixels that
        ``write(pixels, out)`` turns into model input in ``out``) -> ``run``'s output, passed
        through ``finish`` when given (the Classifier's dequantise/normalise step).

        Built once per model and call kind. This default composes ``run``; a backend whose
        engine lets it skip work per call overrides it with :mod:`~mnist_edge.runtime.fastpath`.
        """
        run = self.run
        if write is None:
            return run if finish is None else lambda batch: finish(run(batch))
        dtype = np.dtype(self.input.dtype)

        def run_pixels(pixels: np.ndarray) -> np.ndarray:
            batch = np.empty(pixels.shape, dtype=dtype)
            write(pixels, batch)
            return run(batch) if finish is None else finish(run(batch))

        return run_pixels
