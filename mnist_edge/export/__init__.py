"""Export the Keras model to edge formats, each file with its manifest beside it.

:data:`TARGETS` is the one table that knows which (format, precision) combinations exist and which
function builds each; everything else - the CLI, ``format all``, the error listing what exists -
reads it. Adding a target is one function in its format's module and one line here.

Every artifact is written to a temp name in the target folder and renamed into place, then its
manifest is written the same way: a crash leaves the previous file or nothing, never half a model.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mnist_edge import CLASS_NAMES
from mnist_edge._files import atomic_path, atomic_write_bytes, sha256_file, sweep_stale_temps, writable_folder
from mnist_edge.data import MnistData, load_mnist_data
from mnist_edge.environment import package_versions
from mnist_edge.errors import DataError, ExportError, MnistEdgeError
from mnist_edge.export import c as _c
from mnist_edge.export import onnx as _onnx
from mnist_edge.export import tflite as _tflite
from mnist_edge.export._base import Exporter, ExportJob
from mnist_edge.export.calibration import DEFAULT_SAMPLES, DEFAULT_SEED, calibration_set
from mnist_edge.export.onnx import DEFAULT_OPSET
from mnist_edge.manifest import Manifest, write_manifest

__all__ = [
    "ALL",
    "DEFAULT_OPSET",
    "DEFAULT_PRECISION",
    "MODEL_TARGETS",
    "PRECISION_ALIASES",
    "TARGETS",
    "ExportResult",
    "Target",
    "artifact_name",
    "expand",
    "export",
    "export_many",
]

ALL = "all"
#: CLI spelling (``--quantize``) -> file precision. File precisions are accepted as themselves.
PRECISION_ALIASES: dict[str, str] = {"none": "fp32", "float16": "fp16", "dynamic": "dynamic", "int8": "int8"}
#: Packages whose versions go into every manifest.
VERSIONED = ("tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime", "ai-edge-litert")


@dataclass(frozen=True)
class Target:
    """One exportable combination."""

    format: str
    precision: str
    exporter: Exporter
    #: True when the exporter needs calibration images (full-integer quantisation).
    calibrated: bool = False
    #: A cheap check of the options (the opset) run before the model is loaded.
    preflight: Callable[[int], None] | None = None
    #: The (format, precision) artifact this one is generated from; it is exported first, or
    #: reused when the one beside it came from the same model with the same calibration.
    requires: tuple[str, str] | None = None
    #: A model file the runtime loads: ``--format all`` builds it and its known answers are recorded.
    #: False for generated source (the C target), built only when asked for by name.
    model_file: bool = True

    @property
    def filename(self) -> str:
        return artifact_name(self.format, self.precision)


def _table(*targets: Target) -> dict[tuple[str, str], Target]:
    return {(t.format, t.precision): t for t in targets}


#: The only place that knows which combinations exist. ONNX float16 and dynamic-range are not
#: built: the edge story for ONNX is float32 and static int8.
TARGETS: dict[tuple[str, str], Target] = _table(
    Target("tflite", "fp32", _tflite.export_fp32),
    Target("tflite", "fp16", _tflite.export_fp16),
    Target("tflite", "dynamic", _tflite.export_dynamic),
    Target("tflite", "int8", _tflite.export_int8, calibrated=True),
    Target("onnx", "fp32", _onnx.export_fp32, preflight=_onnx.check_opset),
    Target("onnx", "int8", _onnx.export_int8, calibrated=True, preflight=_onnx.check_opset),
    # Firmware source, not a model file: built when asked for by name, and compiled to be verified.
    Target("c", "int8", _c.export_int8, requires=("tflite", "int8"), model_file=False),
)
#: The model files: what the runtime loads and ``--format all`` builds (generated source excepted).
MODEL_TARGETS: dict[tuple[str, str], Target] = {key: t for key, t in TARGETS.items() if t.model_file}
#: The precision a format is built in when none is asked for.
DEFAULT_PRECISION: dict[str, str] = {"tflite": "fp32", "onnx": "fp32", "c": "int8"}


@dataclass(frozen=True)
class ExportResult:
    """One written artifact and its manifest."""

    path: Path
    manifest_path: Path
    format: str
    precision: str
    size_bytes: int
    seconds: float
    manifest: Manifest

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "manifest_path": str(self.manifest_path),
            "format": self.format,
            "precision": self.precision,
            "size_bytes": self.size_bytes,
            "seconds": self.seconds,
            "manifest": self.manifest.to_dict(),
        }


def artifact_name(fmt: str, precision: str) -> str:
    """``("tflite", "int8")`` -> ``model.int8.tflite``."""
    return f"model.{precision}.{fmt}"


def available() -> str:
    """What exists, for error messages: ``tflite: fp32, fp16, ...; onnx: fp32, int8``."""
    formats = dict.fromkeys(fmt for fmt, _ in TARGETS)
    return "; ".join(f"{fmt}: " + ", ".join(p for f, p in TARGETS if f == fmt) for fmt in formats)


def _precision(name: str) -> str:
    name = name.strip().lower()
    if name in PRECISION_ALIASES.values():
        return name
    if name in PRECISION_ALIASES:
        return PRECISION_ALIASES[name]
    raise ExportError(
        f"unknown precision {name!r}: use one of {', '.join(PRECISION_ALIASES)} or {ALL} "
        f"(exports that exist - {available()})"
    )


def _names(value: str | Sequence[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def expand(formats: str | Sequence[str], precisions: str | Sequence[str] | None = None) -> list[Target]:
    """Targets for ``--format`` x ``--quantize``, where ``all`` means every value that exists
    (formats built only when named, the C source, excepted) and no precision means each format's
    default (:data:`DEFAULT_PRECISION`).

    A combination named explicitly must exist; with ``all`` on either side the ones that do not
    exist are skipped (``--format all --quantize float16`` is the TFLite float16 file).
    """
    known_formats = list(dict.fromkeys(fmt for fmt, _ in TARGETS))
    fmts: list[str] = []
    for fmt in _names(formats):
        fmt = fmt.strip().lower()
        if fmt == ALL:
            fmts.extend(
                f for f in known_formats if any(t.model_file for t in TARGETS.values() if t.format == f)
            )
        elif fmt in known_formats:
            fmts.append(fmt)
        else:
            raise ExportError(f"unknown format {fmt!r}: use one of {', '.join(known_formats)} or {ALL}")
    if precisions is None:
        fmts = list(dict.fromkeys(fmts))
        return [TARGETS[(fmt, DEFAULT_PRECISION[fmt])] for fmt in fmts]
    precs: list[str] = []
    for name in _names(precisions):
        precs.extend(
            dict.fromkeys(p for _, p in TARGETS) if name.strip().lower() == ALL else [_precision(name)]
        )
    fmts, precs = list(dict.fromkeys(fmts)), list(dict.fromkeys(precs))
    wildcard = ALL in {n.strip().lower() for n in (*_names(formats), *_names(precisions))}
    targets = []
    for fmt in fmts:
        for precision in precs:
            target = TARGETS.get((fmt, precision))
            if target is not None:
                targets.append(target)
            elif not wildcard:
                raise ExportError(
                    f"{fmt} {precision} is not an export mnist-edge builds; what exists - {available()}"
                )
    if not targets:
        raise ExportError(f"nothing to export for {formats} x {precisions}; what exists - {available()}")
    return targets


def export(
    model_path: str | os.PathLike[str],
    fmt: str,
    precision: str | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    **options: Any,
) -> ExportResult:
    """Export one combination (and what it is generated from, when that must be made first);
    ``precision`` is a file precision (``int8``), a CLI name (``none``) or None for the format's
    default. The keyword ``options`` are :func:`export_many`'s."""
    if ALL in (fmt.strip().lower(), (precision or "").strip().lower()):
        raise ExportError("export() writes one file; use export_many() for 'all'")
    return export_many(model_path, fmt, precision, out_dir, **options)[-1]


