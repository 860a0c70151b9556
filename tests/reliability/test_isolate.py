"""``load(path, isolate=True)`` and the sandbox behind it: a model file from
elsewhere is first loaded and run in a child process limited to 2 GiB and 30 s, and only a file
that ran there is loaded by the app.

The pre-checks refuse every crashing file we know, so to show what isolation adds these tests
switch the pre-checks off - in the child and in the app - with a ``sitecustomize`` module on
``PYTHONPATH``, and let the real corpus crashers reach the real engines. The "app" is a
subprocess too: if isolation failed, a segfault must fail the test, not end the test run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mnist_edge.cli import app
from mnist_edge.errors import ModelLoadError
from mnist_edge.export import MODEL_TARGETS
from mnist_edge.manifest import manifest_path
from mnist_edge.runtime import load
from mnist_edge.runtime.guard import sandbox
from mnist_edge.runtime.guard.sandbox import Sandbox, check_isolated

CORPUS = Path(__file__).resolve().parent / "corpus"
ROOT = Path(__file__).resolve().parents[2]
KINDS = list(MODEL_TARGETS)

SITECUSTOMIZE = """
import os
if os.environ.get("MNIST_EDGE_TEST_NO_PRECHECK"):
    from mnist_edge.runtime import litert, onnxrt
    litert.LiteRTBackend.check_file = classmethod(lambda cls, path, data: None)
    onnxrt.OnnxBackend.check_file = classmethod(lambda cls, path, data: None)
if os.environ.get("MNIST_EDGE_TEST_HOG"):
    import numpy as np
    from mnist_edge.runtime import onnxrt
    def _hog(self, *args, **kwargs):
        self.hog = np.ones(3 << 30, np.uint8)
    onnxrt.OnnxBackend.__init__ = _hog
if os.environ.get("MNIST_EDGE_TEST_HANG"):
    import time
    from mnist_edge.runtime import onnxrt
    def _hang(self, *args, **kwargs):
        time.sleep(3600)
    onnxrt.OnnxBackend.__init__ = _hang
"""

#: The app: load a model, with or without isolation, and report what happened and its peak memory.
APP = """
import json, sys, warnings
warnings.simplefilter("ignore")
from mnist_edge.errors import ModelLoadError
from mnist_edge.runtime import load
result = {}
try:
    clf = load(sys.argv[1], isolate=sys.argv[2] == "isolate")
    result["labels"] = clf.predict(__import__("numpy").zeros((2, 28, 28), "uint8")).tolist()
except ModelLoadError as exc:
    result["error"] = str(exc)
with open("/proc/self/status") as status:
    result["peak_mib"] = next(int(l.split()[1]) >> 10 for l in status if l.startswith("VmHWM"))
