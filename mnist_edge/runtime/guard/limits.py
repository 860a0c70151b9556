"""Bounds both structural pre-checks hold a model to: far above what a classifier of 28x28 digits
declares, far below what overflows an engine's size arithmetic."""

from __future__ import annotations

#: Tensor ranks, and entries of a shape, axes or permutation constant.
MAX_RANK = 8
#: Strides, window sizes, dilations and paddings: nine times a 28x28 image's side.
MAX_WINDOW = 256
