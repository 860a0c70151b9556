"""Export: every (format, precision) file, its manifest, crash safety, sizes, a top-1 smoke check, the CLI.

The six exports are built once per session (the ``exported`` fixture in conftest.py); tests here
read them with the engines directly (LiteRT, ONNX Runtime), never through mnist_edge.runtime.
"""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mnist_edge import CLASS_NAMES
from mnist_edge._files import TMP_MARKER, sha256_file
from mnist_edge.errors import ExportError
from mnist_edge.export import (
    MODEL_TARGETS,
    TARGETS,
    ExportResult,
    Target,
    artifact_name,
    expand,
    export,
    export_many,
)
from mnist_edge.export import calibration as cal
from mnist_edge.manifest import Manifest, read_manifest

#: The model files (``all``); the C source is tested in test_c_export.py.
COMBINATIONS = sorted(MODEL_TARGETS)
SMOKE_IMAGES = 100
runner = CliRunner()


# --------------------------------------------------------------------------- helpers


class Engine:
    """The file's own engine, fed the model's native dtype; returns float probabilities."""

    def __init__(self, result: ExportResult) -> None:
        self.manifest = result.manifest
        if result.format == "tflite":
            from ai_edge_litert.interpreter import Interpreter

            self.interpreter = Interpreter(model_path=str(result.path))
            self.interpreter.allocate_tensors()
        else:
            import onnxruntime as ort

            self.session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])

    def run_native(self, batch: np.ndarray) -> np.ndarray:
        if hasattr(self, "session"):
            return self.session.run(None, {self.manifest.input.name: batch})[0]
        interp = self.interpreter
        (detail,) = interp.get_input_details()
        interp.resize_tensor_input(detail["index"], batch.shape)
        interp.allocate_tensors()
        interp.set_tensor(detail["index"], batch)
        interp.invoke()
        return interp.get_tensor(interp.get_output_details()[0]["index"])

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 pixels in, float probabilities out, quantising per the manifest only."""
        spec_in, spec_out = self.manifest.input, self.manifest.output
        real = pixels.astype(np.float32) / self.manifest.preprocessing["divide_by"]
        if spec_in.quantized:
            info = np.iinfo(spec_in.dtype)
            q = np.round(real / spec_in.scale) + spec_in.zero_point
            batch = np.clip(q, info.min, info.max).astype(spec_in.dtype)
        else:
            batch = real.astype(spec_in.dtype)
        out = self.run_native(batch)
        if spec_out.quantized:
            return (out.astype(np.float32) - spec_out.zero_point) * spec_out.scale
        return out.astype(np.float32)


@pytest.fixture(scope="module")
def keras_top1(tiny_model_path, mnist) -> np.ndarray:
    from mnist_edge.model import load_model

    model = load_model(tiny_model_path)
    x = mnist.x_test[:SMOKE_IMAGES].astype(np.float32) / 255.0
    return np.argmax(model.predict(x, verbose=0), axis=1)


def one_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    assert len(lines) == 1, text
    return lines[0]


# --------------------------------------------------------------------------- every file


def test_all_means_every_combination_that_exists(exported):
    assert sorted(exported) == COMBINATIONS
    assert set(COMBINATIONS) == {
        ("tflite", "fp32"),
        ("tflite", "fp16"),
        ("tflite", "dynamic"),
        ("tflite", "int8"),
        ("onnx", "fp32"),
        ("onnx", "int8"),
    }


@pytest.mark.parametrize("key", COMBINATIONS, ids="-".join)
def test_export_is_named_by_precision_and_loads_in_its_engine(exported, mnist, key):
    result = exported[key]
    fmt, precision = key
    assert result.path.name == f"model.{precision}.{fmt}" == artifact_name(fmt, precision)
    assert result.manifest_path == result.path.with_name(result.path.name + ".json")
    probs = Engine(result).probabilities(mnist.x_test[:3])
    assert probs.shape == (3, 10)
    assert np.allclose(probs.sum(axis=1), 1.0, atol=0.05)


@pytest.mark.parametrize("key", COMBINATIONS, ids="-".join)
def test_manifest_validates_and_its_sha256_matches_the_file(exported, tiny_model_path, key):
    result = exported[key]
    manifest = read_manifest(result.path)
    assert manifest == result.manifest
    assert Manifest.from_dict(manifest.to_dict()) == manifest
    assert (manifest.format, manifest.precision) == key
    assert manifest.sha256 == sha256_file(result.path)
    assert manifest.size_bytes == result.size_bytes == result.path.stat().st_size
    assert manifest.source_model_sha256 == sha256_file(tiny_model_path)
    assert manifest.class_names == CLASS_NAMES
    assert {"tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime"} <= set(manifest.versions)
    assert manifest.preprocessing["divide_by"] == 255.0
    assert manifest.input.shape == (None, 28, 28) and manifest.output.shape == (None, 10)
    if key[1] == "int8":
        assert manifest.calibration == {
            "samples": cal.DEFAULT_SAMPLES,
            "seed": cal.DEFAULT_SEED,
            "source": cal.SOURCE,
            "range_anchors": 2,
        }
    else:
        assert manifest.calibration is None


def test_result_serialises_to_json(exported):
    import json

    payload = json.loads(json.dumps(exported["tflite", "int8"].to_dict()))
    assert payload["precision"] == "int8" and payload["manifest"]["input"]["dtype"] == "uint8"


@pytest.mark.parametrize("key", [k for k in COMBINATIONS if k[0] == "tflite"], ids="-".join)
def test_tflite_manifest_io_is_what_litert_reports(exported, key):
    from ai_edge_litert.interpreter import Interpreter

    result = exported[key]
    interp = Interpreter(model_path=str(result.path))
    for spec, (detail,) in (
        (result.manifest.input, interp.get_input_details()),
        (result.manifest.output, interp.get_output_details()),
    ):
        assert spec.name == detail["name"]
        assert spec.dtype == np.dtype(detail["dtype"]).name
        scale, zero_point = detail["quantization"]
        if spec.quantized:
            assert (spec.scale, spec.zero_point) == (pytest.approx(scale), zero_point)
        else:
            assert scale == 0.0


def test_int8_tflite_takes_raw_uint8_pixels(exported, mnist):
    """Input scale 1/255 and zero point 0: quantise(pixels / 255) is the pixels themselves."""
    manifest = exported["tflite", "int8"].manifest
    assert manifest.input.dtype == "uint8"
    assert manifest.input.scale == pytest.approx(1 / 255, rel=1e-6)
    assert manifest.input.zero_point == 0
    assert manifest.output.dtype == "uint8"
    assert manifest.output.scale == pytest.approx(1 / 256) and manifest.output.zero_point == 0
    pixels = mnist.x_test[:5]
    q = np.round(pixels / 255.0 / manifest.input.scale) + manifest.input.zero_point
    assert np.array_equal(q.astype(np.uint8), pixels)


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_onnx_passes_the_full_checker_and_has_a_dynamic_batch(exported, mnist, precision):
    import onnx

    result = exported["onnx", precision]
    proto = onnx.load(str(result.path))
    onnx.checker.check_model(proto, full_check=True)
    assert [i.name for i in proto.graph.input] == ["pixels"]
    assert [o.name for o in proto.graph.output] == ["probabilities"]
    for value in (proto.graph.input[0], proto.graph.output[0]):
        assert value.type.tensor_type.shape.dim[0].dim_param == "batch"
    engine = Engine(result)
    for n in (1, 7, 64):
        assert engine.probabilities(mnist.x_test[:n]).shape == (n, 10)


def _initializers(proto) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    return {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}


def test_onnx_int8_is_qdq_with_uint8_io(exported):
    """Like the int8 TFLite model: uint8 pixels in (scale 1/255, zero point 0), the quantised
    softmax out, with the output's scale and zero point in the manifest read from the graph."""
    import onnx
    import onnxruntime as ort

    result = exported["onnx", "int8"]
    proto = onnx.load(str(result.path))
    graph = proto.graph
    ops = [node.op_type for node in graph.node]
    assert {"QuantizeLinear", "DequantizeLinear"} <= set(ops)
    uint8 = onnx.TensorProto.UINT8
    assert graph.input[0].type.tensor_type.elem_type == uint8
    assert graph.output[0].type.tensor_type.elem_type == uint8
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    assert [(i.name, i.type) for i in session.get_inputs()] == [("pixels", "tensor(uint8)")]
    assert [(o.name, o.type) for o in session.get_outputs()] == [("probabilities", "tensor(uint8)")]

    manifest = result.manifest
    assert (manifest.input.dtype, manifest.output.dtype) == ("uint8", "uint8")
    assert manifest.input.scale == float(np.float32(1 / 255)) and manifest.input.zero_point == 0
    # The output is written by the softmax's QuantizeLinear itself; its parameters are the manifest's.
    (writer,) = [node for node in graph.node if "probabilities" in node.output]
    assert writer.op_type == "QuantizeLinear"
    values = _initializers(proto)
    scale, zero_point = values[writer.input[1]], values[writer.input[2]]
    assert scale.dtype == np.float32 and zero_point.dtype == np.uint8
    assert (manifest.output.scale, manifest.output.zero_point) == (float(scale), int(zero_point))
    # Nothing quantises the pixels any more, and no initializer is left unread.
    assert not [n for n in graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "pixels"]
    read = {name for node in graph.node for name in node.input}
    assert set(values) <= read
    assert "uint8 pixels as they are" in manifest.preprocessing["description"]
    assert manifest.preprocessing["divide_by"] == 255.0


