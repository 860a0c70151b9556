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

Results are frozen values with ``to_dict()``/``from_dict()``; this module prints nothing. TensorFlow is
imported only inside the Keras measurement.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from mnist_edge.environment import INT8_DOT_FLAGS
from mnist_edge.errors import MnistEdgeError, ModelLoadError
from mnist_edge.manifest import ARTIFACT_SUFFIXES, TensorSpec, read_manifest

__all__ = [
    "DEFAULT_BATCH_SIZES",
    "DEFAULT_MIN_CALLS",
    "DEFAULT_MIN_TIME",
    "ArtifactBenchmark",
    "BenchmarkReport",
    "Contender",
    "KerasBenchmark",
    "LatencyStats",
    "MemoryProbe",
    "benchmark",
    "benchmark_artifacts",
    "benchmark_keras",
    "check_artifacts",
    "measure_memory",
    "model_input",
    "parse_batch_sizes",
    "parse_duration",
    "raw_engine",
    "time_interleaved",
]

DEFAULT_BATCH_SIZES = (1, 32, 1024)
DEFAULT_MIN_TIME = 2.0
DEFAULT_MIN_CALLS = 100
#: Target length of one block of calls in the interleaved loop (seconds).
BLOCK_SECONDS = 0.01
#: Loads timed per artifact for ``load_seconds`` (the median is reported).
LOAD_REPEATS = 3
#: Different test digits the batch-1 measurements cycle through.
SINGLE_IMAGES = 1000

#: ``progress(completed, total, description)``: called before each step and once at the end.
Progress = Callable[[int, int, str], None]


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class LatencyStats:
    """The distribution of per-call times of one callable, in microseconds."""

    p50_us: float
    p90_us: float
    p99_us: float
    mean_us: float
    std_us: float
    min_us: float
    count: int

    @classmethod
    def from_ns(cls, timings_ns: Sequence[int] | np.ndarray) -> LatencyStats:
        t = np.asarray(timings_ns, dtype=np.float64) / 1000.0
        if t.size == 0:
            raise ValueError("no timings")
        p50, p90, p99 = np.percentile(t, [50, 90, 99])
        return cls(
            p50_us=float(p50),
            p90_us=float(p90),
            p99_us=float(p99),
            mean_us=float(t.mean()),
            std_us=float(t.std()),
            min_us=float(t.min()),
            count=int(t.size),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "p50_us": self.p50_us,
            "p90_us": self.p90_us,
            "p99_us": self.p99_us,
            "mean_us": self.mean_us,
            "std_us": self.std_us,
            "min_us": self.min_us,
            "count": self.count,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LatencyStats:
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})


def _throughput(by_batch: Mapping[int, LatencyStats]) -> dict[int, float]:
    """Images per second at each batch size: batch / median call time."""
    return {b: b / (s.p50_us * 1e-6) for b, s in sorted(by_batch.items())}


def _stats_map_to_dict(by_batch: Mapping[int, LatencyStats]) -> dict[str, Any]:
    return {str(b): s.to_dict() for b, s in sorted(by_batch.items())}


def _stats_map_from_dict(data: Mapping[str, Any]) -> dict[int, LatencyStats]:
    return {int(b): LatencyStats.from_dict(s) for b, s in data.items()}


