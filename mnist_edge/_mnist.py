"""Facts about MNIST and the tutorial that many modules need, each stated once.

Everything here is a plain constant: importing this module costs nothing, so the runtime, the
exporters, the benchmarks and the CLI can all take their numbers from one place.
"""

from __future__ import annotations

#: One digit as the model sees it: 28 rows of 28 pixels.
IMAGE_SHAPE: tuple[int, int] = (28, 28)
#: Pixels in one digit (the flattened input of an MLP).
PIXELS: int = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]
#: Digits 0-9.
NUM_CLASSES: int = 10
#: uint8 pixels are divided by this before a float model sees them (the tutorial's ``x / 255.``).
PIXEL_SCALE: float = 255.0

#: The tutorial's labels, in class-index order.
CLASS_NAMES: tuple[str, ...] = (
    "Zero",
    "One",
    "Two",
    "Three",
    "Four",
    "Five",
    "Six",
    "Seven",
    "Eight",
    "Nine",
)

#: What the tutorial reports for its 30-epoch run (validation on the first 5,000 training images).
TUTORIAL_ACCURACY: dict[str, float] = {"val_accuracy": 0.9794, "test_accuracy": 0.9793}

__all__ = ["CLASS_NAMES", "IMAGE_SHAPE", "NUM_CLASSES", "PIXELS", "PIXEL_SCALE", "TUTORIAL_ACCURACY"]
