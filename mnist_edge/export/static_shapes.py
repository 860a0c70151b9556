"""The Keras graph both converters see: every reshape with a constant shape.

Keras's ``Flatten`` and ``Reshape`` read the batch size at run time (``reshape(x, (shape(x)[0],
...))``). The TFLite converter turns that into SHAPE, STRIDED_SLICE and PACK operators outside the
XNNPACK delegate, whose output shape depends on a tensor's value (so LiteRT plans memory again
inside ``invoke``); tf2onnx turns it into Shape, Gather, Cast, Slice and Concat wherever it cannot
fold the shape (after a convolution's layout transpose, for instance). A reshape to
``(-1, *target)`` computes the same numbers with one constant: identical outputs, a shorter
batch-1 invoke for TFLite (README has the figure), and an ONNX graph that keeps to the operators a
classifier needs, which the runtime's structural pre-check holds it to.

:func:`static_shapes` rebuilds the model with those layers swapped; every other layer is shared,
not copied, so the converters read the trained weights themselves.
"""

from __future__ import annotations

import math
from typing import Any

from mnist_edge._heavy import keras
from mnist_edge.export._base import INPUT_NAME

__all__ = ["static_shapes"]


def static_shapes(model: Any) -> Any:
    """``model`` with each ``Flatten`` and ``Reshape`` replaced by a reshape to ``(-1, *shape)``
    (shape read from the layer's static output), the input named ``pixels``; a model without
    either layer is returned as it is."""
    k = keras()
    swap = (k.layers.Flatten, k.layers.Reshape)
    if not any(isinstance(layer, swap) for layer in _layers(model)):
        return model
    reshape = _constant_reshape_class()

    def clone(layer: Any) -> Any:
        if isinstance(layer, swap):
            shape = tuple(int(d) for d in layer.output.shape[1:])
            return reshape(shape, name=layer.name)
        return layer

    per_image = tuple(int(d) for d in model.inputs[0].shape[1:])
    inputs = k.Input(shape=per_image, name=INPUT_NAME)
    return k.models.clone_model(model, input_tensors=inputs, clone_function=clone)


def _layers(model: Any) -> list[Any]:
    found = []
    for layer in getattr(model, "layers", []):
        found.append(layer)
        found.extend(_layers(layer))
    return found


def _constant_reshape_class() -> type:
    k = keras()

    class ConstantReshape(k.layers.Layer):  # type: ignore[misc,name-defined]
        """``reshape(x, (-1, *shape))``: only ever converted, never saved."""

        def __init__(self, shape: tuple[int, ...], **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.shape = shape

        def call(self, x: Any) -> Any:
            return k.ops.reshape(x, (-1, *self.shape))

        def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
            if math.prod(self.shape) != math.prod(d or 1 for d in input_shape[1:]):
                raise ValueError(f"cannot reshape {input_shape} to (-1, {self.shape})")
            return (input_shape[0], *self.shape)

    return ConstantReshape
