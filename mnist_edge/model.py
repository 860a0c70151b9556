"""The reference model: the classic Keras MNIST MLP, exactly as the tutorial builds it."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras

#: Parameter count of the tutorial's model: 784*300+300 + 300*100+100 + 100*10+10.
PARAM_COUNT = 266_610
INPUT_SHAPE = (28, 28)
NUM_CLASSES = 10


def build_model() -> keras.Model:
    """Flatten(28x28) -> Dense(300, relu) -> Dense(100, relu) -> Dense(10, softmax), uncompiled."""
    from mnist_edge._heavy import keras as _keras

    keras = _keras()
    return keras.Sequential(
        [
            keras.Input(shape=INPUT_SHAPE, name="pixels"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(300, activation="relu", name="dense_300"),
            keras.layers.Dense(100, activation="relu", name="dense_100"),
            keras.layers.Dense(NUM_CLASSES, activation="softmax", name="probabilities"),
        ],
        name="mnist_mlp",
    )


def load_model(path: str | os.PathLike[str]) -> keras.Model:
    """Load a ``.keras`` file safely and check it is an MNIST classifier (28x28 in, 10 out).

    ``safe_mode=True`` refuses pickled lambdas; we also refuse legacy ``.h5`` files and any
    ``Lambda`` layer, because both can carry code.
    """
    from mnist_edge._heavy import keras as _keras
    from mnist_edge.errors import ModelLoadError

    path = Path(path)
    if path.is_dir():
        raise ModelLoadError(f"{path} is a folder, not a .keras model file")
    if not path.is_file():
        raise ModelLoadError(f"model file {path} does not exist; train one with `mnist-edge train`")
    if path.suffix.lower() != ".keras":
        raise ModelLoadError(
            f"{path} is not a .keras file: only the Keras 3 format is accepted "
            "(legacy .h5 and SavedModel can carry code)"
        )
    if not zipfile.is_zipfile(path):
        raise ModelLoadError(f"{path} is not a valid .keras file (not a zip archive)")
    keras = _keras()
    try:
        model = keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as exc:  # Keras raises many types for a bad file
        raise ModelLoadError(f"cannot load {path}: {type(exc).__name__}: {exc}") from None
    check_classifier(model, path)
    return model


def check_classifier(model: keras.Model, where: object = "model") -> None:
    from mnist_edge.errors import ModelLoadError

    if any(type(layer).__name__ == "Lambda" for layer in _all_layers(model)):
        raise ModelLoadError(f"{where} contains a Lambda layer, which mnist-edge refuses")
    try:
        in_shape = tuple(model.inputs[0].shape)[1:]
        out_shape = tuple(model.outputs[0].shape)[1:]
    except (AttributeError, IndexError, TypeError):
        raise ModelLoadError(f"{where} has no defined input/output shape") from None
    if in_shape not in (INPUT_SHAPE, (28 * 28,)) or out_shape != (NUM_CLASSES,):
        raise ModelLoadError(
            f"{where} maps {in_shape} -> {out_shape}; an MNIST classifier maps (28, 28) -> (10,)"
        )


def _all_layers(model: keras.Model) -> list[object]:
    layers = []
    for layer in getattr(model, "layers", []):
        layers.append(layer)
        if hasattr(layer, "layers"):
            layers.extend(_all_layers(layer))
    return layers
