"""The device bundle: export writes the test digits and the Keras reference's outputs beside the
artifacts, and verify runs the same gate from it - without TensorFlow and without the dataset."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

from mnist_edge.errors import DataError, MnistEdgeError
from mnist_edge.manifest import manifest_path, read_manifest
from mnist_edge.parity import compute_reference, find_artifacts, verify
from mnist_edge.parity.bundle import BUNDLE_NAME, read_bundle, write_bundle

ROOT = Path(__file__).resolve().parents[1]
#: The issue's limit for what a device has to be sent besides the models.
MAX_BUNDLE_MB = 3.0


def _tolerances():
    """The looser int8 limits the tiny fixture model needs (test_parity.py explains why)."""
    from mnist_edge.parity import DEFAULT_TOLERANCES

    return DEFAULT_TOLERANCES.override("int8", "min-agreement", 98.5).override("int8", "max-acc-diff", 0.5)


@pytest.fixture()
def device_dir(exported_dir, tmp_path) -> Path:
    """What is copied to a device: the six artifacts, their manifests and the bundle - no model.keras."""
    folder = tmp_path / "device"
    folder.mkdir()
    for path in find_artifacts(exported_dir):
        shutil.copy(path, folder / path.name)
        shutil.copy(manifest_path(path), manifest_path(folder / path.name))
    shutil.copy(exported_dir / BUNDLE_NAME, folder / BUNDLE_NAME)
    return folder


# --------------------------------------------------------------------------- what export writes


def test_export_writes_the_bundle_and_every_manifest_names_its_sha256(exported, exported_dir, mnist):
    bundle = read_bundle(exported_dir / BUNDLE_NAME)
    assert bundle.size_bytes <= MAX_BUNDLE_MB * 1e6
    assert len(bundle) == len(mnist.y_test) == 10_000
    np.testing.assert_array_equal(bundle.images, mnist.x_test)
    np.testing.assert_array_equal(bundle.labels, mnist.y_test)
    for result in exported.values():
        assert result.manifest.device_bundle == bundle.manifest_entry()
        assert result.manifest.source_model_sha256 == bundle.source_model_sha256


def test_the_bundle_holds_the_keras_references_outputs(exported_dir, tiny_model_path, mnist):
    bundle = read_bundle(exported_dir / BUNDLE_NAME)
    reference = compute_reference(tiny_model_path, mnist.x_test[:500], mnist.y_test[:500])
    np.testing.assert_array_equal(bundle.probs[:500], reference.probs)
    assert bundle.reference().accuracy == pytest.approx(bundle.meta["reference_accuracy"])


def test_the_same_outputs_give_the_same_bytes(tiny_model_path, mnist, tmp_path):
    reference = compute_reference(tiny_model_path, mnist.x_test[:200], mnist.y_test[:200])
    first = write_bundle(tmp_path / "a.npz", reference, mnist.x_test[:200])
    second = write_bundle(tmp_path / "b.npz", reference, mnist.x_test[:200])
    assert first.sha256 == second.sha256
    with np.load(tmp_path / "a.npz", allow_pickle=False) as plain:  # an ordinary .npz for numpy
        assert sorted(plain.files) == ["images", "labels", "meta", "probs"]
        assert plain["probs"].dtype == np.float32


def test_a_second_export_keeps_the_bundle_of_the_same_model(tiny_model_path, mnist, tmp_path):
    from mnist_edge.export import export

    folder = tmp_path / "out"
    first = export(tiny_model_path, "tflite", "fp32", folder, data=mnist)
    written = (folder / BUNDLE_NAME).stat().st_mtime_ns
    second = export(tiny_model_path, "onnx", "fp32", folder, data=mnist)
    assert (folder / BUNDLE_NAME).stat().st_mtime_ns == written
    assert first.manifest.device_bundle == second.manifest.device_bundle


def test_export_without_a_bundle_records_none(tiny_model_path, mnist, tmp_path):
    from mnist_edge.export import export

    result = export(tiny_model_path, "tflite", "fp16", tmp_path, data=mnist, bundle=False)
    assert result.manifest.device_bundle is None and not (tmp_path / BUNDLE_NAME).exists()


# --------------------------------------------------------------------------- verify from the bundle


def test_verify_from_the_bundle_gives_the_keras_verdicts(device_dir, tiny_model_path, mnist):
    paths = find_artifacts(device_dir)
    tolerances = _tolerances()
    from_bundle = verify(paths, read_bundle(device_dir / BUNDLE_NAME), tolerances=tolerances)
    from_keras = verify(paths, tiny_model_path, data=mnist, tolerances=tolerances, write_manifests=False)
    assert from_bundle.passed and len(from_bundle.rows) == 6
    for a, b in zip(from_bundle.rows, from_keras.rows, strict=True):
        assert (a.status, a.accuracy, a.agreement_pct, a.max_prob_diff) == (
            b.status,
            b.accuracy,
            b.agreement_pct,
            b.max_prob_diff,
        )
    assert read_manifest(paths[0]).parity["images"] == 10_000


def test_a_limited_bundle_checks_the_first_images_only(device_dir):
    bundle = read_bundle(device_dir / BUNDLE_NAME).head(300)
    fp32 = [p for p in find_artifacts(device_dir) if ".fp32." in p.name]
    report = verify(fp32, bundle, write_manifests=False)
    assert report.images == 300 and len(report.reference.labels) == 300
    assert report.passed and [row.agreement_pct for row in report.rows] == [100.0, 100.0]


def test_verify_from_the_bundle_needs_no_tensorflow(device_dir):
    """A runtime-only install: TensorFlow, Keras and tf2onnx cannot be imported."""
    script = textwrap.dedent(
        f"""
        import importlib.abc, json, sys
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("tensorflow", "keras", "tf2onnx"):
                    raise ImportError("blocked import of " + name)
        sys.meta_path.insert(0, Block())
        from pathlib import Path
        from mnist_edge.parity import find_artifacts, verify
        from mnist_edge.parity.bundle import read_bundle
        folder = Path({str(device_dir)!r})
        report = verify(find_artifacts(folder), read_bundle(folder / "model.bundle.npz").head(500),
                        write_manifests=False)
        print(json.dumps([row.agreement_pct for row in report.rows]))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(json.loads(done.stdout.strip().splitlines()[-1])) == 6


