"""One artifact in the benchmark: loaded through the runtime (the wrapper) and as its bare engine
(raw), with the callables the timing loop takes turns on."""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mnist_edge._mnist import PIXEL_SCALE
from mnist_edge.bench.engines import model_input, raw_engine
from mnist_edge.bench.results import ArtifactBenchmark, LatencyStats, MemoryProbe
from mnist_edge.manifest import read_manifest

__all__ = ["LOAD_REPEATS", "SINGLE_IMAGES", "Contender", "image_batch"]

#: Loads timed per artifact for ``load_seconds`` (the median is reported).
LOAD_REPEATS = 3
#: Different test digits the batch-1 measurements cycle through.
SINGLE_IMAGES = 1000


def image_batch(images: np.ndarray, size: int) -> np.ndarray:
    """The first ``size`` images, repeated if there are fewer."""
    if size <= len(images):
        return np.ascontiguousarray(images[:size])
    return np.ascontiguousarray(np.resize(images, (size, *images.shape[1:])))


def _timed_load(path: Path, threads: int, first: np.ndarray) -> tuple[Any, float]:
    """Load ``LOAD_REPEATS`` times (file to first prediction ready); the last classifier and the median.

    The engine's module is imported by the first load: the median leaves that one-off cost out (the
    memory probe's cold start reports it)."""
    from mnist_edge.runtime import load

    seconds = []
    clf = None
    for _ in range(LOAD_REPEATS):
        start = time.perf_counter()
        clf = load(path, threads=threads)
        clf.predict_proba(first)
        seconds.append(time.perf_counter() - start)
    return clf, statistics.median(seconds)


def _parity_accuracy(path: Path) -> float | None:
    manifest = read_manifest(path)
    if manifest is None or not manifest.parity:
        return None
    accuracy = manifest.parity.get("accuracy")
    return None if accuracy is None else float(accuracy)


class Contender:
    """One artifact, loaded twice: through the runtime (the wrapper) and as a bare engine (raw)."""

    def __init__(self, path: Path, images: np.ndarray, threads: int) -> None:
        self.path = path
        self.images = images
        self.clf, self.load_seconds = _timed_load(path, threads, images[:1])
        preprocessing = self.clf.manifest.preprocessing if self.clf.manifest else {}
        self.divide_by = float(preprocessing.get("divide_by", PIXEL_SCALE))
        self.raw = raw_engine(path, threads)
        self.latency: dict[int, LatencyStats] = {}
        self.raw_latency: dict[int, LatencyStats] = {}
        self.agreement: float | None = None

    def _model_input(self, pixels: np.ndarray) -> np.ndarray:
        return model_input(pixels, self.clf.input_spec, self.raw.inner, self.divide_by)

    def callables(self, size: int) -> tuple[Callable[[], Any], Callable[[], Any]]:
        """(wrapper on uint8 pixels, raw engine on the same images already in the model's input).

        Batch 1 walks through up to :data:`SINGLE_IMAGES` different test digits, the same digit
        for both at each step: a latency figure from one image over and over would flatter any
        per-input caching (the runtime remembers quantised output rows) and the CPU's caches.
        """
        predict_proba = self.clf.predict_proba
        if size == 1:
            pixels = np.ascontiguousarray(self.images[:SINGLE_IMAGES])
            inputs = self._model_input(pixels)
            call = self.raw.caller(inputs[:1].shape)
            next_pixels = itertools.cycle([pixels[i : i + 1] for i in range(len(pixels))]).__next__
            next_input = itertools.cycle([inputs[i : i + 1] for i in range(len(inputs))]).__next__
            return (lambda: predict_proba(next_pixels())), (lambda: call(next_input()))
        pixels = image_batch(self.images, size)
        return (lambda: predict_proba(pixels)), self.raw.runner(self._model_input(pixels))

    def result(self, memory: MemoryProbe | None, threads: int) -> ArtifactBenchmark:
        return ArtifactBenchmark(
            path=str(self.path),
            format=self.clf.format,
            precision=self.clf.precision,
            size_bytes=self.path.stat().st_size,
            load_seconds=self.load_seconds,
            latency_by_batch=self.latency,
            raw_latency_by_batch=self.raw_latency,
            accuracy=_parity_accuracy(self.path),
            memory=memory,
            raw_agreement=self.agreement,
            threads=threads,
        )
