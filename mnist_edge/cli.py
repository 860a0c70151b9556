"""The ``mnist-edge`` command line: a thin layer that parses, calls the library and prints.

Every command runs inside :func:`_errors_to_exit_codes`: a :class:`MnistEdgeError` becomes one red
line and its exit code (2 for a usage problem, 1 for a failed check), never a traceback.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from mnist_edge.errors import MnistEdgeError

app = typer.Typer(
    name="mnist-edge",
    help="Train the classic Keras MNIST classifier and take it to the edge.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Fetch, inspect and plot the MNIST data set.", no_args_is_help=True)
app.add_typer(data_app, name="data")

console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])

DataOption = Annotated[
    Path | None,
    typer.Option(
        "--data", help="A Keras-format mnist.npz to use instead of the source chain.", show_default=False
    ),
]


def _errors_to_exit_codes(func: F) -> F:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except MnistEdgeError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]: no partial files were left at final paths")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def _command(target: typer.Typer = app, **kwargs: Any) -> Callable[[F], F]:
    """``@app.command()`` plus the error mapping."""

    def decorate(func: F) -> F:
        target.command(**kwargs)(_errors_to_exit_codes(func))
        return func

    return decorate


def _say(message: str) -> None:
    err_console.print(message, highlight=False, style="dim")


# --------------------------------------------------------------------------- data


@_command(data_app, name="info")
def data_info(data: DataOption = None) -> None:
    """Print shapes, dtypes, value ranges, class counts and where the data came from."""
    from mnist_edge.data import class_counts, load_mnist_data

    mnist = load_mnist_data(data, log=_say)
    table = Table(title=f"MNIST ({mnist.source})")
    for col in ("array", "shape", "dtype", "min", "max"):
        table.add_column(col)
    for name in ("x_train", "y_train", "x_test", "y_test"):
        arr = getattr(mnist, name)
        table.add_row(name, str(arr.shape), str(arr.dtype), str(arr.min()), str(arr.max()))
    console.print(table)
    console.print(f"train class counts: {class_counts(mnist.y_train)}")
    console.print(f"test class counts:  {class_counts(mnist.y_test)}")


@_command(data_app, name="show")
def data_show(
    out: Annotated[Path, typer.Option("--out", help="PNG file to write.")] = Path("artifacts/samples.png"),
    data: DataOption = None,
) -> None:
    """Save the tutorial's 3x3 grid of the first nine training digits."""
    from mnist_edge import plots
    from mnist_edge.data import load_mnist_data

    mnist = load_mnist_data(data, log=_say)
    plots.sample_grid(mnist.x_train, mnist.y_train, _writable(out))
    console.print(f"wrote {out}")


def _writable(path: Path) -> Path:
    """Make sure the parent folder of an output file exists and is writable, or say so clearly."""
    import os

    if path.is_dir():
        raise MnistEdgeError(f"{path} is a folder; give a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MnistEdgeError(f"cannot create {path.parent}: {exc.strerror}") from None
    if not os.access(path.parent, os.W_OK):
        raise MnistEdgeError(f"{path.parent} is not writable")
    return path


# --------------------------------------------------------------------------- train / evaluate


@_command(name="train")
def train_cmd(
    epochs: Annotated[int, typer.Option(min=1, help="Training epochs.")] = 30,
    batch_size: Annotated[int, typer.Option(min=1, help="Mini-batch size.")] = 32,
    learning_rate: Annotated[float, typer.Option(help="SGD learning rate (> 0).")] = 0.01,
    seed: Annotated[int, typer.Option(min=0, help="Seed: same seed, same machine, same weights.")] = 42,
    steps_per_execution: Annotated[
        int, typer.Option(min=1, help="Optimiser steps per graph call (1 = the tutorial's plain fit).")
    ] = 64,
    out: Annotated[Path, typer.Option("--out", help="Folder for the model and its reports.")] = Path(
        "artifacts"
    ),
    data: DataOption = None,
) -> None:
    """Train the tutorial's MLP (SGD, batch 32, 30 epochs) and write model.keras plus its reports."""
    from mnist_edge.data import load_mnist_data
    from mnist_edge.model import build_model
    from mnist_edge.train import TrainConfig, train

    config = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        seed=seed,
        steps_per_execution=steps_per_execution,
    )
    config.validate()
    mnist = load_mnist_data(data, log=_say)
    build_model().summary(print_fn=lambda line, **_: console.print(line, highlight=False))
    result = train(config, out, data=mnist)
    console.print(
        f"val accuracy {result.val_accuracy:.4f} (tutorial 0.9794)   "
        f"test accuracy [bold]{result.test_accuracy:.4f}[/] (tutorial 0.9793)   "
        f"test loss {result.test_loss:.4f}   trained in {result.train_seconds:.1f} s"
    )
    for path in result.paths.values():
        console.print(f"wrote {path}")


@_command(name="evaluate")
def evaluate_cmd(
    model: Annotated[Path, typer.Argument(help="A .keras model file.")] = Path("artifacts/model.keras"),
    out: Annotated[
        Path | None, typer.Option("--out", help="Confusion-matrix PNG (default: beside the model).")
    ] = None,
    data: DataOption = None,
) -> None:
    """Print test loss and accuracy, per-class metrics, and write the confusion matrix figure."""
    import numpy as np

    from mnist_edge import plots
    from mnist_edge.data import load_mnist_data
    from mnist_edge.model import load_model
    from mnist_edge.train import evaluation_payload

    keras_model = load_model(model)
    mnist = load_mnist_data(data, log=_say)
    metrics = evaluation_payload(keras_model, mnist.x_test.astype(np.float32) / 255.0, mnist.y_test)
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
    figure = _writable(out or model.with_name("confusion_matrix.png"))
    plots.confusion_matrix_figure(np.array(metrics["confusion_matrix"]), figure)
    console.print(f"wrote {figure}")


# --------------------------------------------------------------------------- export


@_command(name="export")
def export_cmd(
    model: Annotated[Path, typer.Option("--model", help="The .keras model to export.")] = Path(
        "artifacts/model.keras"
    ),
    fmt: Annotated[str, typer.Option("--format", help="tflite, onnx or all.")] = "tflite",
    quantize: Annotated[
        str,
        typer.Option(
            "--quantize",
            help="none (float32), float16, dynamic (int8 weights), int8 (full integer) or all. "
            "ONNX builds none and int8.",
        ),
    ] = "none",
    out: Annotated[
        Path | None, typer.Option("--out", help="Folder for the files (default: the model's folder).")
    ] = None,
    calibration_samples: Annotated[
        int, typer.Option(help="int8 calibration images, stratified from the training set.")
    ] = 1000,
    seed: Annotated[int, typer.Option(help="Seed for drawing the calibration images.")] = 0,
    opset: Annotated[int, typer.Option(help="ONNX opset, 13 to 18 (what tf2onnx writes).")] = 17,
    data: DataOption = None,
) -> None:
    """Write model.<precision>.<tflite|onnx> files, each with a JSON manifest beside it."""
    # The option defaults repeat mnist_edge.export's (importing it here would slow every --help);
    # tests/test_export.py checks that they agree.
    from mnist_edge.export import export_many

    results = export_many(
        model,
        fmt,
        quantize,
        out,
        calibration_samples=calibration_samples,
        seed=seed,
        opset=opset,
        data=data,
    )
    # Seam for the parity check: a later `--verify/--no-verify` option checks `results` here.
    _print_exports(results)


def _print_exports(results: list[Any]) -> None:
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


def _print_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, indent=2) + "\n")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
