"""``predict``: classify pictures or ``.npy`` arrays with an exported model."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated

import typer

from mnist_edge._mnist import NUM_CLASSES
from mnist_edge.cli.app import command
from mnist_edge.cli.options import ThreadsOption, check_folder
from mnist_edge.cli.render import (
    err_console,
    native_stderr_silenced,
    print_predictions_json,
    print_predictions_table,
    say,
)

_EXPORTED = "give it an exported .tflite or .onnx file (`mnist-edge export`)"


@command(name="predict")
def predict_cmd(
    model: Annotated[
        Path,
        typer.Argument(
            help="An exported model (.tflite or .onnx) beside its .json manifest, or the trained "
            ".keras model (needs TensorFlow)."
        ),
    ],
    inputs: Annotated[
        list[Path],
        typer.Argument(help="PNG/JPEG pictures of one digit (any size), or .npy arrays of 28x28 images."),
    ],
    top: Annotated[
        int, typer.Option("--top", min=1, max=NUM_CLASSES, help="Show the K most likely classes.")
    ] = 1,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    invert: Annotated[
        bool | None,
        typer.Option(
            "--invert/--no-invert",
            help="Pictures are dark ink on a light background (--invert) or light on dark "
            "(--no-invert, MNIST's look). Default: decided from each picture's border.",
            show_default=False,
        ),
    ] = None,
    threads: ThreadsOption = 1,
    save_inputs: Annotated[
        Path | None,
        typer.Option(
            "--save-inputs",
            help="Folder to write, for each input, the 28x28 picture the model was given "
            "(<name>.png; <name>-<i>.png for each image of a .npy batch).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Classify digits in pictures or .npy arrays with an exported model.

    Pictures are fitted into 28x28 the way MNIST was made: cropped to the ink, scaled to 20 px,
    centred by centre of mass, white on black.
    """
    from mnist_edge.images import load_input, save_digits
    from mnist_edge.manifest import read_manifest
    from mnist_edge.runtime import load

    if save_inputs is not None:
        check_folder(save_inputs)
    keras = model.suffix.lower() == ".keras"
    if keras:
        from mnist_edge._heavy import require

        require("tensorflow", "TensorFlow for a .keras model", instead=_EXPORTED)
    # A model without a manifest has no verified origin: it is opened and run once in a child
    # process limited in memory and time before this process touches it (load(isolate=True)).
    # The .keras model is the one TensorFlow trained here: it is read with Keras's safe mode,
    # which refuses code-carrying layers, and runs in this process.
    isolate = not keras and read_manifest(model) is None
    with warnings.catch_warnings(record=True) as caught, native_stderr_silenced():
        warnings.simplefilter("always")
        classifier = load(model, threads=threads, isolate=isolate)
    for warning in caught:
        err_console.print(f"[yellow]warning:[/] {warning.message}", highlight=False, soft_wrap=True)

    rows = []
    taken: set[str] = set()
    for path in inputs:
        with warnings.catch_warnings():
            # Pillow's notes on odd files (and its DecompressionBombWarning, which our own lower
            # size limit already turns into a clear error) would only clutter the output.
            warnings.simplefilter("ignore")
            images = load_input(path, invert=invert)
        ranked = classifier.top_k(images, top)
        names = [str(path)] if len(ranked) == 1 else [f"{path}[{i}]" for i in range(len(ranked))]
        rows += zip(names, ranked, strict=True)
        if save_inputs is not None:
            stem = _unused_stem(path.stem, taken)
            for written in save_digits(images, save_inputs, stem):
                say(f"model input: {written}")
    if json_out:
        print_predictions_json(model, classifier.precision, rows)
    else:
        print_predictions_table(f"{model.name} ({classifier.backend})", rows)


def _unused_stem(stem: str, taken: set[str]) -> str:
    """``stem``, or ``stem-2``, ``stem-3``, ... if an earlier input had the same name."""
    name, n = stem, 1
    while name in taken:
        n += 1
        name = f"{stem}-{n}"
    taken.add(name)
    return name
