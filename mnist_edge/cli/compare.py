"""``compare``: architectures side by side - accuracy, file size per precision, latency, parity."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mnist_edge.cli.app import command
from mnist_edge.cli.options import (
    BatchSizesOption,
    DataOption,
    MinCallsOption,
    MinTimeOption,
    ThreadsOption,
    check_outputs,
    output_option,
)
from mnist_edge.cli.render import console, progress_steps, write_report_files


@command(name="compare")
def compare_cmd(
    folders: Annotated[
        list[Path],
        typer.Argument(
            help="Pipeline output folders, e.g. artifacts artifacts-cnn; the first is the ratios' base.",
            metavar="FOLDER",
            show_default=False,
        ),
    ],
    threads: ThreadsOption = 1,
    batch_sizes: BatchSizesOption = "1,1024",
    min_time: MinTimeOption = "2s",
    min_calls: MinCallsOption = 100,
    json_out: Annotated[Path | None, output_option("--json", "Write the comparison as JSON.")] = None,
    markdown_out: Annotated[Path | None, output_option("--markdown", "Write the tables as Markdown.")] = None,
    data: DataOption = None,
) -> None:
    """Architectures side by side: accuracy, size, parity and latency of pipeline folders.

    Each folder's Keras test accuracy, parameters and recipe, then every exported file's size,
    accuracy, parity status and batch-1 latency. Every file of every folder is measured in one run
    through mnist_edge.runtime, taking turns with the others, so the latency ratios between
    architectures are same-run ratios.
    """
    from mnist_edge.compare import compare

    check_outputs(json_out, markdown_out)
    with progress_steps() as update:
        comparison = compare(
            folders,
            threads=threads,
            batch_sizes=batch_sizes,
            min_time=min_time,
            min_calls=min_calls,
            data=data,
            step=lambda what: update(None, None, what),
        )
    console.print(comparison.to_markdown(), highlight=False)
    write_report_files(comparison, json_out, markdown_out)
