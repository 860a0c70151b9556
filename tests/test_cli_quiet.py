"""The terminal a user sees: the runtime-only install explains itself, engines' native logs stay
hidden (and show with --verbose), output paths that cannot be made are one line, and predict
reads photos, .keras models and writes what the model saw."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from mnist_edge.cli import app
from mnist_edge.images import load_image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import digit_pictures

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()

#: Lines that TensorFlow, absl, the TFLite converter and LiteRT print from native code.
NATIVE_LOG_PATTERNS = (
    "cuda_platform.cc",
    "cudart_stub.cc",
    "cpu_feature_guard",
    "All log messages before absl::InitializeLog()",
    "fully_quantize",
    "node_def_util.cc",
    "XNNPACK delegate",
    "oneDNN custom operations",
    "I0000 ",
    "E0000 ",
    "W0000 ",
)

#: `mnist-edge ARGS` in a fresh interpreter where TensorFlow, Keras and tf2onnx cannot be imported,
#: as after `pip install mnist-edge` without the train extra.
_WITHOUT_TENSORFLOW = """
import sys

class _NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"tensorflow", "keras", "tf2onnx"}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _NotInstalled())
from mnist_edge.cli import main
sys.argv = ["mnist-edge", *sys.argv[1:]]
main()
"""


def _run(args: list[str], *, without_tensorflow: bool = False, env: dict[str, str] | None = None):
    command = (
        [sys.executable, "-c", _WITHOUT_TENSORFLOW]
        if without_tensorflow
        else [sys.executable, "-m", "mnist_edge"]
    )
    return subprocess.run(
        [*command, *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )


@pytest.fixture(scope="module")
def picture(tmp_path_factory) -> Path:
    """A photo-like JPEG: a drawn digit on unevenly lit, noisy paper, 1600x1200."""
    path = tmp_path_factory.mktemp("photo") / "photo.jpg"
    Image.fromarray(digit_pictures.photo(7, size=(1600, 1200), seed=3)).save(path, quality=85)
    return path


# --------------------------------------------------------------------------- without TensorFlow


@pytest.mark.parametrize(
    "command",
    ["train", "evaluate", "export", "pipeline", "benchmark", "predict-keras"],
)
def test_commands_that_need_tensorflow_say_so_in_one_line(
    command, tiny_model_path, exported_dir, picture, tmp_path
):
    model = str(tiny_model_path)
    args = {
        "train": ["train", "--epochs", "1", "--out", str(tmp_path)],
        "evaluate": ["evaluate", model],
        "export": ["export", "--model", model, "--out", str(tmp_path)],
        "pipeline": ["pipeline", "--quick", "--out", str(tmp_path)],
        "benchmark": ["benchmark", str(exported_dir / "model.int8.tflite"), "--model", model],
        "predict-keras": ["predict", model, str(picture)],
    }[command]
    done = _run(args, without_tensorflow=True)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: `mnist-edge ") and "needs TensorFlow" in lines[0]
    assert "pip install 'mnist-edge[train]'" in lines[0]
    if command == "benchmark":
        assert "--no-keras" in lines[0]
    if command == "predict-keras":
        assert ".tflite" in lines[0]  # the way that needs no TensorFlow


def test_the_runtime_commands_work_without_tensorflow(exported_dir, picture):
    done = _run(
        ["predict", str(exported_dir / "model.int8.tflite"), str(picture), "--json"], without_tensorflow=True
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["predictions"][0]["name"]


# --------------------------------------------------------------------------- native logs


def test_an_embedding_app_gets_no_engine_lines_on_stderr(exported_dir, picture):
    """examples/embed.py loads a model: LiteRT's delegate line is not on its stderr, unless asked for."""
    args = [str(ROOT / "examples" / "embed.py"), str(exported_dir / "model.int8.tflite"), str(picture)]
    quiet = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120, check=False)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == ""
    loud = subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "MNIST_EDGE_VERBOSE": "1"},
    )
    assert loud.returncode == 0 and "XNNPACK delegate" in loud.stderr, loud.stderr


@pytest.mark.slow
def test_a_command_shows_only_its_own_lines_unless_verbose(tiny_model_path, tmp_path):
    """An int8 export imports TensorFlow and runs the converter: plenty of native log lines, none shown."""
    args = ["export", "--model", str(tiny_model_path), "--quantize", "int8", "--no-verify"]
    env = {"TF_CPP_MIN_LOG_LEVEL": "0"}  # even when TensorFlow itself is told to log everything
    quiet = _run([*args, "--out", str(tmp_path / "quiet")], env=env)
    assert quiet.returncode == 0, quiet.stderr
    assert "model.int8.tflite" in quiet.stdout
    shown = [p for p in NATIVE_LOG_PATTERNS if p in quiet.stderr]
    assert not shown, quiet.stderr
    loud = _run(["--verbose", *args, "--out", str(tmp_path / "loud")], env=env)
    assert loud.returncode == 0, loud.stderr
    assert any(p in loud.stderr for p in NATIVE_LOG_PATTERNS), loud.stderr  # the logs exist here


