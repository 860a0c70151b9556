"""Connected components of a binary mask, in numpy alone (no SciPy: see the README on why).

The mask is cut into horizontal runs; runs on neighbouring rows that touch (diagonals included:
8-connectivity) are joined, and joined runs share one root (a vectorised union-find). Everything
is vectorised over runs, so the cost follows the number of runs, not of pixels: a digit at
working resolution is a few hundred runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Components", "label"]


@dataclass(frozen=True)
class Components:
    """Labelled components: ``labels`` is (H, W) int32, 0 for background and 1..n for components;
    per component (index ``label - 1``): pixel ``area`` and bounding box rows/cols (inclusive)."""

    labels: np.ndarray
    area: np.ndarray
    top: np.ndarray
    bottom: np.ndarray
    left: np.ndarray
    right: np.ndarray

    @property
    def count(self) -> int:
        return len(self.area)

    def height(self) -> np.ndarray:
        return self.bottom - self.top + 1

    def width(self) -> np.ndarray:
        return self.right - self.left + 1


def label(mask: np.ndarray) -> Components:
    """Label the 8-connected components of a boolean (H, W) mask."""
    mask = np.asarray(mask, dtype=bool)
    height, width = mask.shape
    padded = np.zeros((height, width + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    edges = np.diff(padded, axis=1)  # +1 where a run starts, -1 one past where it ends
    run_rows, starts = np.nonzero(edges == 1)
    _, stops = np.nonzero(edges == -1)  # same order: both scan row by row, left to right
    ends = stops - 1
    runs = len(starts)
    if runs == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Components(np.zeros(mask.shape, np.int32), empty, empty, empty, empty, empty)

    # Runs on the row above that touch run j: a contiguous range, found by binary search on
    # keys that sort runs by (row, column).
    stride = width + 2
    start_keys = run_rows * stride + starts
    end_keys = run_rows * stride + ends
    above = (run_rows - 1) * stride
    first = np.searchsorted(end_keys, above + starts - 1, side="left")
    last = np.searchsorted(start_keys, above + ends + 1, side="right")
    counts = np.maximum(last - first, 0)
    child = np.repeat(np.arange(runs), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    parent = np.repeat(first, counts) + offsets

    # Union-find, vectorised: hook the larger root of every join under the smaller, then
    # compress paths fully; a few rounds reach the fixed point even for a noisy mask.
    root = np.arange(runs)
    while True:
        a, b = root[child], root[parent]
        differ = a != b
        if not differ.any():
            break
        np.minimum.at(root, np.maximum(a[differ], b[differ]), np.minimum(a[differ], b[differ]))
        while True:
            jumped = root[root]
            if np.array_equal(jumped, root):
                break
            root = jumped

    # Each set's root is its smallest run index: number the roots in order, without a sort.
    is_root = root == np.arange(runs)
    run_label = (np.cumsum(is_root) - 1)[root]
    n = int(is_root.sum())
    lengths = ends - starts + 1
    area = np.bincount(run_label, weights=lengths, minlength=n).astype(np.int64)
    top = np.full(n, height, dtype=np.int64)
    bottom = np.full(n, -1, dtype=np.int64)
    left = np.full(n, width, dtype=np.int64)
    right = np.full(n, -1, dtype=np.int64)
    np.minimum.at(top, run_label, run_rows)
    np.maximum.at(bottom, run_label, run_rows)
    np.minimum.at(left, run_label, starts)
    np.maximum.at(right, run_label, ends)

    # Paint the labels: every pixel of every run, as flat indices.
    first_pixel = np.cumsum(lengths) - lengths
    flat = np.arange(int(lengths.sum())) - np.repeat(first_pixel - (run_rows * width + starts), lengths)
    labels = np.zeros(height * width, dtype=np.int32)
    labels[flat] = np.repeat(run_label + 1, lengths)
    return Components(labels.reshape(height, width), area, top, bottom, left, right)
