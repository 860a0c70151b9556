"""The C target for the CNN that ``train --arch cnn`` makes: its convolutions are generated,
bit-exact with LiteRT and TFLM, and the options the kernel does not handle are refused by name.

Fast: a few hundred images per rounding. The full 10,000 + 20,000-image check is ``verify``'s
(and ``benchmarks/mcu.py``'s); the emulated targets are in ``test_c_mcu.py``.
"""

from __future__ import annotations

import itertools
import re
import shutil

import numpy as np
import pytest

from mnist_edge.errors import ExportError, ToolchainError
from mnist_edge.export import c_graph, export_many
from mnist_edge.export.c import ROUNDINGS, generate
from mnist_edge.export.c_conv import conv_geometry
from mnist_edge.parity import c_code

IMAGES, RANDOM = 200, 300


def _compiler() -> None:
    try:
        c_code.find_compiler()
    except ToolchainError as exc:
        pytest.skip(f"{exc}")


@pytest.fixture(scope="module")
def images(mnist) -> np.ndarray:
    rng = np.random.default_rng(3)
    picked = mnist.x_test[rng.choice(len(mnist.x_test), IMAGES, replace=False)]
    return np.concatenate([picked, rng.integers(0, 256, (RANDOM, 28, 28), dtype=np.uint8)])


@pytest.fixture(scope="module")
def labels(mnist) -> np.ndarray:
    rng = np.random.default_rng(3)
    return mnist.y_test[rng.choice(len(mnist.x_test), IMAGES, replace=False)]


def test_the_cnn_is_read_as_convolutions_with_the_graphs_geometry(train_cnn_int8):
    model = c_graph.read_model(train_cnn_int8.read_bytes())
    convs = [layer for layer in model.layers if isinstance(layer, c_graph.Conv)]
    assert len(convs) == 3 and "CONV_2D" in model.operators
    for before, after in itertools.pairwise(convs):
        # each convolution reads what the previous one wrote
        g, h = before.geometry, after.geometry
        assert (g.out_h, g.out_w, g.out_c) == (h.in_h, h.in_w, h.in_c)
    # MACs: one filter row per output value, over the whole patch
    for conv in convs:
        g = conv.geometry
        assert conv.macs == g.out_h * g.out_w * g.out_c * g.k_h * g.k_w * g.in_c


@pytest.mark.parametrize("rounding", sorted(ROUNDINGS))
def test_the_cnns_c_is_bit_exact_with_its_engine(train_cnn_int8, images, labels, rounding):
    _compiler()
    if rounding == "tflm":
        pytest.importorskip("tflite_micro", reason="tflite-micro not installed: pip install -e '.[dev]'")
    data = train_cnn_int8.read_bytes()
    source = generate(data, rounding=rounding)
    with c_code.CLibrary(source, flags=(*c_code.COMPILE_FLAGS, *c_code.WARNING_FLAGS)) as library:
        produced, tops = library.run(images)
    expected, engine = c_code.engine_outputs(data, images, rounding)
    assert (produced != expected).sum() == 0, f"{(produced != expected).sum()} bytes differ from {engine}"
    assert np.array_equal(tops, expected.argmax(axis=1))
    # a trained model (most test digits right), so the activations are not all saturated
    assert (expected[:IMAGES].argmax(axis=1) == labels).mean() > 0.5


