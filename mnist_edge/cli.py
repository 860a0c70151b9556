"""The ``mnist-edge`` command line: a thin layer that parses, calls the library and prints.

Every command runs inside :func:`_errors_to_exit_codes`: a :class:`MnistEdgeError` becomes one red
line and its exit code (2 for a usage problem, 1 for a failed check), never a traceback.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sys
from collections.abc import Callable, Iterator
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
    train_limit: Annotated[
        int | None,
        typer.Option("--train-limit", min=1, hidden=True, help="Train on the first N images only (tests)."),
    ] = None,
) -> None:
    """Train the tutorial's MLP (SGD, batch 32, 30 epochs) and write model.keras plus its reports."""
    from mnist_edge._mnist import TUTORIAL_ACCURACY
    from mnist_edge.data import load_mnist_data
    from mnist_edge.model import build_model
    from mnist_edge.train import TrainConfig, train

    config = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        seed=seed,
        steps_per_execution=steps_per_execution,
        train_limit=train_limit,
    )
    config.validate()
    mnist = load_mnist_data(data, log=_say)
    build_model().summary(print_fn=lambda line, **_: console.print(line, highlight=False))
    result = train(config, out, data=mnist)
    tutorial = TUTORIAL_ACCURACY
    console.print(
        f"val accuracy {result.val_accuracy:.4f} (tutorial {tutorial['val_accuracy']})   "
        f"test accuracy [bold]{result.test_accuracy:.4f}[/] (tutorial {tutorial['test_accuracy']})   "
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
    check: Annotated[
        bool,
        typer.Option(
            "--verify/--no-verify",
            help="Check each file against the model on the test set (as `mnist-edge verify`); exit 1 if "
            "one is out of tolerance (the file is kept, its manifest marks the failure).",
        ),
    ] = True,
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
    _print_exports(results)
    if check:
        from mnist_edge.data import load_mnist_data
        from mnist_edge.parity import DEFAULT_TOLERANCES, verify

        mnist = load_mnist_data(data, log=_say)
        report = verify([r.path for r in results], model, data=mnist, tolerances=DEFAULT_TOLERANCES, log=_say)
        _print_parity(report)
        _parity_gate(report)


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


# --------------------------------------------------------------------------- verify

_OVERRIDE_HELP = "PRECISION=VALUE (e.g. int8=0.5) or VALUE for every precision; repeatable."


def _parity_tolerances(
    max_acc_diff: list[str] | None, min_agreement: list[str] | None, max_prob_diff: list[str] | None
) -> Any:
    """The default tolerance table with the command line's overrides applied."""
    from mnist_edge.parity import DEFAULT_TOLERANCES, parse_override

    tolerances = DEFAULT_TOLERANCES
    for metric, specs in (
        ("max-acc-diff", max_acc_diff),
        ("min-agreement", min_agreement),
        ("max-prob-diff", max_prob_diff),
    ):
        for spec in specs or ():
            tolerances = parse_override(tolerances, metric, spec)
    return tolerances


def _print_parity(report: Any) -> None:
    """The tolerance table, one row per artifact, and the time taken (shared by verify and export)."""
    from rich import box

    from mnist_edge.parity import worst_digit

    limits = Table(title="Tolerances", title_justify="left")
    for col in ("precision", "|acc diff|", "agreement", "max prob diff"):
        limits.add_column(col, justify="right")
    for precision, tol in report.tolerances.items():
        prob = "n/a" if tol.max_prob_diff is None else f"<= {tol.max_prob_diff:g}"
        limits.add_row(precision, f"<= {tol.max_acc_diff_pp:g} pp", f">= {tol.min_agreement_pct:g} %", prob)
    console.print(limits)

    ref = report.reference
    table = Table(
        title=f"Parity vs {Path(ref.path).name} (test accuracy {ref.accuracy:.4f}, {report.images:,} images)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for col in (
        "artifact",
        "precision",
        "accuracy",
        "Δ pp",
        "agree %",
        "max |Δp|",
        "mean |Δp|",
        "worst digit",
    ):
        table.add_column(col, justify="left" if col == "artifact" else "right", no_wrap=True)
    table.add_column("result", no_wrap=True)

    def num(value: float | None, spec: str) -> str:
        return "-" if value is None else f"{value:{spec}}"

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
    # Piped output (CI logs) would otherwise be cut to rich's default 80 columns; a terminal keeps its width.
    (console if console.is_terminal else Console(width=max(console.width, 120))).print(table)
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


def _parity_gate(report: Any) -> None:
    """Exit 1 (through ParityError) when any artifact is out of tolerance."""
    from mnist_edge.errors import ParityError

    if not report.passed:
        names = ", ".join(row.name for row in report.failed)
        raise ParityError(f"{len(report.failed)} artifact(s) failed the parity check: {names}")


@_command(name="verify")
def verify_cmd(
    artifacts: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Artifacts to verify (default: every .tflite/.onnx beside the model).",
            metavar="ARTIFACT",
            show_default=False,
        ),
    ] = None,
    model: Annotated[
        Path, typer.Option("--model", help="The .keras reference the artifacts were exported from.")
    ] = Path("artifacts/model.keras"),
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the report as JSON.", show_default=False)
    ] = None,
    markdown_out: Annotated[
        Path | None, typer.Option("--markdown", help="Also write the report as Markdown.", show_default=False)
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Compare even artifacts not exported from --model.")
    ] = False,
    max_acc_diff: Annotated[
        list[str] | None,
        typer.Option(
            "--max-acc-diff", help=f"Max |accuracy diff| in pp: {_OVERRIDE_HELP}", show_default=False
        ),
    ] = None,
    min_agreement: Annotated[
        list[str] | None,
        typer.Option(
            "--min-agreement", help=f"Min top-1 agreement in %: {_OVERRIDE_HELP}", show_default=False
        ),
    ] = None,
    max_prob_diff: Annotated[
        list[str] | None,
        typer.Option(
            "--max-prob-diff",
            help=f"Max prob diff ('none' = unchecked): {_OVERRIDE_HELP}",
            show_default=False,
        ),
    ] = None,
    data: DataOption = None,
) -> None:
    """Check artifacts against the Keras reference on the 10,000 test images; exit 1 if any fails.

    Per artifact: accuracy, its difference from the reference, top-1 agreement, probability differences
    and the digit that suffers most; the result also goes into the artifact's manifest.
    Artifacts exported from another model are refused unless --force.
    Exit codes: 0 all pass, 1 any FAIL, 2 usage error.
    """
    from mnist_edge.data import load_mnist_data
    from mnist_edge.parity import find_artifacts, verify

    tolerances = _parity_tolerances(max_acc_diff, min_agreement, max_prob_diff)
    if not model.is_file():
        raise MnistEdgeError(f"reference model {model} does not exist: train one or pass --model")
    paths = list(artifacts) if artifacts else find_artifacts(model.parent)
    if not paths:
        raise MnistEdgeError(f"no .tflite or .onnx files beside {model}: run `mnist-edge export` first")
    for out in (json_out, markdown_out):
        if out is not None:
            _writable(out)  # fail before the work, not after it
    mnist = load_mnist_data(data, log=_say)
    report = verify(paths, model, data=mnist, tolerances=tolerances, force=force, log=_say)
    _print_parity(report)
    _write_report(report, json_out, markdown_out)
    _parity_gate(report)


