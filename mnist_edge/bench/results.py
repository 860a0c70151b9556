"""The benchmark's measurements as frozen values: each serialises with ``to_dict()`` and comes back
with ``from_dict()``, so a result file can be rendered again without measuring anything.

:class:`LatencyStats` is one callable's per-call times; :class:`ArtifactBenchmark` one exported file
(through the runtime and through its bare engine); :class:`KerasBenchmark` the reference model;
:class:`MemoryProbe` what a fresh process running one model costs. The whole run is
:class:`~mnist_edge.bench.report.BenchmarkReport`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ArtifactBenchmark", "KerasBenchmark", "LatencyStats", "MemoryProbe", "find_row"]


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
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LatencyStats:
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})


def _throughput(by_batch: Mapping[int, LatencyStats]) -> dict[int, float]:
    """Images per second at each batch size: batch / median call time (the median is what repeat
    runs on a busy machine agree on)."""
    return {b: b / (s.p50_us * 1e-6) for b, s in sorted(by_batch.items())}


def _stats_map_to_dict(by_batch: Mapping[int, LatencyStats]) -> dict[str, Any]:
    return {str(b): s.to_dict() for b, s in sorted(by_batch.items())}


def _stats_map_from_dict(data: Mapping[str, Any]) -> dict[int, LatencyStats]:
    return {int(b): LatencyStats.from_dict(s) for b, s in data.items()}


@dataclass(frozen=True)
class MemoryProbe:
    """What a fresh process that loads one model and runs it costs (see
    :func:`~mnist_edge.bench.memory.measure_memory`)."""

    peak_rss_bytes: int  # peak resident set of the whole process
    baseline_rss_bytes: int  # peak before the model was loaded (Python, numpy, mnist_edge.runtime)
    cold_load_seconds: float  # engine import + load + first prediction, in a fresh process

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

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

    def speedup(self, latency: LatencyStats) -> float:
        """How many times faster than the tutorial's batch-1 ``model.predict`` ``latency`` is (p50s)."""
        return self.predict_latency.p50_us / latency.p50_us

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


def find_row(rows: Sequence[ArtifactBenchmark], fmt: str, precision: str) -> ArtifactBenchmark | None:
    """The row of the ``fmt`` artifact (``"tflite"``, ``"onnx"``) in ``precision``, if it was measured."""
    return next((r for r in rows if r.format == fmt and r.precision == precision), None)
