"""The pipeline report: one self-contained Markdown file with its PNGs beside it.

It is built only from what the stages left in the artifacts folder (``metrics.json``, ``parity.json``,
``benchmark.json`` and the PNGs), so it can be regenerated at any time without re-running anything,
and every number in it can be traced to a file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnist_edge._files import atomic_write_bytes
from mnist_edge._mnist import PIXEL_SCALE
from mnist_edge._mnist import TUTORIAL_ACCURACY as TUTORIAL
from mnist_edge._text import num
from mnist_edge.environment import git_commit, machine_info
from mnist_edge.train import describe

if TYPE_CHECKING:
    from mnist_edge.bench import BenchmarkReport
    from mnist_edge.parity import ParityReport

REPORT_NAME = "report.md"
#: Written by the pipeline's compare stage (``--compare-with``): :class:`mnist_edge.compare.Comparison`.
COMPARISON_NAME = "architectures.json"


def _load(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def bundle_rows(parity: ParityReport | None, bench: BenchmarkReport | None) -> list[dict[str, Any]]:
    """One row per artifact: parity (accuracy, delta, agreement, PASS/FAIL) joined with the benchmark
    (latency, throughput, speed-up) by file name."""
    by_name = {r.name: r for r in bench.rows} if bench else {}
    speedups = bench.speedup_vs_keras_predict if bench else {}
    rows = []
    for prow in parity.rows if parity else ():
        name = prow.name
        brow = by_name.get(name)
        rows.append(
            {
                "file": name,
                "format": prow.format,
                "precision": prow.precision,
                "size_bytes": brow.size_bytes if brow else _size(prow.artifact),
                "accuracy": prow.accuracy,
                "delta_pp": prow.delta_pp,
                "agreement_pct": prow.agreement_pct,
                "status": prow.status,
                "reasons": list(prow.reasons),
                "p50_us": brow.latency.p50_us if brow else None,
                "throughput": brow.throughput[brow.largest_batch] if brow else None,
                "speedup": speedups.get(name),
            }
        )
    return rows


def _size(path: str) -> int | None:
    try:
        return os.path.getsize(path)
    except OSError:
        return None


def best_artifact(rows: list[dict[str, Any]]) -> str | None:
    """The passing artifact with the lowest batch-1 latency (else the smallest passing one)."""
    passing = [r for r in rows if r["status"] == "PASS"]
    if not passing:
        return None
    timed = [r for r in passing if r["p50_us"] is not None]
    if timed:
        return min(timed, key=lambda r: r["p50_us"])["file"]
    return min(passing, key=lambda r: r["size_bytes"] or 0)["file"]


def _data_section(metrics: dict[str, Any], info: dict[str, Any]) -> list[str]:
    lines = ["## 1. Data", "", f"Source: {info.get('source', metrics.get('data_source', 'unknown'))}."]
    if info.get("shapes"):
        lines.append("Shapes: " + ", ".join(f"`{k}` {v}" for k, v in info["shapes"].items()) + ".")
    return [*lines, "", "![The first nine training digits](samples.png)", ""]


def _training_section(metrics: dict[str, Any]) -> list[str]:
    config = metrics.get("config", {})
    lines = ["## 2. Training", ""]
    if config:
        limit = config.get("train_limit")
        lines.append(
            f"Recipe ({str(config.get('arch', 'mlp')).upper()}): {describe(config)}, "
            f"pixels / {PIXEL_SCALE:g}, the first {config.get('validation_size')} training images held "
            f"out for validation, seed {config.get('seed')}"
            + (f"; training limited to {limit} images (--quick)" if limit else "")
            + "."
        )
    val, test = metrics.get("val_accuracy"), metrics.get("test_accuracy")
    lines += [
        "",
        "| | val accuracy | test accuracy | training time |",
        "|---|---|---|---|",
        f"| tutorial's MLP | {TUTORIAL['val_accuracy']:.4f} | {TUTORIAL['test_accuracy']:.4f} | |",
        f"| this run ({str(config.get('arch', 'mlp')).upper()}) | {num(val, '.4f')} | {num(test, '.4f')} "
        f"| {num(metrics.get('train_seconds'), '.1f', ' s')} |",
        "",
        "![Training curves](training_curves.png)",
        "",
        "![Confusion matrix](confusion_matrix.png)",
        "",
    ]
    if metrics.get("per_class"):
        lines += ["| digit | precision | recall | F1 | support |", "|---|---|---|---|---|"]
        lines += [
            f"| {r['name']} | {r['precision']:.4f} | {r['recall']:.4f} | {r['f1']:.4f} | {r['support']} |"
            for r in metrics["per_class"]
        ]
        lines.append("")
    return lines


def _bundle_section(parity: ParityReport | None, rows: list[dict[str, Any]]) -> list[str]:
    lines = ["## 3. Edge bundle", ""]
    if parity:
        gate = "PASS" if parity.passed else "FAIL"
        lines += [
            f"Keras reference accuracy {num(parity.reference.accuracy, '.4f')} on "
            f"{parity.images:,} test images; parity gate: **{gate}**.",
            "",
        ]
    lines += [
        "| format | precision | file | size (KB) | accuracy | Δ vs Keras (pp) | top-1 agreement | parity "
        "| batch-1 p50 (µs) | throughput (img/s) | speed-up vs Keras predict |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        status = r["status"] if r["status"] == "PASS" else f"FAIL: {'; '.join(r['reasons'])}"
        size_kb = None if r["size_bytes"] is None else r["size_bytes"] / 1024
        lines.append(
            f"| {r['format']} | {r['precision']} | `{r['file']}` | {num(size_kb, ',.1f')} "
            f"| {num(r['accuracy'], '.4f')} | {num(r['delta_pp'], '+.2f')} "
            f"| {num(r['agreement_pct'], '.2f', ' %')} | {status} | {num(r['p50_us'], ',.1f')} "
            f"| {num(r['throughput'], ',.0f')} | {num(r['speedup'], ',.0f', 'x')} |"
        )
    return [*lines, ""]


def _benchmark_section(bench: BenchmarkReport | None) -> list[str]:
    lines = ["## 4. Latency and throughput", ""]
    if bench is None:
        return [*lines, "(benchmark not run)", ""]
    lines += ["![Latency and throughput](benchmark.png)", ""]
    lines += [f"- {h}" for h in bench.highlights()]
    return [*lines, ""]


def _embed_section(folder: Path, rows: list[dict[str, Any]]) -> list[str]:
    best = best_artifact(rows)
    lines = ["## 5. How to embed", ""]
    if best is None:
        return [*lines, "No artifact passed the parity gate: nothing is recommended for embedding.", ""]
    return [
        *lines,
        "```python",
        "from mnist_edge.runtime import load",
        f'clf = load("{folder / best}")',
        "labels = clf.predict(images)  # uint8 pixels (N, 28, 28) -> (N,) digits",
        "```",
        "",
        f"`{best}` is the fastest artifact that passed the parity gate. The runtime needs only "
        "`pip install mnist-edge` (numpy, LiteRT, onnxruntime), no TensorFlow.",
        "",
    ]


def _environment_section(metrics: dict[str, Any], bench: BenchmarkReport | None) -> list[str]:
    machine = bench.machine if bench else machine_info()
    lines = ["## 6. Environment", "", f"- CPU: {machine.get('cpu')} ({machine.get('cores')} cores)"]
    if bench:
        lines.append(f"- Engine threads: {bench.threads}")
    lines.append(f"- Python {machine.get('python')}")
    lines += [f"- {name} {version}" for name, version in (machine.get("versions") or {}).items()]
    lines.append(f"- Seed: {metrics.get('config', {}).get('seed', '-')}")
    commit = git_commit()
    if commit:
        lines.append(f"- Git commit: {commit}")
    return lines


def _architectures_section(folder: Path) -> list[str]:
    """Both architectures side by side, when the pipeline compared this folder with another one."""
    from mnist_edge.compare import Comparison

    data = _load(folder / COMPARISON_NAME)
    try:
        comparison = Comparison.from_dict(data) if data else None
    except (KeyError, TypeError, ValueError):
        comparison = None
    if comparison is None:
        return []
    base = comparison.runs[0].name.upper()
    return [
        "### Architectures side by side",
        "",
        f"Every file of both folders measured in one run ({comparison.threads} engine thread(s), "
        f"batch-1 p50 through the runtime, {comparison.created_at}); ratios are to the {base}'s file "
        "of the same format and precision.",
        "",
        comparison.to_markdown(),
    ]


def render(folder: Path, data_info: dict[str, Any] | None = None) -> str:
    from mnist_edge.bench import BenchmarkReport
    from mnist_edge.parity import ParityReport

    metrics = _load(folder / "metrics.json") or {}
    parity = ParityReport.read(folder)
    bench_dict = _load(folder / "benchmark.json")
    bench = BenchmarkReport.from_dict(bench_dict) if bench_dict else None
    rows = bundle_rows(parity, bench)
    lines = ["# mnist-edge report", ""]
    lines += _data_section(metrics, data_info or {})
    lines += _training_section(metrics)
    lines += _bundle_section(parity, rows)
    lines += _benchmark_section(bench)
    lines += _architectures_section(folder)
    lines += _embed_section(folder, rows)
    lines += _environment_section(metrics, bench)
    return "\n".join(lines) + "\n"


def write_report(folder: str | os.PathLike[str], data_info: dict[str, Any] | None = None) -> Path:
    folder = Path(folder)
    path = folder / REPORT_NAME
    atomic_write_bytes(path, render(folder, data_info).encode("utf-8"))
    return path