print(json.dumps(result))
"""


@pytest.fixture
def hooks(tmp_path, monkeypatch):
    """Makes ``MNIST_EDGE_TEST_*`` switches work in every Python started from this test."""
    folder = tmp_path / "hooks"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(textwrap.dedent(SITECUSTOMIZE), encoding="utf-8")
    monkeypatch.setenv("PYTHONPATH", str(folder))
    return monkeypatch


def _app(path: Path, mode: str) -> tuple[int, dict]:
    done = subprocess.run(
        [sys.executable, "-c", APP, str(path), mode], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    lines = done.stdout.strip().splitlines()
    return done.returncode, (json.loads(lines[-1]) if done.returncode == 0 and lines else {})


# --------------------------------------------------------------------------- good files


@pytest.mark.parametrize("kind", KINDS, ids=[f"{f}-{p}" for f, p in KINDS])
def test_an_isolated_load_gives_the_same_classifier(kind, exported, mnist):
    path = exported[kind].path
    images = mnist.x_test[:200]
    isolated = load(path, isolate=True)
    np.testing.assert_array_equal(isolated.predict_proba(images), load(path).predict_proba(images))


def test_isolation_is_not_offered_for_the_keras_reference(tiny_model_path):
    with pytest.raises(ModelLoadError, match=r"isolate=True is for exported \.tflite and \.onnx"):
        load(tiny_model_path, isolate=True)


# --------------------------------------------------------------------------- bad files


def test_a_file_that_crashes_the_engine_costs_a_child_not_the_app(hooks):
    hooks.setenv("MNIST_EDGE_TEST_NO_PRECHECK", "1")
    crasher = CORPUS / "tflite-zero-subgraphs.tflite"
    code, isolated = _app(crasher, "isolate")
    assert code == 0, "the app itself died: isolation did not protect it"
    assert "error" in isolated, isolated
    bare_code, _ = _app(crasher, "in-process")
    if bare_code < 0:  # as measured with ai-edge-litert 2.3.0: SIGSEGV in Interpreter(...)
        assert "crashed the litert engine (SIGSEGV)" in isolated["error"]


def test_a_model_that_needs_more_than_the_memory_limit_is_refused(hooks):
    """The Expand bomb asks for 3.2 GB per call: the child cannot have it, the app never tries."""
    hooks.setenv("MNIST_EDGE_TEST_NO_PRECHECK", "1")
    code, result = _app(CORPUS / "onnx-expand-memory-bomb.onnx", "isolate")
    assert code == 0
    assert "error" in result, result
    assert result["peak_mib"] < 1024


def test_a_load_that_hangs_is_killed_after_the_timeout(hooks, exported):
    hooks.setenv("MNIST_EDGE_TEST_HANG", "1")
    path = exported[("onnx", "fp32")].path
    with pytest.raises(ModelLoadError, match="did not finish within 2 s"):
        check_isolated(path, path.read_bytes(), "onnxruntime", timeout=2)


def test_the_sandbox_restarts_its_child_after_a_crash(hooks, exported):
    hooks.setenv("MNIST_EDGE_TEST_NO_PRECHECK", "1")
    good = exported[("tflite", "int8")].path.read_bytes()
    crasher = (CORPUS / "tflite-zero-subgraphs.tflite").read_bytes()  # a null dereference: every time
    with Sandbox() as box:
        outcomes = [box.trial("model.tflite", data).outcome for data in (good, crasher, crasher, good)]
        started = box.started
    assert outcomes[0] == outcomes[-1] == "ran"
    assert started == 1 + outcomes.count("crashed")  # a fresh child after each crash
    assert outcomes.count("crashed") >= 1  # measured: SIGSEGV every time with ai-edge-litert 2.3.0


def test_the_memory_limit_applies_in_the_child(hooks, exported):
    """An engine that asks for 3 GiB gets a MemoryError in the child; the app is untouched."""
    hooks.setenv("MNIST_EDGE_TEST_HOG", "1")
    path = exported[("onnx", "fp32")].path
    with Sandbox() as box:
        trial = box.trial(path.name, path.read_bytes())
    assert trial.outcome == "memory", trial
    with pytest.raises(ModelLoadError, match="more than 2 GiB"):
        check_isolated(path, path.read_bytes(), "onnxruntime")
    assert sandbox.DEFAULT_MEMORY_BYTES == 2 << 30 and sandbox.DEFAULT_TIMEOUT_S == 30


# --------------------------------------------------------------------------- the CLI


def test_predict_isolates_a_model_without_manifest_only(exported, tmp_path, mnist, monkeypatch):
    calls = []
    original = sandbox.check_isolated

    def spy(path, data, backend, **kwargs):
        calls.append(Path(path).name)
        return original(path, data, backend, **kwargs)

    monkeypatch.setattr(sandbox, "check_isolated", spy)
    images = tmp_path / "digits.npy"
    np.save(images, mnist.x_test[:3])
    source = exported[("tflite", "int8")].path
    bare = tmp_path / "bare" / source.name
    bare.parent.mkdir()
    shutil.copy(source, bare)
    with_manifest = tmp_path / "with" / source.name
    with_manifest.parent.mkdir()
    shutil.copy(source, with_manifest)
    shutil.copy(manifest_path(source), manifest_path(with_manifest))

    runner = CliRunner()
    for path in (with_manifest, bare):
        result = runner.invoke(app, ["predict", str(path), str(images), "--json"])
        assert result.exit_code == 0, result.output
    assert calls == [bare.name]


@pytest.fixture
def unstartable_python(tmp_path, monkeypatch):
    """``sys.executable`` as qemu-user leaves it: a file the kernel cannot execute (no binfmt_misc)."""
    foreign = tmp_path / "python3.11"
    foreign.write_bytes(b"\x7fELF\x02\x01\x01" + bytes(57))  # an ELF header for no machine the kernel runs
    foreign.chmod(0o755)
    monkeypatch.setattr(sandbox.sys, "executable", str(foreign))
    return foreign


def test_a_child_that_cannot_start_is_a_model_load_error(exported, unstartable_python):
    with pytest.raises(ModelLoadError, match=r"cannot start the isolated loader.*Exec format error"):
        load(exported[("tflite", "int8")].path, isolate=True)


def test_predict_says_in_one_line_why_a_bare_model_cannot_be_checked(exported, tmp_path, unstartable_python):
    source = exported[("onnx", "int8")].path
    bare = tmp_path / source.name
    shutil.copy(source, bare)
    images = tmp_path / "digits.npy"
    np.save(images, np.zeros((1, 28, 28), np.uint8))
    result = CliRunner().invoke(app, ["predict", str(bare), str(images)])
    assert result.exit_code == 2, result.output
    assert "cannot start the isolated loader" in result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
