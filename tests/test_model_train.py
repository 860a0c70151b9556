"""The reference model and a training run: architecture, written files, determinism, CLI errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mnist_edge import CLASS_NAMES
from mnist_edge.cli import app
from mnist_edge.errors import MnistEdgeError, ModelLoadError
from mnist_edge.model import CNN_PARAM_COUNT, PARAM_COUNT, build_model, load_model
from mnist_edge.train import RECIPES, TrainConfig, train

runner = CliRunner()


def test_reference_model_has_the_tutorials_266610_parameters():
    model = build_model()
    assert model.count_params() == PARAM_COUNT == 266_610
    dense = [layer for layer in model.layers if layer.__class__.__name__ == "Dense"]
    assert [d.units for d in dense] == [300, 100, 10]
    assert [d.activation.__name__ for d in dense] == ["relu", "relu", "softmax"]
    assert tuple(model.inputs[0].shape) == (None, 28, 28)


def test_training_run_writes_every_file(tiny_run):
    paths = tiny_run.paths
    for name in (
        "model.keras",
        "history.json",
        "metrics.json",
        "training_curves.png",
        "confusion_matrix.png",
    ):
        assert name in paths
    history = json.loads(Path(paths["history.json"]).read_text())
    assert set(history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 1 for v in history.values())
    metrics = json.loads(Path(paths["metrics.json"]).read_text())
    for key in ("test_loss", "test_accuracy", "per_class", "confusion_matrix", "train_seconds"):
        assert key in metrics
    assert [row["name"] for row in metrics["per_class"]] == list(CLASS_NAMES)
    cm = np.array(metrics["confusion_matrix"])
    assert cm.shape == (10, 10) and cm.sum() == 10000
    assert np.trace(cm) / 10000 == pytest.approx(metrics["test_accuracy"], abs=1e-6)
    assert 0.7 < tiny_run.test_accuracy < 1.0  # one epoch on 5k images learns something
    for png in ("training_curves.png", "confusion_matrix.png"):
        assert Path(paths[png]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_same_seed_gives_bit_identical_weights(tmp_path, mnist, tiny_model_path):
    config = TrainConfig(epochs=1, train_limit=5000, verbose=0)
    again = train(config, tmp_path, data=mnist)
    first = load_model(tiny_model_path).get_weights()
    second = load_model(again.paths["model.keras"]).get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))


def test_different_seed_gives_different_weights(tmp_path, mnist, tiny_model_path):
    other = train(TrainConfig(epochs=1, train_limit=500, seed=7, verbose=0), tmp_path, data=mnist)
    first = load_model(tiny_model_path).get_weights()[0]
    assert not np.array_equal(first, load_model(other.paths["model.keras"]).get_weights()[0])


@pytest.mark.parametrize("field", ["epochs", "batch_size", "steps_per_execution"])
def test_invalid_config_is_a_clear_error(field):
    with pytest.raises(MnistEdgeError, match="invalid"):
        TrainConfig(**{field: 0}).validate()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"arch": "rnn"}, "invalid arch 'rnn': use one of mlp, cnn"),
        ({"optimizer": "rmsprop"}, "invalid optimizer 'rmsprop'"),
        ({"schedule": "step"}, "invalid schedule 'step'"),
        ({"augment_shift": 9}, "invalid augment shift 9"),
    ],
)
def test_invalid_recipe_fields_are_clear_errors(change, message):
    with pytest.raises(MnistEdgeError, match=message):
        TrainConfig(**change).validate()


def test_the_mlp_recipe_is_the_tutorials():
    config = TrainConfig.recipe("mlp")
    assert config == TrainConfig()
    assert (config.epochs, config.batch_size, config.learning_rate) == (30, 32, 0.01)
    assert (config.optimizer, config.schedule, config.augment_shift) == ("sgd", "constant", 0)


def test_the_cnn_recipe_with_overrides():
    config = TrainConfig.recipe("cnn", epochs=3, learning_rate=None, seed=7)
    assert config.arch == "cnn" and config.epochs == 3 and config.seed == 7
    assert config.learning_rate == RECIPES["cnn"]["learning_rate"]  # None leaves the recipe's
    assert (config.optimizer, config.schedule) == ("adam", "cosine") and config.augment_shift > 0
    with pytest.raises(MnistEdgeError, match="unknown --arch 'rnn'"):
        TrainConfig.recipe("rnn")
    with pytest.raises(MnistEdgeError, match="unknown --arch 'rnn'"):
        build_model("rnn")


def test_the_edge_cnn_is_small_exportable_and_takes_the_mlps_input():
    from mnist_edge.model import check_exportable, output_kind

    model = build_model("cnn")
    assert model.count_params() == CNN_PARAM_COUNT == 34_138
    assert tuple(model.inputs[0].shape) == (None, 28, 28)
    assert [layer.filters for layer in model.layers if type(layer).__name__ == "Conv2D"] == [16, 32, 64]
    check_exportable(model)
    assert output_kind(model) == "probabilities"


@pytest.mark.slow
def test_cnn_training_is_seeded_and_saves_no_augmentation(tmp_path, mnist):
    config = TrainConfig.recipe("cnn", epochs=1, train_limit=8000, verbose=0)
    first = train(config, tmp_path / "a", data=mnist)
    second = train(config, tmp_path / "b", data=mnist)
    a, b = (load_model(r.paths["model.keras"]) for r in (first, second))
    assert all(np.array_equal(x, y) for x, y in zip(a.get_weights(), b.get_weights(), strict=True))
    kinds = [type(layer).__name__ for layer in a.layers]
    assert kinds == [type(layer).__name__ for layer in build_model("cnn").layers]  # no RandomTranslation
    metrics = json.loads(Path(first.paths["metrics.json"]).read_text())
    assert metrics["config"]["arch"] == "cnn" and metrics["config"]["augment_shift"] == config.augment_shift
    assert first.test_accuracy > 0.8  # 63 steps, evaluated with batch statistics that have settled


def test_load_model_refuses_h5_and_missing_files(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(tmp_path / "nope.keras")
    h5 = tmp_path / "model.h5"
    h5.write_bytes(b"\x89HDF\r\n\x1a\n")
    with pytest.raises(ModelLoadError, match="only the Keras 3 format"):
        load_model(h5)
    fake = tmp_path / "fake.keras"
    fake.write_text("not a zip")
    with pytest.raises(ModelLoadError, match=r"not a valid \.keras"):
        load_model(fake)


def test_lambda_layer_is_refused(tmp_path):
    import keras

    model = keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(), keras.layers.Dense(10)])
    model.add(keras.layers.Lambda(lambda x: x * 2))
    path = tmp_path / "lambda.keras"
    model.save(path)
    with pytest.raises(ModelLoadError):
        load_model(path)


def test_non_mnist_model_is_refused(tmp_path):
    import keras

    model = keras.Sequential([keras.Input((32, 32)), keras.layers.Flatten(), keras.layers.Dense(5)])
    path = tmp_path / "other.keras"
    model.save(path)
    with pytest.raises(ModelLoadError, match=r"\(28, 28\) -> \(10,\)"):
        load_model(path)


@pytest.mark.parametrize(
    "args",
    [
        ["train", "--epochs", "-1"],
        ["train", "--epochs", "0"],
        ["train", "--learning-rate", "-0.5"],
        ["train", "--data", "/nonexistent/mnist.npz"],
        ["evaluate", "/nonexistent/model.keras"],
        ["data", "info", "--data", "/nonexistent/mnist.npz"],
        ["data", "show", "--out", "/proc/forbidden/x.png"],
    ],
)
def test_cli_errors_exit_2_without_traceback(args):
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


def test_cli_train_with_wrong_npz_says_what_is_wrong(tmp_path):
    bad = tmp_path / "mnist.npz"
    np.savez(bad, x_train=np.zeros((3, 28, 28), np.uint8))
    result = runner.invoke(app, ["train", "--epochs", "1", "--data", str(bad)])
    assert result.exit_code == 2
    assert "lacks the array" in result.output


def test_cli_data_info_and_show(tmp_path):
    result = runner.invoke(app, ["data", "info"])
    assert result.exit_code == 0, result.output
    assert "(60000, 28, 28)" in result.output and "5923" in result.output
    out = tmp_path / "grid.png"
    result = runner.invoke(app, ["data", "show", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_cli_evaluate_prints_accuracy_and_writes_figure(tiny_model_path, tmp_path):
    out = tmp_path / "cm.png"
    result = runner.invoke(app, ["evaluate", str(tiny_model_path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "test accuracy" in result.output and "Nine" in result.output
    assert out.is_file()
