"""The benchmark's results as people read them: table cells, Markdown, headline sentences, chart rows.

Functions of result values (:mod:`mnist_edge.bench.results`) that return strings or plain rows;
nothing here measures or prints. :class:`~mnist_edge.bench.report.BenchmarkReport` exposes them as
thin methods, and the CLI, ``report.md`` and the README table all render through them, so one run
reads the same everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mnist_edge._text import MISSING, num
from mnist_edge.bench.results import ArtifactBenchmark, KerasBenchmark, find_row
from mnist_edge.environment import INT8_DOT_FLAGS

__all__ = [
    "LEFT_COLUMNS",
    "chart_rows",
    "format_bytes",
    "format_rate",
    "format_us",
    "highlights",
    "input_line",
    "machine_line",
    "markdown",
    "table_columns",
    "table_rows",
]

#: Columns of text (left-aligned); every other column is a number (right-aligned).
LEFT_COLUMNS = ("artifact", "format", "precision")
#: The libraries whose versions a reader needs to compare two runs, in the order they are listed.
_LIBRARIES = ("ai-edge-litert", "onnxruntime", "numpy", "tensorflow", "keras")


def format_us(us: float) -> str:
    if us >= 1e6:
        return f"{us / 1e6:.2f} s"
    if us >= 1e3:
        return f"{us / 1e3:.1f} ms"
    return f"{us:.1f} µs"


def format_rate(rate: float | None) -> str:
    if rate is None:
        return MISSING
    if rate >= 1e6:
        return f"{rate / 1e6:.2f} M"
    if rate >= 1e4:
        return f"{rate / 1e3:.0f} k"
    return f"{rate:,.0f}"


def format_bytes(n: int) -> str:
    if n >= 1 << 20:
        return f"{n / (1 << 20):.1f} MiB"
    return f"{n / 1024:.0f} KiB"


def _rss(value: int | None) -> str:
    return MISSING if value is None else format_bytes(value)


def machine_line(machine: Mapping[str, Any], threads: int) -> str:
    """CPU, cores, threads and the engines' versions, in one line."""
    versions = machine.get("versions") or {}
    libs = ", ".join(f"{name} {versions[name]}" for name in _LIBRARIES if name in versions)
    cpu = f"{machine.get('cpu', '?')}, {machine.get('cores', '?')} cores"
    simd = machine.get("simd")
    if simd is not None:  # what int8 can gain here depends on it (environment.INT8_DOT_FLAGS)
        dot = [f for f in simd if f in INT8_DOT_FLAGS]
        cpu += f" ({' '.join(simd) or 'no SIMD flags read'}; int8 dot product: {' '.join(dot) or 'none'})"
    return f"{cpu}; {threads} engine thread(s); Python {machine.get('python', '?')}; {libs}"


def input_line(images: str, min_time: float, min_calls: int) -> str:
    """What was measured and how, in one sentence."""
    return (
        f"Input: {images}, uint8 pixels; each timing runs at least {min_time:g} s and "
        f"{min_calls} calls after a warm-up; p50 of per-call times; throughput = batch / p50."
    )


def table_columns(largest: int) -> list[str]:
    return [
        "artifact",
        "format",
        "precision",
        "size",
        "accuracy",
        "p50 b1",
        "raw p50 b1",
        f"img/s b{largest}",
        "vs Keras predict",
        "wrapper/raw b1",
        f"wrapper/raw b{largest}",
        "peak RSS",
    ]


def _artifact_cells(r: ArtifactBenchmark, keras: KerasBenchmark | None, largest: int) -> list[str]:
    return [
        r.name,
        r.format,
        r.precision or "?",
        format_bytes(r.size_bytes),
        num(r.accuracy, ".4f"),
        format_us(r.latency.p50_us),
        format_us(r.raw_latency.p50_us),
        format_rate(r.throughput.get(largest)),
        MISSING if keras is None else f"{keras.speedup(r.latency):,.0f}x",
        f"{r.ratio_batch1:.2f}",
        f"{r.ratio_largest:.2f}",
        _rss(r.peak_rss_bytes),
    ]


