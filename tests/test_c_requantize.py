"""The tflm rounding's requantisation in C against TFLM's own arithmetic, written out in numpy.

The C computes TFLM's two roundings (gemmlowp's doubling high multiply, then its rounding right
shift) as one floor of a 64-bit sum. The models' tests check it on the values real layers
produce; this one checks it on the edges: every shift a multiplier can come with, accumulators
of both signs up to their limits, exact ties of both roundings, and the smallest multipliers.
"""

from __future__ import annotations

import ctypes
import subprocess

import numpy as np
import pytest

from mnist_edge.errors import ToolchainError
from mnist_edge.export.c_layers import _REQUANTIZATION, template, tflm_nudges
from mnist_edge.parity import c_code

HARNESS = """
void requantize_all(const int32_t *acc, const int32_t *multiplier, const int8_t *shift,
                    const int64_t *nudge, size_t n, int32_t zero_point, uint8_t *out) {
    const struct dense layer = {0, 0, multiplier, shift, nudge, 1, 1, (int16_t)zero_point, -128, 127, 128};
    const struct output o = output_of(&layer);
    size_t i;
    for (i = 0; i < n; ++i) {
        out[i] = requantize(acc[i], &o, i);
    }
}
"""


def _reference(acc: np.ndarray, multiplier: np.ndarray, shift: np.ndarray, zero_point: int) -> np.ndarray:
    """TFLM's MultiplyByQuantizedMultiplier (reference kernels, double rounding), then the clamp
    to int8, stored as uint8 (value + 128)."""
    x = np.where(shift > 0, (acc.astype(np.int64) << np.maximum(shift, 0)), acc.astype(np.int64))
    x = ((x + (1 << 31)) % (1 << 32)) - (1 << 31)  # the left shift wraps in 32 bits
    product = x * multiplier.astype(np.int64)
    nudged = product + np.where(product >= 0, 1 << 30, 1 - (1 << 30))
    high = np.where(nudged >= 0, nudged // (1 << 31), -((-nudged) // (1 << 31)))  # truncating
    exponent = np.maximum(-shift, 0).astype(np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = high & mask
    threshold = (mask >> 1) + (high < 0)
    value = (high >> exponent) + (remainder > threshold)
    return (np.clip(value + zero_point, -128, 127) + 128).astype(np.uint8)


@pytest.fixture(scope="module")
def requantize_all(tmp_path_factory):
    try:
        compiler = c_code.find_compiler()
    except ToolchainError as exc:
        pytest.skip(f"{exc}")
    source = "#include <stdint.h>\n#include <stddef.h>\n"
    source += template("layer.c").substitute(requantization=_REQUANTIZATION["tflm"])
    source += template("requantize_tflm.c").template + HARNESS
    folder = tmp_path_factory.mktemp("requantize")
    (folder / "r.c").write_text(source)
    library = folder / "r.so"
    command = [compiler, "-std=c99", "-O2", "-shared", "-fPIC", "-Wall", "-Wextra", "-Werror"]
    subprocess.run([*command, str(folder / "r.c"), "-o", str(library)], check=True)
    function = ctypes.CDLL(str(library)).requantize_all
    function.restype = None
    return function


def _run(function, acc, multiplier, shift, zero_point) -> np.ndarray:
    acc = np.ascontiguousarray(acc, np.int32)
    multiplier = np.ascontiguousarray(multiplier, np.int32)
    shift = np.ascontiguousarray(shift, np.int8)
    nudge = np.array(tflm_nudges(shift), np.int64)
    out = np.zeros(len(acc), np.uint8)
    pointer = np.ctypeslib.as_ctypes
    function(
        pointer(acc), pointer(multiplier), pointer(shift), pointer(nudge),
        ctypes.c_size_t(len(acc)), ctypes.c_int32(zero_point), pointer(out),
    )  # fmt: skip
    return out


@pytest.mark.parametrize("zero_point", [-128, 0, 31])
def test_the_c_requantisation_is_tflms_on_random_and_edge_values(requantize_all, zero_point):
    rng = np.random.default_rng(zero_point + 1000)
    n = 200_000
    shift = rng.integers(-31, 3, n)
    multiplier = rng.integers(1 << 30, (1 << 31) - 1, n, endpoint=True)
    multiplier[:1000] = 1 << 30  # the power-of-two multiplier, whose x = -1 case is the exception
    multiplier[1000:1100] = 0  # a zero scale
    # Accumulators of every magnitude, and ones whose scaled value sits on a rounding tie.
    magnitude = 2.0 ** rng.uniform(0, 31, n)
    acc = (np.sign(rng.normal(size=n)) * np.minimum(magnitude, 2**31 - 1)).astype(np.int64)
    acc[:2000] = rng.integers(-3, 4, 2000)
    acc[shift > 0] >>= 3  # TFLM's left shift overflows int32 past that: no model reaches it
    # Exact ties: with m = 2^30 the high multiply halves x, so an odd x ties there, and
    # x = 2 * (2k + 1) * 2^(e - 1) (+-1) puts the halved value on (or beside) a tie of the shift.
    ties = slice(2000, 60_000)
    multiplier[ties] = 1 << 30
    e = np.maximum(-shift[ties], 0)
    k = rng.integers(-(1 << 8), 1 << 8, len(e))
    on_tie = 2 * ((2 * k + 1) << np.maximum(e - 1, 0)) + rng.integers(-1, 2, len(e))
    odd = rng.integers(-(1 << 20), 1 << 20, len(e)) * 2 + 1
    acc[ties] = np.where(rng.random(len(e)) < 0.5, odd, np.clip(on_tie, -(2**31), 2**31 - 1))
    ours = _run(requantize_all, acc, multiplier, shift, zero_point)
    expected = _reference(acc, multiplier, shift, zero_point)
    differing = np.flatnonzero(ours != expected)
    assert differing.size == 0, (
        f"{differing.size} differ, first: acc={acc[differing[0]]} m={multiplier[differing[0]]} "
        f"shift={shift[differing[0]]}: {ours[differing[0]]} != {expected[differing[0]]}"
    )
