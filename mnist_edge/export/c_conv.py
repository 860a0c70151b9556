"""The geometry of a CONV_2D operator, read from its options and checked against its tensors.

A convolution is lowered to one fully-connected layer applied once per output pixel: the C
kernel gathers the input patch under the filter (NHWC order: filter row, filter column, input
channel, exactly the filter's own layout) and multiplies it with the filter rows as a dense
layer does. Taps that fall in the padding read the input's stored zero point, so they add
nothing once the zero point is folded into the bias, exactly as both engines skip or zero them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mnist_edge.errors import ExportError

__all__ = ["ConvGeometry", "conv_geometry"]

#: Conv2DOptions slots: padding, stride_w, stride_h, fused_activation_function, dilation_w, dilation_h.
_PADDING, _STRIDE_W, _STRIDE_H, _ACTIVATION, _DILATION_W, _DILATION_H = 4, 6, 8, 10, 12, 14
_PADDINGS = {0: "SAME", 1: "VALID"}
#: The fields of ``struct conv`` are 8 and 16 bits wide.
_MAX_SIDE, _MAX_CHANNELS = 255, 65535


@dataclass(frozen=True)
class ConvGeometry:
    """Where each output pixel's patch lies in an NHWC input (batch 1)."""

    in_h: int
    in_w: int
    in_c: int
    out_h: int
    out_w: int
    out_c: int
    k_h: int
    k_w: int
    stride_h: int
    stride_w: int
    pad_top: int
    pad_left: int
    activation_code: int

    @property
    def patch(self) -> int:
        """Values under the filter at one output pixel (the dense layer's columns)."""
        return self.k_h * self.k_w * self.in_c

    @property
    def pixels(self) -> int:
        return self.out_h * self.out_w


def _out_size(padding: str, size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TFLite's output size and leading padding (``ComputePaddingHeightWidth``, dilation 1)."""
    if padding == "SAME":
        out = (size + stride - 1) // stride
        total = max((out - 1) * stride + kernel - size, 0)
        return out, total // 2
    return (size - kernel + stride) // stride, 0


def conv_geometry(
    where: str,
    options: Any,
    input_shape: tuple[int, ...],
    filter_shape: tuple[int, ...],
    output_shape: tuple[int, ...],
) -> ConvGeometry:
    """The geometry of ``where`` (a CONV_2D) from its options table and tensor shapes; raises
    :class:`ExportError` naming the option or shape the C kernel does not handle."""
    if len(input_shape) != 4 or len(filter_shape) != 4 or len(output_shape) != 4 or input_shape[0] != 1:
        raise ExportError(
            f"{where} has input {list(input_shape)}, filter {list(filter_shape)}, output "
            f"{list(output_shape)}; C needs batch-1 NHWC tensors and an [out, h, w, in] filter"
        )

    def option(slot: int, fmt: str, default: int) -> int:
        return default if options is None else int(options.scalar(slot, fmt, default))

    padding = _PADDINGS.get(option(_PADDING, "b", 0), "unknown")
    stride_w, stride_h = option(_STRIDE_W, "i", 0), option(_STRIDE_H, "i", 0)
    dilation_w, dilation_h = option(_DILATION_W, "i", 1), option(_DILATION_H, "i", 1)
    if padding == "unknown":
        raise ExportError(f"{where} has an unknown padding; C supports SAME and VALID")
    if not (1 <= stride_h <= _MAX_SIDE and 1 <= stride_w <= _MAX_SIDE):
        raise ExportError(f"{where} has stride {stride_h}x{stride_w}; C needs strides from 1 to {_MAX_SIDE}")
    if (dilation_h, dilation_w) != (1, 1):
        raise ExportError(f"{where} has dilation {dilation_h}x{dilation_w}; C supports only dilation 1")
    _, in_h, in_w, in_c = input_shape
    out_c, k_h, k_w, filter_c = filter_shape
    if filter_c != in_c:
        raise ExportError(
            f"{where} has a filter over {filter_c} channels for an input of {in_c} (grouped "
            "convolution); C supports only ordinary convolution"
        )
    out_h, pad_top = _out_size(padding, in_h, k_h, stride_h)
    out_w, pad_left = _out_size(padding, in_w, k_w, stride_w)
    if tuple(output_shape) != (1, out_h, out_w, out_c):
        raise ExportError(
            f"{where}'s output is {list(output_shape)}, but {padding} padding with stride "
            f"{stride_h}x{stride_w} gives [1, {out_h}, {out_w}, {out_c}]"
        )
    if max(in_h, in_w, k_h, k_w, out_h, out_w) > _MAX_SIDE or max(in_c, out_c) > _MAX_CHANNELS:
        raise ExportError(
            f"{where} is larger than the C kernel handles (sides up to {_MAX_SIDE}, channels up to "
            f"{_MAX_CHANNELS})"
        )
    return ConvGeometry(
        in_h=in_h,
        in_w=in_w,
        in_c=in_c,
        out_h=out_h,
        out_w=out_w,
        out_c=out_c,
        k_h=k_h,
        k_w=k_w,
        stride_h=stride_h,
        stride_w=stride_w,
        pad_top=pad_top,
        pad_left=pad_left,
        activation_code=option(_ACTIVATION, "b", 0),
    )