def export_many(
    model_path: str | os.PathLike[str],
    formats: str | Sequence[str] = "tflite",
    precisions: str | Sequence[str] | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    *,
    calibration_samples: int = DEFAULT_SAMPLES,
    seed: int = DEFAULT_SEED,
    opset: int = DEFAULT_OPSET,
    rounding: str = _c.DEFAULT_ROUNDING,
    prefix: str = _c.DEFAULT_PREFIX,
    data: MnistData | str | os.PathLike[str] | None = None,
    bundle: bool = True,
) -> list[ExportResult]:
    """Export every target ``expand(formats, precisions)`` names, loading the model and drawing the
    calibration images once. Stops at the first failure; files already written stay complete.

    A target generated from another (the C source, from the int8 .tflite) reuses that artifact when
    the one in the folder came from this model with the same calibration, and otherwise exports it
    first (it is then in the results too). ``rounding`` and ``prefix`` are the C target's options.

    With ``bundle`` (the default) the device bundle - the test digits and the Keras reference's
    outputs on them, for verifying on a device without TensorFlow - is written beside the artifacts
    first (kept if the one there is already this model's), and every manifest records its sha256.
    Each manifest also gets the file's known answers (``runtime/known_answers.py``)."""
    from mnist_edge.model import check_exportable, load_model, output_kind

    targets = expand(formats, precisions)
    rounding, prefix = _c.check_rounding(rounding), _c.check_prefix(prefix)
    for target in targets:
        if target.preflight is not None:
            target.preflight(opset)  # a bad option fails before the slow part
    model_path = Path(model_path)
    out = writable_folder(
        Path(out_dir) if out_dir is not None else model_path.parent, what="--out folder", error=ExportError
    )
    sweep_stale_temps(out)  # what a killed earlier run left behind
    model_sha = sha256_file(model_path) if model_path.is_file() else None
    targets, reused = _resolve_inputs(targets, out, model_sha, calibration_samples, seed)
    model = None
    if any(t.requires is None for t in targets):
        model = load_model(model_path)  # safe_mode=True; refuses anything but an MNIST classifier
        check_exportable(model, model_path)  # a layer the converters or our runtime cannot take
    calibration = None
    calibrated = any(t.calibrated for t in targets)
    mnist = None
    if calibrated or bundle:
        mnist = data if isinstance(data, MnistData) else load_mnist_data(data, log=lambda _msg: None)
    if calibrated:
        calibration = calibration_set(mnist, calibration_samples, seed)
    job = ExportJob(
        model=model, opset=opset, calibration=calibration, inputs=reused, rounding=rounding, prefix=prefix
    )
    common: dict[str, Any] = {
        "source_model_sha256": model_sha or sha256_file(model_path),  # a missing model: a clear error
        "versions": package_versions(VERSIONED),
        "output_kind": output_kind(model) if model is not None else None,
    }
    packed = None
    if bundle:
        assert mnist is not None
        common["device_bundle"], packed = _device_bundle(
            model_path, out, mnist, common["source_model_sha256"]
        )
    results = []
    for target in targets:
        results.append(_export_one(target, job, out / target.filename, common))
        # job.inputs is this dict: a target generated from one written earlier in this run sees it
        reused[(target.format, target.precision)] = results[-1].path
    if packed is not None:  # written last: a failed export leaves no bundle without artifacts
        atomic_write_bytes(out / common["device_bundle"]["file"], packed)
    return results