@dataclass(frozen=True)
class MemoryProbe:
    """What a fresh process that loads one model and runs it costs (see :func:`measure_memory`)."""

    peak_rss_bytes: int  # peak resident set of the whole process
    baseline_rss_bytes: int  # peak before the model was loaded (Python, numpy, mnist_edge.runtime)
    cold_load_seconds: float  # engine import + load + first prediction, in a fresh process

    def to_dict(self) -> dict[str, Any]:
        return {
            "peak_rss_bytes": self.peak_rss_bytes,
            "baseline_rss_bytes": self.baseline_rss_bytes,
            "cold_load_seconds": self.cold_load_seconds,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MemoryProbe:
        return cls(
            peak_rss_bytes=int(data["peak_rss_bytes"]),
            baseline_rss_bytes=int(data["baseline_rss_bytes"]),
            cold_load_seconds=float(data["cold_load_seconds"]),
        )


class _Measured:
    """What artifact and Keras rows share: a file, its size, accuracy, load time and memory."""

    path: str
    size_bytes: int
    accuracy: float | None
    threads: int | None
    load_seconds: float
    memory: MemoryProbe | None

    @property
    def name(self) -> str:
        return Path(self.path).name

    @property
    def peak_rss_bytes(self) -> int | None:
        return None if self.memory is None else self.memory.peak_rss_bytes

    def _facts(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": self.path,
            "size_bytes": self.size_bytes,
            "accuracy": self.accuracy,
            "threads": self.threads,
            "load_seconds": self.load_seconds,
            "memory": None if self.memory is None else self.memory.to_dict(),
            "peak_rss_bytes": self.peak_rss_bytes,
        }

    @staticmethod
    def _facts_from_dict(data: Mapping[str, Any]) -> dict[str, Any]:
        memory = data.get("memory")
        return {
            "path": str(data["path"]),
            "size_bytes": int(data["size_bytes"]),
            "accuracy": data.get("accuracy"),
            "load_seconds": float(data["load_seconds"]),
            "memory": None if memory is None else MemoryProbe.from_dict(memory),
        }


@dataclass(frozen=True)
class ArtifactBenchmark(_Measured):
    """One exported artifact: wrapper (``runtime.load(...).predict_proba``) and raw engine, same run."""

    path: str
    format: str
    precision: str | None
    size_bytes: int
    load_seconds: float
    #: Per-call latency of the wrapper / the bare engine at each batch size.
    latency_by_batch: dict[int, LatencyStats]
    raw_latency_by_batch: dict[int, LatencyStats]
    #: Test-set accuracy from the manifest's parity block (None until `mnist-edge verify` ran).
    accuracy: float | None = None
    memory: MemoryProbe | None = None
    #: Fraction of images on which wrapper and raw engine agree (top-1), at the largest batch: a
    #: check that the raw baseline was fed the model's real input.
    raw_agreement: float | None = None
    threads: int = 1

    @property
    def label(self) -> str:
        return f"{self.format} {self.precision or '?'}"

    @property
    def largest_batch(self) -> int:
        return max(self.latency_by_batch)

    @property
    def latency(self) -> LatencyStats:
        """The wrapper's batch-1 latency."""
        return self.latency_by_batch[1]

    @property
    def raw_latency(self) -> LatencyStats:
        """The bare engine's batch-1 latency."""
        return self.raw_latency_by_batch[1]

    @property
    def throughput(self) -> dict[int, float]:
        return _throughput(self.latency_by_batch)

    @property
    def raw_throughput(self) -> dict[int, float]:
        return _throughput(self.raw_latency_by_batch)

    def ratio(self, batch: int) -> float:
        """Wrapper p50 / raw p50 at ``batch``, both from this run."""
        return self.latency_by_batch[batch].p50_us / self.raw_latency_by_batch[batch].p50_us

    @property
    def ratio_batch1(self) -> float:
        return self.ratio(1)

    @property
    def ratio_largest(self) -> float:
        return self.ratio(self.largest_batch)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self._facts(),
            "format": self.format,
            "precision": self.precision,
            "latency_us": self.latency.to_dict(),
            "raw_latency_us": self.raw_latency.to_dict(),
            "throughput": {str(b): v for b, v in self.throughput.items()},
            "raw_throughput": {str(b): v for b, v in self.raw_throughput.items()},
            "ratio_batch1": self.ratio_batch1,
            "ratio_largest": self.ratio_largest,
            "largest_batch": self.largest_batch,
            "raw_agreement": self.raw_agreement,
            "latency_by_batch": _stats_map_to_dict(self.latency_by_batch),
            "raw_latency_by_batch": _stats_map_to_dict(self.raw_latency_by_batch),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ArtifactBenchmark:
        return cls(
            **cls._facts_from_dict(data),
            format=str(data["format"]),
            precision=data.get("precision"),
            latency_by_batch=_stats_map_from_dict(data["latency_by_batch"]),
            raw_latency_by_batch=_stats_map_from_dict(data["raw_latency_by_batch"]),
            raw_agreement=data.get("raw_agreement"),
            threads=int(data.get("threads", 1)),
        )


@dataclass(frozen=True)
class KerasBenchmark(_Measured):
    """The Keras reference timed the tutorial's way: ``model(x)`` and ``model.predict(x)``."""

    path: str
    size_bytes: int
    load_seconds: float
    #: ``model(x, training=False)`` at batch 1.
    call_latency: LatencyStats
    #: ``model.predict(x, batch_size=b, verbose=0)`` per batch size (batch 1 is the tutorial's call).
    predict_latency_by_batch: dict[int, LatencyStats]
    accuracy: float | None = None
    memory: MemoryProbe | None = None
    #: TensorFlow's intra-op threads during the run (None: TensorFlow's default, every core).
    threads: int | None = None

    @property
    def predict_latency(self) -> LatencyStats:
        return self.predict_latency_by_batch[1]

    @property
    def throughput(self) -> dict[int, float]:
        """``model.predict`` images per second per batch size."""
        return _throughput(self.predict_latency_by_batch)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self._facts(),
            "call_latency_us": self.call_latency.to_dict(),
            "predict_latency_us": self.predict_latency.to_dict(),
            "throughput": {str(b): v for b, v in self.throughput.items()},
            "predict_latency_by_batch": _stats_map_to_dict(self.predict_latency_by_batch),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> KerasBenchmark:
        return cls(
            **cls._facts_from_dict(data),
            call_latency=LatencyStats.from_dict(data["call_latency_us"]),
            predict_latency_by_batch=_stats_map_from_dict(data["predict_latency_by_batch"]),
            threads=data.get("threads"),
        )


@dataclass(frozen=True)
class BenchmarkReport:
    """One benchmark run: where it ran, how, and one row per artifact (plus the Keras reference)."""

    machine: dict[str, Any]
    threads: int
    batch_sizes: tuple[int, ...]
    min_time: float
    min_calls: int
    rows: tuple[ArtifactBenchmark, ...]
    keras: KerasBenchmark | None = None
    images: str = "MNIST test set"
    seconds: float = 0.0
    created_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    @property
    def largest_batch(self) -> int:
        return max(self.batch_sizes)

    @property
    def speedup_vs_keras_predict(self) -> dict[str, float]:
        """Artifact name -> Keras ``model.predict`` batch-1 p50 / the artifact's wrapper batch-1 p50."""
        if self.keras is None:
            return {}
        base = self.keras.predict_latency.p50_us
        return {row.name: base / row.latency.p50_us for row in self.rows}

    def row(self, fmt: str, precision: str) -> ArtifactBenchmark | None:
        return next((r for r in self.rows if r.format == fmt and r.precision == precision), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "machine": self.machine,
            "threads": self.threads,
            "batch_sizes": list(self.batch_sizes),
            "min_time": self.min_time,
            "min_calls": self.min_calls,
            "images": self.images,
            "seconds": self.seconds,
            "created_at": self.created_at,
            "method": _METHOD,
            "rows": [r.to_dict() for r in self.rows],
            "keras": None if self.keras is None else self.keras.to_dict(),
            "speedup_vs_keras_predict": self.speedup_vs_keras_predict,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BenchmarkReport:
        keras = data.get("keras")
        return cls(
            machine=dict(data.get("machine") or {}),
            threads=int(data["threads"]),
            batch_sizes=tuple(int(b) for b in data["batch_sizes"]),
            min_time=float(data["min_time"]),
            min_calls=int(data["min_calls"]),
            rows=tuple(ArtifactBenchmark.from_dict(r) for r in data["rows"]),
            keras=None if keras is None else KerasBenchmark.from_dict(keras),
            images=str(data.get("images", "MNIST test set")),
            seconds=float(data.get("seconds", 0.0)),
            created_at=str(data.get("created_at", "")),
        )

    def machine_line(self) -> str:
        """CPU, cores, threads and the engines' versions, in one line."""
        m = self.machine
        versions = m.get("versions") or {}
        libs = ", ".join(
            f"{name} {versions[name]}"
            for name in ("ai-edge-litert", "onnxruntime", "numpy", "tensorflow", "keras")
            if name in versions
        )
        cpu = f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores"
        simd = m.get("simd")
        if simd is not None:  # what int8 can gain here depends on it (environment.INT8_DOT_FLAGS)
            dot = [f for f in simd if f in INT8_DOT_FLAGS]
            cpu += f" ({' '.join(simd) or 'no SIMD flags read'}; int8 dot product: {' '.join(dot) or 'none'})"
        return f"{cpu}; {self.threads} engine thread(s); Python {m.get('python', '?')}; {libs}"

    def table_columns(self) -> list[str]:
        n = self.largest_batch
        return [
            "artifact",
            "format",
            "precision",
            "size",
            "accuracy",
            "p50 b1",
            "raw p50 b1",
            f"img/s b{n}",
            "vs Keras predict",
            "wrapper/raw b1",
            f"wrapper/raw b{n}",
            "peak RSS",
        ]

    def table_rows(self) -> list[list[str]]:
        """The at-a-glance table as strings, in :meth:`table_columns` order: the Markdown and the CLI
        print these. The Keras reference comes last, as two lines: ``model.predict(x)`` and ``model(x)``."""
        largest = self.largest_batch
        speedups = self.speedup_vs_keras_predict

        def rss(value: int | None) -> str:
            return "-" if value is None else format_bytes(value)

        def acc(value: float | None) -> str:
            return "-" if value is None else f"{value:.4f}"

        lines = []
        for r in self.rows:
            speedup = speedups.get(r.name)
            lines.append(
                [
                    r.name,
                    r.format,
                    r.precision or "?",
                    format_bytes(r.size_bytes),
                    acc(r.accuracy),
                    format_us(r.latency.p50_us),
                    format_us(r.raw_latency.p50_us),
                    format_rate(r.throughput.get(largest)),
                    "-" if speedup is None else f"{speedup:,.0f}x",
                    f"{r.ratio_batch1:.2f}",
                    f"{r.ratio_largest:.2f}",
                    rss(r.peak_rss_bytes),
                ]
            )
        k = self.keras
        if k is not None:
            size, accuracy, memory = format_bytes(k.size_bytes), acc(k.accuracy), rss(k.peak_rss_bytes)
            predict_p50, call_p50 = k.predict_latency.p50_us, k.call_latency.p50_us
            lines.append(
                [
                    "keras model.predict(x)",
                    "keras",
                    "fp32",
                    size,
                    accuracy,
                    format_us(predict_p50),
                    "-",
                    format_rate(k.throughput.get(largest)),
                    "1x",
                    "-",
                    "-",
                    memory,
                ]
            )
            lines.append(
                [
                    "keras model(x)",
                    "keras",
                    "fp32",
                    size,
                    accuracy,
                    format_us(call_p50),
                    "-",
                    "-",
                    f"{predict_p50 / call_p50:,.0f}x",
                    "-",
                    "-",
                    memory,
                ]
            )
        return lines

    def highlights(self) -> list[str]:
        """The headline comparisons, as sentences (each only when both sides were measured)."""
        out = []
        largest = self.largest_batch
        int8, fp32 = self.row("tflite", "int8"), self.row("tflite", "fp32")
        if self.keras is not None and int8 is not None:
            out.append(
                f"int8 TFLite batch-1 p50 {format_us(int8.latency.p50_us)} vs Keras model.predict "
                f"{format_us(self.keras.predict_latency.p50_us)}: "
                f"{self.speedup_vs_keras_predict[int8.name]:,.0f}x faster"
            )
        if int8 is not None and fp32 is not None and largest in int8.latency_by_batch:
            ratio = int8.throughput[largest] / fp32.throughput[largest]
            out.append(
                f"int8 vs fp32 TFLite throughput at batch {largest}: "
                f"{format_rate(int8.throughput[largest])} vs {format_rate(fp32.throughput[largest])} "
                f"images/s ({ratio:.1f}x)"
            )
        if self.rows:
            worst1 = max(self.rows, key=lambda r: r.ratio_batch1)
            worst_n = max(self.rows, key=lambda r: r.ratio_largest)
            out.append(
                f"wrapper/raw ratio: at most {worst1.ratio_batch1:.2f} at batch 1 ({worst1.name}), "
                f"{worst_n.ratio_largest:.2f} at batch {largest} ({worst_n.name})"
            )
        return out

    def to_markdown(self) -> str:
        rows = self.table_rows()
        headers = self.table_columns()
        lines = [
            f"Machine: {self.machine_line()}.",
            f"Input: {self.images}, uint8 pixels; each timing runs at least {self.min_time:g} s and "
            f"{self.min_calls} calls after a warm-up; p50 of per-call times; throughput = batch / p50.",
            "",
        ]
        if rows:
            align = ["---" if h in ("artifact", "format", "precision") else "---:" for h in headers]
            lines.append("| " + " | ".join(headers) + " |")
            lines.append("|" + "|".join(align) + "|")
            lines.extend("| " + " | ".join(r) + " |" for r in rows)
            lines.append("")
        lines.extend(f"- {h}" for h in self.highlights())
        return "\n".join(lines).rstrip() + "\n"

    def chart_rows(self) -> list[dict[str, Any]]:
        """Rows for :func:`mnist_edge.plots.benchmark_chart`."""
        rows: list[dict[str, Any]] = [
            {
                "label": r.label,
                "p50_us": r.latency.p50_us,
                "raw_p50_us": r.raw_latency.p50_us,
                "throughput": r.throughput,
            }
            for r in self.rows
        ]
        if self.keras is not None:
            rows.append(
                {
                    "label": "keras model.predict",
                    "p50_us": self.keras.predict_latency.p50_us,
                    "throughput": self.keras.throughput,
                }
            )
            rows.append({"label": "keras model(x)", "p50_us": self.keras.call_latency.p50_us})
        return rows


_METHOD = (
    "Per-call perf_counter_ns timings after a warm-up; every callable runs >= min_time s and >= min_calls "
    "calls. Wrapper (mnist_edge.runtime predict_proba on uint8 pixels) and raw engine (LiteRT "
    "set_tensor/invoke/get_tensor or onnxruntime session.run on pre-converted model input, own engine "
    "instance, same threads) for every artifact take turns in one loop per batch size, in ~10 ms blocks; "
    "ratio = wrapper p50 / raw p50. "
    "Throughput = batch / p50. Keras: model(x, training=False) and "
    "model.predict(x, batch_size=b, verbose=0). "
    "Peak RSS: VmHWM of a fresh subprocess that loads the model and runs every batch size."
)


def format_us(us: float) -> str:
    if us >= 1e6:
        return f"{us / 1e6:.2f} s"
    if us >= 1e3:
        return f"{us / 1e3:.1f} ms"
    return f"{us:.1f} µs"


def format_rate(rate: float | None) -> str:
    if rate is None:
        return "-"
    if rate >= 1e6:
        return f"{rate / 1e6:.2f} M"
    if rate >= 1e4:
        return f"{rate / 1e3:.0f} k"
    return f"{rate:,.0f}"


def format_bytes(n: int) -> str:
    if n >= 1 << 20:
        return f"{n / (1 << 20):.1f} MiB"
    return f"{n / 1024:.0f} KiB"


# --------------------------------------------------------------------------- options


_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|min)?\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"ms": 1e-3, "s": 1.0, "m": 60.0, "min": 60.0}


