"""Bounds both structural pre-checks hold a model to: far above what a classifier of 28x28 digits
declares, far below what overflows an engine's size arithmetic."""

from __future__ import annotations

import math
from collections.abc import Sequence

#: Tensor ranks, and entries of a shape, axes or permutation constant.
MAX_RANK = 8
#: Strides, window sizes, dilations and paddings: nine times a 28x28 image's side.
MAX_WINDOW = 256
#: Bytes one tensor may declare (our largest, the fp32 784x300 weights, is 0.9 MiB).
MAX_TENSOR_BYTES = 64 << 20
#: Bytes all tensors together may declare at their declared shapes (batch 1).
MAX_TOTAL_BYTES = 256 << 20


def tensor_size(what: str, shape: Sequence[int], itemsize: int, error: type[Exception]) -> tuple[int, int]:
    """The elements and bytes a tensor of ``shape`` declares; ``error`` (the format's structure
    error) when the bytes are over :data:`MAX_TENSOR_BYTES`. ``what`` names the tensor."""
    elements = math.prod(shape)
    nbytes = elements * itemsize
    if nbytes > MAX_TENSOR_BYTES:
        raise error(
            f"{what} declares {nbytes / 2**20:.0f} MiB (shape {list(shape)}); the limit is "
            f"{MAX_TENSOR_BYTES >> 20} MiB"
        )
    return elements, nbytes
