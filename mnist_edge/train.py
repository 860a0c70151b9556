"""Train a network from the architecture table with its recipe and write every artifact of a run.

Each architecture has one recipe (:data:`RECIPES`), the defaults of ``mnist-edge train --arch``:

- ``mlp``: the tutorial's, bit for bit - SGD at 0.01, batch 32, 30 epochs, no augmentation;
- ``cnn``: Adam from 0.002 with a cosine decay to 0 over the run, batch 128, 30 epochs, and each
  training image shifted by up to 3 pixels in each direction, drawn anew per image and per
  step (Keras's ``RandomTranslation``, nearest pixel, zero fill, seeded with the run's seed).
  The shifts run in a training-only wrapper: the saved model has no augmentation layer.

Same seed, same machine, same recipe -> bit-identical weights (:func:`seed_everything`).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from mnist_edge._files import atomic_path, atomic_write_json, sha256_file, sweep_stale_temps, writable_folder
from mnist_edge._mnist import CLASS_NAMES, IMAGE_SHAPE, PIXEL_SCALE
from mnist_edge.data import MnistData, load_mnist_data
from mnist_edge.errors import MnistEdgeError

#: Keras runs this many optimiser steps per call into the graph: identical maths, far less Python
#: per step on CPU (the tutorial's plain ``fit`` is ``steps_per_execution=1``).
DEFAULT_STEPS_PER_EXECUTION = 64
OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "cosine")
#: Largest random shift, in pixels, that ``augment_shift`` may ask for.
MAX_SHIFT = 8


@dataclass(frozen=True)
class TrainConfig:
    """One training run. The defaults are the tutorial's recipe for its MLP; build another
    architecture's with :meth:`recipe`."""

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
    #: The network, a key of :data:`mnist_edge.model.ARCHITECTURES`.
    arch: str = "mlp"
    optimizer: str = "sgd"
    #: ``constant`` learning rate, or ``cosine`` decay from it to 0 over the run.
    schedule: str = "constant"
    #: Shift each training image by up to this many pixels in each direction (0: no augmentation).
    augment_shift: int = 0

    @classmethod
    def recipe(cls, arch: str = "mlp", **overrides: Any) -> TrainConfig:
        """``arch``'s recipe from :data:`RECIPES`, with the ``overrides`` that are not None."""
        if arch not in RECIPES:
            raise MnistEdgeError(f"unknown --arch {arch!r}: use one of {', '.join(RECIPES)}")
        given = {name: value for name, value in overrides.items() if value is not None}
        return replace(cls(arch=arch), **{**RECIPES[arch], **given})

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
        choices = {"arch": tuple(RECIPES), "optimizer": OPTIMIZERS, "schedule": SCHEDULES}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise MnistEdgeError(
                    f"invalid {name} {getattr(self, name)!r}: use one of {', '.join(allowed)}"
                )
        if not 0 <= self.augment_shift <= MAX_SHIFT:
            raise MnistEdgeError(
                f"invalid augment shift {self.augment_shift}: must be 0 to {MAX_SHIFT} pixels"
            )


#: Each architecture's training recipe: what differs from :class:`TrainConfig`'s defaults (which
#: are the tutorial's). The CNN's was chosen on the validation split; ``README.md`` has its numbers.
RECIPES: dict[str, dict[str, Any]] = {
    "mlp": {},
    "cnn": {
        "epochs": 30,
        "batch_size": 128,
        "learning_rate": 0.002,
        "optimizer": "adam",
        "schedule": "cosine",
        "augment_shift": 3,
    },
}


def describe(config: dict[str, Any]) -> str:
    """A recipe in one line, from a config as ``metrics.json`` stores it (older files lack the
    newer fields: they were the tutorial's recipe)."""
    optimizer = "Adam" if config.get("optimizer") == "adam" else "SGD"
    rate = f"learning rate {config.get('learning_rate')}"
    if config.get("schedule", "constant") == "cosine":
        rate += " with a cosine decay to 0"
    epochs = config.get("epochs")
    text = (
        f"{optimizer} ({rate}), sparse categorical cross-entropy, batch {config.get('batch_size')}, "
        f"{epochs} epoch{'' if epochs == 1 else 's'}"
    )
    shift = config.get("augment_shift") or 0
    if shift:
        text += f", random shifts of up to {shift} pixels"
    return text


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
    x_full = data.x_train.astype(np.float32) / PIXEL_SCALE
    x_train, y_train = x_full[n_val:], data.y_train[n_val:]
    if config.train_limit is not None:
        x_train, y_train = x_train[: config.train_limit], y_train[: config.train_limit]
    return {
        "x_train": x_train,
        "y_train": y_train,
        "x_valid": x_full[:n_val],
        "y_valid": data.y_train[:n_val],
        "x_test": data.x_test.astype(np.float32) / PIXEL_SCALE,
        "y_test": data.y_test,
    }


