"""Benchmarks users can pick a format by: latency, throughput, size, memory, and what the wrapper costs.

Every exported artifact is measured through :mod:`mnist_edge.runtime` (as an app embeds it, on uint8
pixels) and, in the same run, through its bare engine on ready-made model input (LiteRT
``set_tensor``/``invoke``/``get_tensor``, onnxruntime ``session.run``), so the wrapper's overhead is a
same-run ratio, not a comparison across runs. The Keras reference is timed the tutorial's way
(``model(x)`` and ``model.predict(x)`` at batch 1), so users see what the export buys them.

How the numbers are made, and why:

* timings are per call (``perf_counter_ns``) after a warm-up; each callable runs until it has spent
  ``min_time`` seconds and made ``min_calls`` calls. At each batch size every artifact's wrapper and
  raw engine take turns in one loop, in blocks of about 10 ms with the order rotating, so a burst of
  load from elsewhere on the machine hits all of them alike;
* latencies are distributions (:class:`LatencyStats`); throughput at batch ``b`` is ``b / p50`` (the
  median is what repeat runs on a busy machine agree on);
* peak resident memory comes from a fresh subprocess per artifact (``VmHWM``, or ``ru_maxrss``), so one
  engine's memory never pollutes another's figure;
* load time is file to first prediction ready, with the engine's module already imported (the median of
  a few loads); the subprocess also reports the cold start, imports included.

One module per job:

* :mod:`~mnist_edge.bench.options` reads and checks what a run is asked to do, once;
* :mod:`~mnist_edge.bench.results` and :mod:`~mnist_edge.bench.report` hold the results as frozen
  values with ``to_dict()``/``from_dict()``; :mod:`~mnist_edge.bench.render` turns them into table
  cells, Markdown, sentences and chart rows (nothing in this package prints);
* :mod:`~mnist_edge.bench.timing` times callables taking turns;
* :mod:`~mnist_edge.bench.engines` builds the bare engines, :mod:`~mnist_edge.bench.contender` pairs
  each with the runtime's classifier;
* :mod:`~mnist_edge.bench.memory` runs the memory probe subprocess;
* :mod:`~mnist_edge.bench.run` is the whole run (:func:`benchmark`).

TensorFlow is imported only inside the Keras measurement.
"""

from __future__ import annotations

from mnist_edge.bench.contender import Contender
from mnist_edge.bench.engines import model_input, raw_engine
from mnist_edge.bench.memory import measure_memory
from mnist_edge.bench.options import (
    DEFAULT_BATCH_SIZES,
    DEFAULT_MIN_CALLS,
    DEFAULT_MIN_TIME,
    BenchOptions,
    check_artifacts,
    parse_batch_sizes,
    parse_duration,
)
from mnist_edge.bench.render import format_bytes, format_rate, format_us
from mnist_edge.bench.report import BenchmarkReport
from mnist_edge.bench.results import ArtifactBenchmark, KerasBenchmark, LatencyStats, MemoryProbe
from mnist_edge.bench.run import Progress, benchmark, benchmark_artifacts, benchmark_keras
from mnist_edge.bench.timing import time_interleaved

__all__ = [
    "DEFAULT_BATCH_SIZES",
    "DEFAULT_MIN_CALLS",
    "DEFAULT_MIN_TIME",
    "ArtifactBenchmark",
    "BenchOptions",
    "BenchmarkReport",
    "Contender",
    "KerasBenchmark",
    "LatencyStats",
    "MemoryProbe",
    "Progress",
    "benchmark",
    "benchmark_artifacts",
    "benchmark_keras",
    "check_artifacts",
    "format_bytes",
    "format_rate",
    "format_us",
    "measure_memory",
    "model_input",
    "parse_batch_sizes",
    "parse_duration",
    "raw_engine",
    "time_interleaved",
]
