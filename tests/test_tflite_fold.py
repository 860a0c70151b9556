"""Folding the input's ``/ 255`` into a dynamic-range model's first layer (runtime/tflite_fold.py).

The fold must change nothing but the first layer's weight scales, give the original's answers,
be skipped for every graph it is not exact for, and never be used when its outputs disagree.
"""

from __future__ import annotations

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from mnist_edge.export import MODEL_TARGETS
from mnist_edge.runtime import load
from mnist_edge.runtime.tflite_fold import fold_input_division

DYNAMIC = ("tflite", "dynamic")


def _scales(data: bytes) -> dict[int, np.ndarray]:
    details = Interpreter(model_content=data).get_tensor_details()
    return {d["index"]: d["quantization_parameters"]["scales"] for d in details}


def _first_layer_weights(data: bytes) -> int:
    interpreter = Interpreter(model_content=data)
    ops = interpreter._get_ops_details()
    first = next(op for op in ops if op["op_name"] == "FULLY_CONNECTED")
    return int(first["inputs"][1])


def _outputs(data: bytes, batch: np.ndarray) -> np.ndarray:
    interpreter = Interpreter(model_content=data)
    index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(index, list(batch.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(index, batch)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def test_only_the_first_layers_weight_scales_change(exported):
    data = exported[DYNAMIC].path.read_bytes()
    folded = fold_input_division(data, 255.0)
    assert folded is not None and len(folded) == len(data)

    before, after = _scales(data), _scales(folded)
    weights = _first_layer_weights(data)
    changed = [i for i in before if not np.array_equal(before[i], after[i])]
    assert changed == [weights]
    expected = (before[weights].astype(np.float32) / np.float32(255)).astype(np.float32)
    np.testing.assert_array_equal(after[weights].astype(np.float32), expected)
    # ... and nothing else in the file: the differing bytes all lie inside that scale vector
    differing = np.flatnonzero(np.frombuffer(data, np.uint8) != np.frombuffer(folded, np.uint8))
    assert differing[-1] - differing[0] < 4 * len(expected)


@pytest.mark.parametrize("kind", [k for k in MODEL_TARGETS if k[0] == "tflite" and k != DYNAMIC], ids=str)
def test_models_without_int8_weights_on_a_float_input_are_not_folded(exported, kind):
    assert fold_input_division(exported[kind].path.read_bytes(), 255.0) is None


def test_the_folded_model_on_pixels_answers_like_the_original_on_pixels_over_255(exported, mnist):
    data = exported[DYNAMIC].path.read_bytes()
    pixels = mnist.x_test[:500].astype(np.float32)
    original = _outputs(data, pixels / np.float32(255))
    folded = _outputs(fold_input_division(data, 255.0), pixels)
    np.testing.assert_array_equal(folded.argmax(axis=1), original.argmax(axis=1))
    # The kernel re-quantises its input per row: levels may move by one where a value sits
    # within a float rounding of a half, which moves a probability by far less than the bound.
    assert np.abs(folded - original).max() < 0.01


def test_of_the_tflite_models_a_classifier_folds_the_dynamic_range_one_only(exported, mnist):
    pixels = mnist.x_test[:300]
    for kind in (k for k in MODEL_TARGETS if k[0] == "tflite"):
        clf = load(exported[kind].path)
        assert clf.folded_division == (kind == DYNAMIC), kind
    clf = load(exported[DYNAMIC].path)
    reference = _outputs(exported[DYNAMIC].path.read_bytes(), pixels.astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(clf.predict(pixels), reference.argmax(axis=1))
    np.testing.assert_array_equal(clf.predict_proba(pixels), clf.predict_proba(pixels / np.float32(255)))


def _dynamic_range(model) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return converter.convert()


def test_graphs_the_fold_is_not_exact_for_are_left_alone():
    import keras

    from mnist_edge.export.static_shapes import static_shapes

    def mlp(*, branches: int):
        inputs = keras.Input((28, 28))
        x = keras.ops.reshape(inputs, (-1, 784))
        hidden = [keras.layers.Dense(32, activation="relu")(x) for _ in range(branches)]
        x = hidden[0] if branches == 1 else keras.layers.Add()(hidden)
        return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))

    plain = _dynamic_range(mlp(branches=1))
    assert fold_input_division(plain, 255.0) is not None  # the control: this shape folds
    # The pixels feed two layers: both would need folding; the fold handles one.
    assert fold_input_division(_dynamic_range(mlp(branches=2)), 255.0) is None
    # Keras's Flatten reads the batch size with SHAPE: the input feeds two operators.
    flatten = keras.Sequential(
        [keras.Input((28, 28)), keras.layers.Flatten(), keras.layers.Dense(32), keras.layers.Dense(10)]
    )
    assert fold_input_division(_dynamic_range(flatten), 255.0) is None
    assert fold_input_division(_dynamic_range(static_shapes(flatten)), 255.0) is not None
