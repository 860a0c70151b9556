"""What a classifier says about one image: a label, its class name and its probability."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from mnist_edge.errors import InputError

__all__ = ["Prediction", "ranked"]


@dataclass(frozen=True)
class Prediction:
    """One candidate class for one image."""

    label: int
    name: str
    probability: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def ranked(probabilities: np.ndarray, class_names: tuple[str, ...], k: int = 1) -> list[list[Prediction]]:
    """The ``k`` most likely classes of each row of ``probabilities`` ``(N, classes)``, most likely
    first; equal probabilities keep the lower label first, as ``argmax`` does."""
    classes = len(class_names)
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= classes:
        raise InputError(f"k must be an integer from 1 to {classes} (the number of classes), got {k!r}")
    result = []
    for row in probabilities:
        # A stable sort of the negated row: ties keep ascending label order.
        order = np.argsort(-row, kind="stable")[:k]
        result.append([Prediction(int(i), class_names[i], float(row[i])) for i in order])
    return result
