"""A whole benchmark run: every artifact side by side, then the Keras reference, then the report.

Everything is checked before the first measurement (:class:`~mnist_edge.bench.options.BenchOptions`
reads the options once and the measuring functions trust it). TensorFlow is imported only inside
the Keras measurement, so benchmarking exported files alone never loads it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from mnist_edge._mnist import IMAGE_SHAPE, PIXEL_SCALE
from mnist_edge.bench.contender import Contender, image_batch
from mnist_edge.bench.memory import probe
from mnist_edge.bench.options import (
    DEFAULT_BATCH_SIZES,
    DEFAULT_MIN_CALLS,
    DEFAULT_MIN_TIME,
    BenchOptions,
    check_artifacts,
)
from mnist_edge.bench.report import DEFAULT_IMAGES, BenchmarkReport
from mnist_edge.bench.results import ArtifactBenchmark, KerasBenchmark
from mnist_edge.bench.timing import time_interleaved
from mnist_edge.errors import MnistEdgeError, ModelLoadError
from mnist_edge.manifest import read_manifest

__all__ = ["Progress", "benchmark", "benchmark_artifacts", "benchmark_keras"]

#: ``progress(completed, total, description)``: called before each step and once at the end.
Progress = Callable[[int, int, str], None]
#: ``step(description)``: called before each step of a measurement.
Step = Callable[[str], None]


def _quiet(_what: str) -> None:
    pass


def benchmark_artifacts(
    paths: Sequence[str | os.PathLike[str]],
    images: np.ndarray,
    options: BenchOptions | None = None,
    *,
    memory: bool = True,
    step: Step | None = None,
) -> tuple[ArtifactBenchmark, ...]:
    """Measure artifacts side by side: at each batch size every artifact's wrapper and raw engine take
    turns in one loop, so a burst of load from elsewhere on the machine hits all of them alike and
    every comparison in the table (wrapper/raw, int8/fp32, format against format) is same-window.

    ``options`` (default: :class:`BenchOptions`'s defaults) is trusted as given: build it with
    :meth:`BenchOptions.checked`."""
    options = options or BenchOptions()
    step = step or _quiet
    sizes = options.batch_sizes
    contenders = []
    for path in map(Path, paths):
        step(f"{path.name}: load (wrapper and raw engine)")
        contenders.append(Contender(path, images, options.threads))
    for size in sizes:
        step(f"batch {size}: {len(contenders)} artifact(s), wrapper and raw engine taking turns")
        funcs = [f for c in contenders for f in c.callables(size)]
        stats = time_interleaved(funcs, min_time=options.min_time, min_calls=options.min_calls)
        for i, c in enumerate(contenders):
            c.latency[size], c.raw_latency[size] = stats[2 * i], stats[2 * i + 1]
            if size == options.largest_batch:
                wrapped, raw_call = funcs[2 * i], funcs[2 * i + 1]
                same = wrapped().argmax(axis=1) == np.asarray(raw_call()).argmax(axis=1)
                c.agreement = float(np.mean(same))
    rows = []
    for c in contenders:
        memory_probe = None
        if memory:
            step(f"{c.path.name}: peak memory (subprocess)")
            memory_probe = probe(c.path, options.threads, sizes)
        rows.append(c.result(memory_probe, options.threads))
    return tuple(rows)


def _set_tf_threads(threads: int) -> int | None:
    """Give TensorFlow the same thread budget as the engines, if it is not running yet."""
    from mnist_edge._heavy import tensorflow

    tf = tensorflow()
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # TensorFlow already initialised in this process: keep what it has
        pass
    return tf.config.threading.get_intra_op_parallelism_threads() or None


def benchmark_keras(
    path: str | os.PathLike[str],
    images: np.ndarray,
    options: BenchOptions | None = None,
    *,
    memory: bool = True,
    accuracy: float | None = None,
    step: Step | None = None,
) -> KerasBenchmark:
    """Time the reference the tutorial's way; Keras is imported here and nowhere else in this package.
    ``options`` as for :func:`benchmark_artifacts`."""
    options = options or BenchOptions()
    step = step or _quiet
    path = Path(path)
    step(f"{path.name}: load Keras")
    tf_threads = _set_tf_threads(options.threads)
    from mnist_edge.model import as_model_input, load_model

    budget = {"min_time": options.min_time, "min_calls": options.min_calls}
    start = time.perf_counter()
    model = load_model(path)
    x1 = as_model_input(model, images[:1].astype(np.float32) / PIXEL_SCALE)
    model.predict(x1, verbose=0)
    load_seconds = time.perf_counter() - start

    step(f"{path.name}: model(x) and model.predict(x), batch 1")
    call_stats, predict1 = time_interleaved(
        [lambda: np.asarray(model(x1, training=False)), lambda: model.predict(x1, verbose=0)], **budget
    )
    predict = {1: predict1}
    for size in options.batch_sizes[1:]:  # sorted, and batch 1 is always first
        step(f"{path.name}: model.predict(x), batch {size}")
        xb = as_model_input(model, image_batch(images, size).astype(np.float32) / PIXEL_SCALE)
        (predict[size],) = time_interleaved(
            [lambda xb=xb, size=size: model.predict(xb, batch_size=size, verbose=0)], **budget
        )
    memory_probe = None
    if memory:
        step(f"{path.name}: peak memory (subprocess)")
        memory_probe = probe(path, options.threads, options.batch_sizes)
    return KerasBenchmark(
        path=str(path),
        size_bytes=path.stat().st_size,
        load_seconds=load_seconds,
        call_latency=call_stats,
        predict_latency_by_batch=predict,
        accuracy=accuracy,
        memory=memory_probe,
        threads=tf_threads,
    )


def _reference_accuracy(rows: Sequence[ArtifactBenchmark], keras_path: Path) -> float | None:
    """The Keras model's test accuracy as `verify` recorded it in a manifest, if the hashes match."""
    from mnist_edge._files import sha256_bytes

    digest = None
    for row in rows:
        manifest = read_manifest(row.path)
        parity = manifest.parity if manifest else None
        if not parity or parity.get("reference_accuracy") is None:
            continue
        digest = digest or sha256_bytes(keras_path.read_bytes())
        if parity.get("reference_sha256") == digest:
            return float(parity["reference_accuracy"])
    return None


def _test_images(images: np.ndarray | None, data: str | os.PathLike[str] | None) -> tuple[np.ndarray, str]:
    """The images to measure on and how the report names them; anything but uint8 digits is an error."""
    source = DEFAULT_IMAGES
    if images is None:
        from mnist_edge.data import load_mnist_data

        images = load_mnist_data(data, log=lambda _msg: None).x_test
    else:
        source = f"{len(images)} given images"
    images = np.ascontiguousarray(images)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE or not len(images):
        rows, cols = IMAGE_SHAPE
        raise MnistEdgeError(f"images must be uint8 (N, {rows}, {cols}), got {images.dtype} {images.shape}")
    return images, source


def benchmark(
    artifacts: Sequence[str | os.PathLike[str]],
    *,
    keras_model: str | os.PathLike[str] | None = None,
    images: np.ndarray | None = None,
    threads: int = 1,
    batch_sizes: str | Sequence[int] = DEFAULT_BATCH_SIZES,
    min_time: float | str = DEFAULT_MIN_TIME,
    min_calls: int = DEFAULT_MIN_CALLS,
    memory: bool = True,
    data: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
) -> BenchmarkReport:
    """Benchmark each artifact (and the Keras reference, if given) on ``images`` (uint8, (N, 28, 28);
    default: the MNIST test set, from ``data`` or the source chain). Everything is checked before the
    first measurement; ``batch_sizes`` and ``min_time`` may be given as typed (``"1,32"``, ``"2s"``)."""
    from mnist_edge.environment import machine_info

    paths = check_artifacts(artifacts)
    options = BenchOptions.checked(
        threads=threads, batch_sizes=batch_sizes, min_time=min_time, min_calls=min_calls
    )
    keras_path = None if keras_model is None else Path(keras_model)
    if keras_path is not None and not keras_path.is_file():
        raise ModelLoadError(f"Keras model {keras_path} does not exist: train one, or leave it out")
    if not paths and keras_path is None:
        raise MnistEdgeError("nothing to benchmark: give artifacts or a Keras model")
    images, source = _test_images(images, data)

    sizes = options.batch_sizes
    per_keras = 2 + (len(sizes) - 1) + int(memory)
    total = (1 + int(memory)) * len(paths) + (len(sizes) if paths else 0)
    total += per_keras if keras_path is not None else 0
    done = 0

    def step(what: str) -> None:
        nonlocal done
        if progress is not None:
            progress(done, total, what)
        done += 1

    started = time.perf_counter()
    rows = benchmark_artifacts(paths, images, options, memory=memory, step=step) if paths else ()
    keras = None
    if keras_path is not None:
        accuracy = _reference_accuracy(rows, keras_path)
        keras = benchmark_keras(keras_path, images, options, memory=memory, accuracy=accuracy, step=step)
    if progress is not None:
        progress(total, total, "done")
    return BenchmarkReport(
        machine=machine_info(),
        threads=options.threads,
        batch_sizes=sizes,
        min_time=options.min_time,
        min_calls=options.min_calls,
        rows=rows,
        keras=keras,
        images=source,
        seconds=time.perf_counter() - started,
    )
