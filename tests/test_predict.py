"""Pictures and arrays from outside: fitting a picture the MNIST way, hostile files, `mnist-edge predict`
and the embedding example."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from typer.testing import CliRunner

from mnist_edge import CLASS_NAMES
from mnist_edge.cli import app
from mnist_edge.errors import InputError
from mnist_edge.images import MAX_IMAGE_PIXELS, fit_digit, load_image, load_input

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


def _drawing(digit: np.ndarray, size: int = 140) -> Image.Image:
    """An MNIST digit as someone would draw it: large, dark ink on white."""
    return Image.fromarray(255 - digit).resize((size, size), Image.Resampling.BICUBIC)


def _centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    ys, xs = np.indices(image.shape)
    mass = image.sum()
    return float((ys * image).sum() / mass), float((xs * image).sum() / mass)


# --------------------------------------------------------------------------- fitting


def test_an_mnist_digit_fits_onto_itself(mnist):
    diffs = [np.abs(fit_digit(d).astype(int) - d).mean() for d in mnist.x_test[:50]]
    assert max(diffs) < 1.0, max(diffs)


def test_a_large_dark_on_light_drawing_is_fitted_like_mnist(mnist):
    for digit in mnist.x_test[:20]:
        fitted = fit_digit(np.asarray(_drawing(digit)))
        assert fitted.shape == (28, 28) and fitted.dtype == np.uint8
        rows, cols = np.flatnonzero(fitted.any(axis=1)), np.flatnonzero(fitted.any(axis=0))
        assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 in (19, 20, 21)  # the 20-pixel box
        cy, cx = _centre_of_mass(fitted.astype(float))
        assert abs(cy - 14) < 0.8 and abs(cx - 14) < 0.8
        assert np.abs(fitted.astype(int) - digit).mean() < 15


def test_polarity_is_detected_or_forced(mnist):
    drawing = np.asarray(_drawing(mnist.x_test[0]))
    auto = fit_digit(drawing)
    np.testing.assert_array_equal(auto, fit_digit(drawing, invert=True))
    np.testing.assert_array_equal(auto, fit_digit(255 - drawing))  # light-on-dark needs no inversion
    np.testing.assert_array_equal(auto, fit_digit(255 - drawing, invert=False))


def test_a_blank_picture_is_an_input_error():
    with pytest.raises(InputError, match="no digit found"):
        fit_digit(np.full((50, 40), 255, np.uint8))


# --------------------------------------------------------------------------- files


@pytest.mark.parametrize(
    "name, make",
    [
        ("gray.png", lambda im: im),
        ("rgb.jpg", lambda im: im.convert("RGB")),
        ("palette.png", lambda im: im.convert("P")),
        ("sixteen_bit.png", lambda im: Image.fromarray(np.asarray(im).astype(np.uint16) * 257)),
        ("transparent.png", lambda im: _ink_on_transparency(im)),
    ],
)
def test_png_and_jpeg_pictures_of_any_mode_load_as_the_same_digit(name, make, mnist, tmp_path):
    drawing = _drawing(mnist.x_test[3])
    expected = fit_digit(np.asarray(drawing))
    path = tmp_path / name
    make(drawing).save(path)
    loaded = load_image(path)
    assert loaded.shape == (28, 28) and loaded.dtype == np.uint8
    tolerance = 12 if name.endswith(".jpg") else 3  # JPEG is lossy
    assert np.abs(loaded.astype(int) - expected).mean() < tolerance


def _ink_on_transparency(gray: Image.Image) -> Image.Image:
    """White strokes whose only trace is the alpha channel (as some drawing apps export)."""
    alpha = Image.fromarray(255 - np.asarray(gray))
    rgba = Image.new("RGBA", gray.size, (255, 255, 255, 0))
    rgba.putalpha(alpha)
    return rgba


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


def test_a_huge_declared_picture_is_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(100_000, 100_000))  # 10 G pixels declared in 60 bytes
    with pytest.raises(InputError, match=f"declares .*over the {MAX_IMAGE_PIXELS:,}"):
        load_image(path)
    path.write_bytes(_png_header_only(10_000, 6_000))  # 60 M: below Pillow's own limits, above ours
    with pytest.raises(InputError, match=f"declares 10000x6000 pixels, over the {MAX_IMAGE_PIXELS:,}"):
        load_image(path)


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("garbage.png", b"definitely not a picture", "not a PNG or JPEG"),
        ("truncated.png", None, "cannot decode|not a PNG"),
        ("empty.png", b"", "empty"),
        ("digit.gif", None, "unsupported file type '.gif'"),
        ("really_a_gif.png", None, "not a PNG or JPEG"),
        ("notes.txt", b"7", "unsupported file type"),
        ("pickled.npy", None, "not a plain numpy array"),
        ("archive.npy", None, "not a .npy array"),
        ("garbage.npy", b"\x93NUMPY garbage", "not a plain numpy array|cannot read"),
    ],
)
def test_bad_input_files_are_input_errors(name, content, message, tmp_path):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    elif name == "truncated.png":
        buffer = io.BytesIO()
        Image.new("L", (64, 64), 128).save(buffer, format="PNG")
        path.write_bytes(buffer.getvalue()[:60])
    elif name.endswith(".gif") or name == "really_a_gif.png":
        Image.new("L", (28, 28), 0).save(path, format="GIF")
    elif name == "pickled.npy":
        np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    elif name == "archive.npy":
        with open(path, "wb") as fh:
            np.savez(fh, x=np.zeros((28, 28), np.uint8))
    with pytest.raises(InputError, match=message):
        load_input(path)


def test_missing_files_and_folders_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_input(tmp_path / "nope.png")
    with pytest.raises(InputError, match="folder"):
        load_input(tmp_path)


def test_npy_arrays_load_as_saved(tmp_path, mnist):
    path = tmp_path / "batch.npy"
    np.save(path, mnist.x_test[:4])
    np.testing.assert_array_equal(load_input(path), mnist.x_test[:4])


# --------------------------------------------------------------------------- the predict command


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, mnist) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("predict_inputs")
    drawing = folder / "seven.png"
    _drawing(mnist.x_test[0]).save(drawing)
    batch = folder / "three.npy"
    np.save(batch, mnist.x_test[:3])
    one = folder / "one.png"
    image = Image.new("L", (300, 400), 255)
    ImageDraw.Draw(image).line([(150, 50), (150, 350)], fill=0, width=30)
    image.save(one)
    return {"drawing": drawing, "batch": batch, "one": one}


@pytest.mark.parametrize("kind", [("tflite", "int8"), ("onnx", "fp32")], ids=["tflite-int8", "onnx-fp32"])
def test_cli_predict_prints_label_name_and_probability(kind, exported, inputs, mnist):
    from mnist_edge.runtime import load

    model = exported[kind].path
    result = runner.invoke(
        app, ["predict", str(model), str(inputs["drawing"]), str(inputs["batch"]), "--json"]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    rows = payload["predictions"]
    assert [r["input"] for r in rows] == [str(inputs["drawing"])] + [
        f"{inputs['batch']}[{i}]" for i in range(3)
    ]
    expected = load(model).predict(mnist.x_test[:3]).tolist()
    assert [r["label"] for r in rows[1:]] == expected
    for row in rows:
        assert row["name"] == CLASS_NAMES[row["label"]] and 0 < row["probability"] <= 1

    table = runner.invoke(app, ["predict", str(model), str(inputs["one"]), "--top", "3"])
    assert table.exit_code == 0, table.output
    assert "probability" in table.stdout
    assert sum(table.stdout.count(name) for name in CLASS_NAMES) >= 3  # the top 3 of one picture


def test_cli_predict_top_k_is_sorted(exported, inputs):
    model = exported[("tflite", "fp32")].path
    result = runner.invoke(app, ["predict", str(model), str(inputs["drawing"]), "--top", "4", "--json"])
    assert result.exit_code == 0, result.output
    top = json.loads(result.stdout)["predictions"][0]["top"]
    probabilities = [t["probability"] for t in top]
    assert len(top) == 4 and probabilities == sorted(probabilities, reverse=True)
    assert top[0]["label"] == json.loads(result.stdout)["predictions"][0]["label"]


def test_cli_predict_invert_flags(exported, inputs):
    model = str(exported[("onnx", "fp32")].path)
    auto = runner.invoke(app, ["predict", model, str(inputs["drawing"]), "--json"])
    forced = runner.invoke(app, ["predict", model, str(inputs["drawing"]), "--invert", "--json"])
    assert auto.exit_code == forced.exit_code == 0
    assert json.loads(auto.stdout)["predictions"] == json.loads(forced.stdout)["predictions"]
    wrong = runner.invoke(app, ["predict", model, str(inputs["drawing"]), "--no-invert"])
    assert wrong.exit_code in (0, 2)  # a light background read as ink: a blob or "no digit found"


def test_cli_predict_bad_files_exit_2_with_one_line(exported, inputs, tmp_path):
    model = str(exported[("tflite", "int8")].path)
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"nope")
    wrong_shape = tmp_path / "wrong.npy"
    np.save(wrong_shape, np.zeros((3, 32, 32), np.uint8))
    cases = [
        [model, str(garbage)],
        [model, str(tmp_path / "missing.png")],
        [model, str(tmp_path)],
        [model, str(wrong_shape)],
        [str(tmp_path / "missing.tflite"), str(inputs["drawing"])],
        [str(garbage), str(inputs["drawing"])],
    ]
    for args in cases:
        result = runner.invoke(app, ["predict", *args])
        assert result.exit_code == 2, (args, result.output)
        assert "Traceback" not in result.output
        assert result.stderr.strip().count("\n") == 0 and "error:" in result.stderr, result.stderr


def test_cli_predict_warns_once_for_a_model_without_manifest(exported, inputs, tmp_path):
    bare = tmp_path / "model.tflite"
    bare.write_bytes(exported[("tflite", "int8")].path.read_bytes())
    result = runner.invoke(app, ["predict", str(bare), str(inputs["batch"])])
    assert result.exit_code == 0, result.output
    assert result.stderr.count("warning:") == 1 and "no manifest" in result.stderr


# --------------------------------------------------------------------------- the embedding example


def test_the_embedding_example_classifies_a_picture(exported, inputs):
    model = exported[("tflite", "int8")].path
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "embed.py"), str(model), str(inputs["one"])],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    label, name = done.stdout.split()[:2]
    assert CLASS_NAMES[int(label)] == name and "probability" in done.stdout
