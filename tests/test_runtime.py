"""The embeddable runtime: every artifact kind through ``mnist_edge.runtime.load``.

Uses the session's six exports (``exported`` in conftest.py); each test names the behaviour an
embedding app relies on: input forms, batch sizes, manifest-less files, the hash gate, every
input and load error, thread safety and the TensorFlow-free import.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from mnist_edge import CLASS_NAMES
from mnist_edge.errors import InputError, MnistEdgeError, ModelLoadError
from mnist_edge.export import MODEL_TARGETS
from mnist_edge.manifest import TensorSpec, manifest_path
from mnist_edge.runtime import BACKENDS, Classifier, ManifestWarning, load
from mnist_edge.runtime.base import Backend
from mnist_edge.runtime.litert import LiteRTBackend

#: Every artifact kind export can produce, in its table's order: (format, precision).
KINDS = list(MODEL_TARGETS)
IDS = [f"{fmt}-{precision}" for fmt, precision in KINDS]
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def classifiers(exported) -> dict[tuple[str, str], Classifier]:
    return {kind: load(exported[kind].path) for kind in KINDS}


@pytest.fixture(params=KINDS, ids=IDS)
def kind(request) -> tuple[str, str]:
    return request.param


@pytest.fixture
def clf(classifiers, kind) -> Classifier:
    return classifiers[kind]


@pytest.fixture(scope="module")
def pixels(mnist) -> np.ndarray:
    return mnist.x_test[:2500]


# --------------------------------------------------------------------------- results


def test_uint8_and_float_pixels_give_the_same_labels(clf, pixels):
    x = pixels[:1000]
    labels = clf.predict(x)
    assert labels.dtype == np.int64 and labels.shape == (1000,)
    np.testing.assert_array_equal(clf.predict(x.astype(np.float32) / 255), labels)
    np.testing.assert_array_equal(clf.predict(x / 255.0), labels)  # float64
    np.testing.assert_array_equal(clf.predict(x.astype(np.int64)), labels)
    np.testing.assert_array_equal(clf.predict(x[:3].tolist()), labels[:3])


def test_uint8_and_float_pixels_give_identical_probabilities(clf, pixels):
    x = pixels[:200]
    np.testing.assert_array_equal(clf.predict_proba(x.astype(np.float32) / 255), clf.predict_proba(x))


def test_probabilities_are_float32_rows_summing_to_one(clf, pixels):
    probs = clf.predict_proba(pixels[:500])
    assert probs.dtype == np.float32 and probs.shape == (500, 10)
    assert probs.min() >= 0 and probs.max() <= 1
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(probs.argmax(axis=1), clf.predict(pixels[:500]))


def test_artifacts_classify_mnist_like_the_keras_reference(clf, pixels, tiny_model_path):
    reference = load(tiny_model_path)
    agreement = (clf.predict(pixels) == reference.predict(pixels)).mean()
    assert agreement > 0.97, agreement


@pytest.mark.parametrize("n", [1, 7, 0, 2500])
def test_any_batch_size_works(clf, pixels, n):
    probs = clf.predict_proba(pixels[:n])
    labels = clf.predict(pixels[:n])
    assert probs.shape == (n, 10) and probs.dtype == np.float32
    assert labels.shape == (n,) and labels.dtype == np.int64
    if n:
        one_by_one = np.concatenate([clf.predict(pixels[i : i + 1]) for i in range(min(n, 7))])
        np.testing.assert_array_equal(labels[:7], one_by_one)


def test_batches_larger_than_a_chunk_are_split_and_joined(clf, kind, exported, pixels, monkeypatch):
    from mnist_edge.runtime import classifier

    whole = clf.predict_proba(pixels[:300])
    monkeypatch.setattr(classifier, "MAX_BATCH_CHUNK", 128)
    chunked = load(exported[kind].path)  # runs 300 images as 128 + 128 + 44
    np.testing.assert_allclose(chunked.predict_proba(pixels[:300]), whole, atol=1e-6)
    np.testing.assert_array_equal(chunked.predict(pixels[:300]), clf.predict(pixels[:300]))


def test_single_images_and_flat_batches_are_accepted(clf, pixels):
    image = pixels[0]
    expected = clf.predict(pixels[:1])
    assert clf.predict(image).shape == (1,)
    np.testing.assert_array_equal(clf.predict(image), expected)
    np.testing.assert_array_equal(clf.predict(image.reshape(784)), expected)
    np.testing.assert_array_equal(clf.predict(pixels[:7].reshape(7, 784)), clf.predict(pixels[:7]))


def test_odd_memory_layouts_are_accepted(clf, pixels):
    x = pixels[:20]
    expected = clf.predict_proba(np.ascontiguousarray(x[:, ::-1, ::2].repeat(2, axis=2)[:, :, :28]))
    strided = x[:, ::-1, ::2].repeat(2, axis=2)[:, :, :28]
    np.testing.assert_array_equal(clf.predict_proba(strided), expected)
    fortran = np.asfortranarray(x)
    np.testing.assert_array_equal(clf.predict_proba(fortran), clf.predict_proba(x))
    readonly = x.copy()
    readonly.flags.writeable = False
    np.testing.assert_array_equal(clf.predict_proba(readonly), clf.predict_proba(x))
    every_other = pixels[:40:2]
    np.testing.assert_array_equal(clf.predict_proba(every_other), clf.predict_proba(every_other.copy()))
    floats_ro = (x / 255).astype(np.float32)
    floats_ro.flags.writeable = False
    np.testing.assert_array_equal(clf.predict(floats_ro), clf.predict(x))


def test_other_numeric_dtypes_are_converted(clf, pixels):
    x = pixels[:10]
    expected = clf.predict(x)
    np.testing.assert_array_equal(clf.predict(x.astype(np.uint16)), expected)
    np.testing.assert_array_equal(clf.predict(x.astype(">i4")), expected)  # big-endian
    np.testing.assert_array_equal(clf.predict((x / 255).astype(np.float16)), expected)


def test_the_input_is_never_modified(clf, pixels):
    for x in (pixels[:5].copy(), (pixels[:5] / 255).astype(np.float32)):
        before = x.copy()
        clf.predict_proba(x)
        np.testing.assert_array_equal(x, before)


def test_results_are_fresh_arrays(clf, pixels):
    first = clf.predict_proba(pixels[:1])
    kept = first.copy()
    clf.predict_proba(pixels[1:2])
    np.testing.assert_array_equal(first, kept)  # not a view into an engine buffer
    first[:] = 0  # and writable


def test_description_properties(clf, kind, exported):
    fmt, precision = kind
    assert clf.format == fmt and clf.precision == precision
    assert clf.backend == ("litert" if fmt == "tflite" else "onnxruntime")
    assert clf.class_names == CLASS_NAMES
    assert clf.path == exported[kind].path
    assert clf.manifest == exported[kind].manifest
    assert clf.input_spec.dtype == exported[kind].manifest.input.dtype
    assert fmt in repr(clf)


def test_int8_tflite_feeds_uint8_pixels_without_a_copy(classifiers, pixels):
    clf = classifiers[("tflite", "int8")]
    spec = clf.input_spec
    if not (spec.dtype == "uint8" and spec.zero_point == 0 and abs(spec.scale * 255 - 1) < 1e-6):
        pytest.skip(f"this export's input is {spec}: pixels need converting")
    batch = np.ascontiguousarray(pixels[:4])
    assert clf._convert(batch) is batch


def test_keras_reference_backend_needs_no_manifest(tiny_model_path, pixels, recwarn):
    reference = load(tiny_model_path)
    assert reference.backend == "keras" and reference.format == "keras" and reference.manifest is None
    probs = reference.predict_proba(pixels[:50])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert not [w for w in recwarn if issubclass(w.category, ManifestWarning)]


def test_backend_is_chosen_by_suffix_or_by_name(exported, pixels, tmp_path):
    path = exported[("onnx", "fp32")].path
    assert BACKENDS[".onnx"].name == "onnxruntime"
    by_name = load(path, backend="onnx")
    assert by_name.backend == "onnxruntime"
    odd_name = tmp_path / "model.bin"
    shutil.copy(path, odd_name)
    with pytest.warns(ManifestWarning):
        renamed = load(odd_name, backend="onnxruntime")
    np.testing.assert_array_equal(renamed.predict(pixels[:20]), by_name.predict(pixels[:20]))
    with pytest.raises(ModelLoadError, match=r"unknown backend 'tensorrt'.*litert"):
        load(path, backend="tensorrt")
    with pytest.raises(ModelLoadError, match=r"suffix '\.bin'"):
        load(odd_name)


def test_threads_option(exported, pixels):
    clf = load(exported[("tflite", "fp32")].path, threads=2)
    assert clf.predict(pixels[:10]).shape == (10,)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(MnistEdgeError, match="threads"):
            load(exported[("tflite", "fp32")].path, threads=bad)


# --------------------------------------------------------------------------- manifest-less files


def test_a_file_without_manifest_loads_with_a_warning_and_the_same_results(
    clf, kind, exported, pixels, tmp_path
):
    source = exported[kind].path
    bare = tmp_path / source.name
    shutil.copy(source, bare)
    assert not manifest_path(bare).exists()
    with pytest.warns(ManifestWarning, match="no manifest.*assuming class names"):
        loose = load(bare)
    assert loose.manifest is None and loose.class_names == CLASS_NAMES
    np.testing.assert_array_equal(loose.predict(pixels[:300]), clf.predict(pixels[:300]))
    np.testing.assert_allclose(loose.predict_proba(pixels[:300]), clf.predict_proba(pixels[:300]), atol=1e-6)
    if kind[1] == "int8" and kind[0] == "tflite":
        assert loose.precision == "int8"


# --------------------------------------------------------------------------- input errors


BAD_INPUTS = {
    "wrong shape": (np.zeros((27, 28), np.uint8), r"shape \(27, 28\)"),
    "wrong image size in a batch": (np.zeros((2, 28, 29), np.uint8), "resize images to 28x28"),
    "channels last": (np.zeros((2, 28, 28, 1), np.uint8), "channel axis"),
    "rgb": (np.zeros((2, 28, 28, 3), np.uint8), "expected"),
    "scalar": (np.uint8(3), "expected"),
    "empty image dims": (np.zeros((5, 0, 28), np.uint8), "empty dimension"),
    "empty flat": (np.zeros((0,), np.uint8), "empty dimension"),
    "strings": (np.full((28, 28), "a"), "strings"),
    "python string": ("not an image", "not str"),
    "objects": (np.full((28, 28), None, dtype=object), "Python objects"),
    "complex": (np.zeros((28, 28), np.complex64), "complex"),
    "booleans": (np.zeros((28, 28), bool), "boolean"),
    "dates": (np.zeros((28, 28), "datetime64[s]"), "dates"),
    "nan": (np.where(np.eye(28) > 0, np.nan, 0.5), "NaN"),
    "inf": (np.where(np.eye(28) > 0, np.inf, 0.5).astype(np.float32), "infinity"),
    "minus inf": (np.full((1, 784), -np.inf), "infinity"),
    "0..255 floats": (np.full((28, 28), 200.0), "look like 0..255"),
    "negative floats": (np.full((28, 28), -0.5), r"\[0, 1\]"),
    "floats above 255": (np.full((28, 28), 300.0), r"\[0, 1\]"),
    "integers above 255": (np.full((28, 28), 256, np.int64), "0..255"),
    "negative integers": (np.full((28, 28), -1, np.int16), "0..255"),
    "ragged list": ([[0] * 28] * 27 + [[0] * 27], "cannot be read as an array|expected"),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_raises_input_error_that_says_what_is_wrong(clf, name):
    images, message = BAD_INPUTS[name]
    with pytest.raises(InputError, match=message):
        clf.predict_proba(images)
    with pytest.raises(InputError):
        clf.predict(images)


def test_input_error_is_a_value_error_and_a_mnist_edge_error(classifiers):
    with pytest.raises(ValueError):
        classifiers[("onnx", "fp32")].predict(np.zeros((3, 3)))
    assert issubclass(InputError, MnistEdgeError)


def test_an_empty_batch_in_any_form_gives_empty_results(clf):
    for empty in (np.zeros((0, 28, 28), np.uint8), np.zeros((0, 784), np.float32), np.zeros((0, 28, 28))):
        assert clf.predict(empty).shape == (0,)
        assert clf.predict_proba(empty).shape == (0, 10)


# --------------------------------------------------------------------------- load errors


def _copy_with_manifest(path: Path, folder: Path) -> Path:
    target = folder / path.name
    shutil.copy(path, target)
    shutil.copy(manifest_path(path), manifest_path(target))
    return target


@pytest.mark.parametrize("kind", KINDS, ids=IDS)
def test_a_single_flipped_byte_is_refused_before_the_engine_sees_it(kind, exported, tmp_path, monkeypatch):
    path = _copy_with_manifest(exported[kind].path, tmp_path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))

    opened = []
    backend_cls = BACKENDS[path.suffix]
    original_init = backend_cls.__init__

    def spy(self, *args, **kwargs):
        opened.append(args)
        original_init(self, *args, **kwargs)

    monkeypatch.setattr(backend_cls, "__init__", spy)
    with pytest.raises(ModelLoadError, match=r"does not match its manifest.*verify_hash=False"):
        load(path)
    assert opened == []


def test_verify_hash_false_skips_the_gate(exported, tmp_path):
    path = _copy_with_manifest(exported[("tflite", "fp32")].path, tmp_path)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01  # flip a bit near the end: the model most likely still loads
    path.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError):
        load(path)
    with contextlib.suppress(ModelLoadError):  # refusing is fine too: the hash gate did not decide
        load(path, verify_hash=False)


def test_a_truncated_file_is_refused(kind, exported, tmp_path):
    path = _copy_with_manifest(exported[kind].path, tmp_path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    with pytest.raises(ModelLoadError, match="truncated"):
        load(path)
    with pytest.raises(ModelLoadError, match="cannot load"):
        load(path, verify_hash=False)


@pytest.mark.parametrize("suffix", [".tflite", ".onnx"])
def test_files_that_are_not_models_are_refused(suffix, tmp_path):
    cases = {
        "random.": np.random.default_rng(0).bytes(4096),
        "text.": b"hello, I am not a model\n" * 10,
        "png.": b"\x89PNG\r\n\x1a\n" + bytes(100),
    }
    for name, content in cases.items():
        path = tmp_path / (name + suffix.lstrip("."))
        path = path.with_suffix(suffix)
        path.write_bytes(content)
        with pytest.raises(ModelLoadError, match=r"cannot load|fails to run"):
            load(path)


def test_missing_empty_and_folder_paths_are_refused(tmp_path):
    with pytest.raises(ModelLoadError, match=r"does not exist.*mnist-edge export"):
        load(tmp_path / "nope.tflite")
    empty = tmp_path / "empty.onnx"
    empty.touch()
    with pytest.raises(ModelLoadError, match="empty"):
        load(empty)
    folder = tmp_path / "dir.tflite"
    folder.mkdir()
    with pytest.raises(ModelLoadError, match="folder"):
        load(folder)
    with pytest.raises(ModelLoadError, match="suffix"):
        load(tmp_path / "model.txt")


def test_a_broken_or_foreign_manifest_is_refused(exported, tmp_path):
    path = _copy_with_manifest(exported[("tflite", "int8")].path, tmp_path)
    manifest_path(path).write_text("{not json", encoding="utf-8")
    with pytest.raises(ModelLoadError, match="manifest"):
        load(path)
    # The fp32 model's manifest beside the int8 file: the hash gate catches it...
    shutil.copy(manifest_path(exported[("tflite", "fp32")].path), manifest_path(path))
    with pytest.raises(ModelLoadError, match=r"manifest says|does not match its manifest"):
        load(path)
    # ...and without the gate, the dtype check does.
    with pytest.raises(ModelLoadError, match=r"manifest.*says the input is float32"):
        load(path, verify_hash=False)
    # An ONNX manifest beside a .tflite file.
    shutil.copy(manifest_path(exported[("onnx", "fp32")].path), manifest_path(path))
    with pytest.raises(ModelLoadError, match="describes a onnx model"):
        load(path)


def _onnx_model(path: Path, in_shape: list, out_classes: int) -> Path:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    flat = int(np.prod([d for d in in_shape[1:]]))
    weights = numpy_helper.from_array(np.ones((flat, out_classes), np.float32) / flat, "w")
    shape = numpy_helper.from_array(np.array([-1, flat], np.int64), "shape")
    graph = helper.make_graph(
        [
            helper.make_node("Reshape", ["x", "shape"], ["flat"]),
            helper.make_node("MatMul", ["flat", "w"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["y"], axis=-1),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [in_shape[0], out_classes])],
        [weights, shape],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_a_model_that_is_not_an_mnist_classifier_is_refused(tmp_path):
    wrong_input = _onnx_model(tmp_path / "in32.onnx", ["N", 32], 10)
    with pytest.raises(ModelLoadError, match=r"takes input of shape \(N, 32\)"):
        load(wrong_input)
    wrong_output = _onnx_model(tmp_path / "out5.onnx", ["N", 28, 28], 5)
    with pytest.raises(ModelLoadError, match=r"outputs shape \(N, 5\)"):
        load(wrong_output)
    fine = _onnx_model(tmp_path / "ok.onnx", ["N", 784], 10)
    with pytest.warns(ManifestWarning):
        clf = load(fine)
    np.testing.assert_allclose(clf.predict_proba(np.zeros((3, 28, 28), np.uint8)), 0.1, atol=1e-6)


def test_a_static_batch_onnx_model_is_chunked_and_padded(tmp_path, pixels):
    path = _onnx_model(tmp_path / "static.onnx", [4, 28, 28], 10)
    with pytest.warns(ManifestWarning):
        clf = load(path)
    for n in (0, 1, 4, 7, 9):
        assert clf.predict_proba(pixels[:n]).shape == (n, 10)


# --------------------------------------------------------------------------- the backend seam


class FakeBackend(Backend):
    """A stand-in engine: static batch 4, int8 'probabilities' or float logits, as configured."""

    name = "fake"
    format = "tflite"

    def __init__(self, output: TensorSpec, fn) -> None:
        self.input = TensorSpec("x", (4, 784), "float32")
        self.output = output
        self.fixed_batch = 4
        self.fn = fn
        self.batches: list[int] = []

    def run(self, batch: np.ndarray) -> np.ndarray:
        assert batch.shape == (4, 784) and batch.dtype == np.float32 and batch.flags.c_contiguous
        self.batches.append(len(batch))
        return self.fn(batch)


def test_classifier_chunks_and_pads_for_a_fixed_batch_backend():
    def fn(batch):  # int8 softmax-like output: all mass on class (mean pixel > 0.5)
        out = np.full((len(batch), 10), -128, np.int8)
        out[:, 0] = np.where(batch.mean(axis=1) > 0.5, -128, 127)
        out[:, 1] = np.where(batch.mean(axis=1) > 0.5, 127, -128)
        return out

    backend = FakeBackend(TensorSpec("y", (4, 10), "int8", 1 / 256, -128), fn)
    with pytest.warns(ManifestWarning):
        clf = Classifier(backend)
    backend.batches.clear()
    images = np.zeros((9, 28, 28), np.uint8)
    images[::2] = 255
    probs = clf.predict_proba(images)
    assert backend.batches == [4, 4, 4]
    np.testing.assert_array_equal(probs.argmax(axis=1), [1, 0, 1, 0, 1, 0, 1, 0, 1])
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-6)
    np.testing.assert_array_equal(clf.predict_proba(images[:1]), probs[:1])  # batch 1 route == batch route


def test_classifier_applies_softmax_to_logits_with_a_warning():
    backend = FakeBackend(
        TensorSpec("y", (4, 10), "float32"), lambda b: np.tile(np.arange(10.0), (len(b), 1))
    )
    with pytest.warns(ManifestWarning) as caught:
        clf = Classifier(backend)
    assert any("do not look like probabilities" in str(w.message) for w in caught)
    probs = clf.predict_proba(np.zeros((2, 784), np.float32))
    expected = np.exp(np.arange(10.0)) / np.exp(np.arange(10.0)).sum()
    np.testing.assert_allclose(probs, np.tile(expected, (2, 1)), rtol=1e-6)


def test_a_model_that_outputs_nan_is_refused():
    backend = FakeBackend(
        TensorSpec("y", (4, 10), "float32"), lambda b: np.full((len(b), 10), np.nan, np.float32)
    )
    with pytest.raises(ModelLoadError, match="NaN"):
        Classifier(backend)


def test_an_all_zero_quantised_row_comes_out_uniform_not_nan():
    calls = iter(range(10**6))

    def fn(batch):
        out = np.full((len(batch), 10), -128, np.int8)
        if next(calls) > 0:  # the load-time probe sees a normal softmax, later calls a dead row
            return out
        out[:, 3] = 127
        return out

    backend = FakeBackend(TensorSpec("y", (4, 10), "int8", 1 / 256, -128), fn)
    with pytest.warns(ManifestWarning):
        clf = Classifier(backend)
    for n in (1, 3):
        np.testing.assert_allclose(clf.predict_proba(np.zeros((n, 784), np.uint8)), 0.1)


def test_check_file_hook_runs_on_the_verified_bytes_before_the_engine(exported, monkeypatch):
    seen = []

    def check_file(cls, path, data):
        seen.append((path, len(data)))
        raise ModelLoadError("refused by the structural pre-check")

    monkeypatch.setattr(LiteRTBackend, "check_file", classmethod(check_file))
    path = exported[("tflite", "int8")].path
    with pytest.raises(ModelLoadError, match="pre-check"):
        load(path)
    assert seen == [(path, path.stat().st_size)]


def test_every_engine_exception_on_load_becomes_model_load_error(exported, monkeypatch):
    def explode(self, *args, **kwargs):
        raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "engine-specific trouble")

    monkeypatch.setattr(LiteRTBackend, "__init__", explode)
    with pytest.raises(ModelLoadError, match="UnicodeDecodeError"):
        load(exported[("tflite", "fp32")].path)


# --------------------------------------------------------------------------- threads


def test_one_classifier_shared_by_8_threads_gives_the_sequential_results(clf, pixels):
    rng = np.random.default_rng(1)
    jobs = [[(int(rng.integers(0, 2400)), int(rng.integers(1, 4))) for _ in range(500)] for _ in range(8)]
    expected = [[clf.predict_proba(pixels[s : s + n]) for s, n in job] for job in jobs]
    results: list[list[np.ndarray] | None] = [None] * 8
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def work(t: int) -> None:
        try:
            barrier.wait()
            results[t] = [clf.predict_proba(pixels[s : s + n]) for s, n in jobs[t]]
        except BaseException as exc:  # collected and re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors[0]
    for t in range(8):
        assert results[t] is not None
        for got, want in zip(results[t], expected[t], strict=True):
            np.testing.assert_array_equal(got, want)


# --------------------------------------------------------------------------- footprint


# ``onnx`` is a base dependency now (onnx.checker vets .onnx files before onnxruntime): imported when an
# ONNX model is loaded, never by ``import mnist_edge.runtime`` (checked with the engines below).
BLOCKED_IMPORTS = ("tensorflow", "keras", "tf2onnx", "matplotlib", "tf_keras", "jax", "torch")


def test_runtime_works_without_tensorflow_keras_or_tf2onnx(exported, pixels, tmp_path):
    """In a fresh interpreter where importing TensorFlow & co. fails, load and run every artifact."""
    images = tmp_path / "images.npy"
    np.save(images, pixels[:50])
    paths = [str(exported[k].path) for k in KINDS]
    script = textwrap.dedent(
        f"""
        import importlib.abc, json, sys
        BLOCKED = {BLOCKED_IMPORTS!r}

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError(f"blocked import of {{name}}")
                return None

        sys.meta_path.insert(0, Block())
        import numpy as np
        import mnist_edge.runtime
        from mnist_edge.runtime import load
        engines_at_import = sorted(m for m in ("onnxruntime", "ai_edge_litert", "onnx") if m in sys.modules)
        pictures = sorted(m for m in ("mnist_edge.images", "PIL") if m in sys.modules)
        images = np.load({str(images)!r})
        labels = {{}}
        for path in {paths!r}:
            labels[path] = load(path).predict(images).tolist()
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
        pictures += sorted(m for m in ("mnist_edge.images", "PIL") if m in sys.modules)
        print(json.dumps({{"labels": labels, "heavy": heavy, "engines_at_import": engines_at_import,
                          "pictures": pictures}}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["heavy"] == []
    assert result["engines_at_import"] == []  # engines load with the first model that needs them
    assert result["pictures"] == []  # the picture pipeline and Pillow: only for an app that reads pictures
    for kind in KINDS:
        path = str(exported[kind].path)
        assert result["labels"][path] == load(path).predict(pixels[:50]).tolist()


# --------------------------------------------------------------------------- top_k


def test_top_k_lists_the_most_likely_classes_of_each_image(clf, pixels):
    x = pixels[:20]
    probs = clf.predict_proba(x)
    ranked = clf.top_k(x, k=3)
    assert len(ranked) == 20 and all(len(row) == 3 for row in ranked)
    for row, p in zip(ranked, probs, strict=True):
        assert [c.probability for c in row] == sorted((float(v) for v in p), reverse=True)[:3]
        assert all(c.name == clf.class_names[c.label] and c.probability == float(p[c.label]) for c in row)
    np.testing.assert_array_equal([row[0].label for row in ranked], clf.predict(x))
    assert ranked[0][0].to_dict() == {
        "label": ranked[0][0].label,
        "name": ranked[0][0].name,
        "probability": ranked[0][0].probability,
    }


def test_top_k_puts_the_lower_label_first_on_a_tie():
    from mnist_edge.runtime.prediction import ranked

    row = np.array([[0.1, 0.3, 0.1, 0.3, 0.2]], dtype=np.float32)
    assert [p.label for p in ranked(row, ("a", "b", "c", "d", "e"), k=5)[0]] == [1, 3, 4, 0, 2]


@pytest.mark.parametrize("k", [0, 11, -1, 2.0, True])
def test_top_k_refuses_k_outside_the_classes(classifiers, pixels, k):
    with pytest.raises(InputError, match="k must be"):
        classifiers[KINDS[0]].top_k(pixels[:2], k=k)


def test_benchmark_engines_share_the_backends_options(exported):
    from mnist_edge.runtime.litert import new_interpreter
    from mnist_edge.runtime.onnxrt import session_options

    options = session_options(3)
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (3, 1)
    interpreter = new_interpreter(exported[("tflite", "int8")].path.read_bytes(), 1)
    assert len(interpreter.get_input_details()) == 1


# --------------------------------------------------------------------------- registry and lifetime


def test_importing_the_backend_base_imports_no_backend():
    script = textwrap.dedent(
        """
        import json, sys
        import mnist_edge.runtime.base
        import mnist_edge.runtime.registry
        print(json.dumps(sorted(m for m in sys.modules if m.startswith("mnist_edge.runtime."))))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=ROOT, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert "mnist_edge.runtime.base" in loaded
    backends = ("mnist_edge.runtime.litert", "mnist_edge.runtime.onnxrt", "mnist_edge.runtime.keras_ref")
    assert [m for m in loaded if m in backends] == []


def test_the_registry_resolves_suffixes_and_names_to_backend_classes():
    from mnist_edge.runtime.onnxrt import OnnxBackend
    from mnist_edge.runtime.registry import backend_for

    assert set(BACKENDS) == {".tflite", ".onnx", ".keras"}
    assert BACKENDS[".tflite"] is LiteRTBackend and backend_for("m.TFLITE") is LiteRTBackend
    assert backend_for("anything", "ort") is OnnxBackend
    with pytest.raises(ModelLoadError, match=r"unknown backend 'tensorrt': choose one of .*litert"):
        backend_for("m.onnx", "tensorrt")
    with pytest.raises(ModelLoadError, match=r"suffix '\.pt'"):
        backend_for("m.pt")


def test_a_closed_classifier_refuses_every_call(kind, exported, pixels):
    with load(exported[kind].path) as clf:
        expected = clf.predict(pixels[:3])
        assert not clf.closed
    assert clf.closed and "closed" in repr(clf)
    for call in (
        lambda: clf.predict(pixels[:1]),
        lambda: clf.predict_proba(pixels[:1]),
        lambda: clf.predict(pixels[:300]),
        lambda: clf.predict_proba(pixels[:2] / 255.0),
        lambda: clf.predict(pixels[:0]),
        lambda: clf.top_k(pixels[:1]),
    ):
        with pytest.raises(MnistEdgeError, match="was closed: load it again"):
            call()
    clf.close()  # twice is harmless
    assert clf.class_names == CLASS_NAMES  # the description outlives the engine
    with load(exported[kind].path) as again:
        np.testing.assert_array_equal(again.predict(pixels[:3]), expected)
