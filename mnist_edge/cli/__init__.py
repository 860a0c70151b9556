"""The ``mnist-edge`` command line: a thin layer that parses, calls the library and prints.

``app`` (the typer app) and the error-to-exit-code mapping live in :mod:`~mnist_edge.cli.app`, what
is printed in :mod:`~mnist_edge.cli.render`, and each group of commands in a module of its own:
:mod:`~mnist_edge.cli.train` (data, train, evaluate), :mod:`~mnist_edge.cli.export` (export, verify),
:mod:`~mnist_edge.cli.predict`, :mod:`~mnist_edge.cli.pipeline`, :mod:`~mnist_edge.cli.benchmark`,
:mod:`~mnist_edge.cli.serve` and :mod:`~mnist_edge.cli.compare`.
A new command is a new module here that registers with ``@command(...)`` and one import below.
"""

from __future__ import annotations

from mnist_edge.cli import render
from mnist_edge.cli.app import app, main

# Importing a command module registers its commands; `mnist-edge --help` lists them in this order.
from mnist_edge.cli.train import data_info, data_show, evaluate_cmd, train_cmd  # isort: skip
from mnist_edge.cli.export import export_cmd, verify_cmd  # isort: skip
from mnist_edge.cli.predict import predict_cmd  # isort: skip
from mnist_edge.cli.pipeline import pipeline_cmd  # isort: skip
from mnist_edge.cli.benchmark import benchmark_cmd  # isort: skip
from mnist_edge.cli.serve import serve_cmd  # isort: skip
from mnist_edge.cli.compare import compare_cmd  # isort: skip

_print_exports = render.print_exports

__all__ = [
    "app",
    "benchmark_cmd",
    "compare_cmd",
    "data_info",
    "data_show",
    "evaluate_cmd",
    "export_cmd",
    "main",
    "pipeline_cmd",
    "predict_cmd",
    "serve_cmd",
    "train_cmd",
    "verify_cmd",
]
