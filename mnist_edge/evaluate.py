"""Classification metrics in plain numpy, so verify, train and the report compute them one way."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mnist_edge._mnist import CLASS_NAMES, NUM_CLASSES


@dataclass(frozen=True)
class ClassMetrics:
    name: str
    precision: float
    recall: float
    f1: float
    support: int


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Rows are true labels, columns predicted labels."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    return np.bincount(y_true * num_classes + y_pred, minlength=num_classes**2).reshape(
        num_classes, num_classes
    )


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    y_true = np.asarray(y_true)
    return float(np.mean(y_true == np.asarray(y_pred))) if y_true.size else 0.0


def cross_entropy(y_true: np.ndarray, probs: np.ndarray, eps: float = 1e-7) -> float:
    """Sparse categorical cross-entropy, clipped as Keras clips it; works on uncompiled models."""
    picked = np.asarray(probs, dtype=np.float64)[np.arange(len(y_true)), np.asarray(y_true, dtype=np.int64)]
    return float(-np.mean(np.log(np.clip(picked, eps, 1 - eps)))) if len(y_true) else 0.0


def per_class_accuracy(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Recall of each class: the share of its images labelled correctly (NaN for absent classes)."""
    cm = confusion_matrix(y_true, y_pred, num_classes)
    support = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(cm) / support, np.nan)


def per_class_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, class_names: tuple[str, ...] = CLASS_NAMES
) -> list[ClassMetrics]:
    cm = confusion_matrix(y_true, y_pred, len(class_names))
    tp = np.diag(cm).astype(np.float64)
    predicted = cm.sum(axis=0)
    support = cm.sum(axis=1)
    rows = []
    for i, name in enumerate(class_names):
        precision = tp[i] / predicted[i] if predicted[i] else 0.0
        recall = tp[i] / support[i] if support[i] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append(ClassMetrics(name, float(precision), float(recall), float(f1), int(support[i])))
    return rows
