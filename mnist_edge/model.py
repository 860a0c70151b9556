"""The models: the tutorial's MLP, a small edge CNN, safe loading, and what export accepts.

:data:`ARCHITECTURES` is the one table of the networks ``mnist-edge train --arch`` builds: ``mlp``
is the tutorial's, layer for layer; ``cnn`` a small convolutional network designed for the edge.
:func:`check_exportable` is the other direction: any Keras classifier of 28x28 digits built from
:data:`SUPPORTED_LAYERS` goes through export, runtime and parity, and a layer outside that set is
refused by name before a converter sees it (a converter would write a file our own runtime's
structural pre-checks then refuse).
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnist_edge._mnist import IMAGE_SHAPE, NUM_CLASSES, PIXELS

if TYPE_CHECKING:
    import keras

#: Parameter count of the tutorial's model: 784*300+300 + 300*100+100 + 100*10+10.
PARAM_COUNT = 266_610
#: Parameter count of the edge CNN (batch-normalisation statistics included).
CNN_PARAM_COUNT = 34_138
INPUT_SHAPE = IMAGE_SHAPE
#: Per-image input shapes a classifier may take: the image, its pixels in a row, or the image with
#: one channel (the usual input of a convolutional network).
INPUT_SHAPES: tuple[tuple[int, ...], ...] = (IMAGE_SHAPE, (PIXELS,), (*IMAGE_SHAPE, 1))
DEFAULT_ARCH = "mlp"


def build_model(arch: str = DEFAULT_ARCH) -> keras.Model:
    """The uncompiled network ``arch`` names in :data:`ARCHITECTURES`."""
    from mnist_edge.errors import MnistEdgeError

    try:
        builder = ARCHITECTURES[arch]
    except KeyError:
        raise MnistEdgeError(f"unknown --arch {arch!r}: use one of {', '.join(ARCHITECTURES)}") from None
    return builder()


def build_mlp() -> keras.Model:
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


def build_cnn() -> keras.Model:
    """The edge CNN: three strided convolutions (16, 32, 64 filters; batch-normalised, ReLU) and
    one Dense softmax, 34,138 parameters.

    Built for batch-1 latency on a CPU: strides shrink the image (28 -> 14 -> 7 -> 4) where pooling
    layers would add operators, and batch normalisation and ReLU fold into the convolutions at
    export, so a float TFLite file runs seven operators: two constant reshapes, three convolutions,
    one matrix product and the softmax. It takes the same (28, 28) input as the MLP. Batch
    normalisation keeps its running statistics with momentum 0.9 rather than Keras's 0.99: they
    settle within tens of steps, so a short run (``--quick``, the tests) is evaluated with
    statistics of its own weights.
    """
    from mnist_edge._heavy import keras as _keras

    keras = _keras()
    layers = keras.layers

    def block(filters: int, kernel: int) -> list[Any]:
        name = f"conv_{filters}"
        return [
            layers.Conv2D(filters, kernel, strides=2, padding="same", use_bias=False, name=name),
            layers.BatchNormalization(momentum=0.9, name=f"{name}_bn"),
            layers.ReLU(name=f"{name}_relu"),
        ]

    return keras.Sequential(
        [
            keras.Input(shape=INPUT_SHAPE, name="pixels"),
            layers.Reshape((*INPUT_SHAPE, 1), name="image"),
            *block(16, 5),
            *block(32, 3),
            *block(64, 3),
            layers.Flatten(name="flatten"),
            layers.Dense(NUM_CLASSES, activation="softmax", name="probabilities"),
        ],
        name="mnist_cnn",
    )


#: ``--arch`` name -> builder of the uncompiled network; train.RECIPES holds how each is trained.
ARCHITECTURES: dict[str, Callable[[], keras.Model]] = {"mlp": build_mlp, "cnn": build_cnn}


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
        in_shape = image_shape(model)
        out_shape = tuple(model.outputs[0].shape)[1:]
    except (AttributeError, IndexError, TypeError):
        raise ModelLoadError(f"{where} has no defined input/output shape") from None
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ModelLoadError(
            f"{where} has {len(model.inputs)} inputs and {len(model.outputs)} outputs; "
            "an MNIST classifier has one of each"
        )
    if in_shape not in INPUT_SHAPES or out_shape != (NUM_CLASSES,):
        others = " or ".join(str(s) for s in INPUT_SHAPES[1:])
        raise ModelLoadError(
            f"{where} maps {in_shape} -> {out_shape}; an MNIST classifier maps {INPUT_SHAPES[0]} -> (10,) "
            f"(its input may also be {others})"
        )


def image_shape(model: keras.Model) -> tuple[int | None, ...]:
    """The model's per-image input shape: (28, 28), (784,) or (28, 28, 1)."""
    return tuple(model.inputs[0].shape)[1:]


def as_model_input(model: keras.Model, images: Any) -> Any:
    """A batch of (N, 28, 28) images in the shape the model takes (a view where possible)."""
    return images.reshape(len(images), *image_shape(model))


# --------------------------------------------------------------------------- what export accepts


def _activation(layer: Any) -> str | None:
    activation = getattr(layer, "activation", None)
    name = getattr(activation, "__name__", None) if activation is not None else "linear"
    return None if name in ACTIVATIONS else f"activation {name!r}"


