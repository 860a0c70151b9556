"""Classifier: one MNIST model behind any backend - validation, conversion, batching, answers.

Build one with :func:`mnist_edge.runtime.load`. It is engine-agnostic: it owns the manifest,
input validation, uint8/float handling, (de)quantisation, batching and the per-call functions
(:mod:`~mnist_edge.runtime.fastpath`); a backend (:mod:`~mnist_edge.runtime.base`) owns only the
engine call.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from mnist_edge._mnist import CLASS_NAMES, IMAGE_SHAPE, NUM_CLASSES, PIXEL_SCALE, PIXELS
from mnist_edge._text import first_line
from mnist_edge.errors import MnistEdgeError, ModelLoadError
from mnist_edge.manifest import Manifest, TensorSpec, manifest_path
from mnist_edge.runtime import fastpath, known_answers, preprocess
from mnist_edge.runtime.base import Backend, Finish, Runner
from mnist_edge.runtime.prediction import Prediction, ranked

__all__ = ["MAX_BATCH_CHUNK", "Classifier", "ManifestWarning"]

#: Larger batches run in chunks of this many images, which bounds the engines' working memory.
MAX_BATCH_CHUNK = 4096

_EMPTY_LABELS = np.empty((0,), dtype=np.int64)
_U8 = np.dtype(np.uint8)
_NDARRAY = np.ndarray


class ManifestWarning(UserWarning):
    """A model was loaded without a manifest: class names and preprocessing are assumed."""


class Classifier:
    """An MNIST classifier over any backend. Safe to share between threads.

    Build it with :func:`~mnist_edge.runtime.load`; ``close()`` (or a ``with`` block) lets go of
    the engine. Everything per-model is computed once here (dtypes, quantisation tables, tensor
    indices, the conversion for each input kind, and one bound per-call function per call kind),
    so a call is at most a few numpy operations around the engine's;
    ``benchmarks/runtime_overhead.py`` measures what that costs. LiteRT gets one interpreter per
    thread; onnxruntime sessions are shared, with a per-thread input buffer.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        manifest: Manifest | None = None,
        path: str | os.PathLike[str] | None = None,
    ) -> None:
        self._backend = backend
        self._closed = False
        self._manifest = manifest
        self._path = Path(path) if path is not None else None
        where: object = self._path or f"the {backend.name} model"
        assumed: list[str] = []

        in_spec = _merge_spec(backend.input, manifest.input if manifest else None, "input", where)
        out_spec = _merge_spec(backend.output, manifest.output if manifest else None, "output", where)
        if manifest is None and in_spec.dtype in ("uint8", "int8") and not in_spec.quantized:
            # An integer input without quantisation parameters (onnxruntime does not report them):
            # assume the usual pixel encoding, 0..255 as-is or shifted by -128.
            zero_point = 0 if in_spec.dtype == "uint8" else -128
            in_spec = TensorSpec(in_spec.name, in_spec.shape, in_spec.dtype, 1 / PIXEL_SCALE, zero_point)
            assumed.append(f"{in_spec.dtype} input = pixels{'' if zero_point == 0 else ' - 128'}")
        self._input_spec, self._output_spec = in_spec, out_spec
        self._inner = _image_shape(in_spec, manifest, where)
        if len(out_spec.shape) != 2 or out_spec.shape[1] not in (None, NUM_CLASSES):
            raise ModelLoadError(
                f"{where} outputs shape {_fmt(out_spec.shape)}; an MNIST classifier outputs (N, 10)"
            )

        if manifest is not None:
            if len(manifest.class_names) != NUM_CLASSES:
                raise ModelLoadError(
                    f"the manifest of {where} lists {len(manifest.class_names)} class names, not 10; "
                    "re-run `mnist-edge export`"
                )
            self._class_names = tuple(manifest.class_names)
            divide_by = float(manifest.preprocessing.get("divide_by", preprocess.DEFAULT_DIVIDE_BY))
        else:
            self._class_names = CLASS_NAMES
            divide_by = preprocess.DEFAULT_DIVIDE_BY
        self._fixed_batch = backend.fixed_batch
        if backend.fixed_batch is not None and not 1 <= backend.fixed_batch <= MAX_BATCH_CHUNK:
            # Padding a chunk to a declared batch of 2^20 would be a 3 GB array of our own.
            raise ModelLoadError(
                f"{where} takes batches of exactly {backend.fixed_batch} images; the runtime pads to "
                f"fixed batches of 1 to {MAX_BATCH_CHUNK} only"
            )
        # A float model may take the pixel values themselves, the division folded into its
        # first layer by the backend: one numpy pass less per call.
        self._folded = not in_spec.quantized and backend.fold_input_scale(divide_by)
        plan = preprocess.make_input_plan(in_spec, self._inner, divide_by, folded=self._folded)
        self._convert, self._to_model, self._deferred = plan.convert, plan.to_model, plan.deferred
        self._engine_run = backend.bind()
        # Batches that go straight to the engine in one call; others are chunked (and padded).
        self._direct_max = MAX_BATCH_CHUNK if backend.fixed_batch is None else 0
        self._hot_max = min(self._direct_max, fastpath.HOT_BATCH_MAX)

        logits, normalize, probe_raw = self._probe(where)
        # What the model outputs, as its manifest (or the reference model itself) declares it;
        # the probe's look at four outputs decides only for files that do not say.
        declared = (manifest.output_kind if manifest is not None else None) or backend.output_kind
        if declared is not None:
            logits = declared == "logits"
        self._output_kind = declared or ("logits" if logits else "probabilities")
        if manifest is not None and manifest.precision == "int8":
            normalize = True
        self._postprocess = preprocess.make_output_converter(out_spec, normalize=normalize, logits=logits)
        if manifest is not None and manifest.known_answers:
            known_answers.check(
                manifest.known_answers, manifest.precision, self._postprocess(probe_raw), where
            )
        # The hot path's functions for uint8 pixels shaped (n, *inner), built once: raw output for
        # predict, probabilities for predict_proba (the output step applied inside the closure).
        finish = None if self._postprocess is preprocess.unchanged else self._postprocess
        self._raw_pixels = self._pixel_runner(plan, None)
        self._proba_pixels = self._pixel_runner(plan, finish)
        if logits and declared is None:
            warnings.warn(
                f"{where}: the model's outputs do not look like probabilities; applying softmax",
                ManifestWarning,
                stacklevel=3,
            )
        if manifest is None and not backend.reference:
            assumed[:0] = ["class names Zero..Nine", f"pixels / {divide_by:g} preprocessing"]
            missing = f" ({manifest_path(self._path).name} is missing)" if self._path else ""
            warnings.warn(
                f"{where} has no manifest{missing}: assuming "
                f"{', '.join(assumed)}; the file's integrity is not checked. Export with "
                "`mnist-edge export` to get a manifest.",
                ManifestWarning,
                stacklevel=3,
            )

    # ------------------------------------------------------------------ inference

    def predict_proba(self, images: Any) -> np.ndarray:
        """Class probabilities, ``(N, 10)`` float32, each row summing to 1.

        ``images``: ``(28, 28)``, ``(784,)``, ``(N, 28, 28)`` or ``(N, 784)``; uint8 pixels 0..255
        or floats in [0, 1]. Raises :class:`~mnist_edge.errors.InputError` for anything else.
        """
        # The hot path - a uint8 ndarray already shaped (N, *image shape) - is checked inline: at
        # batch 1 each avoided call frame is a visible share of the engine's time (fastpath.py).
        if (
            type(images) is _NDARRAY
            and images.dtype is _U8
            and images.shape[1:] == self._inner
            and 0 < len(images) <= self._hot_max
        ):
            return self._proba_pixels(images)
        return self._postprocess(self._run_any(images))

    def predict(self, images: Any) -> np.ndarray:
        """Predicted class indices, ``(N,)`` int64 (the argmax of :meth:`predict_proba`)."""
        if (
            type(images) is _NDARRAY
            and images.dtype is _U8
            and images.shape[1:] == self._inner
            and 0 < len(images) <= self._hot_max
        ):
            return self._raw_pixels(images).argmax(axis=1).astype(np.int64, copy=False)
        raw = self._run_any(images)
        if raw.shape[0] == 0:
            return _EMPTY_LABELS.copy()
        # Dequantising and normalising are strictly increasing maps: the raw argmax is the same.
        return raw.argmax(axis=1).astype(np.int64, copy=False)

    def top_k(self, images: Any, k: int = 1) -> list[list[Prediction]]:
        """The ``k`` most likely classes of each image, most likely first: one list per image.

        Equal probabilities put the lower label first, as :meth:`predict` does. ``k`` outside
        1..10 raises :class:`~mnist_edge.errors.InputError`.
        """
        return ranked(self.predict_proba(images), self._class_names, k)

    def _run_any(self, images: Any) -> np.ndarray:
        """Raw model output for anything ``predict_proba`` accepts: validated, converted, chunked."""
        x = self._convert(images)  # model input, or uint8 pixels still to divide for a float model
        if 0 < x.shape[0] <= self._direct_max:
            return self._raw_pixels(x) if self._deferred and x.dtype is _U8 else self._engine_run(x)
        return self._run_chunked(self._to_model(x))

    def _pixel_runner(self, plan: preprocess.InputPlan, finish: Finish | None) -> Runner:
        """uint8 pixels ``(n, *inner)`` -> raw output, or ``finish(raw)``: the engine call itself
        when the pixels are the model input, else the conversion fused with it."""
        backend = self._backend
        if plan.deferred:
            return backend.bind(plan.write, finish)
        run = self._engine_run if finish is None else backend.bind(None, finish)
        if plan.from_uint8 is None:
            return run
        from_uint8 = plan.from_uint8
        return lambda pixels: run(from_uint8(pixels))

    def _run_chunked(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        fixed = self._fixed_batch
        step = fixed or MAX_BATCH_CHUNK
        if n == 0:
            return np.empty((0, NUM_CLASSES), dtype=self._output_spec.dtype)
        parts = []
        for start in range(0, n, step):
            chunk = x[start : start + step]
            size = chunk.shape[0]
            if fixed is not None and size < fixed:
                # Pad with copies of the last image (valid input in any dtype), drop their outputs.
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], fixed - size, axis=0)])
            out = self._engine_run(chunk)
            if out.shape[0] != chunk.shape[0]:  # a damaged graph can mix rows; slicing would hide it
                raise RuntimeError(f"the engine returned {out.shape[0]} rows for {chunk.shape[0]} images")
            parts.append(out[:size])
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _probe(self, where: object) -> tuple[bool, bool, np.ndarray]:
        """Run the fixed check images once: the model must run and give finite (N, 10) output.

        Returns (logits, normalize, raw): whether the output needs a softmax (no final softmax
        layer) or a renormalisation (probabilities quantised inside the graph, rows off 1 by a
        step), and the raw output, which the known-answer check compares.
        """
        probe = preprocess.check_images()
        try:
            x = self._to_model(self._convert(probe))
            raw = self._run_chunked(x)
            if self._direct_max:  # the path predict takes for one image must give one row too
                single = self._engine_run(np.ascontiguousarray(x[:1]))
                if single.shape != (1, NUM_CLASSES):
                    raise RuntimeError(f"the engine returned shape {single.shape} for one image")
        except MnistEdgeError:
            raise
        except Exception as exc:
            raise ModelLoadError(
                f"{where} loads but fails to run: {type(exc).__name__}: {first_line(exc)}; "
                "is it an MNIST classifier (28x28 in, 10 out)?"
            ) from None
        if raw.shape != (len(probe), NUM_CLASSES):
            raise ModelLoadError(
                f"{where} returns shape {raw.shape[1:]} per batch; an MNIST classifier returns (10,)"
            )
        real = raw.astype(np.float64)
        spec = self._output_spec
        if spec.dtype in ("uint8", "int8"):
            zero_point = spec.zero_point
            if zero_point is None:
                zero_point = 0 if spec.dtype == "uint8" else -128
            real = (real - zero_point) * (spec.scale or 1 / 256)
        if not np.isfinite(real).all():
            raise ModelLoadError(f"{where} outputs NaN or infinity: its weights are damaged; re-export it")
        sums = real.sum(axis=1)
        logits = bool((real < -1e-6).any() or (real > 1 + 1e-6).any() or (np.abs(sums - 1) > 0.05).any())
        normalize = spec.dtype in ("uint8", "int8") or bool((np.abs(sums - 1) > 1e-4).any())
        return logits, normalize, raw

    # ------------------------------------------------------------------ lifetime

    def close(self) -> None:
        """Let go of the engine and its memory. Calls after this raise MnistEdgeError; closing
        twice is harmless."""
        if self._closed:
            return
        self._closed = True
        where = self._path or f"the {self._backend.name} model"

        def closed(_images: Any) -> np.ndarray:
            raise MnistEdgeError(f"{where} was closed: load it again to classify more images")

        # Every route to the engine starts with one of these: after close, each raises.
        self._convert = self._engine_run = self._raw_pixels = self._proba_pixels = closed
        self._backend.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Classifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ description

    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def manifest(self) -> Manifest | None:
        """The verified manifest, or None for a file loaded without one."""
        return self._manifest

    @property
    def format(self) -> str:
        """ "tflite", "onnx" or "keras"."""
        return self._backend.format

    @property
    def precision(self) -> str | None:
        """From the manifest ("fp32", "fp16", "dynamic", "int8"); guessed without one, None if unknown."""
        if self._manifest is not None:
            return self._manifest.precision
        if self._backend.reference:
            return "fp32"
        if self._input_spec.quantized or self._output_spec.dtype in ("uint8", "int8"):
            return "int8"
        return None

    @property
    def output_kind(self) -> str:
        """What the model itself outputs: "probabilities", or "logits" that the runtime turns into
        probabilities (declared by the manifest; guessed from the outputs for a file without one)."""
        return self._output_kind

    @property
    def folded_division(self) -> bool:
        """Whether the engine runs a copy of the model that takes pixel values 0..255, the input's
        division folded into its first layer (dynamic-range TFLite and float ONNX; see
        ``runtime/tflite_fold.py`` and ``runtime/onnx_fold.py``)."""
        return self._folded

    @property
    def backend(self) -> str:
        """The engine's name: "litert", "onnxruntime" or "keras"."""
        return self._backend.name

    @property
    def class_names(self) -> tuple[str, ...]:
        return self._class_names

    @property
    def input_spec(self) -> TensorSpec:
        """The model's input as the runtime feeds it (dtype, shape, quantisation)."""
        return self._input_spec

    @property
    def output_spec(self) -> TensorSpec:
        return self._output_spec

    def __repr__(self) -> str:
        closed = ", closed" if self._closed else ""
        return (
            f"Classifier({str(self._path)!r}, backend={self.backend!r}, precision={self.precision!r}, "
            f"input={self._input_spec.dtype}{_fmt(self._input_spec.shape)}{closed})"
        )