def _resolve_inputs(
    targets: list[Target], out: Path, model_sha: str | None, samples: int, seed: int
) -> tuple[list[Target], dict[tuple[str, str], Path]]:
    """The targets with what they are generated from put first, and the artifacts reused as they are."""
    ordered: list[Target] = []
    reused: dict[tuple[str, str], Path] = {}
    for target in targets:
        needed = target.requires
        if needed is not None and needed not in reused and TARGETS[needed] not in ordered:
            existing = out / TARGETS[needed].filename
            if _reusable(existing, model_sha, samples, seed):
                reused[needed] = existing
            else:
                ordered.append(TARGETS[needed])
        if target not in ordered:
            ordered.append(target)
    return ordered, reused


def _reusable(path: Path, model_sha: str | None, samples: int, seed: int) -> bool:
    """True when ``path`` is intact, was exported from the model with ``model_sha`` and, if
    calibrated, with the same calibration options."""
    from mnist_edge.errors import ModelLoadError
    from mnist_edge.manifest import read_manifest

    try:
        manifest = read_manifest(path)
    except ModelLoadError:
        return False
    if manifest is None or model_sha is None or manifest.source_model_sha256 != model_sha:
        return False
    calibration = manifest.calibration or {}
    if calibration and (calibration.get("samples"), calibration.get("seed")) != (samples, seed):
        return False
    return path.is_file() and sha256_file(path) == manifest.sha256


