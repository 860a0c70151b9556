"""Determinism: the same model exported twice gives the same predictions, and the same bytes where the
converter allows it.

Training twice with one seed is checked elsewhere, not repeated here: in one process by
``tests/test_model_train.py::test_same_seed_gives_bit_identical_weights``, across processes by the
SIGKILL test in ``test_crash_safety.py`` (every lane's last run has the same weights, bit for bit).

What differs between two exports, as measured (TF 2.21, tf2onnx 1.17, onnxruntime 1.32):
* the manifests' ``created_at``;
* a second fp32 ONNX export *in the same process* differs in one generated name
  (``flatten_1/Reshape_shape__19``, then ``__18``): tf2onnx numbers it with a process-wide counter,
  which the export resets, and the first conversion in a process takes one number more. (Before
  that reset and a fixed graph doc string, which held TensorFlow's process-wide function uid, the
  numbers grew with every conversion or trace in the process and the file's length changed when
  one gained a digit.) Values, ops and structure are the same; in a fresh process (the CLI) the
  bytes are identical too (the SIGKILL test compares artifacts across processes byte for byte).
Everything else - all four TFLite files, the int8 calibration, the predictions - is identical.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from mnist_edge.export import export_many
from mnist_edge.manifest import manifest_path
from mnist_edge.runtime import load

#: Process-wide counters in generated names: ``..._shape__19``, ``__inference_serve_2861``.
_COUNTER = re.compile(r"(__|_serve_)\d+")


def _canonical_onnx(path) -> bytes:
    """The ONNX model with the process-wide counters taken out of its names and doc string."""
    import onnx

    model = onnx.load(str(path))

    def strip(name: str) -> str:
        return _COUNTER.sub(r"\1N", name)

    for node in model.graph.node:
        node.name = strip(node.name)
        node.input[:] = [strip(n) for n in node.input]
        node.output[:] = [strip(n) for n in node.output]
    for tensor in model.graph.initializer:
        tensor.name = strip(tensor.name)
    model.graph.doc_string = strip(model.graph.doc_string)
    return model.SerializeToString()


@pytest.fixture(scope="module")
def exported_again(tmp_path_factory, tiny_model_path, mnist):
    out = tmp_path_factory.mktemp("exported_again")
    return {(r.format, r.precision): r for r in export_many(tiny_model_path, "all", "all", out, data=mnist)}


@pytest.mark.slow
def test_exporting_twice_gives_identical_predictions_on_the_test_set(exported, exported_again, mnist):
    for kind, first in exported.items():
        a = load(first.path).predict_proba(mnist.x_test)
        b = load(exported_again[kind].path).predict_proba(mnist.x_test)
        assert np.array_equal(a, b), f"{kind}: predictions differ between two exports"


@pytest.mark.slow
def test_exporting_twice_gives_identical_bytes_where_the_converter_allows(exported, exported_again):
    same, differ = [], []
    for kind, first in exported.items():
        a, b = first.path.read_bytes(), exported_again[kind].path.read_bytes()
        (same if a == b else differ).append(first.path.name)
        if kind[0] == "tflite":
            assert a == b, f"{first.path.name}: the TFLite converter gave different bytes"
        else:  # equal but for the name counters
            assert _canonical_onnx(first.path) == _canonical_onnx(exported_again[kind].path)
    print(f"\nbyte-identical: {same}; differ only in name counters: {differ}")


@pytest.mark.slow
def test_manifests_of_two_exports_differ_only_where_the_bytes_do(exported, exported_again):
    for kind, first in exported.items():
        a = json.loads(manifest_path(first.path).read_text())
        b = json.loads(manifest_path(exported_again[kind].path).read_text())
        changed = {key for key in a.keys() | b.keys() if a.get(key) != b.get(key)}
        allowed = {"created_at"} | ({"sha256"} if kind[0] == "onnx" else set())
        assert changed <= allowed, f"{first.path.name}: manifests also differ in {changed - allowed}"
        assert a["calibration"] == b["calibration"]