def _merge_spec(engine: TensorSpec, declared: TensorSpec | None, what: str, where: object) -> TensorSpec:
    """The engine's view of a tensor, with quantisation from the manifest; disagreement is an error."""
    if declared is None:
        return engine
    if declared.dtype != engine.dtype:
        raise ModelLoadError(
            f"the manifest of {where} says the {what} is {declared.dtype} but the model's is {engine.dtype}: "
            "the manifest belongs to another file; re-run `mnist-edge export`"
        )
    if engine.quantized and declared.quantized:
        assert engine.scale is not None and declared.scale is not None
        close = abs(engine.scale - declared.scale) <= 1e-6 * engine.scale
        if engine.zero_point != declared.zero_point or not close:
            raise ModelLoadError(
                f"the manifest of {where} gives {what} quantisation scale {declared.scale:g}, zero point "
                f"{declared.zero_point}, but the model has {engine.scale:g}, {engine.zero_point}; "
                "re-run `mnist-edge export`"
            )
    if declared.quantized and not engine.quantized:
        return TensorSpec(engine.name, engine.shape, engine.dtype, declared.scale, declared.zero_point)
    return engine


def _image_shape(spec: TensorSpec, manifest: Manifest | None, where: object) -> tuple[int, ...]:
    """The model's per-image input shape: (28, 28) or (784,) - allowing unit axes like (28, 28, 1)."""
    inner = spec.shape[1:]
    if any(d is None for d in inner) and manifest is not None:
        inner = manifest.input.shape[1:]
    if any(d is None for d in inner):  # symbolic dimensions and no manifest: assume by rank
        inner = {1: (PIXELS,), 2: IMAGE_SHAPE}.get(len(inner), inner)
    squeezed = tuple(d for d in inner if d != 1)
    if len(spec.shape) < 2 or squeezed not in (IMAGE_SHAPE, (PIXELS,)):
        raise ModelLoadError(
            f"{where} takes input of shape {_fmt(spec.shape)}; an MNIST classifier takes (N, 28, 28) "
            "or (N, 784)"
        )
    return tuple(int(d) for d in inner)  # type: ignore[arg-type]


def _fmt(shape: tuple[int | None, ...]) -> str:
    return "(" + ", ".join("N" if d is None else str(d) for d in shape) + ")"