def _keras_cells(k: KerasBenchmark, largest: int) -> list[list[str]]:
    """``model.predict(x)`` (the baseline, 1x) and ``model(x)``; neither has a raw engine."""
    common = ["keras", "fp32", format_bytes(k.size_bytes), num(k.accuracy, ".4f")]
    predict = [format_us(k.predict_latency.p50_us), MISSING, format_rate(k.throughput.get(largest)), "1x"]
    call = [format_us(k.call_latency.p50_us), MISSING, MISSING, f"{k.speedup(k.call_latency):,.0f}x"]
    tail = [MISSING, MISSING, _rss(k.peak_rss_bytes)]
    return [
        ["keras model.predict(x)", *common, *predict, *tail],
        ["keras model(x)", *common, *call, *tail],
    ]


def table_rows(
    rows: Sequence[ArtifactBenchmark], keras: KerasBenchmark | None, largest: int
) -> list[list[str]]:
    """The at-a-glance table as strings, in :func:`table_columns` order: the Markdown and the CLI
    print these. The Keras reference comes last, as two lines: ``model.predict(x)`` and ``model(x)``."""
    lines = [_artifact_cells(r, keras, largest) for r in rows]
    return lines if keras is None else [*lines, *_keras_cells(keras, largest)]


def highlights(rows: Sequence[ArtifactBenchmark], keras: KerasBenchmark | None, largest: int) -> list[str]:
    """The headline comparisons, as sentences (each only when both sides were measured)."""
    out = []
    int8, fp32 = find_row(rows, "tflite", "int8"), find_row(rows, "tflite", "fp32")
    if keras is not None and int8 is not None:
        out.append(
            f"int8 TFLite batch-1 p50 {format_us(int8.latency.p50_us)} vs Keras model.predict "
            f"{format_us(keras.predict_latency.p50_us)}: {keras.speedup(int8.latency):,.0f}x faster"
        )
    if int8 is not None and fp32 is not None and largest in int8.latency_by_batch:
        ratio = int8.throughput[largest] / fp32.throughput[largest]
        out.append(
            f"int8 vs fp32 TFLite throughput at batch {largest}: "
            f"{format_rate(int8.throughput[largest])} vs {format_rate(fp32.throughput[largest])} "
            f"images/s ({ratio:.1f}x)"
        )
    if rows:
        worst1 = max(rows, key=lambda r: r.ratio_batch1)
        worst_n = max(rows, key=lambda r: r.ratio_largest)
        out.append(
            f"wrapper/raw ratio: at most {worst1.ratio_batch1:.2f} at batch 1 ({worst1.name}), "
            f"{worst_n.ratio_largest:.2f} at batch {largest} ({worst_n.name})"
        )
    return out


def markdown(
    intro: Sequence[str], columns: Sequence[str], rows: Sequence[Sequence[str]], notes: Sequence[str]
) -> str:
    """Intro lines, then the table (if it has rows), then the notes as a bullet list."""
    lines = [*intro, ""]
    if rows:
        align = ["---" if c in LEFT_COLUMNS else "---:" for c in columns]
        lines.append("| " + " | ".join(columns) + " |")
        lines.append("|" + "|".join(align) + "|")
        lines.extend("| " + " | ".join(r) + " |" for r in rows)
        lines.append("")
    lines.extend(f"- {note}" for note in notes)
    return "\n".join(lines).rstrip() + "\n"


def chart_rows(rows: Sequence[ArtifactBenchmark], keras: KerasBenchmark | None) -> list[dict[str, Any]]:
    """Rows for :func:`mnist_edge.plots.benchmark_chart`."""
    out: list[dict[str, Any]] = [
        {
            "label": r.label,
            "p50_us": r.latency.p50_us,
            "raw_p50_us": r.raw_latency.p50_us,
            "throughput": r.throughput,
        }
        for r in rows
    ]
    if keras is not None:
        predict = keras.predict_latency.p50_us
        out.append({"label": "keras model.predict", "p50_us": predict, "throughput": keras.throughput})
        out.append({"label": "keras model(x)", "p50_us": keras.call_latency.p50_us})
    return out
