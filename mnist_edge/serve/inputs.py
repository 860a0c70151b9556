"""``POST /predict`` bodies -> one MNIST digit, and its answer as JSON.

A picture goes through :func:`mnist_edge.images.load_image`, the pipeline ``mnist-edge predict``
uses, so a drawing sent from the page and the same file given to the CLI get the same answer.
Pixels sent as JSON are MNIST's own look already (white on black, 0..255) and are only checked.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mnist_edge._mnist import IMAGE_SHAPE, PIXELS
from mnist_edge.serve.oip import ApiError, strict_json

__all__ = ["PICTURE_TYPES", "answer", "picture_digit", "pixels_digit"]

#: Content types of the pictures /predict reads.
PICTURE_TYPES = ("image/png", "image/jpeg")


def picture_digit(body: bytes, invert: bool | None) -> np.ndarray:
    """A PNG/JPEG upload as the (28, 28) uint8 digit the model sees; a bad picture is a 422."""
    from mnist_edge.images import load_image

    return load_image(body, invert=invert)


def pixels_digit(body: bytes) -> np.ndarray:
    """``{"pixels": ...}``: 28x28 rows or 784 values, numbers 0..255 (non-integers are rounded)."""
    document = strict_json(body)
    if not isinstance(document, dict) or "pixels" not in document:
        raise ApiError(400, 'send a JSON object {"pixels": [...]}: 28 rows of 28 values, or 784 values')
    try:
        pixels = np.asarray(document["pixels"])
    except (ValueError, TypeError, OverflowError):  # ragged rows, numbers past 64 bits
        pixels = np.empty(0, dtype=object)
    if pixels.dtype.kind not in "iuf":  # strings, booleans, objects, huge integers
        raise ApiError(422, "'pixels' must be a rectangular array of numbers 0..255")
    if pixels.shape not in (IMAGE_SHAPE, (PIXELS,)):
        raise ApiError(422, f"'pixels' has shape {list(pixels.shape)}: send 28 rows of 28 values, or 784")
    if not np.isfinite(pixels).all():
        raise ApiError(422, "'pixels' holds NaN or infinity: send numbers 0..255")
    low, high = float(pixels.min()), float(pixels.max())
    if low < 0 or high > 255:
        raise ApiError(422, f"'pixels' must be 0..255 (white ink on black), got {low:g}..{high:g}")
    return np.rint(pixels).astype(np.uint8).reshape(IMAGE_SHAPE)


def answer(digit: np.ndarray, probabilities: np.ndarray, class_names: tuple[str, ...]) -> dict[str, Any]:
    """The /predict response: label, name, the ten probabilities and the 28x28 the model saw
    (numpy arrays, for ``orjson.OPT_SERIALIZE_NUMPY``)."""
    label = int(probabilities.argmax())
    return {
        "label": label,
        "name": class_names[label],
        "probabilities": np.ascontiguousarray(probabilities),
        "image": np.ascontiguousarray(digit),
    }
