"""The backend interface: the small part of the runtime that differs per inference engine.

A backend owns one engine and nothing else: it opens a model from bytes, reports the model's
input and output as :class:`~mnist_edge.manifest.TensorSpec` (read from the engine, not from the
manifest) and runs a batch that is already in the model's dtype and shape. Validation,
(de)quantisation, batching and class names live once, in :class:`~mnist_edge.runtime.Classifier`.
(Polygraphy's runners and HTTPX's transports follow the same split.)

Adding an engine is one module with a :class:`Backend` subclass plus one line in
:data:`BACKENDS`. Engines are imported inside ``__init__``, never at module level, so importing
this registry costs nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import numpy as np

from mnist_edge.manifest import TensorSpec

__all__ = ["BACKENDS", "Backend", "Finish", "Runner", "Writer", "backend_for"]

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

    @classmethod
    def check_file(cls, path: Path, data: bytes) -> None:
        """Structural checks on the exact bytes the engine is about to see; raise ModelLoadError.

        Called by ``load()`` after the hash gate and before ``__init__``. The default accepts
        everything; a backend overrides it to refuse files that would crash or exhaust its engine
        (the engine runs in-process, so a check after the fact is too late).
        """

    def __init__(self, path: Path, data: bytes, *, threads: int = 1) -> None:
        """Open the model. ``data`` are the file's bytes, already hashed and checked.

        May raise anything: ``load()`` wraps every exception into ModelLoadError.
        """
        raise NotImplementedError

    def run(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def fold_input_scale(self, divide_by: float) -> bool:
        """Make the model take float pixels 0..255 where it took ``pixels / divide_by``, if the
        engine's model allows that exactly; return whether it did. Called once, before any runner
        is built, only for float-input models.

        Why: the division is a whole numpy pass per call that the model can absorb for free (see
        :mod:`~mnist_edge.runtime.tflite_fold`). The default folds nothing.
        """
        return False

    def runner(self, finish: Finish | None = None) -> Runner:
        """``run`` as a plain function for the per-call path, its result passed through
        ``finish`` when given (the Classifier's dequantise/normalise step).

        Built once per model: a closure holds its constants in cells rather than looking them
        up, and applying ``finish`` inside it saves the caller a call. At batch 1 an int8
        inference is ~100,000 instructions and each avoided Python call frame ~400, so the
        runtime's overhead budget is spent in exactly such places.
        """
        run = self.run
        if finish is None:
            return run
        return lambda batch: finish(run(batch))

    def converted_runner(self, write: Writer, finish: Finish | None = None) -> Runner:
        """Like :meth:`runner`, for uint8 ``pixels`` ``(n, *input.shape[1:])`` (any strides) that
        ``write(pixels, out)`` turns into model input in ``out``.

        A backend whose engine exposes its input buffer overrides this to write there directly
        and save a pass over the batch; this default allocates.
        """
        dtype, run = np.dtype(self.input.dtype), self.runner(finish)

        def run_pixels(pixels: np.ndarray) -> np.ndarray:
            batch = np.empty(pixels.shape, dtype=dtype)
            write(pixels, batch)
            return run(batch)

        return run_pixels


def _registry() -> dict[str, type[Backend]]:
    # Imported here, after Backend exists: the backend modules subclass it (the package's
    # __init__ imports this module first, so the cycle always resolves in this order).
    from mnist_edge.runtime.keras_ref import KerasBackend
    from mnist_edge.runtime.litert import LiteRTBackend
    from mnist_edge.runtime.onnxrt import OnnxBackend

    return {".tflite": LiteRTBackend, ".onnx": OnnxBackend, ".keras": KerasBackend}


#: File suffix -> backend class. One line per engine.
BACKENDS: dict[str, type[Backend]] = _registry()


def backend_for(path: str | os.PathLike[str], backend: str | None = None) -> type[Backend]:
    """The backend class for ``path``: by name if ``backend`` is given, else by file suffix."""
    from mnist_edge.errors import ModelLoadError

    classes = list(dict.fromkeys(BACKENDS.values()))
    if backend is not None:
        wanted = backend.lower()
        for cls in classes:
            if wanted == cls.name or wanted in cls.aliases:
                return cls
        names = ", ".join(sorted({cls.name for cls in classes} | {a for c in classes for a in c.aliases}))
        raise ModelLoadError(f"unknown backend {backend!r}: choose one of {names}")
    suffix = Path(path).suffix.lower()
    try:
        return BACKENDS[suffix]
    except KeyError:
        known = ", ".join(sorted(BACKENDS))
        raise ModelLoadError(
            f"{path} has suffix {suffix or '(none)'!r}; the runtime reads {known} files "
            "(or pass backend= to say which engine to use)"
        ) from None
