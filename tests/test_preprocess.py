"""The runtime's conversions, checked against their definitions rather than against an engine.

The hot-path shortcuts (writing float input in two passes, the batch-1 row memo for quantised
outputs) must give exactly what the plain formulas give; these tests pin that down for every
possible value, so a faster rewrite that changes a single bit fails here.
"""

from __future__ import annotations

import numpy as np
import pytest

from mnist_edge.manifest import TensorSpec
from mnist_edge.runtime import fastpath, preprocess
from mnist_edge.runtime.preprocess import make_input_plan, make_output_converter

ALL_PIXELS = np.arange(256, dtype=np.uint8)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_float_input_is_exactly_pixels_divided_by_255(dtype):
    plan = make_input_plan(TensorSpec("x", (None, 28, 28), dtype), (28, 28))
    pixels = np.resize(ALL_PIXELS, (4, 28, 28))
    out = np.full(pixels.shape, np.nan, dtype=dtype)
    plan.write(pixels, out)
    expected = (pixels.astype(np.float32) / np.float32(255)).astype(dtype)
    np.testing.assert_array_equal(out, expected)
    assert plan.deferred and plan.from_uint8 is None


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_a_folded_float_input_is_the_pixel_values_from_uint8_and_from_floats(dtype):
    # The backend moved the division into the model: it takes 0..255, from either input kind.
    plan = make_input_plan(TensorSpec("x", (None, 28, 28), dtype), (28, 28), folded=True)
    pixels = np.resize(ALL_PIXELS, (4, 28, 28))
    out = np.full(pixels.shape, np.nan, dtype=dtype)
    plan.write(pixels, out)
    np.testing.assert_array_equal(out, pixels.astype(dtype))
    from_floats = plan.convert(pixels.astype(np.float32) / np.float32(255))
    assert from_floats.dtype == dtype
    np.testing.assert_array_equal(from_floats, pixels.astype(dtype))  # p / 255 * 255 == p exactly


def test_only_a_float_input_can_be_folded():
    with pytest.raises(ValueError, match="float input"):
        make_input_plan(TensorSpec("x", (None, 28, 28), "uint8", 1 / 255, 0), (28, 28), folded=True)


def test_float_input_is_written_from_any_memory_layout():
    plan = make_input_plan(TensorSpec("x", (None, 28, 28), "float32"), (28, 28))
    pixels = np.resize(ALL_PIXELS, (6, 28, 28))
    strided = pixels[::2].transpose(0, 2, 1)  # neither C- nor F-contiguous
    out = np.empty(strided.shape, np.float32)
    plan.write(strided, out)
    np.testing.assert_array_equal(out, strided.astype(np.float32) / np.float32(255))


def test_uint8_input_with_scale_one_over_255_is_the_pixels_themselves():
    plan = make_input_plan(TensorSpec("x", (None, 28, 28), "uint8", 1 / 255, 0), (28, 28))
    pixels = np.resize(ALL_PIXELS, (2, 28, 28))
    assert plan.convert(pixels) is pixels
    assert plan.from_uint8 is None and not plan.deferred


def test_other_quantised_inputs_convert_pixels_through_the_quantiser():
    spec = TensorSpec("x", (None, 784), "int8", 1 / 200, -100)
    plan = make_input_plan(spec, (784,))
    pixels = np.resize(ALL_PIXELS, (3, 784))
    expected = preprocess.quantize(pixels.astype(np.float32) / np.float32(255), spec)
    np.testing.assert_array_equal(plan.from_uint8(pixels), expected)
    np.testing.assert_array_equal(plan.convert(pixels), expected)


QUANTISED_OUTPUTS = [
    TensorSpec("y", (None, 10), "uint8", 1 / 256, 0),
    TensorSpec("y", (None, 10), "int8", 1 / 256, -128),
]


def _rows(spec: TensorSpec, n: int, seed: int = 0) -> np.ndarray:
    """Softmax-like quantised rows: most mass on one class, a little spread around."""
    rng = np.random.default_rng(seed)
    info = np.iinfo(spec.dtype)
    levels = np.zeros((n, 10), np.int64)
    levels[np.arange(n), rng.integers(0, 10, n)] = rng.integers(150, 256, n)
    levels += rng.integers(0, 3, (n, 10)) * (rng.random((n, 10)) < 0.3)
    return np.clip(levels + spec.zero_point, info.min, info.max).astype(spec.dtype)


@pytest.mark.parametrize("spec", QUANTISED_OUTPUTS, ids=lambda s: s.dtype)
def test_a_row_gives_the_same_probabilities_alone_or_in_a_batch(spec):
    convert = make_output_converter(spec, normalize=True, logits=False)
    raw = _rows(spec, 300)
    batch = convert(raw)
    levels = (raw.astype(np.int64) - spec.zero_point).astype(np.float32)  # exact small integers
    np.testing.assert_array_equal(batch, levels / levels.sum(axis=1, keepdims=True))
    assert batch.dtype == np.float32
    np.testing.assert_allclose(batch.sum(axis=1), 1.0, atol=1e-6)
    for _ in range(2):  # first pass computes each row, second pass finds it remembered
        single = np.concatenate([convert(raw[i : i + 1]) for i in range(len(raw))])
        np.testing.assert_array_equal(single, batch)
        assert single.dtype == np.float32


def test_remembered_rows_are_handed_out_as_fresh_arrays():
    spec = QUANTISED_OUTPUTS[0]
    convert = make_output_converter(spec, normalize=True, logits=False)
    raw = _rows(spec, 1)
    first = convert(raw)
    first[:] = -1.0  # the caller owns its result and may scribble on it
    second = convert(raw)
    assert second is not first
    np.testing.assert_allclose(second.sum(), 1.0, atol=1e-6)
    assert (second >= 0).all()


def test_the_row_memo_stops_growing_at_its_limit(monkeypatch):
    monkeypatch.setattr(fastpath, "MEMO_ROWS", 5)
    spec = QUANTISED_OUTPUTS[0]
    convert = make_output_converter(spec, normalize=True, logits=False)
    raw = np.zeros((40, 10), np.uint8)
    raw[np.arange(40), np.arange(40) % 10] = 200 + np.arange(40)  # 40 distinct rows
    for i in range(40):
        convert(raw[i : i + 1])
    memo = next(c.cell_contents for c in convert.__closure__ if isinstance(c.cell_contents, dict))
    assert len(memo) == 5
    # Rows past the limit are still right, just not remembered.
    np.testing.assert_array_equal(convert(raw[39:40]), convert(raw)[39:40])