def test_the_cnns_working_memory_is_two_activations_and_two_patches(train_cnn_int8):
    source = generate(train_cnn_int8.read_bytes())
    model = c_graph.read_model(train_cnn_int8.read_bytes())
    sizes = [layer.size for layer in model.layers[:-1]]
    largest_pair = max(a + b for a, b in itertools.pairwise(sizes))
    patch = max(-(-layer.dense.cols // 4) * 4 for layer in model.layers if isinstance(layer, c_graph.Conv))
    assert source.arena_bytes == largest_pair + 2 * patch
    assert f"#define PATCH_STRIDE {patch}\n" in source.c_text  # the second patch's offset
    assert f"#define MNIST_EDGE_STACK_BYTES {source.arena_bytes}" in source.h_text
    assert source.constant_bytes < len(train_cnn_int8.read_bytes())


def test_export_and_check_take_the_cnn_end_to_end(tmp_path, train_cnn_int8, images, mnist):
    from mnist_edge.parity import verify

    _compiler()
    for path in train_cnn_int8.parent.iterdir():
        if path.name.startswith("model.") and path.suffix in (".keras", ".tflite", ".json"):
            shutil.copy(path, tmp_path)
    (result,) = export_many(tmp_path / "model.keras", "c", None, tmp_path)
    check, produced = c_code.check(result.path, images[:50], random=100)
    assert check.differing_bytes == 0 and produced.shape == (50, 10)
    report = verify([result.path], tmp_path / "model.keras", data=(mnist.x_test[:100], mnist.y_test[:100]))
    (row,) = report.rows
    assert row.bit_exact is not None and row.bit_exact["differing_bytes"] == 0


_SLOTS = {"padding": 4, "stride_w": 6, "stride_h": 8, "activation": 10, "dilation_w": 12, "dilation_h": 14}


class _Options:
    """A Conv2DOptions table: slot -> value (absent slots read their default)."""

    def __init__(self, **values: int) -> None:
        self.values = {_SLOTS[name]: value for name, value in values.items()}

    def scalar(self, slot: int, fmt: str, default: int = 0) -> int:
        return self.values.get(slot, default)


@pytest.mark.parametrize(
    ("options", "filter_shape", "output_shape", "needle"),
    [
        ({"dilation_h": 2, "dilation_w": 2}, (8, 3, 3, 1), (1, 14, 14, 8), "dilation 2x2"),
        ({"padding": 7}, (8, 3, 3, 1), (1, 14, 14, 8), "unknown padding"),
        ({"stride_h": 0, "stride_w": 2}, (8, 3, 3, 1), (1, 14, 14, 8), "stride 0x2"),
        ({}, (8, 3, 3, 2), (1, 14, 14, 8), "grouped convolution"),
        ({}, (8, 3, 3, 1), (1, 13, 13, 8), "SAME padding with stride 2x2 gives [1, 14, 14, 8]"),
    ],
)
def test_a_convolution_the_kernel_does_not_handle_is_refused_by_option(
    options, filter_shape, output_shape, needle
):
    table = _Options(**{"stride_h": 2, "stride_w": 2, **options})
    with pytest.raises(ExportError, match=re.escape(needle)) as caught:
        conv_geometry("CONV_2D (operator 2)", table, (1, 28, 28, 1), filter_shape, output_shape)
    assert str(caught.value).startswith("CONV_2D (operator 2)")


@pytest.mark.parametrize(
    ("size", "kernel", "stride"), [(28, 5, 2), (14, 3, 2), (7, 3, 2), (28, 3, 1), (9, 4, 3)]
)
@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_geometry_matches_tflites_padding_rule(size, kernel, stride, padding):
    # TFLite: SAME gives ceil(size / stride) outputs with the smaller half of the padding first;
    # VALID gives the outputs whose patch lies inside.
    out = -(-size // stride) if padding == "SAME" else (size - kernel) // stride + 1
    total = max((out - 1) * stride + kernel - size, 0) if padding == "SAME" else 0
    table = _Options(padding=0 if padding == "SAME" else 1, stride_h=stride, stride_w=stride)
    g = conv_geometry("CONV_2D", table, (1, size, size, 1), (4, kernel, kernel, 1), (1, out, out, 4))
    assert (g.out_h, g.out_w, g.pad_top, g.pad_left) == (out, out, total // 2, total // 2)
    first, last = -g.pad_top, (out - 1) * stride - g.pad_top + kernel  # rows under the patches
    if padding == "SAME":
        assert first <= 0 and last >= size
    else:
        assert first == 0 and size - stride < last <= size


@pytest.mark.parametrize("rounding", sorted(ROUNDINGS))
def test_other_conv_geometries_are_bit_exact_too(other_geometry_int8, images, rounding):
    _compiler()
    if rounding == "tflm":
        pytest.importorskip("tflite_micro", reason="tflite-micro not installed: pip install -e '.[dev]'")
    data = other_geometry_int8.read_bytes()
    model = c_graph.read_model(data)
    convs = [layer for layer in model.layers if isinstance(layer, c_graph.Conv)]
    assert len(convs) == 5
    assert any(layer.pad != 0 for layer in convs[1:]), "no convolution pads with a non-zero stored byte"
    assert {(c.geometry.out_h * c.geometry.out_w) % 2 for c in convs} == {0, 1}
    source = generate(data, rounding=rounding)
    with c_code.CLibrary(source, flags=(*c_code.COMPILE_FLAGS, *c_code.WARNING_FLAGS)) as library:
        produced, _ = library.run(images)
    expected, engine = c_code.engine_outputs(data, images, rounding)
    assert (produced != expected).sum() == 0, f"{(produced != expected).sum()} bytes differ from {engine}"
