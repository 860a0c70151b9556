"""``pipeline``: the main job, every stage in order, skipping those whose inputs are unchanged."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mnist_edge.cli.app import command
from mnist_edge.cli.options import ArchOption, DataOption, EpochsOption
from mnist_edge.cli.render import console, say

if TYPE_CHECKING:
    from mnist_edge.pipeline import StageResult


def _show(result: StageResult) -> None:
    mark = "[green]ran[/]" if result.status == "ran" else "[dim]skipped[/]"
    note = f"  [dim]{result.note}[/]" if result.note else ""
    console.print(f"{result.name:<10} {mark:<18} {result.seconds:7.1f} s{note}", highlight=False)


@command(name="pipeline", needs_tensorflow=True)
def pipeline_cmd(
    out: Annotated[Path, typer.Option("--out", help="Folder for every artifact and the report.")] = Path(
        "artifacts"
    ),
    arch: ArchOption = "mlp",
    epochs: EpochsOption = None,
    quick: Annotated[
        bool, typer.Option("--quick", help="Smoke run: 1 epoch on a 30k-image slice, short benchmark.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Redo every stage, even if its inputs are unchanged.")
    ] = False,
    threads: Annotated[int, typer.Option(min=1, help="Engine threads for the benchmark.")] = 1,
    compare_with: Annotated[
        Path | None,
        typer.Option(
            "--compare-with",
            help="Another pipeline folder (e.g. artifacts, the MLP's): the report puts both "
            "architectures side by side, their files measured in one run.",
            show_default=False,
        ),
    ] = None,
    data: DataOption = None,
) -> None:
    """The main job: data -> train -> export -> verify -> benchmark -> report (artifacts/report.md)."""
    from mnist_edge.pipeline import PipelineConfig, run_pipeline

    config = PipelineConfig(
        out_dir=out,
        arch=arch,
        epochs=epochs,
        quick=quick,
        force=force,
        data_path=data,
        threads=threads,
        compare_with=compare_with,
    )
    result = run_pipeline(config, progress=_show, log=say)
    total = sum(s.seconds for s in result.stages)
    console.print(f"report: [bold]{result.report_path}[/]   total {total:.1f} s")
    result.raise_if_failed()
