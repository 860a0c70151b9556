"""Lazy imports of the heavy frameworks, quietened once in one place.

Nothing here runs at import time: ``import mnist_edge`` and ``import mnist_edge.runtime`` must not
pay for TensorFlow. Call these from inside the functions that need the frameworks.

The runtime-only install (``pip install mnist-edge``, no extras) has none of them: asking for one
then raises :class:`~mnist_edge.errors.MissingDependencyError`, which names the extra to install
(the CLI prints it as one line and exits 2), instead of a ``ModuleNotFoundError`` traceback.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from mnist_edge._text import first_line
from mnist_edge.errors import MissingDependencyError

#: The extra that brings the training stack (TensorFlow, Keras, tf2onnx, matplotlib).
TRAIN_EXTRA = "train"


def tensorflow() -> Any:
    from mnist_edge._quiet import quiet_tensorflow_logs

    quiet_tensorflow_logs()
    return _import("tensorflow", "TensorFlow")


def keras() -> Any:
    tensorflow()
    return _import("keras", "Keras")


def tf2onnx() -> Any:
    tensorflow()
    return _import("tf2onnx", "tf2onnx")


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (no display needed)."""
    matplotlib = _import("matplotlib", "matplotlib")
    matplotlib.use("Agg")
    return _import("matplotlib.pyplot", "matplotlib")


def tensorflow_installed() -> bool:
    """Whether TensorFlow can be imported (the ``train`` extra), found without importing it. An import
    hook that refuses it counts as not installed."""
    return _installed("tensorflow")


def require(module: str, package: str, *, what: str = "this", instead: str = "") -> None:
    """Raise :class:`MissingDependencyError` now if ``module`` is not installed, without importing it:
    for commands that would otherwise find out only after some work. ``instead``: what else the
    user can do ("pass --no-keras")."""
    if not _installed(module):
        raise MissingDependencyError(package, TRAIN_EXTRA, what=what, instead=instead)


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _import(module: str, package: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        missing = (
            isinstance(exc, ModuleNotFoundError) and (exc.name or "").split(".")[0] == module.split(".")[0]
        )
        # Anything else (a broken install, a missing shared library) is named, in one line.
        detail = "" if missing else f" (importing it failed: {first_line(exc)})"
        raise MissingDependencyError(package, TRAIN_EXTRA, detail=detail) from None


__all__ = ["TRAIN_EXTRA", "keras", "pyplot", "require", "tensorflow", "tensorflow_installed", "tf2onnx"]