# --------------------------------------------------------------------------- output paths


def _output_paths(tmp_path: Path) -> list[Path]:
    """Places where nothing can be created: under a regular file, and (Linux) under /proc, which
    refuses even root."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    paths = [blocker / "out"]
    if Path("/proc/self").exists():
        paths.append(Path("/proc/mnist-edge-test/out"))
        paths.append(Path("/proc/out"))
    return paths


@pytest.mark.parametrize("command", ["data show", "pipeline", "predict --save-inputs"])
def test_outputs_that_cannot_be_created_are_one_line_and_exit_2(command, exported_dir, picture, tmp_path):
    for place in _output_paths(tmp_path):
        args = {
            "data show": ["data", "show", "--out", str(place / "samples.png")],
            "pipeline": ["pipeline", "--quick", "--out", str(place)],
            "predict --save-inputs": [
                "predict",
                str(exported_dir / "model.int8.tflite"),
                str(picture),
                "--save-inputs",
                str(place),
            ],
        }[command]
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (place, result.output)
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and "cannot" in lines[0], result.stderr


# --------------------------------------------------------------------------- predict


def test_predict_reads_a_photo_and_saves_what_the_model_saw(exported_dir, picture, tmp_path):
    from mnist_edge.runtime import load

    model = exported_dir / "model.int8.tflite"
    seen = tmp_path / "seen"
    batch = tmp_path / "batch.npy"
    np.save(batch, np.stack([load_image(picture)] * 2))
    result = runner.invoke(
        app, ["predict", str(model), str(picture), str(batch), "--json", "--save-inputs", str(seen)]
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["predictions"]
    assert sorted(p.name for p in seen.iterdir()) == ["batch-0.png", "batch-1.png", "photo.png"]
    digit = np.asarray(Image.open(seen / "photo.png"))
    np.testing.assert_array_equal(digit, load_image(picture))  # exactly what the API returns
    assert rows[0]["label"] == int(load(model).predict(digit)[0])
    ys, xs = np.indices(digit.shape)
    mass = digit.astype(float).sum()
    assert abs((ys * digit).sum() / mass - 14) < 1 and abs((xs * digit).sum() / mass - 14) < 1
    np.testing.assert_array_equal(np.asarray(Image.open(seen / "batch-1.png")), digit)


def test_predict_names_inputs_with_the_same_name_apart(exported_dir, picture, tmp_path):
    other = tmp_path / "elsewhere"
    other.mkdir()
    twin = other / picture.name
    twin.write_bytes(picture.read_bytes())
    seen = tmp_path / "seen"
    result = runner.invoke(
        app,
        [
            "predict",
            str(exported_dir / "model.fp32.onnx"),
            str(picture),
            str(twin),
            "--save-inputs",
            str(seen),
        ],
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in seen.iterdir()) == ["photo-2.png", "photo.png"]


def test_predict_with_the_keras_model(tiny_model_path, exported_dir, picture):
    keras = runner.invoke(app, ["predict", str(tiny_model_path), str(picture), "--json"])
    assert keras.exit_code == 0, keras.output
    exported = runner.invoke(
        app, ["predict", str(exported_dir / "model.fp32.tflite"), str(picture), "--json"]
    )
    assert (
        json.loads(keras.stdout)["predictions"][0]["label"]
        == json.loads(exported.stdout)["predictions"][0]["label"]
    )
    assert "isolate" not in keras.output


@pytest.mark.parametrize(
    "pixels",
    [
        np.full((64, 64), 255, np.uint8),
        np.zeros((64, 64), np.uint8),
        np.zeros((1, 1), np.uint8),
        np.pad(np.zeros((1, 1), np.uint8), 30, constant_values=255),
    ],
    ids=["all-white", "all-black", "single-pixel", "one-dot"],
)
def test_predict_says_no_digit_found_for_empty_pictures(pixels, exported_dir, tmp_path):
    path = tmp_path / "empty.png"
    Image.fromarray(pixels).save(path)
    result = runner.invoke(app, ["predict", str(exported_dir / "model.int8.tflite"), str(path)])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no digit found" in lines[0] and path.name in lines[0]
