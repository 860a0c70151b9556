"""Architectures side by side: what each pipeline folder's model costs and gives at the edge.

:func:`compare` reads what the pipeline left in each folder (``metrics.json``: the Keras model's test
accuracy, parameters, recipe and training time; ``parity.json``: each artifact's accuracy and parity
status) and measures every artifact of every folder **in one run**, wrappers and bare engines taking
turns (:func:`mnist_edge.bench.benchmark_artifacts`), so a latency ratio between two architectures
is a same-window ratio, like the benchmark's own. The first folder is the base the ratios refer to.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from mnist_edge._text import num
from mnist_edge.errors import MnistEdgeError

__all__ = ["ArchitectureRun", "Comparison", "ComparisonRow", "compare"]

#: The batch-1 latency and the largest batch's throughput are what the comparison shows.
DEFAULT_BATCH_SIZES = (1, 1024)


@dataclass(frozen=True)
class ArchitectureRun:
    """One folder: the Keras model and how it was trained (None where the folder does not say)."""

    name: str
    folder: str
    test_accuracy: float | None = None
    params: int | None = None
    train_seconds: float | None = None
    recipe: str | None = None


@dataclass(frozen=True)
class ComparisonRow:
    """One artifact of one architecture."""

    arch: str
    format: str
    precision: str
    file: str
    size_bytes: int
    p50_us: float
    raw_p50_us: float
    throughput: float | None = None
    accuracy: float | None = None
    parity: str | None = None
    agreement_pct: float | None = None


@dataclass(frozen=True)
class Comparison:
    runs: tuple[ArchitectureRun, ...]
    rows: tuple[ComparisonRow, ...]
    threads: int
    batch_sizes: tuple[int, ...]
    min_time: float
    machine: dict[str, Any] = field(default_factory=dict)
    created_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    def row(self, arch: str, fmt: str, precision: str) -> ComparisonRow | None:
        return next((r for r in self.rows if (r.arch, r.format, r.precision) == (arch, fmt, precision)), None)

    def latency_ratio(self, arch: str, fmt: str, precision: str) -> float | None:
        """``arch``'s batch-1 p50 over the base architecture's, for the same format and precision."""
        mine, base = self.row(arch, fmt, precision), self.row(self.runs[0].name, fmt, precision)
        return None if mine is None or base is None else mine.p50_us / base.p50_us

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["batch_sizes"] = list(self.batch_sizes)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Comparison:
        return cls(
            runs=tuple(ArchitectureRun(**r) for r in data["runs"]),
            rows=tuple(ComparisonRow(**r) for r in data["rows"]),
            threads=int(data["threads"]),
            batch_sizes=tuple(int(b) for b in data["batch_sizes"]),
            min_time=float(data["min_time"]),
            machine=dict(data.get("machine") or {}),
            created_at=str(data.get("created_at", "")),
        )

    def to_markdown(self) -> str:
        """Two tables: the Keras models, then every (format, precision) with one column group per
        architecture and the latency ratio to the first."""
        names = [run.name for run in self.runs]
        head = " | ".join(n.upper() for n in names)
        lines = [f"| | {head} |", "|---|" + "---:|" * len(names)]
        facts: list[tuple[str, Callable[[ArchitectureRun], str]]] = [
            ("Keras test accuracy", lambda r: num(r.test_accuracy, ".4f")),
            ("parameters", lambda r: num(r.params, ",")),
            ("training time", lambda r: num(r.train_seconds, ".0f", " s")),
        ]
        lines += [f"| {label} | " + " | ".join(cell(r) for r in self.runs) + " |" for label, cell in facts]
        lines += ["", *(f"- {r.name.upper()}: {r.recipe}" for r in self.runs if r.recipe), ""]

        per_arch = ["size", "accuracy", "parity", "p50 b1"]
        columns = [f"{n.upper()} {c}" for c in per_arch for n in names]
        ratios = [f"{n.upper()}/{names[0].upper()} b1" for n in names[1:]]
        lines += [
            "| format | precision | " + " | ".join(columns + ratios) + " |",
            "|---|---|" + "---:|" * (len(columns) + len(ratios)),
        ]
        keys = sorted(dict.fromkeys((r.format, r.precision) for r in self.rows), key=_table_order)
        for fmt, precision in keys:
            found = [self.row(n, fmt, precision) for n in names]
            cells = [_size(r) for r in found]
            cells += [num(r.accuracy if r else None, ".4f") for r in found]
            cells += [(r.parity or "-") if r else "-" for r in found]
            cells += [num(r.p50_us if r else None, ".1f", " µs") for r in found]
            cells += [num(self.latency_ratio(n, fmt, precision), ".2f") for n in names[1:]]
            lines.append(f"| {fmt} | {precision} | " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"


def _table_order(key: tuple[str, str]) -> tuple[int, int]:
    """Formats and precisions in the manifest's order (tflite before onnx, fp32 before int8)."""
    from mnist_edge.manifest import FORMATS, PRECISIONS

    fmt, precision = key
    return (
        FORMATS.index(fmt) if fmt in FORMATS else len(FORMATS),
        PRECISIONS.index(precision) if precision in PRECISIONS else len(PRECISIONS),
    )


