"""What several commands share on their way in: option types, help texts and the output-path check."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from mnist_edge._files import writable_folder
from mnist_edge.errors import MnistEdgeError

__all__ = [
    "DEFAULT_MODEL",
    "RECIPE_HELP",
    "ArchOption",
    "BatchSizesOption",
    "DataOption",
    "EpochsOption",
    "MinCallsOption",
    "MinTimeOption",
    "check_folder",
    "check_outputs",
]

DataOption = Annotated[
    Path | None,
    typer.Option(
        "--data", help="A Keras-format mnist.npz to use instead of the source chain.", show_default=False
    ),
]

ArchOption = Annotated[
    str,
    typer.Option(
        "--arch",
        help="The network, with its training recipe: mlp (the tutorial's) or cnn (a small edge CNN: "
        "Adam, cosine decay, batch 128, random shifts).",
    ),
]

#: Help of an option whose default comes from the architecture's recipe: ``.format(what, values)``.
RECIPE_HELP = "{} (default: the --arch recipe's, {})."

EpochsOption = Annotated[int | None, typer.Option(min=1, help=RECIPE_HELP.format("Training epochs", "30"))]

MinTimeOption = Annotated[
    str, typer.Option("--min-time", help="Time per measurement, e.g. 2s or 500ms (at least --min-calls).")
]
BatchSizesOption = Annotated[
    str, typer.Option("--batch-sizes", help="Comma-separated; batch 1 is always measured.")
]
ThreadsOption = Annotated[int, typer.Option(min=1, help="Engine threads.")]
MinCallsOption = Annotated[int, typer.Option("--min-calls", help="Calls per measurement, at least.")]

#: Where ``train`` writes the model and every other command looks for it by default.
DEFAULT_MODEL = Path("artifacts/model.keras")


def artifacts_argument(verb: str, *, c_code: bool = False) -> Any:
    """The optional ARTIFACT... argument of the commands that default to the files beside --model."""
    kinds = ".tflite/.onnx/.c" if c_code else ".tflite/.onnx"
    return typer.Argument(
        help=f"Artifacts to {verb} (default: every {kinds} beside the model).",
        metavar="ARTIFACT",
        show_default=False,
    )


def output_option(flag: str, text: str) -> Any:
    """An optional output file (``--json F``); pair it with :func:`check_outputs` before the work."""
    return typer.Option(flag, help=text, show_default=False)


def check_outputs(*paths: Path | None) -> None:
    """Fail before the work, not after it: each output file named (None = not asked for) must be a
    file name whose folder exists or can be made, and is writable."""
    for path in paths:
        if path is None:
            continue
        if path.is_dir():
            raise MnistEdgeError(f"{path} is a folder; give a file name")
        check_folder(path.parent)


def check_folder(path: Path) -> None:
    """An output folder: it exists or could be made, and a file can be created there; else one clear
    error. Nothing is made: a command refused later leaves no folder behind."""
    writable_folder(path, create=False)
