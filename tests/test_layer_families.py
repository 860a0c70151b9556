"""Any supported Keras digit classifier goes through the toolkit: export, runtime, parity.

The slow part trains one tiny model per layer family (``layer_families.py``), exports it in every
format and precision, loads every file through the runtime (the structural pre-checks included)
and holds each to the parity gate's default tolerances - among them the two shapes a user's first
CNN hit: ``(28, 28) -> Reshape`` (its ONNX files were once refused by our own pre-check) and
``(28, 28, 1)`` (once refused by export). The fast part is what export refuses, and why.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from layer_families import FAMILIES, train_tiny

from mnist_edge.errors import ExportError, ModelLoadError
from mnist_edge.export import MODEL_TARGETS, export_many
from mnist_edge.manifest import Manifest
from mnist_edge.model import check_exportable, output_kind

#: Calibration images for the families' int8 files: fewer than the default 1,000, to save time.
CALIBRATION = 300


@pytest.mark.slow
@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_export_of_each_layer_family_loads_and_passes_parity(family, mnist, tmp_path):
    import warnings

    from mnist_edge.parity import verify
    from mnist_edge.runtime import ManifestWarning, load

    spec = FAMILIES[family]
    model_path = train_tiny(spec.build(), mnist, tmp_path / "model.keras", epochs=spec.epochs)
    results = export_many(model_path, "all", "all", tmp_path, data=mnist, calibration_samples=CALIBRATION)
    assert {(r.format, r.precision) for r in results} == set(MODEL_TARGETS)

    from mnist_edge.model import load_model

    kind = output_kind(load_model(model_path))
    pixels = mnist.x_test[:16]
    for result in results:
        assert result.manifest.output_kind == kind
        with warnings.catch_warnings():
            warnings.simplefilter("error", ManifestWarning)  # the manifest says it all: no guessing
            classifier = load(result.path)  # raises ModelLoadError if our pre-check refuses it
        assert classifier.output_kind == kind
        probs = classifier.predict_proba(pixels)
        assert probs.shape == (16, 10) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)

    report = verify([r.path for r in results], model_path, data=mnist)
    failed = {row.name: row.reasons for row in report.rows if row.status != "PASS"}
    assert not failed, failed
    assert report.passed and len(report.rows) == len(MODEL_TARGETS)

    # The benchmark times the Keras model on the test digits, whatever input shape it takes.
    from mnist_edge.bench import BenchOptions, benchmark_keras

    budget = BenchOptions.checked(batch_sizes="1,8", min_time="1ms", min_calls=3)
    keras_timing = benchmark_keras(model_path, mnist.x_test[:64], budget, memory=False)
    assert keras_timing.call_latency.p50_us > 0 and set(keras_timing.predict_latency_by_batch) == {1, 8}


# --------------------------------------------------------------------------- what export refuses


def _saved(tmp_path: Path, *layers: object, shape: tuple[int, ...] = (28, 28)) -> Path:
    import keras

    model = keras.Sequential([keras.Input(shape), *layers])
    path = tmp_path / "model.keras"
    model.save(path)
    return path


def test_a_layer_outside_the_supported_set_is_refused_at_export_by_name(tmp_path, mnist):
    import keras

    path = _saved(
        tmp_path,
        keras.layers.Conv1D(8, 3, name="row_filter"),
        keras.layers.Flatten(),
        keras.layers.Dense(10, activation="softmax"),
    )
    with pytest.raises(ExportError, match=r"layer 'row_filter' is a Conv1D.*supported layers: .*Conv2D"):
        export_many(path, "all", "all", tmp_path / "out", data=mnist)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize(
    ("layer", "problem"),
    [
        ("dense_tanh", "activation 'tanh'"),
        ("dilated", "dilation_rate (2, 2)"),
        ("relu_4", "max_value=4.0"),
    ],
)
def test_an_unsupported_option_of_a_supported_layer_is_refused_by_name(layer, problem, tmp_path):
    import keras

    from mnist_edge.model import load_model

    body = {
        "dense_tanh": [keras.layers.Flatten(), keras.layers.Dense(10, activation="tanh", name=layer)],
        "dilated": [
            keras.layers.Reshape((28, 28, 1)),
            keras.layers.Conv2D(4, 3, dilation_rate=2, name=layer),
            keras.layers.Flatten(),
            keras.layers.Dense(10),
        ],
        "relu_4": [
            keras.layers.Flatten(),
            keras.layers.Dense(10),
            keras.layers.ReLU(max_value=4.0, name=layer),
        ],
    }[layer]
    model = load_model(_saved(tmp_path, *body))
    with pytest.raises(ExportError, match=rf"layer '{layer}' \(\w+\) uses {re.escape(problem)}"):
        check_exportable(model)


def test_input_shapes_a_classifier_may_take(tmp_path):
    import keras

    from mnist_edge.model import load_model

    for shape in ((28, 28), (784,), (28, 28, 1)):
        body = [keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")]
        model = load_model(_saved(tmp_path, *body, shape=shape))
        check_exportable(model)
    colour = _saved(tmp_path, keras.layers.Flatten(), keras.layers.Dense(10), shape=(28, 28, 3))
    with pytest.raises(ModelLoadError, match=r"maps \(28, 28, 3\) -> \(10,\).*\(28, 28, 1\)"):
        load_model(colour)


def test_output_kind_follows_the_last_layer_that_changes_values():
    import keras
    from keras import layers

    def kind(*body: object) -> str:
        return output_kind(keras.Sequential([keras.Input((784,)), *body]))

    assert kind(layers.Dense(10, activation="softmax")) == "probabilities"
    assert kind(layers.Dense(10), layers.Softmax()) == "probabilities"
    assert kind(layers.Dense(10), layers.Activation("softmax"), layers.Dropout(0.1)) == "probabilities"
    assert kind(layers.Dense(10)) == "logits"
    assert kind(layers.Dense(10, activation="softmax"), layers.Dense(10)) == "logits"
    inputs = keras.Input((784,))
    functional = keras.Model(inputs, layers.Softmax()(layers.Dense(10)(inputs)))
    assert output_kind(functional) == "probabilities"


def test_manifests_without_an_output_kind_still_load(exported):
    data = exported[("tflite", "int8")].manifest.to_dict()
    assert data["output_kind"] == "probabilities"
    del data["output_kind"]  # as written before the field existed
    assert Manifest.from_dict(data).output_kind is None
    with pytest.raises(ValueError, match="output_kind 'scores'"):
        Manifest.from_dict({**data, "output_kind": "scores"})
