"""Turn files from outside into MNIST input: a picture becomes a 28x28 digit the way MNIST made them.

A photo, a scan or a canvas drawing goes through :func:`fit_digit`: the paper's lighting is divided
out, noise, ruled lines and specks are dropped, the strokes are kept, and the digit is fitted into
MNIST's 20x20 box with its centre of mass at the centre of the 28x28 field (steps in
:mod:`~mnist_edge.images.steps`). :func:`load_image` returns exactly what the model sees.
Used by ``mnist-edge predict`` and ``examples/embed.py``; needs numpy and Pillow, never TensorFlow
(and nothing imports this package from :mod:`mnist_edge.runtime`).
"""

from __future__ import annotations

from mnist_edge.images.files import (
    IMAGE_SUFFIXES,
    MAX_FILE_BYTES,
    MAX_IMAGE_PIXELS,
    load_image,
    load_input,
    load_npy,
    read_picture,
    save_digit,
    save_digits,
)
from mnist_edge.images.fit import BOX, fit_digit, ink_map

__all__ = [
    "BOX",
    "IMAGE_SUFFIXES",
    "MAX_FILE_BYTES",
    "MAX_IMAGE_PIXELS",
    "fit_digit",
    "ink_map",
    "load_image",
    "load_input",
    "load_npy",
    "read_picture",
    "save_digit",
    "save_digits",
]