def parse_duration(text: str) -> float:
    """``"2s"``, ``"500ms"``, ``"1.5"`` (seconds), ``"1m"`` -> seconds; anything else is an error."""
    match = _DURATION.match(str(text))
    if not match:
        raise MnistEdgeError(f"cannot read {text!r} as a duration: write e.g. 2s, 500ms or 0.5")
    seconds = float(match.group(1)) * _UNIT_SECONDS[(match.group(2) or "s").lower()]
    if not seconds > 0:
        raise MnistEdgeError(f"duration {text!r} must be positive")
    return seconds


def parse_batch_sizes(text: str | Sequence[int]) -> tuple[int, ...]:
    """``"1,32,1024"`` -> ``(1, 32, 1024)``: sorted, unique, each >= 1; batch 1 is always included."""
    parts = text.split(",") if isinstance(text, str) else list(text)
    sizes = set()
    for part in parts:
        try:
            size = int(str(part).strip())
        except ValueError:
            raise MnistEdgeError(f"batch size {str(part).strip()!r} is not a whole number") from None
        if size < 1:
            raise MnistEdgeError(f"batch size must be at least 1, got {size}")
        if size > 65536:
            raise MnistEdgeError(f"batch size {size} is over the limit of 65536")
        sizes.add(size)
    if not sizes:
        raise MnistEdgeError("give at least one batch size, e.g. 1,32,1024")
    return tuple(sorted(sizes | {1}))


