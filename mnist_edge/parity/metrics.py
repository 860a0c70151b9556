"""Comparing an artifact with the Keras reference: the reference's outputs, the row's metrics and the
verdict against a :class:`~mnist_edge.parity.tolerances.Tolerance`."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mnist_edge._files import sha256_file
from mnist_edge._mnist import NUM_CLASSES
from mnist_edge.errors import MnistEdgeError, ModelLoadError
from mnist_edge.evaluate import accuracy, per_class_accuracy
from mnist_edge.parity.tolerances import Tolerance

__all__ = ["Reference", "compare", "compute_reference", "judge", "reference_path"]

#: Slack for comparing float metrics against their limits (0.01 pp is one image in 10,000).
_EPS = 1e-9


@dataclass(frozen=True)
class Reference:
    """The Keras reference's outputs on the test set, computed once and shared by every artifact."""

    path: str
    sha256: str
    probs: np.ndarray  # (N, 10) float32
    preds: np.ndarray  # (N,) int64
    labels: np.ndarray  # (N,)
    accuracy: float
    per_class: np.ndarray  # (10,) recall per digit
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "sha256": self.sha256,
            "accuracy": self.accuracy,
            "images": len(self.labels),
            "seconds": self.seconds,
        }

    @classmethod
    def of(cls, path: str, sha256: str, probs: np.ndarray, labels: np.ndarray, seconds: float) -> Reference:
        """The reference for its outputs ``probs`` on images labelled ``labels``."""
        preds = probs.argmax(axis=1).astype(np.int64)
        labels = np.asarray(labels)
        return cls(
            path=path,
            sha256=sha256,
            probs=probs,
            preds=preds,
            labels=labels,
            accuracy=accuracy(labels, preds),
            per_class=per_class_accuracy(labels, preds),
            seconds=seconds,
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Reference:
        """The summary :meth:`to_dict` wrote. The per-image outputs are not part of it, so the
        arrays of a reference read back are empty: it can describe a past run, not judge a new one."""
        return cls(
            path=data["path"],
            sha256=data["sha256"],
            probs=np.empty((0, NUM_CLASSES), np.float32),
            preds=np.empty((0,), np.int64),
            labels=np.empty((0,), np.int64),
            accuracy=data["accuracy"],
            per_class=np.full(NUM_CLASSES, np.nan),
            seconds=data["seconds"],
        )


def reference_path(model: str | os.PathLike[str]) -> Path:
    """The reference model as a path, or the error that says how to get one."""
    path = Path(model)
    if not path.is_file():
        raise ModelLoadError(
            f"reference model {path} does not exist: train one with `mnist-edge train` or pass --model"
        )
    return path


def compute_reference(
    model_path: str | os.PathLike[str],
    images: np.ndarray,
    labels: np.ndarray,
) -> Reference:
    """Run the ``.keras`` reference through the runtime's Keras backend, once, on all images."""
    from mnist_edge.runtime import load

    path = reference_path(model_path)
    start = time.perf_counter()
    with load(path) as classifier:
        probs = np.asarray(classifier.predict_proba(images), dtype=np.float32)
    return Reference.of(str(path), sha256_file(path), probs, labels, time.perf_counter() - start)


def compare(reference: Reference, probs: np.ndarray) -> dict[str, Any]:
    """The row's metrics for one artifact's probabilities against the reference's."""
    n = len(reference.labels)
    if probs.shape != reference.probs.shape:
        raise MnistEdgeError(f"artifact output has shape {probs.shape}, expected {reference.probs.shape}")
    preds = probs.argmax(axis=1)
    acc = accuracy(reference.labels, preds)
    agree = int(np.count_nonzero(preds == reference.preds))
    diff = np.abs(probs.astype(np.float64) - reference.probs.astype(np.float64))
    per_class_diff = (per_class_accuracy(reference.labels, preds) - reference.per_class) * 100.0
    per_class_diff = np.nan_to_num(per_class_diff, nan=0.0)
    # The digit that suffers most: the largest drop; when none drops, the largest change.
    worst = int(np.argmin(per_class_diff)) if per_class_diff.min() < 0 else int(np.argmax(per_class_diff))
    return {
        "accuracy": acc,
        "delta_pp": (acc - reference.accuracy) * 100.0,
        "agreement_pct": 100.0 * agree / n if n else 100.0,
        "disagreements": n - agree,
        "max_prob_diff": float(diff.max()) if diff.size else 0.0,
        "mean_prob_diff": float(diff.mean()) if diff.size else 0.0,
        "worst_class": worst,
        "worst_class_diff_pp": float(per_class_diff[worst]),
    }


def judge(metrics: Mapping[str, Any], tolerance: Tolerance, precision: str) -> tuple[str, ...]:
    """The reasons a row fails its tolerance, each naming the metric, its value and the limit."""
    reasons = []
    delta = metrics["delta_pp"]
    if abs(delta) > tolerance.max_acc_diff_pp + _EPS:
        reasons.append(
            f"accuracy differs from the reference by {delta:+.2f} pp "
            f"(limit ±{tolerance.max_acc_diff_pp:g} pp for {precision})"
        )
    agreement = metrics["agreement_pct"]
    if agreement < tolerance.min_agreement_pct - _EPS:
        reasons.append(
            f"top-1 agreement {agreement:.2f} % ({metrics['disagreements']} images disagree) "
            f"is below {tolerance.min_agreement_pct:g} % for {precision}"
        )
    max_diff = metrics["max_prob_diff"]
    if tolerance.max_prob_diff is not None and max_diff > tolerance.max_prob_diff:
        reasons.append(f"max prob diff {max_diff:.2e} exceeds {tolerance.max_prob_diff:g} for {precision}")
    return tuple(reasons)
