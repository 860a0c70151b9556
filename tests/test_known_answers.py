"""Known answers: each manifest carries what its file answered on the load-time probe images, and
``load()`` refuses a file (or an engine) that answers differently - which the hash gate cannot see
when a file was rewritten together with its manifest's hash."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mnist_edge._files import sha256_bytes
from mnist_edge.errors import ModelLoadError
from mnist_edge.export import MODEL_TARGETS
from mnist_edge.manifest import manifest_path, read_manifest
from mnist_edge.runtime import known_answers, load, preprocess

KINDS = list(MODEL_TARGETS)
IDS = [f"{fmt}-{precision}" for fmt, precision in KINDS]
#: The classes a tampered final layer swaps: a "3" is read as an "8" and back.
SWAPPED = (3, 8)


def _copy(source: Path, folder: Path) -> Path:
    target = folder / source.name
    shutil.copy(source, target)
    shutil.copy(manifest_path(source), manifest_path(target))
    return target


def _edit_manifest(path: Path, **changes) -> None:
    mpath = manifest_path(path)
    data = json.loads(mpath.read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    mpath.write_text(json.dumps(data))


def _final_layer(path: Path, data: bytes) -> tuple[np.ndarray, int]:
    """The final layer's weights as stored in the file, and which axis is the class axis."""
    if path.suffix == ".tflite":
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_content=data)
        interpreter.allocate_tensors()
        arrays = []
        for detail in interpreter.get_tensor_details():
            if len(detail["shape"]) == 2 and detail["shape"][0] == 10 and detail["shape"][1] != 10:
                try:
                    arrays.append(interpreter.get_tensor(detail["index"]))
                except ValueError:  # a float16 constant's dequantised copy has no data of its own
                    continue
        axis = 0  # TFLite FULLY_CONNECTED weights are (outputs, inputs)
    else:
        import onnx
        from onnx import numpy_helper

        model = onnx.load_from_string(data)
        arrays = [numpy_helper.to_array(t) for t in model.graph.initializer]
        arrays = [a for a in arrays if a.ndim == 2 and a.shape[1] == 10 and a.shape[0] != 10]
        axis = 1  # ONNX MatMul weights are (inputs, outputs)
    stored = [a for a in arrays if data.count(a.tobytes()) == 1]
    assert len(stored) == 1, f"expected one final-layer weight tensor in {path.name}, found {len(stored)}"
    return stored[0], axis


def tamper_with_weights(path: Path) -> None:
    """Swap two classes' weights in the final layer, then give the manifest the new sha256: a file
    rewritten together with its manifest's hash, which the hash gate passes."""
    data = path.read_bytes()
    weights, axis = _final_layer(path, data)
    swapped = weights.copy()
    a, b = SWAPPED
    index_a, index_b = [slice(None)] * 2, [slice(None)] * 2
    index_a[axis], index_b[axis] = a, b
    swapped[tuple(index_a)], swapped[tuple(index_b)] = weights[tuple(index_b)], weights[tuple(index_a)]
    assert not np.array_equal(swapped, weights)
    changed = data.replace(weights.tobytes(), swapped.tobytes())
    assert len(changed) == len(data) and changed != data
    path.write_bytes(changed)
    _edit_manifest(path, sha256=sha256_bytes(changed), size_bytes=len(changed))


# --------------------------------------------------------------------------- export records them


#: Every supported model family: the tutorial's MLP and a CNN holding every convolutional layer family.
MODELS = {"mlp": "exported", "cnn": "cnn_exported"}


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("kind", KINDS, ids=IDS)
def test_every_export_records_known_answers_and_loads_with_them(kind, model, request):
    exported = request.getfixturevalue(MODELS[model])
    manifest = read_manifest(exported[kind].path)
    assert manifest is not None and manifest.known_answers is not None
    assert manifest.known_answers["probe"] == known_answers.probe_id()
    recorded = np.asarray(manifest.known_answers["probabilities"])
    assert recorded.shape == (len(preprocess.check_images()), 10)
    clf = load(exported[kind].path)  # the check runs and passes: no false refusal
    got = clf.predict_proba(preprocess.check_images())
    assert np.abs(got - recorded).max() <= known_answers.TOLERANCES[kind[1]]