def check_artifacts(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """The artifacts as paths, each an existing .tflite/.onnx file, duplicates dropped; else an error."""
    out: list[Path] = []
    for p in paths:
        path = Path(p)
        if path.suffix.lower() not in ARTIFACT_SUFFIXES:
            raise ModelLoadError(
                f"{path} is not an exported artifact (suffix {path.suffix or '(none)'!r}); benchmark "
                f"takes {', '.join(ARTIFACT_SUFFIXES)} files (the Keras model goes in --model)"
            )
        if not path.is_file():
            raise ModelLoadError(f"artifact {path} does not exist; export one with `mnist-edge export`")
        if path.resolve() not in {q.resolve() for q in out}:
            out.append(path)
    return out


# --------------------------------------------------------------------------- timing


def _timed_calls(func: Callable[[], Any], calls: int, sink: list[int]) -> int:
    clock = time.perf_counter_ns
    total = 0
    for _ in range(calls):
        start = clock()
        func()
        elapsed = clock() - start
        sink.append(elapsed)
        total += elapsed
    return total


def time_interleaved(
    funcs: Sequence[Callable[[], Any]],
    *,
    min_time: float = DEFAULT_MIN_TIME,
    min_calls: int = DEFAULT_MIN_CALLS,
    warmup: float | None = None,
    block_calls: int | None = None,
) -> list[LatencyStats]:
    """Time each callable per call, alternating in blocks, until each has run ``min_time`` seconds and
    ``min_calls`` calls. The order of the callables rotates every block.

    ``warmup`` seconds per callable (default a tenth of ``min_time``, at most 0.5 s, at least 3 calls)
    are run and discarded first; they also size the blocks (about :data:`BLOCK_SECONDS` each) unless
    ``block_calls`` fixes them (1: strictly call by call, as ``benchmarks/runtime_overhead.py`` does).
    """
    if min_calls < 1:
        raise MnistEdgeError(f"min_calls must be at least 1, got {min_calls}")
    if not min_time > 0:
        raise MnistEdgeError(f"min_time must be positive, got {min_time}")
    warmup = min(0.5, min_time / 10) if warmup is None else warmup
    blocks = []
    for func in funcs:
        calls, clock = 0, time.perf_counter_ns
        start = clock()
        while calls < 3 or clock() - start < warmup * 1e9:
            func()
            calls += 1
        spent = clock() - start
        per_call = spent / calls / 1e9
        blocks.append(block_calls or max(1, min(1000, int(BLOCK_SECONDS / max(per_call, 1e-9)))))
    sinks: list[list[int]] = [[] for _ in funcs]
    totals = [0] * len(funcs)
    need_ns = min_time * 1e9
    turn = 0
    while any(t < need_ns or len(s) < min_calls for t, s in zip(totals, sinks, strict=True)):
        n = len(funcs)
        for k in range(n):
            i = (turn + k) % n
            totals[i] += _timed_calls(funcs[i], blocks[i], sinks[i])
        turn += 1
    return [LatencyStats.from_ns(s) for s in sinks]


# --------------------------------------------------------------------------- engines


def model_input(pixels: np.ndarray, spec: TensorSpec, inner: Sequence[int], divide_by: float) -> np.ndarray:
    """uint8 pixels as the model's own input: quantised integers, or ``float32(pixels) / divide_by`` in
    the model's float dtype. Computed once, outside the timed loop: the raw baseline does no conversion."""
    from mnist_edge.runtime.preprocess import quantize

    real = pixels.astype(np.float32) / np.float32(divide_by)
    x = quantize(real, spec) if spec.quantized else real.astype(spec.dtype)
    return np.ascontiguousarray(x.reshape(len(pixels), *inner))


class _RawEngine:
    """What both bare engines offer: ``caller(shape)`` -> ``call(x)``, and a call on a fixed input."""

    inner: list[int]

    def caller(self, shape: Sequence[int]) -> Callable[[np.ndarray], np.ndarray]:
        raise NotImplementedError

    def runner(self, x: np.ndarray) -> Callable[[], np.ndarray]:
        call = self.caller(x.shape)
        return lambda: call(x)


class _RawLiteRT(_RawEngine):
    """A bare LiteRT interpreter, used the way its documentation shows."""

    def __init__(self, path: Path, threads: int) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
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


class _RawOnnx(_RawEngine):
    """A bare onnxruntime session with the runtime's settings (CPU, sequential, ``threads`` intra-op)."""

    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        self.session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        node = self.session.get_inputs()[0]
        self.name = node.name
        self.outputs = [self.session.get_outputs()[0].name]
        self.inner = [int(d) for d in node.shape[1:]]

    def caller(self, shape: Sequence[int]) -> Callable[[np.ndarray], np.ndarray]:
        run, name, outputs = self.session.run, self.name, self.outputs
        return lambda x: run(outputs, {name: x})[0]


def raw_engine(path: Path, threads: int) -> _RawEngine:
    return _RawLiteRT(path, threads) if path.suffix.lower() == ".tflite" else _RawOnnx(path, threads)


def _batch(images: np.ndarray, size: int) -> np.ndarray:
    """The first ``size`` images, repeated if there are fewer."""
    if size <= len(images):
        return np.ascontiguousarray(images[:size])
    return np.ascontiguousarray(np.resize(images, (size, *images.shape[1:])))


def _timed_load(path: Path, threads: int, first: np.ndarray) -> tuple[Any, float]:
    """Load ``LOAD_REPEATS`` times (file to first prediction ready); the last classifier and the median."""
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
        manifest = self.clf.manifest
        self.divide_by = float(manifest.preprocessing.get("divide_by", 255.0)) if manifest else 255.0
        self.raw = raw_engine(path, threads)
        self.latency: dict[int, LatencyStats] = {}
        self.raw_latency: dict[int, LatencyStats] = {}
        self.agreement: float | None = None

    def callables(self, size: int) -> tuple[Callable[[], Any], Callable[[], Any]]:
        """(wrapper on uint8 pixels, raw engine on the same images already in the model's input).

        Batch 1 walks through up to :data:`SINGLE_IMAGES` different test digits, the same digit
        for both at each step: a latency figure from one image over and over would flatter any
        per-input caching (the runtime remembers quantised output rows) and the CPU's caches.
        """
        predict_proba = self.clf.predict_proba
        if size == 1:
            pixels = np.ascontiguousarray(self.images[:SINGLE_IMAGES])
            inputs = model_input(pixels, self.clf.input_spec, self.raw.inner, self.divide_by)
            call = self.raw.caller(inputs[:1].shape)
            next_pixels = itertools.cycle([pixels[i : i + 1] for i in range(len(pixels))]).__next__
            next_input = itertools.cycle([inputs[i : i + 1] for i in range(len(inputs))]).__next__
            return (lambda: predict_proba(next_pixels())), (lambda: call(next_input()))
        pixels = _batch(self.images, size)
        raw_call = self.raw.runner(model_input(pixels, self.clf.input_spec, self.raw.inner, self.divide_by))
        return (lambda: predict_proba(pixels)), raw_call

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


def benchmark_artifacts(
    paths: Sequence[str | os.PathLike[str]],
    images: np.ndarray,
    *,
    threads: int = 1,
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
    min_time: float = DEFAULT_MIN_TIME,
    min_calls: int = DEFAULT_MIN_CALLS,
    memory: bool = True,
    step: Callable[[str], None] | None = None,
) -> tuple[ArtifactBenchmark, ...]:
    """Measure artifacts side by side: at each batch size every artifact's wrapper and raw engine take
    turns in one loop, so a burst of load from elsewhere on the machine hits all of them alike and
    every comparison in the table (wrapper/raw, int8/fp32, format against format) is same-window."""
    step = step or (lambda _what: None)
    sizes = parse_batch_sizes(batch_sizes)
    contenders = []
    for path in map(Path, paths):
        step(f"{path.name}: load (wrapper and raw engine)")
        contenders.append(Contender(path, images, threads))
    for size in sizes:
        step(f"batch {size}: {len(contenders)} artifact(s), wrapper and raw engine taking turns")
        funcs = [f for c in contenders for f in c.callables(size)]
        stats = time_interleaved(funcs, min_time=min_time, min_calls=min_calls)
        for i, c in enumerate(contenders):
            c.latency[size], c.raw_latency[size] = stats[2 * i], stats[2 * i + 1]
            if size == sizes[-1]:
                wrapped, raw_call = funcs[2 * i], funcs[2 * i + 1]
                same = wrapped().argmax(axis=1) == np.asarray(raw_call()).argmax(axis=1)
                c.agreement = float(np.mean(same))
    rows = []
    for c in contenders:
        probe = None
        if memory:
            step(f"{c.path.name}: peak memory (subprocess)")
            probe = measure_memory(c.path, threads=threads, batch_sizes=sizes)
        rows.append(c.result(probe, threads))
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
    *,
    threads: int = 1,
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
    min_time: float = DEFAULT_MIN_TIME,
    min_calls: int = DEFAULT_MIN_CALLS,
    memory: bool = True,
    accuracy: float | None = None,
    step: Callable[[str], None] | None = None,
) -> KerasBenchmark:
    """Time the reference the tutorial's way; Keras is imported here and nowhere else in this module."""
    path = Path(path)
    step = step or (lambda _what: None)
    sizes = parse_batch_sizes(batch_sizes)
    step(f"{path.name}: load Keras")
    tf_threads = _set_tf_threads(threads)
    from mnist_edge.model import load_model

    start = time.perf_counter()
    model = load_model(path)
    x1 = images[:1].astype(np.float32) / 255.0
    model.predict(x1, verbose=0)
    load_seconds = time.perf_counter() - start

    step(f"{path.name}: model(x) and model.predict(x), batch 1")
    call_stats, predict1 = time_interleaved(
        [lambda: np.asarray(model(x1, training=False)), lambda: model.predict(x1, verbose=0)],
        min_time=min_time,
        min_calls=min_calls,
    )
    predict = {1: predict1}
    for size in sizes:
        if size == 1:
            continue
        step(f"{path.name}: model.predict(x), batch {size}")
        xb = _batch(images, size).astype(np.float32) / 255.0
        (predict[size],) = time_interleaved(
            [lambda xb=xb, size=size: model.predict(xb, batch_size=size, verbose=0)],
            min_time=min_time,
            min_calls=min_calls,
        )
    probe = None
    if memory:
        step(f"{path.name}: peak memory (subprocess)")
        probe = measure_memory(path, threads=threads, batch_sizes=sizes)
    return KerasBenchmark(
        path=str(path),
        size_bytes=path.stat().st_size,
        load_seconds=load_seconds,
        call_latency=call_stats,
        predict_latency_by_batch=predict,
        accuracy=accuracy,
        memory=probe,
        threads=tf_threads,
    )