def _size(row: ComparisonRow | None) -> str:
    return "-" if row is None else f"{row.size_bytes / 1024:,.1f} KB"


def compare(
    folders: Sequence[str | os.PathLike[str]],
    *,
    images: np.ndarray | None = None,
    data: str | os.PathLike[str] | None = None,
    threads: int = 1,
    batch_sizes: str | Sequence[int] = DEFAULT_BATCH_SIZES,
    min_time: float | str = 2.0,
    min_calls: int = 100,
    step: Callable[[str], None] | None = None,
) -> Comparison:
    """Compare the pipeline folders ``folders`` (the first is the base of the ratios); every artifact
    of every folder is measured in one run on ``images`` (default: the MNIST test set)."""
    from mnist_edge.bench import BenchOptions, benchmark_artifacts
    from mnist_edge.environment import machine_info
    from mnist_edge.parity import find_artifacts

    paths = [Path(f) for f in folders]
    if len(paths) < 2:
        raise MnistEdgeError("compare needs at least two folders, e.g. artifacts artifacts-cnn")
    runs = [_read_run(folder) for folder in paths]
    names = [run.name for run in runs]
    if len(set(names)) != len(names):
        raise MnistEdgeError(f"the folders hold the same architecture twice ({', '.join(names)})")
    artifacts = {run.name: find_artifacts(folder) for run, folder in zip(runs, paths, strict=True)}
    for run in runs:
        if not artifacts[run.name]:
            raise MnistEdgeError(
                f"{run.folder} holds no .tflite or .onnx file: run `mnist-edge export` there"
            )
    options = BenchOptions.checked(
        threads=threads, batch_sizes=batch_sizes, min_time=min_time, min_calls=min_calls
    )
    if images is None:
        from mnist_edge.data import load_mnist_data

        images = load_mnist_data(data, log=lambda _msg: None).x_test
    every = [path for run in runs for path in artifacts[run.name]]
    measured = {Path(r.path): r for r in benchmark_artifacts(every, images, options, memory=False, step=step)}
    rows = []
    for run, folder in zip(runs, paths, strict=True):
        parity = _parity_rows(folder)
        for path in artifacts[run.name]:
            bench = measured[path]
            checked = parity.get(path.name)
            rows.append(
                ComparisonRow(
                    arch=run.name,
                    format=bench.format,
                    precision=bench.precision or "?",
                    file=str(path),
                    size_bytes=bench.size_bytes,
                    p50_us=bench.latency.p50_us,
                    raw_p50_us=bench.raw_latency.p50_us,
                    throughput=bench.throughput.get(bench.largest_batch),
                    accuracy=checked.accuracy if checked else None,
                    parity=checked.status if checked else None,
                    agreement_pct=checked.agreement_pct if checked else None,
                )
            )
    return Comparison(
        runs=tuple(runs),
        rows=tuple(rows),
        threads=options.threads,
        batch_sizes=options.batch_sizes,
        min_time=options.min_time,
        machine=machine_info(),
    )


def _read_run(folder: Path) -> ArchitectureRun:
    """The folder's training facts from ``metrics.json``; without one, the folder's name stands in
    for the architecture."""
    import json

    from mnist_edge.train import describe

    if not folder.is_dir():
        raise MnistEdgeError(f"{folder} is not a folder: give pipeline output folders, e.g. artifacts")
    try:
        metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        metrics = {}
    config = metrics.get("config") or {}
    return ArchitectureRun(
        # Training configs written before the arch field were the tutorial's MLP.
        name=str(config.get("arch", "mlp")) if config else folder.name,
        folder=str(folder),
        test_accuracy=metrics.get("test_accuracy"),
        params=metrics.get("params"),
        train_seconds=metrics.get("train_seconds"),
        recipe=describe(config) if config else None,
    )


def _parity_rows(folder: Path) -> dict[str, Any]:
    from mnist_edge.parity import ParityReport

    report = ParityReport.read(folder)
    return {} if report is None else {row.name: row for row in report.rows}
