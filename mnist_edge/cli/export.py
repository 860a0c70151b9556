"""``export`` and ``verify``: write the artifacts, then hold them to the Keras reference."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mnist_edge.cli.app import command
from mnist_edge.cli.options import (
    DEFAULT_MODEL,
    DataOption,
    artifacts_argument,
    check_outputs,
    output_option,
)
from mnist_edge.cli.render import print_exports, print_parity, say, write_report_files


@command(name="export", needs_tensorflow=True)
def export_cmd(
    model: Annotated[Path, typer.Option("--model", help="The .keras model to export.")] = DEFAULT_MODEL,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="tflite, onnx, all (both), or c: C99 source for microcontrollers, generated from the "
            "int8 .tflite (exported first unless an up-to-date one is beside the model).",
        ),
    ] = "tflite",
    quantize: Annotated[
        str | None,
        typer.Option(
            "--quantize",
            help="none (float32), float16, dynamic (int8 weights), int8 (full integer) or all. "
            "ONNX builds none and int8, C int8 only. Default: none (c: int8).",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Folder for the files (default: the model's folder).")
    ] = None,
    calibration_samples: Annotated[
        int, typer.Option(help="int8 calibration images, stratified from the training set.")
    ] = 1000,
    seed: Annotated[int, typer.Option(help="Seed for drawing the calibration images.")] = 0,
    opset: Annotated[int, typer.Option(help="ONNX opset, 13 to 18 (what tf2onnx writes).")] = 17,
    rounding: Annotated[
        str,
        typer.Option(
            help="C only: litert (bit-exact with LiteRT, what the runtime runs) or tflm (bit-exact with "
            "TensorFlow Lite Micro; integer-only).",
        ),
    ] = "litert",
    prefix: Annotated[
        str, typer.Option(help="C only: the entry point is PREFIX_infer(), the header's macros PREFIX_*.")
    ] = "mnist_edge",
    check: Annotated[
        bool,
        typer.Option(
            "--verify/--no-verify",
            help="Check each file against the model on the test set (as `mnist-edge verify`); exit 1 if "
            "one is out of tolerance (the file is kept, its manifest marks the failure).",
        ),
    ] = True,
    bundle: Annotated[
        bool,
        typer.Option(
            "--bundle/--no-bundle",
            help="Also write model.bundle.npz: the test digits and the model's outputs on them, for "
            "`mnist-edge verify` on a device without TensorFlow (about 2 MB).",
        ),
    ] = True,
    data: DataOption = None,
) -> None:
    """Write model.<precision>.<tflite|onnx> files (or model.int8.c/.h), each with a JSON manifest beside it.

    Generated C is verified by compiling it with the host C compiler and comparing every output
    byte with LiteRT (or TFLM) on the 10,000 test digits and 20,000 random images.
    """
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
        rounding=rounding,
        prefix=prefix,
        data=data,
        bundle=bundle,
    )
    print_exports(results)
    if check:
        from mnist_edge import parity
        from mnist_edge.data import load_mnist_data

        mnist = load_mnist_data(data, log=say)
        paths = [r.path for r in results]
        report = parity.verify(paths, model, data=mnist, tolerances=parity.DEFAULT_TOLERANCES, log=say)
        print_parity(report)
        report.raise_if_failed()


_OVERRIDE_HELP = "PRECISION=VALUE (e.g. int8=0.5) or VALUE for every precision; repeatable."


@command(name="verify")
def verify_cmd(
    artifacts: Annotated[list[Path] | None, artifacts_argument("verify", c_code=True)] = None,
    model: Annotated[
        Path, typer.Option("--model", help="The .keras reference the artifacts were exported from.")
    ] = DEFAULT_MODEL,
    json_out: Annotated[Path | None, output_option("--json", "Also write the report as JSON.")] = None,
    markdown_out: Annotated[
        Path | None, output_option("--markdown", "Also write the report as Markdown.")
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
    bundle: Annotated[
        Path | None,
        typer.Option(
            "--bundle",
            help="Compare with the Keras outputs stored in this device bundle (model.bundle.npz, written "
            "by export) instead of running the model: no TensorFlow needed. The bundle beside the "
            "artifacts is used by default when TensorFlow is not installed.",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            "--limit", min=1, help="Only the first N test digits: quicker, coarser.", show_default=False
        ),
    ] = None,
    data: DataOption = None,
) -> None:
    """Check artifacts against the Keras reference on the 10,000 test images; exit 1 if any fails.

    Per artifact: accuracy, its difference from the reference, top-1 agreement, probability differences
    and the digit that suffers most; the result also goes into the artifact's manifest. Generated C
    (model.int8.c) is regenerated from its .tflite and compared byte for byte before it is compiled
    with the host C compiler, then must give exactly the bytes of LiteRT (or TFLM) on the test digits
    and 20,000 random images.
    Artifacts exported from another model are refused unless --force.
    On a device without TensorFlow the reference's outputs come from the device bundle.
    Exit codes: 0 all pass, 1 any FAIL, 2 usage error.
    """
    from mnist_edge import parity

    overrides = {"max-acc-diff": max_acc_diff, "min-agreement": min_agreement, "max-prob-diff": max_prob_diff}
    tolerances = parity.apply_overrides(parity.DEFAULT_TOLERANCES, overrides)
    check_outputs(json_out, markdown_out)
    paths, reference, test = parity.choose_reference(
        artifacts, model, bundle=bundle, limit=limit, data=data, log=say, c_code=True
    )
    report = parity.verify(paths, reference, data=test, tolerances=tolerances, force=force, log=say)
    print_parity(report)
    write_report_files(report, json_out, markdown_out)
    report.raise_if_failed()
