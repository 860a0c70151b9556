"""mnist-edge: take the classic Keras MNIST classifier to the edge.

Importing this package is cheap on purpose: TensorFlow, Keras and the engines are imported inside
the functions that need them, so an app that only embeds :mod:`mnist_edge.runtime` never pays for them.
"""

from mnist_edge._mnist import CLASS_NAMES
from mnist_edge.errors import (
    DataError,
    ExportError,
    InputError,
    MnistEdgeError,
    ModelLoadError,
    ParityError,
)

__version__ = "0.1.0"

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