def test_onnx_int8_input_quantisation_maps_every_pixel_to_itself(exported):
    """QuantizeLinear(pixel / 255) with the model's input scale and zero point, run by ONNX
    Runtime, is the pixel for all 256 values: dropping that node loses nothing."""
    import onnx
    import onnxruntime as ort
    from onnx import helper, numpy_helper

    spec = exported["onnx", "int8"].manifest.input
    node = helper.make_node("QuantizeLinear", ["real", "scale", "zero_point"], ["q"])
    graph = helper.make_graph(
        [node],
        "quantise",
        [helper.make_tensor_value_info("real", onnx.TensorProto.FLOAT, [256])],
        [helper.make_tensor_value_info("q", onnx.TensorProto.UINT8, [256])],
        [
            numpy_helper.from_array(np.array(spec.scale, np.float32), "scale"),
            numpy_helper.from_array(np.array(spec.zero_point, np.uint8), "zero_point"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    pixels = np.arange(256, dtype=np.uint8)
    for real in (pixels.astype(np.float32) / np.float32(255), (pixels / 255).astype(np.float32)):
        (q,) = session.run(None, {"real": real})
        assert q.dtype == np.uint8 and np.array_equal(q, pixels)


def test_onnx_int8_uint8_io_gives_what_the_model_gave_before_surgery(
    monkeypatch, tmp_path, tiny_model_path, mnist, exported
):
    """The quantised model as ``quantize_static`` wrote it (float pixels / 255 in, dequantised
    float out) and the uint8 one agree exactly: same uint8 probabilities, same top-1."""
    import copy

    import onnxruntime as ort

    from mnist_edge.export import onnx as onnx_export

    before = []
    surgery = onnx_export.integer_io

    def spy(model):
        before.append(copy.deepcopy(model))
        return surgery(model)

    monkeypatch.setattr(onnx_export, "integer_io", spy)
    result = export(tiny_model_path, "onnx", "int8", tmp_path, data=mnist)
    assert len(before) == 1
    # Same model, same calibration: the same output quantisation as the file the other tests check
    # (the bytes differ: tf2onnx numbers its node names per process).
    assert result.manifest.output == exported["onnx", "int8"].manifest.output

    pixels = mnist.x_test[:SMOKE_IMAGES]
    float_io = ort.InferenceSession(before[0].SerializeToString(), providers=["CPUExecutionProvider"])
    (expected,) = float_io.run(None, {"pixels": (pixels / 255).astype(np.float32)})
    assert expected.dtype == np.float32
    uint8_io = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    (raw,) = uint8_io.run(None, {"pixels": pixels})
    assert raw.dtype == np.uint8 and raw.shape == (SMOKE_IMAGES, 10)
    out = result.manifest.output
    dequantised = (raw.astype(np.float32) - out.zero_point) * np.float32(out.scale)
    np.testing.assert_array_equal(dequantised, expected)
    fp32 = Engine(exported["onnx", "fp32"]).probabilities(pixels)
    agree = int((np.argmax(raw, axis=1) == np.argmax(fp32, axis=1)).sum())
    assert agree >= 99, f"{agree}/{SMOKE_IMAGES} agree with the fp32 ONNX model"


#: The input quantisation under which quantise(pixels / 255) == pixels.
RAW_PIXEL_SCALE, RAW_PIXEL_ZERO_POINT = np.float32(1 / 255), np.uint8(0)


def _qdq_model(input_scale=RAW_PIXEL_SCALE, input_zero_point=RAW_PIXEL_ZERO_POINT, *, quantise_input=True):
    """A small QDQ graph shaped like quantize_static's output: pixels -> Reshape -> Q -> DQ ->
    MatMul -> Softmax -> Q -> DQ -> probabilities, all float I/O."""
    import onnx
    from onnx import helper, numpy_helper

    weights = np.random.default_rng(0).normal(0, 0.05, (784, 10)).astype(np.float32)
    initializers = {
        "shape": np.array([-1, 784], np.int64),
        "in_scale": np.asarray(input_scale),
        "in_zero_point": np.asarray(input_zero_point),
        "weights": weights,
        "out_scale": np.array(1 / 256, np.float32),
        "out_zero_point": np.array(0, np.uint8),
    }
    nodes = [helper.make_node("Reshape", ["pixels", "shape"], ["flat"])]
    if quantise_input:
        nodes += [
            helper.make_node("QuantizeLinear", ["flat", "in_scale", "in_zero_point"], ["flat_q"]),
            helper.make_node("DequantizeLinear", ["flat_q", "in_scale", "in_zero_point"], ["flat_dq"]),
            helper.make_node("MatMul", ["flat_dq", "weights"], ["logits"]),
        ]
    else:
        nodes.append(helper.make_node("MatMul", ["flat", "weights"], ["logits"]))
        del initializers["in_scale"], initializers["in_zero_point"]
    nodes += [
        helper.make_node("Softmax", ["logits"], ["soft"]),
        helper.make_node("QuantizeLinear", ["soft", "out_scale", "out_zero_point"], ["soft_q"]),
        helper.make_node("DequantizeLinear", ["soft_q", "out_scale", "out_zero_point"], ["probabilities"]),
    ]
    graph = helper.make_graph(
        nodes,
        "qdq",
        [helper.make_tensor_value_info("pixels", onnx.TensorProto.FLOAT, ["batch", 28, 28])],
        [helper.make_tensor_value_info("probabilities", onnx.TensorProto.FLOAT, ["batch", 10])],
        [numpy_helper.from_array(value, name) for name, value in initializers.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_integer_io_turns_a_qdq_graph_into_uint8_io(mnist):
    import onnx
    import onnxruntime as ort

    from mnist_edge.export.onnx import integer_io

    model = _qdq_model()
    float_io = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    assert integer_io(model) == (float(np.float32(1 / 256)), 0)
    onnx.checker.check_model(model, full_check=True)
    assert [n.op_type for n in model.graph.node] == [
        "Reshape",
        "DequantizeLinear",
        "MatMul",
        "Softmax",
        "QuantizeLinear",
    ]
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    uint8_io = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    pixels = mnist.x_test[:8]
    (expected,) = float_io.run(None, {"pixels": (pixels / 255).astype(np.float32)})
    (raw,) = uint8_io.run(None, {"pixels": pixels})
    assert raw.dtype == np.uint8
    np.testing.assert_array_equal(raw.astype(np.float32) / 256, expected)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"input_scale": np.float32(1 / 256)}, "not float32(1/255)"),
        ({"input_scale": np.nextafter(RAW_PIXEL_SCALE, np.float32(1))}, "not float32(1/255)"),
        ({"input_zero_point": np.uint8(1)}, "not float32(1/255)"),
        ({"input_zero_point": np.int8(0)}, "not float32(1/255)"),
        ({"quantise_input": False}, "does not start by quantising its input 'pixels'"),
    ],
    ids=["scale-1/256", "scale-off-by-an-ulp", "zero-point-1", "int8-zero-point", "no-input-quantizer"],
)
def test_integer_io_refuses_an_input_that_is_not_raw_pixels(kwargs, needle):
    from mnist_edge.export.onnx import integer_io

    with pytest.raises(ExportError, match=re.escape(needle)):
        integer_io(_qdq_model(**kwargs))


def test_sizes_shrink_as_promised(exported):
    size = {key: r.size_bytes for key, r in exported.items()}
    assert size["tflite", "int8"] <= 0.3 * size["tflite", "fp32"]
    assert 0.45 <= size["tflite", "fp16"] / size["tflite", "fp32"] <= 0.55
    assert size["tflite", "dynamic"] <= 0.3 * size["tflite", "fp32"]
    assert size["onnx", "int8"] <= 0.3 * size["onnx", "fp32"]


@pytest.mark.parametrize("key", COMBINATIONS, ids="-".join)
def test_export_agrees_with_keras_on_top1(exported, mnist, keras_top1, key):
    probs = Engine(exported[key]).probabilities(mnist.x_test[:SMOKE_IMAGES])
    agree = int((np.argmax(probs, axis=1) == keras_top1).sum())
    assert agree >= 99, f"{key}: {agree}/{SMOKE_IMAGES} agree with Keras"


#: Operators Keras's run-time-batch Flatten becomes; a constant reshape needs none of them.
_DYNAMIC_SHAPE_OPS = {"SHAPE", "STRIDED_SLICE", "PACK"}


@pytest.mark.parametrize("key", [k for k in COMBINATIONS if k[0] == "tflite"], ids="-".join)
def test_tflite_graph_reshapes_with_a_constant_shape(exported, key):
    """No shape computed from a tensor at run time: those operators ran outside the XNNPACK
    delegate and made LiteRT plan memory again inside invoke (1.2-1.5 us of a batch-1 call)."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(exported[key].path))
    interp.allocate_tensors()
    ops = [op["op_name"] for op in interp._get_ops_details()]  # LiteRT has no public op listing
    assert "RESHAPE" in ops and "FULLY_CONNECTED" in ops
    assert not _DYNAMIC_SHAPE_OPS & set(ops), ops


def test_static_shapes_computes_what_the_model_computes(tiny_model_path, mnist):
    from mnist_edge._heavy import keras
    from mnist_edge.export.static_shapes import static_shapes
    from mnist_edge.model import load_model

    model = load_model(tiny_model_path)
    static = static_shapes(model)
    assert static is not model
    assert "Flatten" not in [type(layer).__name__ for layer in static.layers]
    assert all(any(w is v for v in model.weights) for w in static.weights)  # shared, not copied
    x = mnist.x_test[:64].astype(np.float32) / 255.0
    assert np.array_equal(np.asarray(static(x)), np.asarray(model(x)))

    k = keras()
    no_flatten = k.Sequential([k.Input((784,)), k.layers.Dense(10, activation="softmax")])
    assert static_shapes(no_flatten) is no_flatten


# --------------------------------------------------------------------------- crash safety


def _failing_exporter(exc: BaseException):
    def exporter(job, path: Path):
        path.write_bytes(b"TFL3 half a model")
        raise exc

    return exporter


@pytest.mark.parametrize("exc", [RuntimeError("converter crashed"), KeyboardInterrupt()])
def test_failure_mid_export_leaves_nothing_at_the_final_path(monkeypatch, tmp_path, tiny_model_path, exc):
    monkeypatch.setitem(TARGETS, ("tflite", "fp32"), Target("tflite", "fp32", _failing_exporter(exc)))
    expected = ExportError if isinstance(exc, Exception) else KeyboardInterrupt
    with pytest.raises(expected):
        export(tiny_model_path, "tflite", "none", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_failure_mid_export_keeps_the_previous_file(monkeypatch, tmp_path, tiny_model_path, exported):
    previous = exported["tflite", "fp32"]
    for src in (previous.path, previous.manifest_path):
        (tmp_path / src.name).write_bytes(src.read_bytes())
    monkeypatch.setitem(
        TARGETS, ("tflite", "fp32"), Target("tflite", "fp32", _failing_exporter(RuntimeError("boom")))
    )
    with pytest.raises(ExportError, match="tflite fp32 export failed: RuntimeError: boom"):
        export(tiny_model_path, "tflite", "fp32", tmp_path)
    assert sha256_file(tmp_path / previous.path.name) == previous.manifest.sha256
    assert read_manifest(tmp_path / previous.path.name) == previous.manifest
    assert not [p for p in tmp_path.iterdir() if TMP_MARKER in p.name]


# --------------------------------------------------------------------------- choosing targets


def test_expand_all_and_cli_precision_names():
    assert [(t.format, t.precision) for t in expand("all", "all")] == list(MODEL_TARGETS)
    assert [(t.format, t.precision) for t in expand("tflite", "none")] == [("tflite", "fp32")]
    assert [(t.format, t.precision) for t in expand("all", "int8")] == [("tflite", "int8"), ("onnx", "int8")]
    assert [(t.format, t.precision) for t in expand("all", "float16")] == [("tflite", "fp16")]
    assert [(t.format, t.precision) for t in expand("onnx", "all")] == [("onnx", "fp32"), ("onnx", "int8")]
    assert [(t.precision) for t in expand("tflite", ["dynamic", "fp16"])] == ["dynamic", "fp16"]


def test_unsupported_combination_lists_what_exists():
    with pytest.raises(ExportError) as info:
        expand("onnx", "float16")
    message = str(info.value)
    assert "onnx fp16" in message
    assert "tflite: fp32, fp16, dynamic, int8; onnx: fp32, int8" in message


@pytest.mark.parametrize(("fmt", "precision"), [("coreml", "none"), ("tflite", "int4"), ("all", "bf16")])
def test_unknown_names_are_export_errors(fmt, precision):
    with pytest.raises(ExportError, match="unknown"):
        expand(fmt, precision)


def test_export_writes_one_file_and_refuses_all(tmp_path, tiny_model_path):
    with pytest.raises(ExportError, match="export_many"):
        export(tiny_model_path, "all", "none", tmp_path)


def test_bad_options_fail_before_the_model_is_loaded(tmp_path):
    missing = tmp_path / "nope.keras"  # would be a ModelLoadError if it got that far
    with pytest.raises(ExportError, match="--opset 19"):
        export_many(missing, "onnx", "none", tmp_path, opset=19)


# --------------------------------------------------------------------------- calibration


def _labels_from_pool(mnist, images: np.ndarray) -> np.ndarray:
    """The training label of each calibration image; KeyError if one is not from train[5000:]."""
    pool = zip(mnist.x_train[cal.VALIDATION_SIZE :], mnist.y_train[cal.VALIDATION_SIZE :], strict=True)
    index = {img.tobytes(): int(label) for img, label in pool}
    pixels = np.round(images * 255).astype(np.uint8)
    return np.array([index[img.tobytes()] for img in pixels])


def test_calibration_is_stratified_seeded_and_from_training_images_after_validation(mnist):
    chosen = cal.calibration_set(mnist, 1000, seed=3)
    assert chosen.images.shape == (1000, 28, 28) and chosen.images.dtype == np.float32
    assert chosen.images.min() >= 0.0 and chosen.images.max() <= 1.0
    labels = _labels_from_pool(mnist, chosen.images)  # never validation or test images
    assert np.bincount(labels, minlength=10).tolist() == [100] * 10
    assert len({img.tobytes() for img in chosen.images}) == 1000  # drawn without replacement
    assert np.array_equal(cal.calibration_set(mnist, 1000, seed=3).images, chosen.images)
    assert not np.array_equal(cal.calibration_set(mnist, 1000, seed=4).images, chosen.images)


def test_calibration_anchors_cover_exact_black_and_white(mnist):
    chosen = cal.calibration_set(mnist, 15, seed=0)
    first = np.concatenate(list(chosen.batches(batch_size=1))[:2])
    assert first[0].max() == 0.0 and first[1].min() == 1.0
    assert sum(len(b) for b in chosen.batches(batch_size=4)) == 15 + 2


def test_calibration_remainder_is_spread_over_classes(mnist):
    counts = np.bincount(
        _labels_from_pool(mnist, cal.calibration_set(mnist, 15, seed=1).images), minlength=10
    )
    assert counts.sum() == 15 and set(counts.tolist()) == {1, 2}


@pytest.mark.parametrize("samples", [0, -5, 10**6])
def test_calibration_sample_count_is_checked(mnist, samples):
    with pytest.raises(ExportError, match="--calibration-samples"):
        cal.calibration_set(mnist, samples)


# --------------------------------------------------------------------------- CLI


def test_cli_exports_and_prints_a_table(tmp_path, tiny_model_path):
    from mnist_edge.cli import app

    result = runner.invoke(
        app,
        ["export", "--model", str(tiny_model_path), "--format", "onnx", "--out", str(tmp_path)],
        terminal_width=200,
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "model.fp32.onnx").is_file()
    assert read_manifest(tmp_path / "model.fp32.onnx").precision == "fp32"
    assert "model.fp32.onnx" in result.output and "size KB" in result.output


def test_cli_prints_the_int8_to_fp32_size_ratio(exported, capsys):
    from mnist_edge import cli

    cli._print_exports(list(exported.values()))
    printed = capsys.readouterr().out
    ratio = exported["tflite", "int8"].size_bytes / exported["tflite", "fp32"].size_bytes
    assert f"tflite: int8 is {ratio:.2f}x the size of fp32" in printed
    assert "onnx: int8 is" in printed


def test_cli_defaults_match_the_library():
    from mnist_edge.cli import export_cmd

    defaults = {name: p.default for name, p in inspect.signature(export_cmd).parameters.items()}
    library = inspect.signature(export_many).parameters
    for name in ("calibration_samples", "seed", "opset", "rounding", "prefix"):
        assert defaults[name] == library[name].default
    assert (defaults["fmt"], defaults["quantize"]) == ("tflite", None)  # None: the format's default


def _not_mnist_model(tmp_path: Path) -> Path:
    from mnist_edge._heavy import keras

    k = keras()
    model = k.Sequential([k.Input(shape=(8,)), k.layers.Dense(3)])
    path = tmp_path / "other.keras"
    model.save(path)
    return path


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("missing-model", "does not exist"),
        ("h5-model", "not a .keras file"),
        ("garbage-model", "not a valid .keras file"),
        ("not-mnist", "an MNIST classifier maps"),
        ("out-is-a-file", "is a file, not a folder"),
        ("out-under-a-file", "cannot create --out folder"),
        ("onnx-float16", "what exists - tflite: fp32, fp16, dynamic, int8; onnx: fp32, int8"),
        ("unknown-format", "unknown format 'coreml'"),
        ("bad-opset", "--opset 9 is not supported"),
    ],
)
def test_cli_errors_are_one_line_and_exit_2(tmp_path, tiny_model_path, case, needle):
    from mnist_edge.cli import app

    model, out, extra = tiny_model_path, tmp_path / "out", []
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    if case == "missing-model":
        model = tmp_path / "missing.keras"
    elif case == "h5-model":
        model = tmp_path / "model.h5"
        model.write_bytes(b"\x89HDF\r\n")
    elif case == "garbage-model":
        model = tmp_path / "model.keras"
        model.write_text("not a zip")
    elif case == "not-mnist":
        model = _not_mnist_model(tmp_path)
    elif case == "out-is-a-file":
        out = blocker
    elif case == "out-under-a-file":
        out = blocker / "sub"
    elif case == "onnx-float16":
        extra = ["--format", "onnx", "--quantize", "float16"]
    elif case == "unknown-format":
        extra = ["--format", "coreml"]
    elif case == "bad-opset":
        extra = ["--format", "onnx", "--opset", "9"]
    args = ["export", "--model", str(model), "--out", str(out), *extra]
    result = runner.invoke(app, args, terminal_width=400)
    assert result.exit_code == 2, result.output
    line = one_line(result.output)
    assert line.startswith("error:") and needle in line, line
    assert "Traceback" not in result.output


def test_importing_export_does_not_import_tensorflow():
    code = (
        "import sys, mnist_edge.export; "
        "heavy = [m for m in ('tensorflow', 'keras', 'tf2onnx', 'onnx') if m in sys.modules]; "
        "print(heavy); sys.exit(bool(heavy))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
