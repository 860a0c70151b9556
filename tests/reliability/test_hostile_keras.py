"""Hostile model inputs to ``export``: a ``.keras`` file can carry code, so it is
vetted before Keras reads it and loaded with ``safe_mode=True`` by a Keras without the known
safe-mode bypass. Each payload would leave a marker file if its code ran; the marker must not
appear. (ONNX files with external data are refused by the runtime: ``test_model_files.py``.)
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mnist_edge.cli import app
from mnist_edge.errors import ModelLoadError
from mnist_edge.model import MIN_KERAS_VERSION, load_model

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def keras():
    from mnist_edge._heavy import keras as _keras

    return _keras()


def _classifier(keras, *middle):
    return keras.Sequential(
        [
            keras.Input(shape=(28, 28)),
            keras.layers.Flatten(),
            *middle,
            keras.layers.Dense(10, activation="softmax"),
        ]
    )


@pytest.fixture
def plain(keras, tmp_path) -> Path:
    path = tmp_path / "plain.keras"
    _classifier(keras).save(path)
    return path


def _rewrite(source: Path, target: Path, *, config=None, extra: dict[str, bytes] | None = None) -> Path:
    """A copy of a .keras archive with its config.json replaced and/or members added."""
    with zipfile.ZipFile(source) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    if config is not None:
        members["config.json"] = json.dumps(config).encode()
    members.update(extra or {})
    with zipfile.ZipFile(target, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return target


def test_a_plain_model_loads(plain):
    assert load_model(plain).output_shape == (None, 10)


def test_a_lambda_layer_is_refused_before_its_code_runs(keras, tmp_path):
    marker = tmp_path / "lambda-ran"
    where = str(marker)
    code = keras.layers.Lambda(lambda x: (open(where, "w").close(), x)[1])
    path = tmp_path / "lambda.keras"
    _classifier(keras, code).save(path)
    marker.unlink()  # building the model ran it once; from here on nothing may
    with pytest.raises(ModelLoadError, match="Lambda layer"):
        load_model(path)
    assert not marker.exists()
    # What the refusal prevents: without safe mode, loading runs the payload.
    keras.saving.load_model(path, safe_mode=False)
    assert marker.exists()


def test_a_config_naming_code_outside_keras_is_refused(plain, tmp_path):
    with zipfile.ZipFile(plain) as archive:
        config = json.loads(archive.read("config.json"))
    layers = config["config"]["layers"]
    dense = next(layer for layer in layers if layer["class_name"] == "Dense")
    dense["config"]["activation"] = {
        "module": "os",
        "class_name": "function",
        "config": "system",
        "registered_name": "function",
    }
    path = _rewrite(plain, tmp_path / "os.keras", config=config)
    with pytest.raises(ModelLoadError, match=r"os\.function, which is not part of Keras"):
        load_model(path)


def test_a_nested_lambda_is_found_anywhere_in_the_config(plain, tmp_path):
    with zipfile.ZipFile(plain) as archive:
        config = json.loads(archive.read("config.json"))
    config["config"]["layers"].insert(
        2, {"module": "keras.layers", "class_name": "Lambda", "config": {"function": {"code": "..."}}}
    )
    with pytest.raises(ModelLoadError, match="Lambda layer"):
        load_model(_rewrite(plain, tmp_path / "nested.keras", config=config))


def test_unexpected_archive_members_and_zip_bombs_are_refused(plain, tmp_path):
    extra = _rewrite(plain, tmp_path / "extra.keras", extra={"payload.py": b"import os\n"})
    with pytest.raises(ModelLoadError, match=r"payload\.py"):
        load_model(extra)
    bomb = tmp_path / "bomb.keras"
    _rewrite(plain, bomb)
    with zipfile.ZipFile(bomb, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("assets/zeros.bin", bytes(300 << 20))  # 300 MiB that compress to 300 KB
    assert bomb.stat().st_size < 2 << 20
    with pytest.raises(ModelLoadError, match="unpacks to 300 MiB"):
        load_model(bomb)


def test_legacy_h5_files_are_refused_even_renamed(keras, tmp_path):
    h5 = tmp_path / "legacy.h5"
    _classifier(keras).save(h5)
    with pytest.raises(ModelLoadError, match=r"only the Keras 3 format"):
        load_model(h5)
    renamed = tmp_path / "legacy.keras"
    renamed.write_bytes(h5.read_bytes())
    with pytest.raises(ModelLoadError, match="not a zip archive"):
        load_model(renamed)


def test_export_refuses_hostile_models_with_one_line(keras, tmp_path):
    h5 = tmp_path / "legacy.h5"
    _classifier(keras).save(h5)
    result = CliRunner().invoke(app, ["export", "--model", str(h5), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "only the Keras 3 format" in result.output
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_keras_with_the_safe_mode_bypass_is_refused(plain, keras, monkeypatch):
    monkeypatch.setattr(keras, "__version__", "3.14.0")
    with pytest.raises(ModelLoadError, match=r"Keras 3\.14\.0 is installed.*>= 3\.15"):
        load_model(plain)


def test_keras_3_15_or_newer_is_required_and_installed(keras):
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r'"keras>=3\.15', pyproject)
    installed = tuple(int(part) for part in keras.__version__.split(".")[:2])
    assert installed >= MIN_KERAS_VERSION == (3, 15)
