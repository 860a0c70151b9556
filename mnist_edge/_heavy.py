"""Lazy imports of the heavy frameworks, quietened once in one place.

Nothing here runs at import time: ``import mnist_edge`` and ``import mnist_edge.runtime`` must not
pay for TensorFlow. Call these from inside the functions that need the frameworks.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any


def tensorflow_installed() -> bool:
    """Whether TensorFlow can be imported (the ``train`` extra), found without importing it. An import
    hook that refuses it counts as not installed."""
    try:
        return importlib.util.find_spec("tensorflow") is not None
    except (ImportError, ValueError):
        return False


def tensorflow() -> Any:
    # TF's C++ logging (CUDA probes, oneDNN notes) is noise for a CPU-only CLI user.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return tf


def keras() -> Any:
    tensorflow()
    import keras

    return keras
