"""Train the reference model with the tutorial's recipe and write every artifact of a training run."""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mnist_edge._files import atomic_path, atomic_write_json, sha256_file, sweep_stale_temps
from mnist_edge._mnist import CLASS_NAMES
from mnist_edge.data import MnistData, load_mnist_data
from mnist_edge.errors import MnistEdgeError

#: Keras runs this many optimiser steps per call into the graph: identical maths, far less Python
#: per step on CPU (the tutorial's plain ``fit`` is ``steps_per_execution=1``).
DEFAULT_STEPS_PER_EXECUTION = 64


@dataclass(frozen=True)
class TrainConfig:
    """The tutorial's recipe as defaults."""

    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 0.01
    seed: int = 42
    validation_size: int = 5000
    steps_per_execution: int = DEFAULT_STEPS_PER_EXECUTION
    #: Use only the first N training images (after the validation split): for quick runs and tests.
    train_limit: int | None = None
    #: Keras's fit verbosity: 1 is the per-epoch progress bar, 0 silent, 2 one line per epoch.
    verbose: int = 1

    def validate(self) -> None:
        checks = {
            "epochs": self.epochs >= 1,
            "batch-size": self.batch_size >= 1,
            "learning-rate": self.learning_rate > 0,
            "seed": self.seed >= 0,
            "steps-per-execution": self.steps_per_execution >= 1,
            "validation-size": 1 <= self.validation_size < 60000,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise MnistEdgeError(
                f"invalid --{bad[0]}: {getattr(self, bad[0].replace('-', '_'))!r} "
                "(epochs, batch size and steps must be >= 1, the learning rate > 0, the seed >= 0)"
            )
        if self.train_limit is not None and self.train_limit < 1:
            raise MnistEdgeError(f"invalid train limit {self.train_limit}: must be >= 1")


@dataclass(frozen=True)
class TrainResult:
    history: dict[str, list[float]]
    val_accuracy: float
    test_loss: float
    test_accuracy: float
    train_seconds: float
    paths: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def split(data: MnistData, config: TrainConfig) -> dict[str, np.ndarray]:
    """Pixels / 255 as float32; the first ``validation_size`` training images are validation."""
    n_val = config.validation_size
    x_full = data.x_train.astype(np.float32) / 255.0
    x_train, y_train = x_full[n_val:], data.y_train[n_val:]
    if config.train_limit is not None:
        x_train, y_train = x_train[: config.train_limit], y_train[: config.train_limit]
    return {
        "x_train": x_train,
        "y_train": y_train,
        "x_valid": x_full[:n_val],
        "y_valid": data.y_train[:n_val],
        "x_test": data.x_test.astype(np.float32) / 255.0,
        "y_test": data.y_test,
    }


def seed_everything(seed: int) -> None:
    """Same seed, same machine -> bit-identical weights (Python, numpy and TF seeds, deterministic ops)."""
    from mnist_edge._heavy import keras as _keras
    from mnist_edge._heavy import tensorflow

    keras, tf = _keras(), tensorflow()
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def compile_model(model: Any, config: TrainConfig) -> None:
    from mnist_edge._heavy import keras as _keras

    keras = _keras()
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=config.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        steps_per_execution=config.steps_per_execution,
    )


def fit(config: TrainConfig, arrays: dict[str, np.ndarray]) -> tuple[Any, dict[str, list[float]]]:
    """Build, compile and fit the reference model; returns the model and its per-epoch history."""
    from mnist_edge.model import build_model

    seed_everything(config.seed)
    model = build_model()
    compile_model(model, config)
    history = model.fit(
        arrays["x_train"],
        arrays["y_train"],
        epochs=config.epochs,
        batch_size=config.batch_size,
        validation_data=(arrays["x_valid"], arrays["y_valid"]),
        verbose=config.verbose,
    )
    return model, {k: [float(v) for v in vals] for k, vals in history.history.items()}


def save_keras(model: Any, path: str | os.PathLike[str]) -> None:
    """Keras writes to a temp name in the same folder which is then renamed: never half a model."""
    with atomic_path(path) as tmp:
        model.save(tmp)


def evaluation_payload(model: Any, x_test: np.ndarray, y_test: np.ndarray) -> dict[str, Any]:
    """Test loss/accuracy plus per-class metrics and the confusion matrix, for metrics.json."""
    from mnist_edge.evaluate import accuracy, confusion_matrix, cross_entropy, per_class_metrics

    probs = model.predict(x_test, batch_size=1024, verbose=0)
    predicted = np.argmax(probs, axis=1)
    return {
        "test_loss": cross_entropy(y_test, probs),
        "test_accuracy": accuracy(y_test, predicted),
        "per_class": [asdict(m) for m in per_class_metrics(y_test, predicted)],
        "confusion_matrix": confusion_matrix(y_test, predicted).tolist(),
        "class_names": list(CLASS_NAMES),
    }


def train(
    config: TrainConfig | None = None,
    out_dir: str | os.PathLike[str] = "artifacts",
    data: MnistData | None = None,
    data_path: str | os.PathLike[str] | None = None,
) -> TrainResult:
    """Train with ``config`` and write model.keras, history.json, metrics.json and the two plots."""
    from mnist_edge import plots

    config = config or TrainConfig()
    config.validate()
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MnistEdgeError(f"cannot create the output folder {out}: {exc.strerror}") from None
    if not os.access(out, os.W_OK):
        raise MnistEdgeError(f"the output folder {out} is not writable")
    sweep_stale_temps(out)  # what a killed earlier run left behind
    data = data or load_mnist_data(data_path)
    arrays = split(data, config)

    start = time.perf_counter()
    model, history = fit(config, arrays)
    seconds = time.perf_counter() - start

    paths = {
        name: str(out / name)
        for name in (
            "model.keras",
            "history.json",
            "metrics.json",
            "training_curves.png",
            "confusion_matrix.png",
        )
    }
    save_keras(model, paths["model.keras"])
    metrics = evaluation_payload(model, arrays["x_test"], arrays["y_test"])
    metrics.update(
        train_seconds=seconds,
        val_accuracy=history["val_accuracy"][-1],
        config=asdict(config),
        data_source=data.source,
        model_sha256=sha256_file(paths["model.keras"]),
    )
    atomic_write_json(paths["history.json"], history)
    atomic_write_json(paths["metrics.json"], metrics)
    plots.training_curves(history, paths["training_curves.png"])
    plots.confusion_matrix_figure(np.array(metrics["confusion_matrix"]), paths["confusion_matrix.png"])
    return TrainResult(
        history=history,
        val_accuracy=history["val_accuracy"][-1],
        test_loss=metrics["test_loss"],
        test_accuracy=metrics["test_accuracy"],
        train_seconds=seconds,
        paths=paths,
    )