def _export_one(target: Target, job: ExportJob, final: Path, common: dict[str, Any]) -> ExportResult:
    started = time.perf_counter()
    with atomic_path(final) as tmp:
        try:
            written = target.exporter(job, tmp)
        except (ExportError, KeyboardInterrupt):
            raise
        except Exception as exc:  # converters raise anything; the user gets one line
            raise ExportError(
                f"{target.format} {target.precision} export failed: {type(exc).__name__}: {exc}"
            ) from exc
        for name, content in written.companions:
            atomic_write_bytes(final.parent / name, content)
        sha256, size = sha256_file(tmp), tmp.stat().st_size
    manifest = Manifest(
        format=target.format,
        precision=target.precision,
        input=written.input,
        output=written.output,
        class_names=CLASS_NAMES,
        sha256=sha256,
        size_bytes=size,
        preprocessing=written.preprocessing,
        calibration=job.calibration_set().to_dict() if target.calibrated else None,
        generated_from=written.generated_from,
        **common,
    )
    written_manifest = write_manifest(final, manifest)
    if target.model_file:  # a model file: the runtime reads it back, as a device will, on the probe images
        manifest = manifest.replace(known_answers=_known_answers(final))
        written_manifest = write_manifest(final, manifest)
    return ExportResult(
        path=final,
        manifest_path=written_manifest,
        format=target.format,
        precision=target.precision,
        size_bytes=size,
        seconds=time.perf_counter() - started,
        manifest=manifest,
    )


def _known_answers(path: Path) -> dict[str, Any]:
    from mnist_edge.runtime import known_answers, load, preprocess

    try:
        with load(path) as classifier:
            probabilities = classifier.predict_proba(preprocess.check_images())
    except MnistEdgeError as exc:
        raise ExportError(f"the exported {path.name} does not load in the runtime: {exc}") from None
    return known_answers.record(probabilities)


def _device_bundle(
    model_path: Path, out: Path, mnist: MnistData, source_sha256: str
) -> tuple[dict[str, Any], bytes | None]:
    """The device bundle's manifest entry, and its bytes to write once the artifacts are written -
    None when the bundle already there holds this model's outputs on this test set (kept, so that
    the manifests of earlier exports still name its sha256)."""
    import numpy as np

    from mnist_edge.parity.bundle import bundle_path, pack_bundle, parse_bundle, read_bundle
    from mnist_edge.parity.metrics import compute_reference

    path = bundle_path(out)
    if path.is_file():
        try:
            kept = read_bundle(path)
        except DataError:
            kept = None  # unreadable: replaced
        if (
            kept is not None
            and kept.source_model_sha256 == source_sha256
            and np.array_equal(kept.images, mnist.x_test)
            and np.array_equal(kept.labels, mnist.y_test)
        ):
            return kept.manifest_entry(), None
    reference = compute_reference(model_path, mnist.x_test, mnist.y_test)
    packed = pack_bundle(reference, mnist.x_test, data_source=mnist.source)
    return parse_bundle(path, packed).manifest_entry(), packed
