"""``serve``: a model over HTTP (the page, ``POST /predict``, the Open Inference Protocol)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated

import typer

from mnist_edge.cli.app import command
from mnist_edge.cli.render import console, err_console, native_stderr_silenced
from mnist_edge.serve.server import DEFAULT_MAX_BODY, DEFAULT_THREADS, MAX_WORKERS


@command(name="serve")
def serve_cmd(
    model: Annotated[Path, typer.Argument(help="An exported model (.tflite or .onnx), beside its manifest.")],
    host: Annotated[
        str, typer.Option(help="Address to listen on; 0.0.0.0 makes the model reachable from other machines.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0 picks a free one).")] = 8000,
    name: Annotated[
        str, typer.Option(help="The model's name in the Open Inference Protocol's URLs.")
    ] = "mnist",
    threads: Annotated[
        int, typer.Option(min=1, help="Threads that decode requests and run the model.")
    ] = DEFAULT_THREADS,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=MAX_WORKERS,
            help="Worker processes on the one port: pictures are CPU-bound Python, so use one per core.",
        ),
    ] = 1,
    max_body_mib: Annotated[
        float, typer.Option("--max-body", min=0.001, help="Largest request body, in MiB (413 past it).")
    ] = DEFAULT_MAX_BODY / 2**20,
) -> None:
    """Serve a model over HTTP: a draw-a-digit page at /, POST /predict, and the Open Inference
    Protocol (KServe V2 REST, with Triton's binary tensors) under /v2. Stop with Ctrl-C or SIGTERM:
    requests in flight are answered first."""
    from mnist_edge.serve import ServeConfig, exposure_warning, load_model, require_serve_extra, run

    require_serve_extra()
    max_body = int(max_body_mib * 2**20)
    config = ServeConfig(
        model, host=host, port=port, name=name, threads=threads, max_body=max_body, workers=workers
    )
    with warnings.catch_warnings(record=True) as caught, native_stderr_silenced():
        warnings.simplefilter("always")
        classifier = load_model(model)
    for warning in caught:
        err_console.print(f"[yellow]warning:[/] {warning.message}", highlight=False, soft_wrap=True)
    exposed = exposure_warning(host)
    if exposed:
        err_console.print(f"[yellow]warning:[/] {exposed}", highlight=False, soft_wrap=True)
    run(
        config,
        classifier=classifier,
        announce=lambda line: console.print(line, highlight=False, soft_wrap=True),
    )
