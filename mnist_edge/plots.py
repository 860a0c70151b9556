"""Every figure the toolkit draws, in one place, on the Agg backend (no display needed)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from mnist_edge import CLASS_NAMES
from mnist_edge._files import atomic_path


def _pyplot() -> Any:
    from mnist_edge._heavy import pyplot

    return pyplot()


def _save(fig: Any, path: str | os.PathLike[str]) -> None:
    plt = _pyplot()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def sample_grid(
    images: np.ndarray,
    labels: np.ndarray,
    path: str | os.PathLike[str],
    class_names: Sequence[str] = CLASS_NAMES,
) -> None:
    """The tutorial's 3x3 grid of the first nine training digits, gray colormap."""
    plt = _pyplot()
    fig, axes = plt.subplots(3, 3, figsize=(5, 5.4))
    for ax, img, label in zip(axes.flat, images[:9], labels[:9], strict=False):
        ax.imshow(img, cmap="gray")
        ax.set_title(f"{int(label)} ({class_names[int(label)]})", fontsize=9)
        ax.axis("off")
    fig.suptitle("First nine training digits")
    _save(fig, path)


def training_curves(history: dict[str, list[float]], path: str | os.PathLike[str]) -> None:
    """The tutorial's plot: loss, accuracy, val_loss, val_accuracy per epoch, grid, y from 0 to 1."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    styles = {"loss": "b-", "val_loss": "b--", "accuracy": "r-", "val_accuracy": "r--"}
    for key, style in styles.items():
        if key in history:
            epochs = np.arange(1, len(history[key]) + 1)
            ax.plot(epochs, history[key], style, marker=".", label=key)
    ax.set_xlabel("Epoch")
    ax.set_ylim(0, 1)
    ax.grid(True)
    ax.legend(loc="center right")
    ax.set_title("Training curves")
    _save(fig, path)


def confusion_matrix_figure(
    cm: np.ndarray,
    path: str | os.PathLike[str],
    class_names: Sequence[str] = CLASS_NAMES,
    title: str = "Confusion matrix (test set)",
) -> None:
    """Annotated counts, axes labelled Zero..Nine."""
    plt = _pyplot()
    cm = np.asarray(cm)
    fig, ax = plt.subplots(figsize=(8, 7))
    im = ax.imshow(cm, cmap="Blues")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ticks = np.arange(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=45, ha="right")
    ax.set_yticks(ticks, class_names)
    ax.set_xlabel("Predicted labels")
    ax.set_ylabel("True labels")
    ax.set_title(title)
    threshold = cm.max() / 2 if cm.size else 0
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            color = "white" if cm[i, j] > threshold else "black"
            ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", color=color, fontsize=8)
    _save(fig, path)


def benchmark_chart(rows: Sequence[dict[str, Any]], path: str | os.PathLike[str]) -> None:
    """Batch-1 p50 latency per artifact (log scale) and throughput per batch size, one PNG.

    ``rows``: dicts with ``label``, ``p50_us`` and ``throughput`` ({batch_size: images/s}); optional
    ``raw_p50_us`` (the bare engine's p50, drawn as a black tick on the bar). Labels starting with
    "keras" are drawn in red: the reference the exports are compared with.
    """
    from mnist_edge.bench.render import format_us

    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    labels = [r["label"] for r in rows]
    colors = ["tab:red" if str(r["label"]).startswith("keras") else "tab:blue" for r in rows]
    left.barh(labels, [r["p50_us"] for r in rows], color=colors)
    raw = [(i, r["raw_p50_us"]) for i, r in enumerate(rows) if r.get("raw_p50_us") is not None]
    if raw:
        left.scatter([v for _, v in raw], [i for i, _ in raw], marker="|", s=300, color="black", zorder=3)
        left.scatter([], [], marker="|", s=100, color="black", label="raw engine p50")
        left.legend(fontsize=8, loc="lower right")
    for i, r in enumerate(rows):
        us = float(r["p50_us"])
        right_end = max(us, float(r.get("raw_p50_us") or 0))
        left.text(right_end * 1.15, i, format_us(us), va="center", fontsize=8)
    left.set_xscale("log")
    left.set_xlim(right=max(float(r["p50_us"]) for r in rows) * 8 if rows else None)
    left.set_xlabel("batch-1 latency, p50 (µs, log scale)")
    left.invert_yaxis()
    left.grid(True, axis="x", which="both", alpha=0.4)
    left.set_title("Latency per artifact")
    for r in rows:
        tp = r.get("throughput") or {}
        if tp:
            sizes = sorted(tp)
            right.plot(
                sizes,
                [tp[b] for b in sizes],
                marker="o",
                linestyle="--" if str(r["label"]).startswith("keras") else "-",
                label=r["label"],
            )
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xlabel("batch size")
    right.set_ylabel("images / s")
    right.grid(True, which="both", alpha=0.4)
    right.legend(fontsize=8)
    right.set_title("Throughput per batch size")
    _save(fig, path)
