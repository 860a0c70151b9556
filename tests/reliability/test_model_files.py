"""Hostile model files: the structural pre-checks, the regression corpus and ONNX external data.

The corpus (``corpus/``, rebuilt by ``corpus/make_corpus.py``) holds small files that crash or
exhaust the bare engines; ``corpus.json`` records what the bare engine did with each. Here every
one must be refused with ``ModelLoadError`` for the reason recorded - by the pre-check alone (it
never calls an engine, so it runs in this process) and by the whole runtime in a sandbox child
(where a regression shows up as a dead child, not a dead test run).
"""

from __future__ import annotations

import contextlib
import json
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mnist_edge.errors import ModelLoadError
from mnist_edge.runtime import BACKENDS, load
from mnist_edge.runtime.guard.onnx_check import OnnxStructureError, check_onnx
from mnist_edge.runtime.guard.sandbox import Sandbox
from mnist_edge.runtime.guard.tflite_check import MAX_TENSOR_BYTES, TFLiteStructureError, check_tflite

from . import mutators

CORPUS = Path(__file__).resolve().parent / "corpus"
ENTRIES = json.loads((CORPUS / "corpus.json").read_text(encoding="utf-8"))["entries"]
BASES = sorted(p.name for p in CORPUS.glob("tiny.*"))


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox() as box:
        yield box


# --------------------------------------------------------------------------- the corpus


def test_the_corpus_records_bare_engine_crashes():
    """The corpus is worth replaying: most entries crashed the bare engine when it was built."""
    crashed = [e["file"] for e in ENTRIES if any(k.startswith("crashed") for k in e["bare_engine"])]
    assert len(crashed) >= 5, crashed
    assert all(e["bytes"] <= 40_000 for e in ENTRIES)


@pytest.mark.parametrize("name", BASES)
def test_the_corpus_base_models_load_and_run(name, sandbox):
    trial = sandbox.trial(name, (CORPUS / name).read_bytes())
    assert trial.outcome == "ran", trial


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["file"] for e in ENTRIES])
def test_corpus_files_are_refused_by_the_pre_check_for_their_reason(entry):
    """Entries marked "classifier" are well-formed graphs that compute nonsense: they pass the
    pre-check and the Classifier refuses them once the engine has loaded them (the probe run's one
    row per image, a sane fixed batch)."""
    path = CORPUS / entry["file"]
    backend = BACKENDS[path.suffix]
    if entry["refused_by"] == "classifier":
        backend.check_file(path, path.read_bytes())
        return
    with pytest.raises(ModelLoadError, match="pre-check") as caught:
        backend.check_file(path, path.read_bytes())
    assert entry["refused_because"] in str(caught.value)


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["file"] for e in ENTRIES])
def test_corpus_files_are_refused_by_the_runtime_in_a_sandbox(entry, sandbox):
    trial = sandbox.trial(entry["file"], (CORPUS / entry["file"]).read_bytes())
    assert (trial.outcome, trial.kind) == ("refused", "ModelLoadError"), trial
    assert entry["refused_because"] in trial.detail


# --------------------------------------------------------------------------- TFLite pre-check


@pytest.mark.parametrize("precision", ["fp32", "fp16", "dynamic", "int8"])
def test_exported_tflite_models_pass_the_pre_check(exported, precision):
    check_tflite(exported[("tflite", precision)].path.read_bytes())


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "identifier"),
        (b"\x18\x00\x00\x00TFL3", "past the end"),  # tensorflow#115308: an OOB read in BuildFromBuffer
        (b"\x08\x00\x00\x00TFL3" + b"\xff" * 8, "vtable"),
        (b"\x00\x00\x00\x00TFL2" + bytes(100), "identifier"),
        (b"\x10\x00\x00\x00TFL3" + bytes(8) + b"\xf0\xff\xff\x7f", "outside"),
    ],
)
def test_tflite_pre_check_refuses_broken_headers(data, reason):
    with pytest.raises(TFLiteStructureError, match=reason):
        check_tflite(data)


def test_tflite_pre_check_refuses_every_truncation(exported):
    data = exported[("tflite", "int8")].path.read_bytes()
    for keep in [*range(1, 64, 7), *range(64, len(data), len(data) // 97)]:
        with pytest.raises(TFLiteStructureError):
            check_tflite(data[:keep])


def test_tflite_pre_check_refuses_declared_memory_bombs(exported):
    """A dimension of 2^31-1 on any tensor (8 GB at invoke() for a float32 activation)."""
    data = exported[("tflite", "fp32")].path.read_bytes()
    dims = [f for f in mutators.tflite_fields(data) if ".shape[" in f.label and "signature" not in f.label]
    assert len(dims) > 20
    for field in dims:
        with pytest.raises(TFLiteStructureError, match="declares"):
            check_tflite(mutators.set_field(data, field, 2**31 - 1))
    biggest = MAX_TENSOR_BYTES // 4 + 1  # one float32 more than the limit
    with pytest.raises(TFLiteStructureError, match="declares"):
        check_tflite(mutators.set_field(data, dims[-1], biggest))


def _structure_mutants(data: bytes, n: int, seed: str) -> list[bytes]:
    return [mutators.tflite_mutant(data, random.Random(f"{seed}-{i}"))[0] for i in range(n)]


def test_tflite_pre_check_never_raises_anything_else(exported):
    """On any bytes the reader refuses cleanly: it never indexes outside the file or loops."""
    for precision in ("fp32", "int8"):
        data = exported[("tflite", precision)].path.read_bytes()
        for kind in ("random", "structure"):
            for i in range(150):
                mutant, _ = mutators.mutant("tflite", kind, data, f"pre-check-{precision}-{kind}-{i}")
                with contextlib.suppress(TFLiteStructureError):
                    check_tflite(mutant)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=512))
