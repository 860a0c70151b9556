"""Everything the command line prints: the consoles, the tables of each command, JSON, the progress
bar, and the one switch that keeps the engines' native log lines off the terminal.

The values come from the library (``ParityReport``, ``BenchmarkReport``, ...); only their look is
decided here.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console
from rich.table import Table

from mnist_edge._text import num

if TYPE_CHECKING:
    from rich.progress import Progress

    from mnist_edge.bench import BenchmarkReport
    from mnist_edge.compare import Comparison
    from mnist_edge.data import MnistData
    from mnist_edge.export import ExportResult
    from mnist_edge.parity import ParityReport
    from mnist_edge.runtime import Prediction

    #: Each input's name with its most likely classes, most likely first.
    Ranked = Sequence[tuple[str, list[Prediction]]]

console = Console()
err_console = Console(stderr=True)


def say(message: str) -> None:
    """A progress note on stderr (what the library reports through its ``log`` argument)."""
    err_console.print(message, highlight=False, style="dim")


def print_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, indent=2) + "\n")


def _wide(min_width: int) -> Console:
    """The console for a wide table: a terminal keeps its width, while piped output (CI logs) would
    otherwise be cut to rich's default 80 columns."""
    return console if console.is_terminal else Console(width=max(console.width, min_width))


# --------------------------------------------------------------------------- native stderr


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[int | None]:
    """Send what C++ code writes straight to fd 2 (LiteRT's "Created XNNPACK delegate", TensorFlow's
    CUDA probes) to /dev/null; Python exceptions are unaffected. Yields a file descriptor of the
    real stderr for output that must still be seen, or None when there is no real stderr to silence
    (embedded, some test runners). See :mod:`mnist_edge._quiet`."""
    from mnist_edge._quiet import silenced_native_stderr

    with silenced_native_stderr() as real:
        yield real


