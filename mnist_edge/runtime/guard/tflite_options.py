"""The builtin options of the operators a convolutional or dense classifier is made of, checked
against the ranges their meaning allows (part of :mod:`.tflite_check`).

Why: LiteRT copies these numbers into its kernels' parameters without judging them. Measured on
ai-edge-litert 2.3.0: an AVERAGE_POOL_2D whose ``filter_height`` is -2^31 segfaults the first
``invoke()``; window sizes and strides feed integer arithmetic (output sizes, padding) that
overflows long before it is refused. A classifier of 28x28 images needs none of that, so each
value must lie in its schema enum or in a small positive range (``limits.MAX_WINDOW``), and floats
(softmax beta, leaky-ReLU alpha) must be finite.

Convolutions and pools must carry their options table (:data:`NEEDS_TABLE`): without one LiteRT
zero-fills the kernel's parameters (stride 0). Absent *fields* of a present table - and every
field of an absent table elsewhere - take the schema's defaults, as LiteRT reads them, and are
checked the same way.
Field slots are ``4 + 2 * field id`` from TensorFlow's ``schema.fbs``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from mnist_edge.runtime.guard.flatbuffer import _Table
from mnist_edge.runtime.guard.limits import MAX_RANK, MAX_WINDOW

__all__ = ["NEEDS_TABLE", "RULES", "Rule", "options_problem"]


class Rule(NamedTuple):
    slot: int
    fmt: str  # "b"/"B" byte, "i" int32, "f" float32, "[i" int32 vector
    name: str
    #: Allowed integer values (a range or a set); None for floats (finite) and vectors.
    allowed: range | frozenset[int] | None
    default: int | float = 0


_PADDING = range(0, 2)  # SAME, VALID
_ACTIVATION = range(0, 6)  # NONE, RELU, RELU_N1_TO_1, RELU6, TANH, SIGN_BIT
_POSITIVE = range(1, MAX_WINDOW + 1)
_BOOL = range(0, 2)
#: TensorType of a quantised bias: unset (FLOAT32), INT32 or INT64.
_BIAS_TYPE = frozenset({0, 2, 4})


def _pad_stride(first: int = 4) -> tuple[Rule, ...]:
    return (
        Rule(first, "b", "padding", _PADDING),
        Rule(first + 2, "i", "stride_w", _POSITIVE),
        Rule(first + 4, "i", "stride_h", _POSITIVE),
    )


#: ``BuiltinOptions`` union type -> the rules of its fields.
RULES: dict[int, tuple[Rule, ...]] = {
    1: (  # Conv2DOptions
        *_pad_stride(),
        Rule(10, "b", "fused_activation_function", _ACTIVATION),
        Rule(12, "i", "dilation_w_factor", _POSITIVE, 1),
        Rule(14, "i", "dilation_h_factor", _POSITIVE, 1),
        Rule(16, "b", "quantized_bias_type", _BIAS_TYPE),
    ),
    2: (  # DepthwiseConv2DOptions
        *_pad_stride(),
        Rule(10, "i", "depth_multiplier", range(0, MAX_WINDOW + 1)),
        Rule(12, "b", "fused_activation_function", _ACTIVATION),
        Rule(14, "i", "dilation_w_factor", _POSITIVE, 1),
        Rule(16, "i", "dilation_h_factor", _POSITIVE, 1),
    ),
    5: (  # Pool2DOptions
        *_pad_stride(),
        Rule(10, "i", "filter_width", _POSITIVE),
        Rule(12, "i", "filter_height", _POSITIVE),
        Rule(14, "b", "fused_activation_function", _ACTIVATION),
    ),
    8: (  # FullyConnectedOptions
        Rule(4, "b", "fused_activation_function", _ACTIVATION),
        Rule(6, "b", "weights_format", frozenset({0})),  # DEFAULT; the shuffled layout is int8-only
        Rule(8, "B", "keep_num_dims", _BOOL),
        Rule(10, "B", "asymmetric_quantize_inputs", _BOOL),
        Rule(12, "b", "quantized_bias_type", _BIAS_TYPE),
    ),
    9: (Rule(4, "f", "beta", None, 0.0),),  # SoftmaxOptions
    11: (  # AddOptions
        Rule(4, "b", "fused_activation_function", _ACTIVATION),
        Rule(6, "B", "pot_scale_int16", _BOOL, 1),
    ),
    17: (Rule(4, "[i", "new_shape", None),),  # ReshapeOptions
    21: (Rule(4, "b", "fused_activation_function", _ACTIVATION),),  # MulOptions
    27: (Rule(4, "B", "keep_dims", _BOOL),),  # ReducerOptions (MEAN, SUM, REDUCE_MAX)
    75: (Rule(4, "f", "alpha", None, 0.0),),  # LeakyReluOptions
}


#: Options types an operator must carry as a table: zero-filled, their strides would be 0.
NEEDS_TABLE = frozenset({1, 2, 5})


def options_problem(options_type: int, table: _Table | None) -> str | None:
    """What is wrong with an operator's options ``table`` (None: it has none), or None when the
    values are fine or its options type has no rules."""
    rules = RULES.get(options_type)
    if rules is None:
        return None
    if table is None and options_type in NEEDS_TABLE:
        return "has no options: LiteRT would run it with strides of 0"
    for rule in rules:
        value = _read(table, rule)
        if rule.fmt == "f":
            bad = not math.isfinite(float(value))  # type: ignore[arg-type]
        elif rule.fmt == "[i":
            bad = any(d < -1 for d in value) or sum(d == -1 for d in value) > 1  # type: ignore[union-attr]
        else:
            bad = rule.allowed is not None and value not in rule.allowed
        if bad:
            return f"has {rule.name} {value!r}, outside what its kernel takes"
    return None


def _read(table: _Table | None, rule: Rule) -> int | float | list[int | float]:
    """A field's value as LiteRT reads it: the schema's default when the field (or table) is absent."""
    if rule.fmt == "[i":
        return [] if table is None else table.scalars(rule.slot, "i", MAX_RANK, rule.name)
    if table is None:
        return rule.default
    if rule.fmt == "f":
        pos = table._field(rule.slot)
        return rule.default if pos is None else table.buf.scalar(pos, "f")
    return table.scalar(rule.slot, rule.fmt, int(rule.default))
