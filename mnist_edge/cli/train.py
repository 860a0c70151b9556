"""``data info``, ``data show``, ``train`` and ``evaluate``: the data set and the Keras model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mnist_edge.cli.app import command, data_app
from mnist_edge.cli.options import (
    DEFAULT_MODEL,
    RECIPE_HELP,
    ArchOption,
    DataOption,
    EpochsOption,
    check_outputs,
)
from mnist_edge.cli.render import console, print_data_info, print_evaluation, say


@command(data_app, name="info")
def data_info(data: DataOption = None) -> None:
    """Print shapes, dtypes, value ranges, class counts and where the data came from."""
    from mnist_edge.data import load_mnist_data

    print_data_info(load_mnist_data(data, log=say))


@command(data_app, name="show")
def data_show(
    out: Annotated[Path, typer.Option("--out", help="PNG file to write.")] = Path("artifacts/samples.png"),
    data: DataOption = None,
) -> None:
    """Save the tutorial's 3x3 grid of the first nine training digits."""
    from mnist_edge import plots
    from mnist_edge.data import load_mnist_data

    check_outputs(out)
    mnist = load_mnist_data(data, log=say)
    plots.sample_grid(mnist.x_train, mnist.y_train, out)
    console.print(f"wrote {out}")


@command(name="train", needs_tensorflow=True)
def train_cmd(
    arch: ArchOption = "mlp",
    epochs: EpochsOption = None,
    batch_size: Annotated[
        int | None, typer.Option(min=1, help=RECIPE_HELP.format("Mini-batch size", "32 mlp, 128 cnn"))
    ] = None,
    learning_rate: Annotated[
        float | None, typer.Option(help=RECIPE_HELP.format("Learning rate (> 0)", "0.01 mlp, 0.002 cnn"))
    ] = None,
    seed: Annotated[int, typer.Option(min=0, help="Seed: same seed, same machine, same weights.")] = 42,
    steps_per_execution: Annotated[
        int, typer.Option(min=1, help="Optimiser steps per graph call (1 = the tutorial's plain fit).")
    ] = 64,
    out: Annotated[Path, typer.Option("--out", help="Folder for the model and its reports.")] = Path(
        "artifacts"
    ),
    data: DataOption = None,
    train_limit: Annotated[
        int | None,
        typer.Option("--train-limit", min=1, hidden=True, help="Train on the first N images only (tests)."),
    ] = None,
) -> None:
    """Train a network with its recipe - the tutorial's MLP (SGD, batch 32, 30 epochs) by default, or
    the edge CNN (--arch cnn) - and write model.keras plus its reports."""
    from dataclasses import asdict

    from mnist_edge._mnist import TUTORIAL_ACCURACY as TUTORIAL
    from mnist_edge.data import load_mnist_data
    from mnist_edge.model import build_model
    from mnist_edge.train import TrainConfig, describe, train

    config = TrainConfig.recipe(
        arch,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        seed=seed,
        steps_per_execution=steps_per_execution,
        train_limit=train_limit,
    )
    config.validate()  # before the data is fetched: a bad option costs nothing
    mnist = load_mnist_data(data, log=say)
    build_model(config.arch).summary(print_fn=lambda line, **_: console.print(line, highlight=False))
    console.print(f"recipe ({config.arch}): {describe(asdict(config))}, seed {config.seed}", highlight=False)
    result = train(config, out, data=mnist)
    tutorial = config.arch == "mlp"
    console.print(
        f"val accuracy {result.val_accuracy:.4f}"
        + (f" (tutorial {TUTORIAL['val_accuracy']})" if tutorial else "")
        + f"   test accuracy [bold]{result.test_accuracy:.4f}[/]"
        + (f" (tutorial {TUTORIAL['test_accuracy']})" if tutorial else "")
        + f"   test loss {result.test_loss:.4f}   trained in {result.train_seconds:.1f} s"
    )
    for path in result.paths.values():
        console.print(f"wrote {path}")


@command(name="evaluate", needs_tensorflow=True)
def evaluate_cmd(
    model: Annotated[Path, typer.Argument(help="A .keras model file.")] = DEFAULT_MODEL,
    out: Annotated[
        Path | None, typer.Option("--out", help="Confusion-matrix PNG (default: beside the model).")
    ] = None,
    data: DataOption = None,
) -> None:
    """Print test loss and accuracy, per-class metrics, and write the confusion matrix figure."""
    import numpy as np

    from mnist_edge import plots
    from mnist_edge._mnist import PIXEL_SCALE
    from mnist_edge.data import load_mnist_data
    from mnist_edge.model import load_model
    from mnist_edge.train import evaluation_payload

    keras_model = load_model(model)
    figure = out or model.with_name("confusion_matrix.png")
    check_outputs(figure)
    mnist = load_mnist_data(data, log=say)
    metrics = evaluation_payload(keras_model, mnist.x_test.astype(np.float32) / PIXEL_SCALE, mnist.y_test)
    print_evaluation(metrics)
    plots.confusion_matrix_figure(np.array(metrics["confusion_matrix"]), figure)
    console.print(f"wrote {figure}")
