"""mnist-edge: take the classic Keras MNIST classifier to the edge.

Importing this package is cheap on purpose: TensorFlow, Keras and the engines are imported inside
the functions that need them, so an app that only embeds :mod:`mnist_edge.runtime` never pays for them.
"""

from mnist_edge.errors import (
    DataError,
    ExportError,
    InputError,
    MnistEdgeError,
    ModelLoadError,
    ParityError,
)

__version__ = "0.1.0"

#: The tutorial's labels, in class-index order. The single source of truth for class names.
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

__all__ = [
    "CLASS_NAMES",
    "DataError",
    "ExportError",
    "InputError",
    "MnistEdgeError",
    "ModelLoadError",
    "ParityError",
    "__version__",
]