# --------------------------------------------------------------------------- memory


def _peak_rss_bytes() -> int:
    """This process's peak resident memory so far.

    On Linux, ``VmHWM`` from ``/proc/self/status``: ``getrusage``'s ``ru_maxrss`` survives ``execve``, so
    in a child spawned by a big process (the benchmark, with TensorFlow loaded) it starts at the
    parent's peak and would report that instead of the child's own.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # macOS reports bytes, Linux KiB


def _memory_probe(path: str, threads: int, batch_sizes: Sequence[int]) -> dict[str, Any]:
    """Runs in the subprocess: load one model, run every batch size a few times, report the peaks.

    The images are random pixels: memory does not depend on their values, and the data set would
    add its own 55 MB to the figure.
    """
    baseline = _peak_rss_bytes()
    start = time.perf_counter()
    from mnist_edge.runtime import load

    clf = load(path, threads=threads)
    rng = np.random.default_rng(0)
    clf.predict_proba(rng.integers(0, 256, (1, 28, 28), dtype=np.uint8))
    cold = time.perf_counter() - start
    for size in batch_sizes:
        pixels = rng.integers(0, 256, (size, 28, 28), dtype=np.uint8)
        for _ in range(3):
            clf.predict_proba(pixels)
    return {"peak_rss_bytes": _peak_rss_bytes(), "baseline_rss_bytes": baseline, "cold_load_seconds": cold}


_PROBE_CODE = (
    "import json, sys\n"
    "from mnist_edge.bench import _memory_probe\n"
    "result = _memory_probe(sys.argv[1], int(sys.argv[2]), [int(b) for b in sys.argv[3].split(',')])\n"
    "sys.stdout.write('MNIST_EDGE_MEMORY ' + json.dumps(result) + '\\n')\n"
)


def measure_memory(
    path: str | os.PathLike[str],
    *,
    threads: int = 1,
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
    timeout: float = 300.0,
) -> MemoryProbe:
    """Peak resident memory of a fresh Python process that loads ``path`` and runs each batch size."""
    root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sizes = ",".join(str(b) for b in parse_batch_sizes(batch_sizes))
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _PROBE_CODE, str(path), str(threads), sizes],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
    except subprocess.TimeoutExpired:
        raise MnistEdgeError(f"the memory probe for {path} took over {timeout:g} s") from None
    for line in proc.stdout.splitlines():
        if line.startswith("MNIST_EDGE_MEMORY "):
            return MemoryProbe.from_dict(json.loads(line.split(" ", 1)[1]))
    tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
    raise MnistEdgeError(f"the memory probe for {path} failed (exit {proc.returncode}): {tail}")


# --------------------------------------------------------------------------- the whole run


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


def benchmark(
    artifacts: Sequence[str | os.PathLike[str]],
    *,
    keras_model: str | os.PathLike[str] | None = None,
    images: np.ndarray | None = None,
    threads: int = 1,
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
    min_time: float = DEFAULT_MIN_TIME,
    min_calls: int = DEFAULT_MIN_CALLS,
    memory: bool = True,
    data: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
) -> BenchmarkReport:
    """Benchmark each artifact (and the Keras reference, if given) on ``images`` (uint8, (N, 28, 28);
    default: the MNIST test set, from ``data`` or the source chain). Everything is checked before the
    first measurement."""
    from mnist_edge.environment import machine_info

    paths = check_artifacts(artifacts)
    sizes = parse_batch_sizes(batch_sizes)
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise MnistEdgeError(f"threads must be a positive integer, got {threads!r}")
    if not math.isfinite(min_time) or min_time <= 0:
        raise MnistEdgeError(f"min_time must be a positive number of seconds, got {min_time!r}")
    if min_calls < 1:
        raise MnistEdgeError(f"min_calls must be at least 1, got {min_calls}")
    keras_path = None if keras_model is None else Path(keras_model)
    if keras_path is not None and not keras_path.is_file():
        raise ModelLoadError(f"Keras model {keras_path} does not exist: train one, or leave it out")
    if not paths and keras_path is None:
        raise MnistEdgeError("nothing to benchmark: give artifacts or a Keras model")
    source = "MNIST test set"
    if images is None:
        from mnist_edge.data import load_mnist_data

        images = load_mnist_data(data, log=lambda _msg: None).x_test
    else:
        source = f"{len(images)} given images"
    images = np.ascontiguousarray(images)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28) or not len(images):
        raise MnistEdgeError(f"images must be uint8 (N, 28, 28), got {images.dtype} {images.shape}")

    per_keras = 2 + (len(sizes) - 1) + int(memory)
    total = (1 + int(memory)) * len(paths) + (len(sizes) if paths else 0)
    total += per_keras if keras_path is not None else 0
    done = 0

    def step(what: str) -> None:
        nonlocal done
        if progress is not None:
            progress(done, total, what)
        done += 1

    common = {"threads": threads, "batch_sizes": sizes, "min_time": min_time, "min_calls": min_calls}
    started = time.perf_counter()
    rows = benchmark_artifacts(paths, images, memory=memory, step=step, **common) if paths else ()
    keras = None
    if keras_path is not None:
        keras = benchmark_keras(
            keras_path,
            images,
            memory=memory,
            accuracy=_reference_accuracy(rows, keras_path),
            step=step,
            **common,
        )
    if progress is not None:
        progress(total, total, "done")
    return BenchmarkReport(
        machine=machine_info(),
        threads=threads,
        batch_sizes=sizes,
        min_time=min_time,
        min_calls=min_calls,
        rows=rows,
        keras=keras,
        images=source,
        seconds=time.perf_counter() - started,
    )