def _write_report(report: Any, json_out: Path | None, markdown_out: Path | None) -> None:
    from mnist_edge._files import atomic_write_bytes, atomic_write_json

    if json_out is not None:
        atomic_write_json(json_out, report.to_dict())
        console.print(f"wrote {json_out}")
    if markdown_out is not None:
        atomic_write_bytes(markdown_out, report.to_markdown().encode("utf-8"))
        console.print(f"wrote {markdown_out}")


# --------------------------------------------------------------------------- predict


@_command(name="predict")
def predict_cmd(
    model: Annotated[
        Path, typer.Argument(help="An exported model (.tflite or .onnx) beside its .json manifest.")
    ],
    inputs: Annotated[
        list[Path],
        typer.Argument(help="PNG/JPEG pictures of one digit (any size), or .npy arrays of 28x28 images."),
    ],
    top: Annotated[int, typer.Option("--top", min=1, max=10, help="Show the K most likely classes.")] = 1,
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
    threads: Annotated[int, typer.Option(min=1, help="Engine threads.")] = 1,
) -> None:
    """Classify digits in pictures or .npy arrays with an exported model.

    Pictures are fitted into 28x28 the way MNIST was made: cropped to the ink, scaled to 20 px,
    centred by centre of mass, white on black.
    """
    import warnings

    import numpy as np

    from mnist_edge.images import load_input
    from mnist_edge.manifest import read_manifest
    from mnist_edge.runtime import load

    # A model without a manifest has no verified origin: it is opened and run once in a child
    # process limited in memory and time before this process touches it (load(isolate=True)).
    isolate = read_manifest(model) is None
    with warnings.catch_warnings(record=True) as caught, _quiet_native_stderr():
        warnings.simplefilter("always")
        classifier = load(model, threads=threads, isolate=isolate)
    for warning in caught:
        err_console.print(f"[yellow]warning:[/] {warning.message}", highlight=False, soft_wrap=True)

    rows: list[dict[str, Any]] = []
    for path in inputs:
        with warnings.catch_warnings():
            # Pillow's notes on odd files (and its DecompressionBombWarning, which our own lower
            # size limit already turns into a clear error) would only clutter the output.
            warnings.simplefilter("ignore")
            images = load_input(path, invert=invert)
        probs = classifier.predict_proba(images)
        names = [str(path)] if len(probs) == 1 else [f"{path}[{i}]" for i in range(len(probs))]
        for name, row in zip(names, probs, strict=True):
            order = np.argsort(-row, kind="stable")[:top]  # ties: lowest label first, like argmax
            rows.append(
                {
                    "input": name,
                    "label": int(order[0]),
                    "name": classifier.class_names[order[0]],
                    "probability": float(row[order[0]]),
                    "top": [
                        {"label": int(k), "name": classifier.class_names[k], "probability": float(row[k])}
                        for k in order
                    ],
                }
            )
    if json_out:
        _print_json({"model": str(model), "precision": classifier.precision, "predictions": rows})
        return
    table = Table(title=f"{model.name} ({classifier.backend})")
    for col in ("input", "label", "name", "probability"):
        table.add_column(col, justify="left" if col in ("input", "name") else "right")
    for row in rows:
        table.add_row(
            row["input"],
            "\n".join(str(t["label"]) for t in row["top"]),
            "\n".join(t["name"] for t in row["top"]),
            "\n".join(f"{t['probability']:.4f}" for t in row["top"]),
        )
    console.print(table)


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Silence C++ log lines that engines write straight to fd 2 (LiteRT's "Created XNNPACK
    delegate"); Python exceptions are unaffected."""
    import os

    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no real stderr (embedded, some test runners): nothing to silence
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@_command(name="pipeline")
def pipeline_cmd(
    out: Annotated[Path, typer.Option("--out", help="Folder for every artifact and the report.")] = Path(
        "artifacts"
    ),
    epochs: Annotated[int, typer.Option(min=1, help="Training epochs (the tutorial's 30).")] = 30,
    quick: Annotated[
        bool, typer.Option("--quick", help="Smoke run: 1 epoch on a 30k-image slice, short benchmark.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Redo every stage, even if its inputs are unchanged.")
    ] = False,
    threads: Annotated[int, typer.Option(min=1, help="Engine threads for the benchmark.")] = 1,
    data: DataOption = None,
) -> None:
    """The main job: data -> train -> export -> verify -> benchmark -> report (artifacts/report.md)."""
    from mnist_edge.pipeline import PipelineConfig, StageResult, run_pipeline

    def show(result: StageResult) -> None:
        mark = "[green]ran[/]" if result.status == "ran" else "[dim]skipped[/]"
        note = f"  [dim]{result.note}[/]" if result.note else ""
        console.print(f"{result.name:<10} {mark:<18} {result.seconds:7.1f} s{note}", highlight=False)

    config = PipelineConfig(
        out_dir=out, epochs=epochs, quick=quick, force=force, data_path=data, threads=threads
    )
    result = run_pipeline(config, progress=show, log=_say)
    total = sum(s.seconds for s in result.stages)
    console.print(f"report: [bold]{result.report_path}[/]   total {total:.1f} s")
    if not result.parity_passed:
        err_console.print("[bold red]parity gate failed[/]: see the report's edge-bundle table")
        raise typer.Exit(1)


def _print_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, indent=2) + "\n")


