"""Folding the input's ``/ 255`` into a float ONNX model's first layer (runtime/onnx_fold.py).

The fold must change nothing but the first layer's weight, give the original's answers, be
skipped for every graph it is not exact for, and never be used when its outputs disagree.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from mnist_edge.runtime import load, onnx_fold, tflite_fold
from mnist_edge.runtime.base import Backend
from mnist_edge.runtime.litert import LiteRTBackend
from mnist_edge.runtime.onnx_fold import fold_input_division
from mnist_edge.runtime.onnxrt import OnnxBackend

FP32 = ("onnx", "fp32")


def _weights(data: bytes) -> dict[str, np.ndarray]:
    import onnx
    from onnx import numpy_helper

    return {i.name: numpy_helper.to_array(i) for i in onnx.load_from_string(data).graph.initializer}


def _outputs(data: bytes, batch: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: batch})[0]


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_only_the_first_layers_weight_changes(exported, cnn_exported, model):
    import onnx

    data = (exported if model == "mlp" else cnn_exported)[FP32].path.read_bytes()
    folded = fold_input_division(data, 255.0)
    assert folded is not None

    before, after = _weights(data), _weights(folded)
    assert before.keys() == after.keys()
    changed = [name for name in before if not np.array_equal(before[name], after[name])]
    assert len(changed) == 1
    first = onnx.load_from_string(data).graph.node
    layer = next(n for n in first if n.op_type in ("MatMul", "Gemm", "Conv"))
    assert changed == [layer.input[1]]
    np.testing.assert_array_equal(after[changed[0]], before[changed[0]] / np.float32(255))
    # The graph itself (nodes, inputs, outputs) is untouched.
    assert onnx.load_from_string(folded).graph.node == first


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_the_folded_model_on_pixels_answers_like_the_original_on_pixels_over_255(
    exported, cnn_exported, mnist, model
):
    data = (exported if model == "mlp" else cnn_exported)[FP32].path.read_bytes()
    pixels = mnist.x_test[:500].astype(np.float32)
    original = _outputs(data, pixels / np.float32(255))
    folded = _outputs(fold_input_division(data, 255.0), pixels)
    np.testing.assert_array_equal(folded.argmax(axis=1), original.argmax(axis=1))
    # Only the order of two float roundings differs: x * (w / 255) against (x / 255) * w.
    np.testing.assert_allclose(folded, original, rtol=1e-4, atol=1e-6)


def test_quantised_models_are_not_folded(exported):
    assert fold_input_division(exported[("onnx", "int8")].path.read_bytes(), 255.0) is None
    assert not load(exported[("onnx", "int8")].path).folded_division


def test_a_classifier_on_the_folded_model_matches_the_bare_engine(exported, mnist):
    path = exported[FP32].path
    clf = load(path)
    assert clf.folded_division
    pixels = mnist.x_test[:300]
    reference = _outputs(path.read_bytes(), pixels.astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(clf.predict(pixels), reference.argmax(axis=1))
    np.testing.assert_allclose(clf.predict_proba(pixels), reference, rtol=1e-4, atol=1e-6)
    # Float input in [0, 1] reaches the same model input as the uint8 pixels.
    np.testing.assert_array_equal(clf.predict_proba(pixels), clf.predict_proba(pixels / np.float32(255)))


@pytest.mark.parametrize(
    ("fold", "kind"), [(tflite_fold, ("tflite", "dynamic")), (onnx_fold, FP32)], ids=["tflite", "onnx"]
)
def test_a_fold_whose_outputs_disagree_is_not_used(exported, mnist, monkeypatch, fold, kind):
    path = exported[kind].path
    pixels = mnist.x_test[:300]
    with monkeypatch.context() as patch:
        for backend in (LiteRTBackend, OnnxBackend):  # the reference: no fold at all
            patch.setattr(backend, "fold_input_scale", Backend.fold_input_scale)
        assert not load(path).folded_division
        reference = load(path).predict_proba(pixels)
    # A "fold" that forgets to scale: the model would see pixels 255 times too large.
    monkeypatch.setattr(fold, "fold_input_division", lambda data, divide_by: data)
    clf = load(path)
    assert not clf.folded_division
    np.testing.assert_array_equal(clf.predict_proba(pixels), reference)


def _graph(*, second_use: str | None = None, through: str | None = "Reshape", weight_is_input=False) -> bytes:
    """x [N, 4] -> (Reshape) -> MatMul(W) -> y; ``second_use`` names a tensor a second node also reads."""
    import onnx
    from onnx import helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.normal(size=(4, 3)).astype(np.float32), "W")
    shape = numpy_helper.from_array(np.array([-1, 4], dtype=np.int64), "shape")
    nodes = []
    data = "x"
    if through:
        nodes.append(helper.make_node("Reshape", ["x", "shape"], ["flat"]))
        data = "flat"
    nodes.append(helper.make_node("MatMul", [data, "W"], ["y"]))
    outputs = [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [None, 3])]
    if second_use:
        nodes.append(helper.make_node("Relu", [second_use], ["other"]))
        outputs.append(helper.make_tensor_value_info("other", onnx.TensorProto.FLOAT, None))
    inputs = [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [None, 4])]
    if weight_is_input:
        inputs.append(helper.make_tensor_value_info("W", onnx.TensorProto.FLOAT, [4, 3]))
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=[weight, shape])
    return helper.make_model(graph).SerializeToString()


def test_graphs_the_fold_is_not_exact_for_are_left_alone():
    assert fold_input_division(_graph(), 255.0) is not None  # the control: this shape folds
    assert fold_input_division(_graph(through=None), 255.0) is not None
    # The pixels (or the reshaped pixels) also feed another node, which would see 255 x.
    assert fold_input_division(_graph(second_use="x"), 255.0) is None
    assert fold_input_division(_graph(second_use="flat"), 255.0) is None
    # The weight is used twice, or a caller may override it as a graph input.
    assert fold_input_division(_graph(second_use="W"), 255.0) is None
    assert fold_input_division(_graph(weight_is_input=True), 255.0) is None