def test_a_bundle_from_another_export_is_refused(device_dir, tiny_model_path, mnist, tmp_path):
    reference = compute_reference(tiny_model_path, mnist.x_test[:100], mnist.y_test[:100])
    other = write_bundle(tmp_path / BUNDLE_NAME, reference, mnist.x_test[:100])  # same model, other bytes
    paths = find_artifacts(device_dir)
    with pytest.raises(MnistEdgeError, match=r"exported with another device bundle.*--bundle"):
        verify(paths, other)
    forced = verify(paths[:1], other, force=True, write_manifests=False)
    assert "forced: was exported with another device bundle" in forced.rows[0].notes[0]


def test_a_bundle_that_does_not_match_the_expected_hash_is_refused(device_dir):
    with pytest.raises(DataError, match="is not the one exported with the artifacts"):
        read_bundle(device_dir / BUNDLE_NAME, expected_sha256="0" * 64)


# --------------------------------------------------------------------------- bad bundles


def _rewrite_member(path: Path, name: str, array: np.ndarray) -> None:
    with zipfile.ZipFile(path) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=array.dtype == object)
    members[f"{name}.npy"] = buffer.getvalue()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for member, data in members.items():
            archive.writestr(member, data)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("truncate", "is corrupt"),
        ("missing", "does not exist"),
        ("probs", "probs are float64"),
        ("labels", "labels are not N digits"),
        ("images", "images are uint8 \\(10000, 784\\)"),
        ("pickle", "is corrupt"),
    ],
)
def test_a_damaged_bundle_is_a_data_error_that_says_what_to_do(device_dir, damage, message):
    path = device_dir / BUNDLE_NAME
    bundle = read_bundle(path)
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:5000])
    elif damage == "missing":
        path.unlink()
    elif damage == "probs":
        _rewrite_member(path, "probs", bundle.probs.astype(np.float64))
    elif damage == "labels":
        _rewrite_member(path, "labels", bundle.labels.astype(np.uint8) + 10)
    elif damage == "images":
        _rewrite_member(path, "images", bundle.images.reshape(len(bundle), -1))
    elif damage == "pickle":
        _rewrite_member(path, "meta", np.array([{"a": 1}], dtype=object))
    with pytest.raises(DataError, match=message) as caught:
        read_bundle(path)
    assert "re-run" in str(caught.value) or "copy" in str(caught.value)


# --------------------------------------------------------------------------- the CLI

#: Put on PYTHONPATH, this makes TensorFlow, Keras and tf2onnx impossible to import: a runtime-only install.
NO_TENSORFLOW = """
import importlib.abc, sys
class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "keras", "tf2onnx"):
            raise ImportError("blocked import of " + name)
sys.meta_path.insert(0, _Block())
"""


def test_cli_verify_without_tensorflow_uses_the_bundle_beside_the_artifacts(device_dir, tmp_path):
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(NO_TENSORFLOW)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hooks), str(ROOT)])}
    args = [
        sys.executable,
        "-m",
        "mnist_edge",
        "verify",
        "--limit",
        "400",
        "--json",
        str(tmp_path / "r.json"),
    ]
    args += ["--min-agreement", "int8=98", "--max-acc-diff", "int8=1"]  # the tiny model at 400 digits
    # A device's folder as copied by hand: artifacts/ (the default --model's folder), no model.keras.
    home = tmp_path / "pi"
    shutil.copytree(device_dir, home / "artifacts")
    bundle = (home / "artifacts" / BUNDLE_NAME).rename(home / BUNDLE_NAME)
    done = subprocess.run(args, cwd=home, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "no device bundle (model.bundle.npz) in artifacts" in done.stderr, (
        done.stderr
    )
    bundle.rename(home / "artifacts" / BUNDLE_NAME)
    done = subprocess.run(args, cwd=home, env=env, capture_output=True, text=True, timeout=300)
    assert "TensorFlow is not installed: verifying against the device bundle" in done.stderr, done.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["images"] == 400 and len(report["rows"]) == 6
    assert done.returncode == (0 if report["passed"] else 1)


def test_cli_verify_bundle_exit_codes_are_the_usual_ones(device_dir, tmp_path):
    from typer.testing import CliRunner

    from mnist_edge.cli import app

    runner = CliRunner()
    bundle = str(device_dir / BUNDLE_NAME)
    fp32 = str(device_dir / "model.fp32.tflite")
    passed = runner.invoke(app, ["verify", fp32, "--bundle", bundle, "--limit", "300"])
    assert passed.exit_code == 0, passed.output
    assert "model.bundle.npz" in passed.stdout and "300 images" in passed.stdout
    strict = runner.invoke(app, ["verify", fp32, "--bundle", bundle, "--max-prob-diff", "fp32=0"])
    assert strict.exit_code == 1, strict.output
    missing = runner.invoke(app, ["verify", fp32, "--bundle", str(tmp_path / "nothing.npz")])
    assert missing.exit_code == 2 and "does not exist" in missing.stderr
    mixed = runner.invoke(app, ["verify", fp32, "--bundle", bundle, "--data", str(tmp_path / "x.npz")])
    assert mixed.exit_code == 2 and "--data is for the Keras reference" in mixed.stderr
