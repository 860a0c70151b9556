"""Tiny Keras classifiers, one per family of supported layers, as a user would write them.

Between them they use every layer of ``mnist_edge.model.SUPPORTED_LAYERS``, both input shapes
(28, 28) and (28, 28, 1) and the flat (784,), softmax and logits outputs, Sequential and
functional models. ``train_tiny`` fits one for a few hundred steps: enough for the exports to have
a model worth agreeing with, little enough for the test suite.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def dense_bn_dropout() -> Any:
    """Flat (784,) input; Dense with BatchNormalization, Dropout, ReLU6 and LeakyReLU; softmax."""
    import keras
    from keras import layers

    return keras.Sequential(
        [
            keras.Input((784,)),
            layers.Dense(48),
            layers.BatchNormalization(momentum=0.9),
            layers.ReLU(),
            layers.Dropout(0.2),
            layers.Dense(32, activation="relu6"),
            layers.Dense(24),
            layers.LeakyReLU(0.1),
            layers.Dense(10, activation="softmax"),
        ],
        name="dense_bn_dropout",
    )


def conv_pool_logits() -> Any:
    """(28, 28, 1) input; Conv2D, MaxPooling2D, ReLU6, AveragePooling2D, Flatten; logits out."""
    import keras
    from keras import layers

    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(8, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(12, 3, padding="same"),
            layers.ReLU(max_value=6.0),
            layers.AveragePooling2D(2),
            layers.Flatten(),
            layers.Dense(10),
        ],
        name="conv_pool_logits",
    )


def depthwise_separable() -> Any:
    """(28, 28) input reshaped; strided Conv2D, DepthwiseConv2D and SeparableConv2D, each
    batch-normalised, LeakyReLU and a Softmax layer after the logits."""
    import keras
    from keras import layers

    def normalised(*stack: Any, activation: Any = None) -> list[Any]:
        return [*stack, layers.BatchNormalization(momentum=0.9), activation or layers.ReLU()]

    return keras.Sequential(
        [
            keras.Input((28, 28)),
            layers.Reshape((28, 28, 1)),
            *normalised(layers.Conv2D(32, 3, strides=2, padding="same", use_bias=False)),
            *normalised(layers.DepthwiseConv2D(3, strides=2, padding="same", use_bias=False)),
            *normalised(
                layers.SeparableConv2D(64, 3, strides=2, padding="same", use_bias=False),
                activation=layers.LeakyReLU(0.1),
            ),
            layers.Flatten(),
            layers.Dense(10),
            layers.Softmax(),
        ],
        name="depthwise_separable",
    )


def residual() -> Any:
    """A functional model with a residual block (Conv2D, BatchNormalization, Add, Activation) and
    a GlobalAveragePooling2D head.

    32 channels, not fewer: the int8 files of a narrower global-pooled net trained this briefly
    fell below the parity gate's int8 agreement (the pooled features share one int8 scale).
    """
    import keras
    from keras import layers

    inputs = keras.Input((28, 28, 1))
    x = layers.Conv2D(32, 3, strides=2, padding="same", use_bias=False)(inputs)
    x = layers.BatchNormalization(momentum=0.9)(x)
    x = layers.Activation("relu")(x)
    y = layers.Conv2D(32, 3, padding="same", use_bias=False)(x)
    y = layers.BatchNormalization(momentum=0.9)(y)
    x = layers.Activation("relu")(layers.Add()([x, y]))
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(64, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.2)(x)
    outputs = layers.Dense(10, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="residual")


def _issue_cnn(channel_axis: bool) -> Any:
    """The small CNN a user first tried: ``(28, 28) -> Reshape`` (its ONNX files were refused by
    our own pre-check) or ``(28, 28, 1)`` (refused by export)."""
    import keras
    from keras import layers

    if channel_axis:
        head = [keras.Input((28, 28, 1))]
    else:
        head = [keras.Input((28, 28)), layers.Reshape((28, 28, 1))]
    return keras.Sequential(
        [
            *head,
            layers.Conv2D(8, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(16, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Flatten(),
            layers.Dense(10, activation="softmax"),
        ],
        name="issue_cnn_28x28x1" if channel_axis else "issue_cnn_28x28",
    )


def all_conv_layers() -> Any:
    """Every convolutional layer family in one functional graph: the CNN file the fuzz tests
    mutate (each operator a kernel can be handed nonsense through)."""
    import keras
    from keras import layers

    inputs = keras.Input((28, 28))
    x = layers.Reshape((28, 28, 1))(inputs)
    x = layers.Conv2D(8, 3, strides=2, activation="relu6")(x)
    x = layers.DepthwiseConv2D(3, padding="same")(x)
    x = layers.BatchNormalization(momentum=0.9)(x)
    x = layers.ReLU()(x)
    y = layers.SeparableConv2D(8, 3, padding="same")(x)
    y = layers.LeakyReLU(0.1)(y)
    x = layers.Add()([x, y])
    x = layers.MaxPooling2D(2, padding="same")(x)
    x = layers.AveragePooling2D(2, padding="same")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(10)(x)
    return keras.Model(inputs, layers.Softmax()(x), name="all_conv_layers")


@dataclass(frozen=True)
class Family:
    build: Callable[[], Any]
    #: Epochs over the training slice: the strided and global-pooled nets learn slower.
    epochs: int = 1


FAMILIES: dict[str, Family] = {
    "dense_bn_dropout": Family(dense_bn_dropout),
    "conv_pool_logits": Family(conv_pool_logits, epochs=2),
    "depthwise_separable": Family(depthwise_separable, epochs=2),
    "residual": Family(residual, epochs=2),
    "issue_cnn_28x28": Family(lambda: _issue_cnn(channel_axis=False)),
    "issue_cnn_28x28x1": Family(lambda: _issue_cnn(channel_axis=True)),
}


def train_tiny(
    model: Any, mnist: Any, path: Path, *, epochs: int = 1, images: int = 8000, seed: int = 0
) -> Path:
    """Fit ``model`` for ``epochs`` on the last ``images`` training images (Adam, batch 32) and
    save it to ``path``."""
    import keras

    keras.utils.set_random_seed(seed)
    shape = tuple(model.inputs[0].shape[1:])
    x = (mnist.x_train[-images:] / 255.0).astype("float32").reshape(images, *shape)
    model.compile(optimizer=keras.optimizers.Adam(0.003), loss=_loss(model), metrics=["accuracy"])
    model.fit(x, mnist.y_train[-images:], epochs=epochs, batch_size=32, verbose=0)
    model.save(path)
    return path


def _loss(model: Any) -> Any:
    import keras

    from mnist_edge.model import output_kind

    logits = output_kind(model) == "logits"
    return keras.losses.SparseCategoricalCrossentropy(from_logits=logits)