# --------------------------------------------------------------------------- benchmark


@_command(name="benchmark")
def benchmark_cmd(
    artifacts: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Artifacts to measure (default: every .tflite/.onnx beside the model).",
            metavar="ARTIFACT",
            show_default=False,
        ),
    ] = None,
    model: Annotated[
        Path, typer.Option("--model", help="The Keras reference, timed with model(x) and model.predict(x).")
    ] = Path("artifacts/model.keras"),
    threads: Annotated[int, typer.Option(help="Engine threads (TensorFlow gets the same).")] = 1,
    batch_sizes: Annotated[
        str, typer.Option("--batch-sizes", help="Comma-separated; batch 1 is always measured.")
    ] = "1,32,1024",
    min_time: Annotated[
        str, typer.Option("--min-time", help="Time per measurement, e.g. 2s or 500ms (at least --min-calls).")
    ] = "2s",
    min_calls: Annotated[int, typer.Option("--min-calls", help="Calls per measurement, at least.")] = 100,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the full results as JSON.", show_default=False)
    ] = None,
    markdown_out: Annotated[
        Path | None, typer.Option("--markdown", help="Write the table as Markdown.", show_default=False)
    ] = None,
    plot_out: Annotated[
        Path | None,
        typer.Option(
            "--plot", help="PNG: latency per artifact and throughput per batch size.", show_default=False
        ),
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
    from mnist_edge.bench import benchmark, check_artifacts, parse_batch_sizes, parse_duration
    from mnist_edge.parity import find_artifacts

    sizes = parse_batch_sizes(batch_sizes)
    seconds = parse_duration(min_time)
    for name, value in (("--threads", threads), ("--min-calls", min_calls)):
        if value < 1:
            raise MnistEdgeError(f"{name} must be at least 1, got {value}")
    if keras and not model.is_file():
        raise MnistEdgeError(f"Keras model {model} does not exist: pass --model, or --no-keras")
    if artifacts:
        paths = check_artifacts(artifacts)
    elif model.parent.is_dir():
        paths = find_artifacts(model.parent)
        if not paths:
            raise MnistEdgeError(f"no .tflite or .onnx files beside {model}: run `mnist-edge export` first")
    else:
        raise MnistEdgeError(f"folder {model.parent} does not exist: give artifacts or --model")
    for out in (json_out, markdown_out, plot_out):
        if out is not None:
            _writable(out)  # fail before the work, not after it

    with _progress_with_engines_quiet() as progress:
        task = progress.add_task("starting", total=None)

        def update(done: int, total: int, what: str) -> None:
            progress.update(task, completed=done, total=total, description=what)

        report = benchmark(
            paths,
            keras_model=model if keras else None,
            threads=threads,
            batch_sizes=sizes,
            min_time=seconds,
            min_calls=min_calls,
            memory=memory,
            data=data,
            progress=update,
        )
    _print_benchmark(report)
    _write_report(report, json_out, markdown_out)
    if plot_out is not None:
        from mnist_edge import plots

        plots.benchmark_chart(report.chart_rows(), plot_out)
        console.print(f"wrote {plot_out}")


@contextlib.contextmanager
def _progress_with_engines_quiet() -> Iterator[Any]:
    """A rich progress bar on the real stderr while C++ engine chatter (LiteRT's "Created XNNPACK
    delegate", TensorFlow's CUDA probes) written to fd 2 goes to /dev/null."""
    import io
    import os

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no real stderr: nothing to silence
        with Progress(*columns, console=err_console, transient=True) as progress:
            yield progress
        return
    stream = io.TextIOWrapper(os.fdopen(saved, "wb", closefd=False), write_through=True)
    bar_console = Console(file=stream, stderr=True, force_terminal=err_console.is_terminal)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        with Progress(*columns, console=bar_console, transient=True) as progress:
            yield progress
    finally:
        stream.flush()
        os.dup2(saved, 2)
        os.close(saved)


def _print_benchmark(report: Any) -> None:
    from rich import box

    console.print(f"[bold]machine[/] {report.machine_line()}", highlight=False, soft_wrap=True)
    rows = report.table_rows()
    table = Table(
        title=f"Benchmark ({report.images}; p50 of per-call times, throughput = batch / p50)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for col in report.table_columns():
        left = col in ("artifact", "format", "precision")
        table.add_column(col, justify="left" if left else "right", no_wrap=col == "artifact")
    for row in rows:
        table.add_row(*row)
    (console if console.is_terminal else Console(width=max(console.width, 160))).print(table)
    for line in report.highlights():
        console.print(f"- {line}", highlight=False, soft_wrap=True)
    console.print(f"measured in {report.seconds:.0f} s", style="dim")


def main() -> None:
    """The ``mnist-edge`` script. Click's own usage errors (an option out of range, a path that cannot
    be read) become one red line and exit code 2, like every other error, instead of a usage box."""
    from rich.markup import escape

    try:
        code = app(standalone_mode=False)
    except typer.TyperException as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # `mnist-edge data` alone: the help, as before
            exc.show()  # type: ignore[attr-defined]
            sys.exit(exc.exit_code)
        ctx = getattr(exc, "ctx", None)
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        message = escape(exc.format_message() + hint)
        err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("[yellow]aborted[/]")
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
