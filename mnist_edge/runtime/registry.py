"""Which backend reads which file: file suffix -> backend class, imported only when asked for.

The table holds ``"module:Class"`` strings, so neither importing this module nor importing
:mod:`~mnist_edge.runtime.base` loads a backend; a class is imported the first time a file of
its kind (or its name) is asked for. Adding an engine is one line here.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from mnist_edge.errors import ModelLoadError

if TYPE_CHECKING:
    from mnist_edge.runtime.base import Backend

__all__ = ["BACKENDS", "backend_for"]

_TABLE: dict[str, str] = {
    ".tflite": "mnist_edge.runtime.litert:LiteRTBackend",
    ".onnx": "mnist_edge.runtime.onnxrt:OnnxBackend",
    ".keras": "mnist_edge.runtime.keras_ref:KerasBackend",
}


class _Backends(Mapping[str, "type[Backend]"]):
    """File suffix -> backend class, each resolved on first use."""

    def __init__(self, table: dict[str, str]) -> None:
        self._table = table

    def __getitem__(self, suffix: str) -> type[Backend]:
        module, _, name = self._table[suffix].partition(":")
        return getattr(importlib.import_module(module), name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)

    def __repr__(self) -> str:
        return f"BACKENDS({self._table!r})"


#: File suffix -> backend class. One line per engine, in ``_TABLE``.
BACKENDS: Mapping[str, type[Backend]] = _Backends(_TABLE)


def backend_for(path: str | os.PathLike[str], backend: str | None = None) -> type[Backend]:
    """The backend class for ``path``: by name if ``backend`` is given, else by file suffix."""
    if backend is not None:
        # A name can be any backend's: this imports each backend module (not its engine).
        classes = list(dict.fromkeys(BACKENDS.values()))
        wanted = backend.lower()
        for cls in classes:
            if wanted == cls.name or wanted in cls.aliases:
                return cls
        names = ", ".join(sorted({cls.name for cls in classes} | {a for c in classes for a in c.aliases}))
        raise ModelLoadError(f"unknown backend {backend!r}: choose one of {names}")
    suffix = Path(path).suffix.lower()
    if suffix not in _TABLE:
        known = ", ".join(sorted(_TABLE))
        raise ModelLoadError(
            f"{path} has suffix {suffix or '(none)'!r}; the runtime reads {known} files "
            "(or pass backend= to say which engine to use)"
        )
    return BACKENDS[suffix]
