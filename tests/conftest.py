"""Shared fixtures: the real MNIST arrays and a tiny trained model, built once per session.

The tiny model is the real architecture trained for one epoch on a 5,000-image slice (a few
seconds): small enough for fast tests, trained enough that exports must agree with it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TINY_TRAIN_LIMIT = 5000


@pytest.fixture(scope="session")
def mnist():
    """The verified MNIST arrays (from the cache, or fetched once through the source chain)."""
    from mnist_edge.data import load_mnist_data

    return load_mnist_data(log=lambda _msg: None)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, mnist):
    """A one-epoch training run on a slice: the TrainResult, with every file it writes."""
    from mnist_edge.train import TrainConfig, train

    out = tmp_path_factory.mktemp("tiny_model")
    config = TrainConfig(epochs=1, train_limit=TINY_TRAIN_LIMIT, verbose=0)
    return train(config, out, data=mnist)


@pytest.fixture(scope="session")
def tiny_model_path(tiny_run) -> Path:
    return Path(tiny_run.paths["model.keras"])


@pytest.fixture(scope="session")
def exported(tmp_path_factory, tiny_model_path, mnist):
    """Every (format, precision) export of the tiny model in one folder, as
    ``{(fmt, precision): ExportResult}``."""
    from mnist_edge.export import export_many

    out = tmp_path_factory.mktemp("exported")
    results = export_many(tiny_model_path, "all", "all", out, data=mnist)
    return {(r.format, r.precision): r for r in results}


@pytest.fixture(scope="session")
def exported_dir(exported) -> Path:
    """The folder holding every export of the tiny model (``model.<precision>.<ext>`` + manifests)."""
    return next(iter(exported.values())).path.parent


@pytest.fixture(scope="session")
def cnn_exported(tmp_path_factory, mnist):
    """Every export of a tiny CNN holding every convolutional layer family
    (``layer_families.all_conv_layers``), as ``{(fmt, precision): ExportResult}``."""
    from layer_families import all_conv_layers, train_tiny

    from mnist_edge.export import export_many

    out = tmp_path_factory.mktemp("cnn_exported")
    model = train_tiny(all_conv_layers(), mnist, out / "model.keras", images=3000)
    results = export_many(model, "all", "all", out, data=mnist)
    return {(r.format, r.precision): r for r in results}


@pytest.fixture(scope="session")
def train_cnn_int8(tmp_path_factory, mnist) -> Path:
    """The CNN ``train --arch cnn`` makes, trained one epoch on a 2,000-image slice (a few seconds),
    exported to int8 TFLite: ``model.keras`` and ``model.int8.tflite`` (+ manifest) in one folder."""
    from mnist_edge.export import export_many
    from mnist_edge.train import TrainConfig, train

    out = tmp_path_factory.mktemp("train_cnn")
    config = TrainConfig.recipe("cnn", epochs=1, train_limit=2000, batch_size=32, verbose=0)
    run = train(config, out, data=mnist)
    (result,) = export_many(Path(run.paths["model.keras"]), "tflite", "int8", out, data=mnist)
    return result.path


@pytest.fixture(scope="session")
def other_geometry_int8(tmp_path_factory, mnist) -> Path:
    """An int8 CNN with what train's CNN never has: a convolution without activation, so the next
    one's input zero point is not -128 and its SAME padding pads with that; stride 1; VALID
    padding; 2x2 filters; odd numbers of output pixels (5 x 5, 3 x 3); six output channels (not
    a whole block of four filter rows); a 3x3x1 patch (an odd number of groups of four)."""
    import keras
    from keras import layers
    from layer_families import train_tiny

    from mnist_edge.export import export_many

    model = keras.Sequential(
        [
            keras.Input((28, 28)),
            layers.Reshape((28, 28, 1)),
            layers.Conv2D(4, 3, padding="same"),  # no activation: its output's zero point floats
            layers.Conv2D(8, 3, strides=2, padding="same", activation="relu"),  # 14 x 14
            layers.Conv2D(8, 3, strides=1, padding="valid", activation="relu"),  # 12 x 12
            layers.Conv2D(8, 3, strides=2, padding="valid"),  # 5 x 5, no activation again
            layers.Conv2D(6, 2, strides=2, padding="same", activation="relu"),  # 3 x 3
            layers.Flatten(),
            layers.Dense(10, activation="softmax"),
        ]
    )
    out = tmp_path_factory.mktemp("other_geometry")
    path = train_tiny(model, mnist, out / "model.keras", images=2000)
    (result,) = export_many(path, "tflite", "int8", out, data=mnist)
    return result.path
