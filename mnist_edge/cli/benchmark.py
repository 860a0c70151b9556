"""``benchmark``: latency, throughput, size and memory of the artifacts, beside the raw engines and Keras."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mnist_edge.cli.app import command
from mnist_edge.cli.options import (
    DEFAULT_MODEL,
    BatchSizesOption,
    DataOption,
    MinCallsOption,
    MinTimeOption,
    artifacts_argument,
    check_outputs,
    output_option,
)
from mnist_edge.cli.render import console, print_benchmark, progress_steps, write_report_files
from mnist_edge.errors import MnistEdgeError


@command(name="benchmark")
def benchmark_cmd(
    artifacts: Annotated[list[Path] | None, artifacts_argument("measure")] = None,
    model: Annotated[
        Path, typer.Option("--model", help="The Keras reference, timed with model(x) and model.predict(x).")
    ] = DEFAULT_MODEL,
    threads: Annotated[int, typer.Option(help="Engine threads (TensorFlow gets the same).")] = 1,
    batch_sizes: BatchSizesOption = "1,32,1024",
    min_time: MinTimeOption = "2s",
    min_calls: MinCallsOption = 100,
    json_out: Annotated[Path | None, output_option("--json", "Write the full results as JSON.")] = None,
    markdown_out: Annotated[Path | None, output_option("--markdown", "Write the table as Markdown.")] = None,
    plot_out: Annotated[
        Path | None, output_option("--plot", "PNG: latency per artifact and throughput per batch size.")
    ] = None,
    keras: Annotated[bool, typer.Option("--keras/--no-keras", help="Time the Keras reference too.")] = True,
    memory: Annotated[
        bool, typer.Option("--memory/--no-memory", help="Peak RSS, one subprocess per artifact.")
    ] = True,
    data: DataOption = None,
) -> None:
    """Latency, throughput, size and memory of exported models, next to the raw engines and Keras.

    Each artifact runs through mnist_edge.runtime on the MNIST test images (uint8, as an app passes
    them) and, in the same run, through its bare engine on ready-made model input: the wrapper/raw
    ratio is the runtime's overhead. Timings are per call after a warm-up, for --min-time and at
    least --min-calls calls; p50 is the median, throughput is batch / p50.
    """
    from mnist_edge.bench import benchmark
    from mnist_edge.parity import resolve_artifacts

    # benchmark() checks every option before it measures; these two are caught here only so that
    # the message names the flag, and the Keras model so that it names --no-keras.
    for name, value in (("--threads", threads), ("--min-calls", min_calls)):
        if value < 1:
            raise MnistEdgeError(f"{name} must be at least 1, got {value}")
    if keras and not model.is_file():
        raise MnistEdgeError(f"Keras model {model} does not exist: pass --model, or --no-keras")
    if keras:
        from mnist_edge._heavy import require

        # Found out now, not after every artifact has been measured.
        require("tensorflow", "TensorFlow for the Keras comparison", instead="pass --no-keras")
    paths = resolve_artifacts(artifacts, model)
    check_outputs(json_out, markdown_out, plot_out)

    with progress_steps() as update:
        report = benchmark(
            paths,
            keras_model=model if keras else None,
            threads=threads,
            batch_sizes=batch_sizes,
            min_time=min_time,
            min_calls=min_calls,
            memory=memory,
            data=data,
            progress=update,
        )
    print_benchmark(report)
    write_report_files(report, json_out, markdown_out)
    if plot_out is not None:
        from mnist_edge import plots

        plots.benchmark_chart(report.chart_rows(), plot_out)
        console.print(f"wrote {plot_out}")
