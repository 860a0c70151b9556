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
