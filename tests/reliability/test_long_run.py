"""The long run, scaled down: ``benchmarks/long_run.py`` in its own process on the int8 TFLite model.

The benchmark makes 1,000,000 batch-1 calls (figures in ``benchmarks/results/long_run.json``); this
test makes ``MNIST_EDGE_LONG_RUN_CALLS`` (default 200,000) and checks the same properties: resident
memory grows by less than 5 MB after the warm-up, every checked result is exact, and the p99
latency of the last 10 % is within 1.5x of the first 10 %. Latency on a shared machine is noisy,
so a failed latency check alone is run once more: a real slowdown fails twice, a burst of load
from another process rarely does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "long_run.py"
CALLS = int(os.environ.get("MNIST_EDGE_LONG_RUN_CALLS", "200000"))


def _long_run(artifact: Path, out: Path) -> dict:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(artifact), "--calls", str(CALLS), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert done.returncode in (0, 1), done.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.slow
def test_many_batch_1_calls_neither_leak_nor_slow_down(exported, tmp_path):
    artifact = exported[("tflite", "int8")].path
    result = _long_run(artifact, tmp_path / "first.json")
    figures = {k: result[k] for k in ("calls", "latency_us", "rss_mb", "results_wrong")}
    print(f"\nlong run: {json.dumps(figures)}")
    assert result["calls"] == CALLS and result["results_wrong"] == 0
    assert result["rss_mb"]["growth_after_warmup"] < 5.0, result["rss_mb"]
    if result["latency_us"]["p99_ratio_last_to_first"] > 1.5:
        again = _long_run(artifact, tmp_path / "again.json")
        assert again["latency_us"]["p99_ratio_last_to_first"] <= 1.5, (
            result["latency_us"],
            again["latency_us"],
        )