@contextlib.contextmanager
def progress_bar() -> Iterator[Progress]:
    """A transient rich progress bar on the real stderr while the engines' native chatter is silenced."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    terminal = err_console.is_terminal  # asked now: once fd 2 is /dev/null it would say no
    with native_stderr_silenced() as real_stderr:
        bar_console = err_console
        if real_stderr is not None:
            stream = io.TextIOWrapper(os.fdopen(real_stderr, "wb", closefd=False), write_through=True)
            bar_console = Console(file=stream, stderr=True, force_terminal=terminal)
        with Progress(*columns, console=bar_console, transient=True) as progress:
            yield progress


@contextlib.contextmanager
def progress_steps() -> Iterator[Callable[[int | None, int | None, str], None]]:
    """:func:`progress_bar` with one task, for a library function that reports its steps: yields
    ``update(done, total, what)`` (a count given as None stays as it is)."""
    with progress_bar() as progress:
        task = progress.add_task("starting", total=None)

        def update(done: int | None, total: int | None, what: str) -> None:
            progress.update(task, completed=done, total=total, description=what)

        yield update


# --------------------------------------------------------------------------- data, train, evaluate


def print_data_info(mnist: MnistData) -> None:
    from mnist_edge.data import class_counts

    table = Table(title=f"MNIST ({mnist.source})")
    for col in ("array", "shape", "dtype", "min", "max"):
        table.add_column(col)
    for name in ("x_train", "y_train", "x_test", "y_test"):
        arr = getattr(mnist, name)
        table.add_row(name, str(arr.shape), str(arr.dtype), str(arr.min()), str(arr.max()))
    console.print(table)
    console.print(f"train class counts: {class_counts(mnist.y_train)}")
    console.print(f"test class counts:  {class_counts(mnist.y_test)}")


def print_evaluation(metrics: dict[str, Any]) -> None:
    """The per-class table and the test figures of ``evaluate`` (``train.evaluation_payload``'s dict)."""
    table = Table(title="Per-class metrics (test set)")
    for col in ("class", "precision", "recall", "F1", "support"):
        table.add_column(col, justify="right")
    for row in metrics["per_class"]:
        table.add_row(
            row["name"],
            f"{row['precision']:.4f}",
            f"{row['recall']:.4f}",
            f"{row['f1']:.4f}",
            str(row["support"]),
        )
    console.print(table)
    console.print(
        f"test loss {metrics['test_loss']:.4f}   test accuracy [bold]{metrics['test_accuracy']:.4f}[/]"
    )


# --------------------------------------------------------------------------- export and verify


def print_exports(results: Sequence[ExportResult]) -> None:
    folders = sorted({str(r.path.parent) for r in results})
    table = Table(title=f"Exports in {', '.join(folders)}", title_justify="left")
    for col in ("file", "format", "precision", "size KB", "seconds"):
        table.add_column(col, justify="left" if col == "file" else "right", no_wrap=True)
    for r in results:
        table.add_row(r.path.name, r.format, r.precision, f"{r.size_bytes / 1024:,.0f}", f"{r.seconds:.1f}")
    console.print(table)
    sizes = {(r.format, r.precision): r.size_bytes for r in results}
    for fmt in dict.fromkeys(r.format for r in results):
        if (fmt, "int8") in sizes and (fmt, "fp32") in sizes:
            ratio = sizes[fmt, "int8"] / sizes[fmt, "fp32"]
            console.print(f"{fmt}: int8 is {ratio:.2f}x the size of fp32")


def print_parity(report: ParityReport) -> None:
    """The tolerance table, one row per artifact, and the time taken (shared by verify and export)."""
    from mnist_edge.parity import worst_digit

    limits = Table(title="Tolerances", title_justify="left")
    for col in ("precision", "|acc diff|", "agreement", "max prob diff"):
        limits.add_column(col, justify="right")
    for precision, tol in report.tolerances.items():
        limits.add_row(precision, *tol.cells())
    console.print(limits)

    ref = report.reference
    table = Table(
        title=f"Parity vs {Path(ref.path).name} (test accuracy {ref.accuracy:.4f}, {report.images:,} images)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    columns = ("artifact", "precision", "accuracy", "Δ pp", "agree %", "max |Δp|", "mean |Δp|", "worst digit")
    for col in columns:
        table.add_column(col, justify="left" if col == "artifact" else "right", no_wrap=True)
    table.add_column("result", no_wrap=True)
    for row in report.rows:
        table.add_row(
            row.name,
            row.precision or "?",
            num(row.accuracy, ".4f"),
            num(row.delta_pp, "+.2f"),
            num(row.agreement_pct, ".2f"),
            num(row.max_prob_diff, ".1e"),
            num(row.mean_prob_diff, ".1e"),
            worst_digit(row),
            "[green]PASS[/]" if row.passed else "[bold red]FAIL[/]",
        )
    _wide(120).print(table)
    for row in report.rows:
        for reason in row.reasons:
            console.print(f"[bold red]FAIL[/] {row.name}: {reason}", highlight=False, soft_wrap=True)
        for note in row.notes:
            console.print(f"[yellow]note[/] {row.name}: {note}", highlight=False, soft_wrap=True)
    console.print(
        f"verified {len(report.rows)} artifact(s) in {report.seconds:.1f} s "
        f"(reference {ref.seconds:.1f} s): {len(report.rows) - len(report.failed)} pass, "
        f"{len(report.failed)} fail"
    )


def write_report_files(
    report: ParityReport | BenchmarkReport | Comparison, json_out: Path | None, markdown_out: Path | None
) -> None:
    """The report as JSON and/or Markdown, each written atomically, each named once written."""
    from mnist_edge._files import atomic_write_bytes, atomic_write_json

    if json_out is not None:
        atomic_write_json(json_out, report.to_dict())
        console.print(f"wrote {json_out}")
    if markdown_out is not None:
        atomic_write_bytes(markdown_out, report.to_markdown().encode("utf-8"))
        console.print(f"wrote {markdown_out}")


# --------------------------------------------------------------------------- predict


def print_predictions_json(model: Path, precision: str, rows: Ranked) -> None:
    """One entry per input: its best class, then its top classes."""
    predictions = [
        {"input": name, **top[0].to_dict(), "top": [p.to_dict() for p in top]} for name, top in rows
    ]
    print_json({"model": str(model), "precision": precision, "predictions": predictions})


def print_predictions_table(title: str, rows: Ranked) -> None:
    """One row per input, its top classes stacked in each cell."""
    table = Table(title=title)
    for col in ("input", "label", "name", "probability"):
        table.add_column(col, justify="left" if col in ("input", "name") else "right")
    for name, top in rows:
        table.add_row(
            name,
            "\n".join(str(p.label) for p in top),
            "\n".join(p.name for p in top),
            "\n".join(f"{p.probability:.4f}" for p in top),
        )
    console.print(table)


# --------------------------------------------------------------------------- benchmark


def print_benchmark(report: BenchmarkReport) -> None:
    from mnist_edge.bench.render import LEFT_COLUMNS

    console.print(f"[bold]machine[/] {report.machine_line()}", highlight=False, soft_wrap=True)
    table = Table(
        title=f"Benchmark ({report.images}; p50 of per-call times, throughput = batch / p50)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for col in report.table_columns():
        justify = "left" if col in LEFT_COLUMNS else "right"
        table.add_column(col, justify=justify, no_wrap=col == "artifact")
    for row in report.table_rows():
        table.add_row(*row)
    _wide(160).print(table)
    for line in report.highlights():
        console.print(f"- {line}", highlight=False, soft_wrap=True)
    console.print(f"measured in {report.seconds:.0f} s", style="dim")
