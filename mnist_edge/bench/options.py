"""What a benchmark run is asked to do, read and checked once before anything is measured.

:class:`BenchOptions` holds the checked budget (threads, batch sizes, time and calls per
measurement); the functions below read the forms a person types (``"2s"``, ``"1,32,1024"``) and
the artifact list. Every check raises :class:`~mnist_edge.errors.MnistEdgeError` with a message
that says what to write instead.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mnist_edge.errors import MnistEdgeError, ModelLoadError
from mnist_edge.manifest import ARTIFACT_SUFFIXES

__all__ = [
    "DEFAULT_BATCH_SIZES",
    "DEFAULT_MIN_CALLS",
    "DEFAULT_MIN_TIME",
    "MAX_BATCH_SIZE",
    "BenchOptions",
    "check_artifacts",
    "check_budget",
    "parse_batch_sizes",
    "parse_duration",
]

DEFAULT_BATCH_SIZES = (1, 32, 1024)
DEFAULT_MIN_TIME = 2.0
DEFAULT_MIN_CALLS = 100
#: Larger batches are refused: the benchmark would hold tens of MB per call for no new insight.
MAX_BATCH_SIZE = 65536

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|min)?\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"ms": 1e-3, "s": 1.0, "m": 60.0, "min": 60.0}


def parse_duration(text: str) -> float:
    """``"2s"``, ``"500ms"``, ``"1.5"`` (seconds), ``"1m"`` -> seconds; anything else is an error."""
    match = _DURATION.match(str(text))
    if not match:
        raise MnistEdgeError(f"cannot read {text!r} as a duration: write e.g. 2s, 500ms or 0.5")
    seconds = float(match.group(1)) * _UNIT_SECONDS[(match.group(2) or "s").lower()]
    if not seconds > 0:
        raise MnistEdgeError(f"duration {text!r} must be positive")
    return seconds


def parse_batch_sizes(text: str | Sequence[int]) -> tuple[int, ...]:
    """``"1,32,1024"`` -> ``(1, 32, 1024)``: sorted, unique, each >= 1; batch 1 is always included."""
    parts = text.split(",") if isinstance(text, str) else list(text)
    sizes = set()
    for part in parts:
        try:
            size = int(str(part).strip())
        except ValueError:
            raise MnistEdgeError(f"batch size {str(part).strip()!r} is not a whole number") from None
        if size < 1:
            raise MnistEdgeError(f"batch size must be at least 1, got {size}")
        if size > MAX_BATCH_SIZE:
            raise MnistEdgeError(f"batch size {size} is over the limit of {MAX_BATCH_SIZE}")
        sizes.add(size)
    if not sizes:
        raise MnistEdgeError("give at least one batch size, e.g. 1,32,1024")
    return tuple(sorted(sizes | {1}))


def check_artifacts(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """The artifacts as paths, each an existing .tflite/.onnx file, duplicates dropped; else an error."""
    out: list[Path] = []
    for p in paths:
        path = Path(p)
        if path.suffix.lower() not in ARTIFACT_SUFFIXES:
            raise ModelLoadError(
                f"{path} is not an exported artifact (suffix {path.suffix or '(none)'!r}); benchmark "
                f"takes {', '.join(ARTIFACT_SUFFIXES)} files (the Keras model goes in --model)"
            )
        if not path.is_file():
            raise ModelLoadError(f"artifact {path} does not exist; export one with `mnist-edge export`")
        if path.resolve() not in {q.resolve() for q in out}:
            out.append(path)
    return out


def check_budget(min_time: float, min_calls: int) -> None:
    """The part of the options that the timing loop needs too: at least one call, positive time."""
    if not math.isfinite(min_time) or min_time <= 0:
        raise MnistEdgeError(f"min_time must be a positive number of seconds, got {min_time!r}")
    if min_calls < 1:
        raise MnistEdgeError(f"min_calls must be at least 1, got {min_calls}")


@dataclass(frozen=True)
class BenchOptions:
    """How every measurement of one run is made. Build it with :meth:`checked`, which reads and
    checks each value once; the measuring functions then trust it."""

    threads: int = 1
    batch_sizes: tuple[int, ...] = DEFAULT_BATCH_SIZES
    min_time: float = DEFAULT_MIN_TIME
    min_calls: int = DEFAULT_MIN_CALLS

    @classmethod
    def checked(
        cls,
        *,
        threads: int = 1,
        batch_sizes: str | Sequence[int] = DEFAULT_BATCH_SIZES,
        min_time: float | str = DEFAULT_MIN_TIME,
        min_calls: int = DEFAULT_MIN_CALLS,
    ) -> BenchOptions:
        """The options with batch sizes sorted (batch 1 included) and a typed duration read; any
        value out of range is a :class:`~mnist_edge.errors.MnistEdgeError`."""
        sizes = parse_batch_sizes(batch_sizes)
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise MnistEdgeError(f"threads must be a positive integer, got {threads!r}")
        seconds = parse_duration(min_time) if isinstance(min_time, str) else float(min_time)
        check_budget(seconds, min_calls)
        return cls(threads=threads, batch_sizes=sizes, min_time=seconds, min_calls=min_calls)

    @property
    def largest_batch(self) -> int:
        return self.batch_sizes[-1]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "batch_sizes": list(self.batch_sizes)}
