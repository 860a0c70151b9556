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

    A model file can carry code, so before Keras reads it: legacy ``.h5`` (and anything not a
    ``.keras`` zip) is refused, the archive must hold only the members Keras writes, within a size
    cap, and its ``config.json`` must name no ``Lambda`` layer and no object from outside Keras
    (a Lambda runs while the model is rebuilt, before any check after loading could refuse it).
    Keras itself must be >= 3.15: 3.14.0's ``safe_mode`` can be bypassed (CVE-2026-12481). Then
    ``safe_mode=True`` refuses marshalled functions, and the architecture is checked.
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
    _check_keras_archive(path)
    keras = _keras()
    _check_keras_version(str(keras.__version__))
    try:
        model = keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as exc:  # Keras raises many types for a bad file
        raise ModelLoadError(f"cannot load {path}: {type(exc).__name__}: {exc}") from None
    check_classifier(model, path)
    return model


#: Keras releases before this one have a safe_mode bypass (CVE-2026-12481 affects 3.14.0).
MIN_KERAS_VERSION = (3, 15)
#: What Keras 3 writes into a .keras archive (plus files under assets/).
KERAS_MEMBERS = frozenset({"config.json", "metadata.json", "model.weights.h5"})
#: Uncompressed size cap of a .keras archive: ours is 1.1 MB, a zip bomb is not.
MAX_KERAS_ARCHIVE_BYTES = 256 << 20
MAX_KERAS_CONFIG_BYTES = 16 << 20
#: Layers whose config carries Python code.
CODE_LAYERS = frozenset({"Lambda", "TFOpLambda", "SlicingOpLambda"})


def _check_keras_version(version: str) -> None:
    from mnist_edge.errors import ModelLoadError

    numbers = []
    for part in version.split(".")[:2]:
        digits = "".join(c for c in part if c.isdigit()) or "0"
        numbers.append(int(digits))
    if tuple(numbers) < MIN_KERAS_VERSION:
        wanted = ".".join(map(str, MIN_KERAS_VERSION))
        raise ModelLoadError(
            f"Keras {version} is installed; mnist-edge needs Keras >= {wanted} to load .keras files "
            f"(older safe_mode can be bypassed): pip install 'keras>={wanted}'"
        )


def _check_keras_archive(path: Path) -> None:
    """Refuse a .keras archive with unexpected members, a zip bomb, or code in its config."""
    import json

    from mnist_edge.errors import ModelLoadError

    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            unexpected = sorted(
                i.filename
                for i in infos
                if i.filename not in KERAS_MEMBERS and not i.filename.startswith("assets/")
            )
            if unexpected:
                raise ModelLoadError(f"{path} holds files Keras does not write: {', '.join(unexpected[:5])}")
            total = sum(i.file_size for i in infos)
            if total > MAX_KERAS_ARCHIVE_BYTES:
                raise ModelLoadError(
                    f"{path} unpacks to {total / 2**20:.0f} MiB; an MNIST model is about 1 MiB"
                )
            config_info = next((i for i in infos if i.filename == "config.json"), None)
            if config_info is None or config_info.file_size > MAX_KERAS_CONFIG_BYTES:
                raise ModelLoadError(f"{path} has no usable config.json: it is not a Keras 3 model")
            config = json.loads(archive.read(config_info))
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError, json.JSONDecodeError, RuntimeError) as exc:
        raise ModelLoadError(f"{path} is not a valid .keras file: {type(exc).__name__}: {exc}") from None
    _check_keras_config(config, path)


def _check_keras_config(node: object, path: Path) -> None:
    from mnist_edge.errors import ModelLoadError

    stack = [node]
    while stack:  # iterative: a deeply nested config must not hit the recursion limit
        item = stack.pop()
        if isinstance(item, dict):
            if item.get("class_name") in CODE_LAYERS:
                raise ModelLoadError(
                    f"{path} contains a {item['class_name']} layer, which mnist-edge refuses"
                )
            module = item.get("module")
            if isinstance(module, str) and module.split(".")[0] != "keras":
                raise ModelLoadError(
                    f"{path} refers to {module}.{item.get('class_name')}, which is not part of Keras; "
                    "mnist-edge loads only built-in Keras objects"
                )
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


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
