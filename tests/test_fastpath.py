"""The hot path's tricks against the engines' public APIs (``mnist_edge/runtime/fastpath.py``).

LiteRT's per-call functions reach into its private pybind wrapper when it exists. An engine
upgrade may rename it; the runtime then falls back to the public methods. Here every artifact kind
is loaded both ways and must give identical outputs through the public API, with the public
engine methods seen doing the work where the fallback is taken.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from mnist_edge.export import MODEL_TARGETS
from mnist_edge.runtime import fastpath, load

KINDS = list(MODEL_TARGETS)
IDS = [f"{fmt}-{precision}" for fmt, precision in KINDS]


@pytest.fixture(scope="module")
def pixels(mnist) -> np.ndarray:
    return mnist.x_test[:300]


def _answers(clf, pixels: np.ndarray) -> dict[str, np.ndarray]:
    """Everything a caller can get, along every route to the engine."""
    answers = {
        "proba_1": clf.predict_proba(pixels[:1]),
        "proba_7": clf.predict_proba(pixels[:7]),
        "proba_300": clf.predict_proba(pixels),
        "labels_1": clf.predict(pixels[:1]),
        "labels_300": clf.predict(pixels),
        "floats": clf.predict_proba(pixels[:5] / 255.0),
        "flat": clf.predict_proba(pixels[:3].reshape(3, -1)),
        "again_1": clf.predict_proba(pixels[:1]),  # the second batch-1 call of a row
    }
    other: dict[str, np.ndarray] = {}
    worker = threading.Thread(target=lambda: other.update(proba=clf.predict_proba(pixels[:9])))
    worker.start()
    worker.join()
    answers["other_thread"] = other["proba"]
    return answers


@pytest.fixture
def public_calls(monkeypatch) -> dict[str, int]:
    """Count calls of the engines' public per-call methods."""
    from ai_edge_litert.interpreter import Interpreter
    from onnxruntime import InferenceSession

    counts = {"litert": 0, "onnxruntime": 0}

    def counted(cls, name, engine):
        original = getattr(cls, name)

        def wrapper(self, *args, **kwargs):
            counts[engine] += 1
            return original(self, *args, **kwargs)

        monkeypatch.setattr(cls, name, wrapper)

    counted(Interpreter, "invoke", "litert")
    counted(InferenceSession, "run", "onnxruntime")
    return counts


@pytest.mark.parametrize("kind", KINDS, ids=IDS)
def test_every_target_gives_identical_outputs_without_the_private_engine_attributes(
    kind, exported, pixels, monkeypatch, public_calls
):
    path = exported[kind].path
    with load(path) as fast:
        before = dict(public_calls)
        expected = _answers(fast, pixels)
        engine = fast.backend
        private_route_calls = public_calls[engine] - before[engine]

    monkeypatch.setattr(fastpath, "LITERT_WRAPPER", "_gone")
    with load(path) as plain:
        before = dict(public_calls)
        got = _answers(plain, pixels)
        public_route_calls = public_calls[engine] - before[engine]

    if engine == "litert":
        assert private_route_calls == 0  # the wrapper bypasses the public methods entirely
    assert public_route_calls >= len(expected)  # ... and the fallback goes through them
    for name, value in expected.items():
        np.testing.assert_array_equal(got[name], value, err_msg=name)
        assert got[name].dtype == value.dtype, name


def test_the_fallback_is_chosen_only_when_an_attribute_is_missing(exported, monkeypatch):
    from mnist_edge.runtime.litert import new_interpreter

    data = exported[("tflite", "int8")].path.read_bytes()
    fast = fastpath.LiteRTCalls(new_interpreter(data, 1), 0)
    assert fast.base is not None  # the pybind wrapper, bound
    monkeypatch.setattr(fastpath, "LITERT_WRAPPER", "_gone")
    plain = fastpath.LiteRTCalls(new_interpreter(data, 1), 0)
    assert plain.base is None and plain.invoke == plain.interpreter.invoke
