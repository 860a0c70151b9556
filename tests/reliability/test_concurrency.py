"""Concurrency: one Classifier per artifact shared by 16 threads, 2,000 calls each with random batch
sizes, must give exactly the results of the same calls made one after another.

Each artifact runs in a child process (``thread_worker.py``) bounded by a timeout, so a deadlock or
a crash in an engine fails this test rather than hanging or killing pytest. LiteRT interpreters are
not thread-safe (the runtime keeps one per thread); onnxruntime sessions are, but the runtime
reuses per-thread input buffers - both are what this exercises. ``MNIST_EDGE_THREAD_CALLS`` sets
the calls per thread (default 2000).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mnist_edge.export import MODEL_TARGETS

WORKER = Path(__file__).with_name("thread_worker.py")
THREADS = 16
CALLS = int(os.environ.get("MNIST_EDGE_THREAD_CALLS", "2000"))
TIMEOUT_S = 300
KINDS = list(MODEL_TARGETS)


@pytest.fixture(scope="module")
def pixels_file(tmp_path_factory, mnist) -> Path:
    path = tmp_path_factory.mktemp("threads") / "pixels.npy"
    np.save(path, mnist.x_test[:2500])
    return path


def run_worker(artifact: Path, pixels: Path, threads: int, calls: int, seed: int) -> dict:
    try:
        done = subprocess.run(
            [sys.executable, str(WORKER), str(artifact), str(pixels), str(threads), str(calls), str(seed)],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{artifact.name}: {threads} threads did not finish in {TIMEOUT_S} s (deadlock?)")
    assert done.returncode == 0, f"{artifact.name}: worker exited {done.returncode}\n{done.stderr[-3000:]}"
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS, ids=[f"{f}-{p}" for f, p in KINDS])
def test_16_threads_sharing_one_classifier_match_sequential_calls(kind, exported, pixels_file):
    report = run_worker(exported[kind].path, pixels_file, THREADS, CALLS, seed=8)
    print(f"\n{kind[0]} {kind[1]}: {json.dumps(report)}")
    assert report["error_count"] == 0, report["errors"]
    assert report["completed_calls"] == THREADS * CALLS
    assert report["mismatches"] == 0, report["first_mismatch"]


def test_a_short_threaded_run_matches(exported, pixels_file):
    """The same check, small, in the normal run: the two int8 artifacts, 16 threads x 100 calls."""
    for kind in (("tflite", "int8"), ("onnx", "int8")):
        report = run_worker(exported[kind].path, pixels_file, THREADS, 100, seed=3)
        assert report["error_count"] == 0 and report["mismatches"] == 0, report