def test_tflite_pre_check_refuses_arbitrary_bytes_cleanly(data):
    with pytest.raises(TFLiteStructureError):
        check_tflite(b"\x10\x00\x00\x00TFL3" + data)


# --------------------------------------------------------------------------- ONNX pre-check


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_exported_onnx_models_pass_the_pre_check(exported, precision):
    check_onnx(exported[("onnx", precision)].path.read_bytes())


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=512))
def test_onnx_pre_check_refuses_arbitrary_bytes_cleanly(data):
    with pytest.raises(OnnxStructureError):
        check_onnx(data)


def _onnx(nodes, initializers, *, opset: int = 17):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", 28, 28])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 10])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model, onnx


def _dense(weights: np.ndarray | None = None):
    from onnx import helper, numpy_helper

    w = np.full((784, 10), 1e-3, np.float32) if weights is None else weights
    nodes = [
        helper.make_node("Reshape", ["pixels", "shape"], ["flat"]),
        helper.make_node("MatMul", ["flat", "w"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
    ]
    inits = [numpy_helper.from_array(np.array([-1, 784], np.int64), "shape"), numpy_helper.from_array(w, "w")]
    return _onnx(nodes, inits)


def test_a_hand_made_onnx_classifier_passes(tmp_path):
    model, _ = _dense()
    check_onnx(model.SerializeToString())


def _with_external_weights(location: str):
    from onnx import TensorProto

    model, _ = _dense()
    weights = model.graph.initializer[1]
    raw = weights.raw_data
    weights.ClearField("raw_data")
    weights.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(len(raw)))):
        entry = weights.external_data.add()
        entry.key, entry.value = key, value
    return model, raw


def test_onnxruntime_reads_external_data_from_the_working_directory_and_we_refuse_it(tmp_path, monkeypatch):
    """The danger is real: given bytes, onnxruntime opens the tensor's file relative to the current
    directory. mnist-edge refuses any external data, wherever it points."""
    import onnxruntime as ort

    model, raw = _with_external_weights("weights.bin")
    (tmp_path / "weights.bin").write_bytes(raw)
    monkeypatch.chdir(tmp_path)
    data = model.SerializeToString()
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])  # reads ./weights.bin
    assert session.run(None, {"pixels": np.zeros((1, 28, 28), np.float32)})[0].shape == (1, 10)

    path = tmp_path / "model.onnx"
    path.write_bytes(data)
    with pytest.raises(ModelLoadError, match="external data"):
        load(path)


@pytest.mark.parametrize("location", ["weights.bin", "../../../../etc/passwd", "/etc/hostname", ""])
def test_onnx_external_data_is_refused_wherever_it_points(location, tmp_path):
    model, _ = _with_external_weights(location)
    with pytest.raises(OnnxStructureError, match="external"):
        check_onnx(model.SerializeToString())


def test_onnx_external_data_inside_a_constant_node_is_refused():
    from onnx import TensorProto, helper

    model, _ = _dense()
    value = helper.make_tensor("c", TensorProto.FLOAT, [1], [0.0])
    value.data_location = TensorProto.EXTERNAL
    entry = value.external_data.add()
    entry.key, entry.value = "location", "secret.bin"
    model.graph.node.insert(0, helper.make_node("Constant", [], ["c_out"], value=value))
    with pytest.raises(OnnxStructureError, match="external"):
        check_onnx(model.SerializeToString())


def test_onnx_operators_outside_the_allow_list_are_refused():
    from onnx import helper

    for op in ("Expand", "Loop", "ConstantOfShape", "Tile", "Resize", "Pad"):
        model, _ = _dense()
        model.graph.node.insert(1, helper.make_node(op, ["flat", "shape"], ["unused"]))
        with pytest.raises(OnnxStructureError, match=f"operator {op}"):
            check_onnx(model.SerializeToString())
    model, _ = _dense()
    model.graph.node[1].domain = "com.microsoft"
    with pytest.raises(OnnxStructureError, match=r"com\.microsoft\.MatMul"):
        check_onnx(model.SerializeToString())


def test_onnx_tensors_must_hold_what_their_shape_declares():
    model, _ = _dense()
    weights = model.graph.initializer[1]
    weights.raw_data = weights.raw_data[:-4]
    with pytest.raises(OnnxStructureError, match="needs 31360 bytes but holds 31356"):
        check_onnx(model.SerializeToString())
    model, _ = _dense()
    model.graph.initializer[1].dims[0] = 1 << 40
    with pytest.raises(OnnxStructureError, match="declares"):
        check_onnx(model.SerializeToString())


def test_onnx_models_the_checker_rejects_are_refused():
    model, _ = _dense()
    model.graph.node[1].input[1] = "no_such_tensor"
    with pytest.raises(OnnxStructureError, match=r"onnx\.checker"):
        check_onnx(model.SerializeToString())