def seed_everything(seed: int) -> None:
    """Same seed, same machine -> bit-identical weights (Python, numpy and TF seeds, deterministic ops)."""
    from mnist_edge._heavy import keras as _keras
    from mnist_edge._heavy import tensorflow

    keras, tf = _keras(), tensorflow()
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def compile_model(model: Any, config: TrainConfig, steps_per_epoch: int = 1) -> None:
    from mnist_edge._heavy import keras as _keras

    keras = _keras()
    rate: Any = config.learning_rate
    if config.schedule == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(rate, decay_steps=config.epochs * steps_per_epoch)
    if config.optimizer == "adam":
        optimizer = keras.optimizers.Adam(learning_rate=rate)
    else:
        optimizer = keras.optimizers.SGD(learning_rate=rate)
    model.compile(
        optimizer=optimizer,
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        steps_per_execution=config.steps_per_execution,
    )


def fit(config: TrainConfig, arrays: dict[str, np.ndarray]) -> tuple[Any, dict[str, list[float]]]:
    """Build, compile and fit ``config.arch``; returns the model and its per-epoch history."""
    from mnist_edge.model import build_model

    seed_everything(config.seed)
    model = build_model(config.arch)
    trainer = with_shifts(model, config) if config.augment_shift else model
    compile_model(trainer, config, math.ceil(len(arrays["x_train"]) / config.batch_size))
    history = trainer.fit(
        arrays["x_train"],
        arrays["y_train"],
        epochs=config.epochs,
        batch_size=config.batch_size,
        validation_data=(arrays["x_valid"], arrays["y_valid"]),
        verbose=config.verbose,
    )
    return model, {k: [float(v) for v in vals] for k, vals in history.history.items()}


def with_shifts(model: Any, config: TrainConfig) -> Any:
    """A training wrapper that shifts each image by up to ``config.augment_shift`` pixels before
    ``model`` sees it; at inference (validation) it passes images through. ``model``'s layers are
    the wrapper's, so fitting the wrapper trains ``model``."""
    from mnist_edge._heavy import keras as _keras
    from mnist_edge.model import image_shape

    keras = _keras()
    factor = config.augment_shift / IMAGE_SHAPE[0]
    inputs = keras.Input(shape=image_shape(model))
    x = keras.layers.Reshape((*IMAGE_SHAPE, 1))(inputs)
    x = keras.layers.RandomTranslation(
        factor, factor, fill_mode="constant", interpolation="nearest", seed=config.seed
    )(x)
    x = keras.layers.Reshape(image_shape(model))(x)
    return keras.Model(inputs, model(x), name=f"{model.name}_with_shifts")


def save_keras(model: Any, path: str | os.PathLike[str]) -> None:
    """Keras writes to a temp name in the same folder which is then renamed: never half a model."""
    with atomic_path(path) as tmp:
        model.save(tmp)


def evaluation_payload(model: Any, x_test: np.ndarray, y_test: np.ndarray) -> dict[str, Any]:
    """Test loss/accuracy plus per-class metrics and the confusion matrix, for metrics.json."""
    from mnist_edge.evaluate import accuracy, confusion_matrix, cross_entropy, per_class_metrics
    from mnist_edge.model import as_model_input, output_kind
    from mnist_edge.runtime.preprocess import softmax

    probs = model.predict(as_model_input(model, x_test), batch_size=1024, verbose=0)
    if output_kind(model) == "logits":
        probs = softmax(probs)
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
    out = writable_folder(out_dir, what="the output folder")
    sweep_stale_temps(out)  # what a killed earlier run left behind
    data = data or load_mnist_data(data_path)
    arrays = split(data, config)

    start = time.perf_counter()
    model, history = fit(config, arrays)
    seconds = time.perf_counter() - start

    paths: dict[str, str] = {}

    def output(name: str) -> str:
        """The path ``name`` is written to, recorded in the result as it is written."""
        paths[name] = str(out / name)
        return paths[name]

    save_keras(model, output("model.keras"))
    metrics = evaluation_payload(model, arrays["x_test"], arrays["y_test"])
    metrics.update(
        params=int(model.count_params()),
        train_seconds=seconds,
        val_accuracy=history["val_accuracy"][-1],
        config=asdict(config),
        data_source=data.source,
        model_sha256=sha256_file(paths["model.keras"]),
    )
    atomic_write_json(output("history.json"), history)
    atomic_write_json(output("metrics.json"), metrics)
    plots.training_curves(history, output("training_curves.png"))
    plots.confusion_matrix_figure(np.array(metrics["confusion_matrix"]), output("confusion_matrix.png"))
    return TrainResult(
        history=history,
        val_accuracy=history["val_accuracy"][-1],
        test_loss=metrics["test_loss"],
        test_accuracy=metrics["test_accuracy"],
        train_seconds=seconds,
        paths=paths,
    )