def _channels_last(layer: Any) -> str | None:
    data_format = getattr(layer, "data_format", "channels_last")
    return None if data_format == "channels_last" else f"data_format {data_format!r}"


def _no_dilation(layer: Any) -> str | None:
    dilation = tuple(getattr(layer, "dilation_rate", (1, 1)))
    groups = getattr(layer, "groups", 1)
    if any(d != 1 for d in dilation):
        return f"dilation_rate {dilation}"
    return None if groups == 1 else f"groups={groups}"


def _dense(layer: Any) -> str | None:
    rank = len(layer.input.shape)
    return f"a rank-{rank} input (Dense takes a flat (batch, features) one)" if rank != 2 else None


def _relu(layer: Any) -> str | None:
    max_value = layer.max_value
    if max_value is not None and float(max_value) != 6.0:
        return f"max_value={max_value} (ReLU and ReLU6 are supported)"
    if float(layer.negative_slope) or float(layer.threshold):
        return "negative_slope or threshold (use LeakyReLU)"
    return None


def _last_axis(layer: Any) -> str | None:
    axis = getattr(layer, "axis", -1)
    axes = list(axis) if isinstance(axis, (list, tuple)) else [axis]
    rank = len(layer.input.shape)
    return None if [a % rank for a in axes] == [rank - 1] else f"axis {axis} (only the last axis)"


def _all(*checks: Callable[[Any], str | None]) -> Callable[[Any], str | None]:
    def check(layer: Any) -> str | None:
        return next((problem for problem in (c(layer) for c in checks) if problem), None)

    return check


def _fine(layer: Any) -> str | None:
    return None


#: Activations a layer may carry (``Dense(..., activation=...)``, ``Activation(...)``).
ACTIVATIONS = frozenset({"linear", "relu", "relu6", "leaky_relu", "softmax"})

#: Layer class -> a check of its options (None: fine, else what is not supported). These layers
#: become operators that both converters emit, both engines run in every precision and both
#: structural pre-checks accept; ``tests/test_layer_families.py`` exports each family.
SUPPORTED_LAYERS: dict[str, Callable[[Any], str | None]] = {
    "InputLayer": _fine,
    "Dense": _all(_activation, _dense),
    "Conv2D": _all(_activation, _channels_last, _no_dilation),
    "DepthwiseConv2D": _all(_activation, _channels_last, _no_dilation),
    "SeparableConv2D": _all(_activation, _channels_last, _no_dilation),
    "MaxPooling2D": _channels_last,
    "AveragePooling2D": _channels_last,
    "GlobalAveragePooling2D": _channels_last,
    "BatchNormalization": _last_axis,
    "Dropout": _fine,
    "Flatten": _channels_last,
    "Reshape": _fine,
    "ReLU": _relu,
    "LeakyReLU": _fine,
    "Activation": _activation,
    "Add": _fine,
    "Softmax": _last_axis,
}
#: Models that hold layers: their layers are checked instead.
CONTAINERS = frozenset({"Sequential", "Functional"})


def check_exportable(model: keras.Model, where: object = "model") -> None:
    """Raise :class:`~mnist_edge.errors.ExportError` naming the first layer export cannot take:
    a class outside :data:`SUPPORTED_LAYERS`, or an option of a supported one that is not."""
    from mnist_edge.errors import ExportError

    supported = ", ".join(SUPPORTED_LAYERS)
    for layer in _all_layers(model):
        kind = type(layer).__name__
        if kind in CONTAINERS:
            continue
        check = SUPPORTED_LAYERS.get(kind)
        if check is None:
            raise ExportError(
                f"{where}: layer {layer.name!r} is a {kind}, which mnist-edge does not export; "
                f"supported layers: {supported}"
            )
        problem = check(layer)
        if problem:
            raise ExportError(
                f"{where}: layer {layer.name!r} ({kind}) uses {problem}, which mnist-edge does not "
                "export; rebuild the model without it"
            )


#: Layers that pass values through without changing what the output means.
_PASS_THROUGH = frozenset({"Dropout", "Flatten", "Reshape"})


def output_kind(model: keras.Model) -> str:
    """``"probabilities"`` when the model ends in a softmax (as a layer or an activation), else
    ``"logits"`` (the runtime then applies the softmax)."""
    layer = _producer(model.outputs[0])
    while layer is not None:
        kind = type(layer).__name__
        if kind in CONTAINERS:
            layer = _producer(layer.outputs[0])
        elif kind in _PASS_THROUGH:
            layer = _producer(layer.input)
        else:
            break
    if layer is None:
        return "logits"
    if type(layer).__name__ == "Softmax":
        return "probabilities"
    activation = getattr(layer, "activation", None)
    return "probabilities" if getattr(activation, "__name__", None) == "softmax" else "logits"


def _producer(tensor: Any) -> Any:
    history = getattr(tensor, "_keras_history", None)
    return history[0] if history else None


def _all_layers(model: keras.Model) -> list[object]:
    layers = []
    for layer in getattr(model, "layers", []):
        layers.append(layer)
        if hasattr(layer, "layers"):
            layers.extend(_all_layers(layer))
    return layers