def test_the_probe_images_give_answers_spread_over_several_classes(exported):
    """The faint strokes are there because a trained model saturates on the plain images."""
    recorded = np.asarray(read_manifest(exported[("tflite", "fp32")].path).known_answers["probabilities"])
    faint = recorded[preprocess.CHECK_IMAGE_NAMES.index("faint ring") :]
    assert (faint.max(axis=1) < 0.999).sum() >= 2
    assert len(set(recorded.argmax(axis=1).tolist())) >= 3


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("kind", KINDS, ids=IDS)
def test_weights_changed_together_with_the_manifest_hash_are_refused(kind, model, request, tmp_path):
    path = _copy(request.getfixturevalue(MODELS[model])[kind].path, tmp_path)
    tamper_with_weights(path)
    with pytest.raises(ModelLoadError, match=r"does not give its known answers.*probe image '[a-z ]+' class"):
        load(path)
    # The file itself is a working model: only its known answers tell it from the exported one.
    assert load(path, verify_hash=False).predict_proba(preprocess.check_images()).shape == (8, 10)


@pytest.mark.parametrize("kind", [("tflite", "int8"), ("onnx", "fp32")], ids=["tflite-int8", "onnx-fp32"])
def test_an_engine_that_answers_differently_is_refused(kind, exported, tmp_path):
    """What a miscompiled engine looks like from the runtime: the file is intact, the answers move."""
    path = _copy(exported[kind].path, tmp_path)
    block = read_manifest(path).known_answers
    rows = np.asarray(block["probabilities"])
    rows[:, list(SWAPPED)] = rows[:, list(SWAPPED[::-1])]
    _edit_manifest(path, known_answers={**block, "probabilities": rows.tolist()})
    with pytest.raises(ModelLoadError, match=r"engine computes it wrongly"):
        load(path)


def test_answers_within_the_tolerance_are_accepted(exported, tmp_path):
    path = _copy(exported[("tflite", "int8")].path, tmp_path)
    block = read_manifest(path).known_answers
    rows = np.asarray(block["probabilities"])
    one_level = 1 / 256
    _edit_manifest(path, known_answers={**block, "probabilities": (rows + 3 * one_level).tolist()})
    load(path)
    _edit_manifest(path, known_answers={**block, "probabilities": (rows + 4 * one_level).tolist()})
    with pytest.raises(ModelLoadError, match="known answers"):
        load(path)


def test_malformed_known_answers_are_refused(exported, tmp_path):
    path = _copy(exported[("onnx", "int8")].path, tmp_path)
    block = read_manifest(path).known_answers
    _edit_manifest(path, known_answers={**block, "probabilities": [[0.5, 0.5]]})
    with pytest.raises(ModelLoadError, match="malformed known answers"):
        load(path)


# --------------------------------------------------------------------------- what still loads


def test_a_manifest_without_known_answers_loads_unchecked(exported, tmp_path):
    path = _copy(exported[("tflite", "fp32")].path, tmp_path)
    tamper_with_weights(path)
    _edit_manifest(path, known_answers=None, device_bundle=None)
    assert read_manifest(path).known_answers is None
    load(path)  # an older export: the hash gate is all there is


def test_answers_to_other_probe_images_are_not_compared(exported, tmp_path):
    path = _copy(exported[("tflite", "fp32")].path, tmp_path)
    tamper_with_weights(path)
    block = read_manifest(path).known_answers
    _edit_manifest(path, known_answers={**block, "probe": "sha256:0000000000000000"})
    load(path)


def test_verify_hash_false_skips_the_known_answers_too(exported, tmp_path):
    path = _copy(exported[("onnx", "fp32")].path, tmp_path)
    tamper_with_weights(path)
    clf = load(path, verify_hash=False)
    assert clf.manifest is not None and clf.manifest.known_answers is None
