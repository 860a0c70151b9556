"""Verify orchestration: which artifacts, provenance first, one row per artifact, results into manifests."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mnist_edge import __version__
from mnist_edge._files import sha256_file
from mnist_edge.errors import MnistEdgeError, ModelLoadError
from mnist_edge.manifest import (
    ARTIFACT_SUFFIXES,
    PRECISIONS,
    Manifest,
    manifest_path,
    read_manifest,
    write_manifest,
)
from mnist_edge.parity.bundle import DeviceBundle
from mnist_edge.parity.metrics import Reference, compare, compute_reference, judge, reference_path
from mnist_edge.parity.results import ParityReport, ParityRow
from mnist_edge.parity.tolerances import DEFAULT_TOLERANCES, Tolerance, Tolerances

if TYPE_CHECKING:
    from mnist_edge.data import MnistData

    TestSet = MnistData | tuple[np.ndarray, np.ndarray]

__all__ = ["choose_reference", "find_artifacts", "resolve_artifacts", "verify"]

Log = Callable[[str], None]


#: Generated C sources: verified (compiled and compared byte for byte), never loaded by the runtime.
C_SUFFIX = ".c"


def find_artifacts(folder: str | os.PathLike[str], *, c_code: bool = False) -> list[Path]:
    """Every ``*.tflite`` / ``*.onnx`` in ``folder`` (and, with ``c_code``, every ``*.c`` that has a
    manifest), sorted (temp files of interrupted writers skipped)."""
    from mnist_edge._files import TMP_MARKER

    folder = Path(folder)
    found = []
    for p in folder.iterdir():
        if not p.is_file() or TMP_MARKER in p.name:
            continue
        suffix = p.suffix.lower()
        # Only C with a manifest is an artifact: any other .c beside the model is someone's source.
        if suffix in ARTIFACT_SUFFIXES or (c_code and suffix == C_SUFFIX and manifest_path(p).is_file()):
            found.append(p)
    return sorted(found)


def resolve_artifacts(
    artifacts: Sequence[str | os.PathLike[str]] | None, model: str | os.PathLike[str], *, c_code: bool = False
) -> list[Path]:
    """The artifacts given or, when none are, every artifact beside ``model`` (what verify and
    benchmark measure by default; ``c_code`` adds generated C, which verify checks).
    Raises :class:`MnistEdgeError` when there is nothing to find."""
    if artifacts:
        return [Path(a) for a in artifacts]
    folder = Path(model).parent
    if not folder.is_dir():
        raise MnistEdgeError(f"folder {folder} does not exist: give artifacts or --model")
    found = find_artifacts(folder, c_code=c_code)
    if not found:
        raise MnistEdgeError(f"no .tflite or .onnx files beside {model}: run `mnist-edge export` first")
    return found


def choose_reference(
    artifacts: Sequence[str | os.PathLike[str]] | None,
    model: str | os.PathLike[str],
    *,
    bundle: str | os.PathLike[str] | None = None,
    limit: int | None = None,
    data: str | os.PathLike[str] | None = None,
    log: Log | None = None,
    c_code: bool = False,
) -> tuple[list[Path], Path | DeviceBundle, TestSet | None]:
    """What ``mnist-edge verify`` compares, as ``(artifacts, reference, data)`` for :func:`verify`.

    The device bundle when ``bundle`` is given or TensorFlow is not installed (a device with the
    runtime-only install: the bundle beside the artifacts or the model is used); otherwise the
    ``.keras`` model on the MNIST test set (``data`` picks its source). ``limit`` keeps the first
    that many test digits: a quicker, coarser check. ``c_code`` finds generated C beside the
    model too.
    """
    from mnist_edge._heavy import tensorflow_installed
    from mnist_edge.parity.bundle import locate_bundle, read_bundle

    say = log or (lambda _msg: None)
    if bundle is not None or not tensorflow_installed():
        if data is not None:
            raise MnistEdgeError("--data is for the Keras reference; a device bundle brings its own digits")
        paths = resolve_artifacts(artifacts, model, c_code=c_code)
        found = locate_bundle(paths, model, bundle)
        why = "" if bundle is not None else "TensorFlow is not installed: "
        say(f"{why}verifying against the device bundle {found}")
        return paths, read_bundle(found).head(limit), None
    from mnist_edge.data import load_mnist_data

    paths = resolve_artifacts(artifacts, reference_path(model), c_code=c_code)
    mnist = load_mnist_data(data, log=say)
    if limit is not None:
        if limit < 1:
            raise MnistEdgeError(f"--limit must be at least 1, got {limit}")
        return paths, Path(model), (mnist.x_test[:limit], mnist.y_test[:limit])
    return paths, Path(model), mnist


def verify(
    artifacts: Iterable[str | os.PathLike[str]],
    reference_model: str | os.PathLike[str] | Reference | DeviceBundle,
    *,
    data: TestSet | None = None,
    tolerances: Tolerances = DEFAULT_TOLERANCES,
    force: bool = False,
    write_manifests: bool = True,
    log: Log | None = None,
) -> ParityReport:
    """Verify each artifact against the reference; returns the report, never raises for a FAIL.

    ``reference_model`` is the ``.keras`` file the artifacts were exported from, a
    :class:`Reference` already computed on the same data, or a
    :class:`~mnist_edge.parity.bundle.DeviceBundle` (the reference's stored outputs and the images
    they were computed on: no TensorFlow needed). ``data`` is an ``MnistData``, an
    ``(images, labels)`` pair, or None for the verified MNIST test set (with a bundle: None).

    Raises :class:`MnistEdgeError` (a usage error) when an artifact does not exist, when no
    artifacts are given, or - unless ``force`` - when an artifact was not exported from the
    reference model. A row fails (and the report says why) when the artifact is out of tolerance
    or the runtime refuses to load it.
    """
    say = log or (lambda _msg: None)
    start = time.perf_counter()
    paths = [Path(a) for a in artifacts]
    if not paths:
        raise MnistEdgeError("no artifacts to verify: run `mnist-edge export` first, or name the files")
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise MnistEdgeError(f"artifact(s) not found: {', '.join(missing)}")

    bundle = reference_model if isinstance(reference_model, DeviceBundle) else None
    if bundle is not None:
        reference_sha = bundle.source_model_sha256
    elif isinstance(reference_model, Reference):
        reference_sha = reference_model.sha256
    else:
        reference_sha = _reference_sha(reference_model)
    manifests: dict[Path, Manifest | None] = {}
    manifest_errors: dict[Path, str] = {}
    for path in paths:
        try:
            manifests[path] = read_manifest(path)
        except ModelLoadError as exc:
            manifests[path] = None
            manifest_errors[path] = str(exc)
    notes = _check_provenance(paths, manifests, manifest_errors, reference_sha, force, bundle)
    if write_manifests:
        from mnist_edge._files import sweep_stale_temps

        for folder in dict.fromkeys(p.parent for p in paths):
            sweep_stale_temps(folder)  # manifest temps a killed earlier run left behind

    if bundle is not None:
        if data is not None:
            raise MnistEdgeError("verify(): a device bundle brings its own images; pass no data=")
        say(f"using the Keras reference's outputs stored in {bundle.path} ({len(bundle):,} images)")
        reference, images = bundle.reference(), bundle.images
    elif isinstance(reference_model, Reference):
        if data is None:
            raise MnistEdgeError("verify(): pass data= together with a precomputed Reference")
        reference = reference_model
        images, _ = _test_set(data, say)
        if len(images) != len(reference.labels):
            raise MnistEdgeError(
                f"the reference was computed on {len(reference.labels)} images but data has {len(images)}"
            )
    else:
        images, labels = _test_set(data, say)
        say(f"running the reference {reference_model} on {len(labels):,} images")
        reference = compute_reference(reference_model, images, labels)

    rows = []
    for path in paths:
        say(f"verifying {path.name}")
        row = _verify_one(
            path,
            manifests[path],
            manifest_errors.get(path),
            reference,
            images,
            tolerances,
            notes.get(path, ()),
        )
        rows.append(row)
        if write_manifests:
            _record(path, row, reference, tolerances, force)
    return ParityReport(
        rows=tuple(rows),
        reference=reference,
        tolerances=tolerances,
        images=len(reference.labels),
        seconds=time.perf_counter() - start,
        forced=force,
    )


def _reference_sha(model: str | os.PathLike[str]) -> str:
    return sha256_file(reference_path(model))


def _test_set(data: TestSet | None, say: Log) -> tuple[np.ndarray, np.ndarray]:
    if data is None:
        from mnist_edge.data import load_mnist_data

        data = load_mnist_data(log=say)
    if hasattr(data, "x_test"):
        return data.x_test, data.y_test
    images, labels = data
    return np.asarray(images), np.asarray(labels)


def _check_provenance(
    paths: Sequence[Path],
    manifests: Mapping[Path, Manifest | None],
    manifest_errors: Mapping[Path, str],
    reference_sha: str,
    force: bool,
    bundle: DeviceBundle | None = None,
) -> dict[Path, tuple[str, ...]]:
    """Refuse artifacts not exported from the reference, or exported with another device bundle than
    the one given (unless forced); returns notes per artifact."""
    problems: dict[Path, str] = {}
    for path in paths:
        if path in manifest_errors:
            continue  # the row will fail on its unreadable manifest
        manifest = manifests[path]
        recorded = (manifest.device_bundle or {}).get("sha256") if manifest is not None else None
        if bundle is not None and recorded is not None and recorded != bundle.sha256:
            problems[path] = (
                f"was exported with another device bundle (sha256 {str(recorded)[:12]}, "
                f"{bundle.path.name} is {bundle.sha256[:12]}): the bundle was changed or belongs to "
                "another export"
            )
        elif manifest is None:
            problems[path] = "has no manifest, so its source model is unknown"
        elif manifest.source_model_sha256 is None:
            problems[path] = "has a manifest without source_model_sha256"
        elif manifest.source_model_sha256 != reference_sha:
            problems[path] = (
                f"was exported from a different model (source sha256 {manifest.source_model_sha256[:12]}, "
                f"reference {reference_sha[:12]})"
            )
    if problems and not force:
        listed = "; ".join(f"{p.name} {why}" for p, why in problems.items())
        source = (
            "the bundle exported with them with --bundle"
            if bundle
            else "the model they came from with --model"
        )
        raise MnistEdgeError(
            f"refusing to compare against a reference the artifacts were not exported from: {listed}. "
            f"Pass {source}, re-export, or use --force to compare anyway"
        )
    return {p: (f"forced: {why}",) for p, why in problems.items()}


_NAME_PRECISION = re.compile(r"\.(" + "|".join(PRECISIONS) + r")\.[^.]+$")


def _identify(path: Path, manifest: Manifest | None) -> tuple[str | None, str | None]:
    if manifest is not None:
        return manifest.format, manifest.precision
    match = _NAME_PRECISION.search(path.name)
    return path.suffix.lstrip(".").lower() or None, match.group(1) if match else None


def _verify_one(
    path: Path,
    manifest: Manifest | None,
    manifest_error: str | None,
    reference: Reference,
    images: np.ndarray,
    tolerances: Tolerances,
    notes: tuple[str, ...],
) -> ParityRow:
    from mnist_edge.runtime import load

    start = time.perf_counter()
    fmt, precision = _identify(path, manifest)
    tolerance = tolerances[precision] if precision in PRECISIONS else None

    def failed(reason: str) -> ParityRow:
        return ParityRow(
            artifact=str(path),
            format=fmt,
            precision=precision,
            passed=False,
            reasons=(reason,),
            tolerance=tolerance,
            notes=notes,
            seconds=time.perf_counter() - start,
        )

    if manifest_error is not None:
        return failed(f"cannot be loaded: {manifest_error}")
    if tolerance is None:
        return failed(
            "precision unknown (no manifest, and the file name does not say fp32/fp16/dynamic/int8): "
            "no tolerance applies"
        )
    bit_exact: dict[str, Any] | None = None
    if fmt == "c":
        from mnist_edge.parity import c_code

        try:
            check, probs = c_code.check_row(path, manifest, images)
        except MnistEdgeError as exc:
            return failed(f"cannot be checked: {exc}")
        bit_exact = check.to_dict()
        notes = (*notes, check.describe())
        extra: tuple[str, ...] = () if check.passed else (check.describe(),)
        return _row(path, fmt, precision, reference, probs, tolerance, notes, start, extra, bit_exact)
    try:
        classifier = load(path)
    except ModelLoadError as exc:
        return failed(f"cannot be loaded: {exc}")
    with classifier:
        try:
            probs = np.asarray(classifier.predict_proba(images), dtype=np.float32)
        except MnistEdgeError as exc:
            return failed(f"cannot be run: {exc}")

    return _row(path, fmt, precision, reference, probs, tolerance, notes, start)


def _row(
    path: Path,
    fmt: str | None,
    precision: str,
    reference: Reference,
    probs: np.ndarray,
    tolerance: Tolerance,
    notes: tuple[str, ...],
    start: float,
    extra_reasons: tuple[str, ...] = (),
    bit_exact: dict[str, Any] | None = None,
) -> ParityRow:
    metrics = compare(reference, probs)
    reasons = (*judge(metrics, tolerance, precision), *extra_reasons)
    return ParityRow(
        artifact=str(path),
        format=fmt,
        precision=precision,
        passed=not reasons,
        reasons=reasons,
        tolerance=tolerance,
        notes=notes,
        seconds=time.perf_counter() - start,
        bit_exact=bit_exact,
        **metrics,
    )


def _record(path: Path, row: ParityRow, reference: Reference, tolerances: Tolerances, forced: bool) -> None:
    """Write the row into the artifact's manifest, atomically; only the ``parity`` block changes."""
    try:
        manifest = read_manifest(path)
    except ModelLoadError:
        return  # unreadable: the row already says so, and we must not overwrite evidence
    if manifest is None:
        return
    block = {
        "status": row.status,
        "passed": row.passed,
        "reasons": list(row.reasons),
        "notes": list(row.notes),
        "accuracy": row.accuracy,
        "reference_accuracy": reference.accuracy,
        "delta_pp": row.delta_pp,
        "agreement_pct": row.agreement_pct,
        "max_prob_diff": row.max_prob_diff,
        "mean_prob_diff": row.mean_prob_diff,
        "worst_class": row.worst_class,
        "worst_class_diff_pp": row.worst_class_diff_pp,
        "bit_exact": row.bit_exact,
        "tolerance": None if row.tolerance is None else row.tolerance.to_dict(),
        "reference_sha256": reference.sha256,
        "images": len(reference.labels),
        "forced": forced,
        "verified_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "mnist_edge_version": __version__,
    }
    write_manifest(path, manifest.replace(parity=block))
