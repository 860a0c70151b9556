"""One benchmark run as a value: where it ran, how, and one row per artifact plus the Keras reference.

The presentation methods are one line each over :mod:`mnist_edge.bench.render`, so the value and
its JSON form stay apart from how it is shown.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import mnist_edge.bench.render as render
from mnist_edge.bench.results import ArtifactBenchmark, KerasBenchmark, find_row

__all__ = ["DEFAULT_IMAGES", "METHOD", "BenchmarkReport"]

#: How the numbers were made, stored with every result file so it can be read on its own.
METHOD = (
    "Per-call perf_counter_ns timings after a warm-up; every callable runs >= min_time s and >= min_calls "
    "calls. Wrapper (mnist_edge.runtime predict_proba on uint8 pixels) and raw engine (LiteRT "
    "set_tensor/invoke/get_tensor or onnxruntime session.run on pre-converted model input, own engine "
    "instance, same threads) for every artifact take turns in one loop per batch size, in ~10 ms blocks; "
    "ratio = wrapper p50 / raw p50. "
    "Throughput = batch / p50. Keras: model(x, training=False) and "
    "model.predict(x, batch_size=b, verbose=0). "
    "Peak RSS: VmHWM of a fresh subprocess that loads the model and runs every batch size."
)
#: What `images` says when the run measured the MNIST test set.
DEFAULT_IMAGES = "MNIST test set"


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
    images: str = DEFAULT_IMAGES
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
        return {row.name: self.keras.speedup(row.latency) for row in self.rows}

    def row(self, fmt: str, precision: str) -> ArtifactBenchmark | None:
        return find_row(self.rows, fmt, precision)

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
            "method": METHOD,
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
            images=str(data.get("images", DEFAULT_IMAGES)),
            seconds=float(data.get("seconds", 0.0)),
            created_at=str(data.get("created_at", "")),
        )

    # Presentation: see mnist_edge.bench.render.

    def machine_line(self) -> str:
        return render.machine_line(self.machine, self.threads)

    def table_columns(self) -> list[str]:
        return render.table_columns(self.largest_batch)

    def table_rows(self) -> list[list[str]]:
        return render.table_rows(self.rows, self.keras, self.largest_batch)

    def highlights(self) -> list[str]:
        return render.highlights(self.rows, self.keras, self.largest_batch)

    def chart_rows(self) -> list[dict[str, Any]]:
        return render.chart_rows(self.rows, self.keras)

    def to_markdown(self) -> str:
        intro = [
            f"Machine: {self.machine_line()}.",
            render.input_line(self.images, self.min_time, self.min_calls),
        ]
        return render.markdown(intro, self.table_columns(), self.table_rows(), self.highlights())
