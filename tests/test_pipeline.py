"""The main job end to end (--quick), stage skipping, and the parity gate's exit code."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mnist_edge.cli import app
from mnist_edge.errors import ParityError
from mnist_edge.pipeline import PipelineResult, StageResult, StageState, fingerprint, run_stage

runner = CliRunner()
STAGES = ("data", "train", "export", "verify", "benchmark", "report")
REPORT_FILES = (
    "report.md",
    "samples.png",
    "training_curves.png",
    "confusion_matrix.png",
    "benchmark.png",
)


def test_fingerprint_is_stable_and_order_free():
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})


def test_stage_is_skipped_only_while_inputs_and_files_are_unchanged(tmp_path):
    state = StageState(tmp_path)
    out = tmp_path / "thing.txt"
    calls = []

    def work():
        calls.append(1)
        out.write_text(f"run {len(calls)}")
        return {"note": "made"}, [out]

    seen: list[StageResult] = []
    run_stage("s", state, "inputs-1", False, work, seen.append)
    run_stage("s", StageState(tmp_path), "inputs-1", False, work, seen.append)  # state re-read from disk
    assert [r.status for r in seen] == ["ran", "skipped"] and len(calls) == 1
    run_stage("s", state, "inputs-2", False, work, seen.append)  # new inputs
    out.write_text("tampered")
    run_stage("s", state, "inputs-2", False, work, seen.append)  # output changed behind its back
    run_stage("s", state, "inputs-2", True, work, seen.append)  # --force
    assert [r.status for r in seen[2:]] == ["ran", "ran", "ran"] and len(calls) == 4


def test_a_failed_parity_gate_is_a_parity_error_with_exit_code_1(tmp_path):
    report = tmp_path / "report.md"
    PipelineResult(stages=(), parity_passed=True, report_path=report).raise_if_failed()
    with pytest.raises(ParityError, match="parity gate failed") as caught:
        PipelineResult(stages=(), parity_passed=False, report_path=report).raise_if_failed()
    assert caught.value.exit_code == 1


def _statuses(output: str) -> dict[str, str]:
    found = dict(re.findall(r"^(\w+)\s+(ran|skipped)\b", output, flags=re.MULTILINE))
    return {k: v for k, v in found.items() if k in STAGES}


def _break_onnx_fp32(monkeypatch):
    """Make the exporter write an ONNX model whose last layer has two rows swapped."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    from mnist_edge import export as export_mod

    target = export_mod.TARGETS[("onnx", "fp32")]
    original = target.exporter

    def broken(job, path):
        written = original(job, path)
        model = onnx.load(str(path))
        weights = [t for t in model.graph.initializer if list(t.dims) == [100, 10]]
        assert weights, "expected the last Dense kernel (100 x 10)"
        arr = numpy_helper.to_array(weights[0]).copy()
        arr[:, [3, 8]] = arr[:, [8, 3]]
        weights[0].CopyFrom(numpy_helper.from_array(np.ascontiguousarray(arr), weights[0].name))
        onnx.save(model, str(path))
        return written

    monkeypatch.setitem(
        export_mod.TARGETS, ("onnx", "fp32"), target.__class__(**{**target.__dict__, "exporter": broken})
    )


@pytest.mark.slow
def test_quick_pipeline_end_to_end(tmp_path, mnist, monkeypatch):
    out = tmp_path / "artifacts"
    first = runner.invoke(app, ["pipeline", "--quick", "--out", str(out)])
    assert first.exit_code == 0, first.output
    assert _statuses(first.output) == dict.fromkeys(STAGES, "ran")
    for name in REPORT_FILES:
        assert (out / name).is_file(), name
    report = (out / "report.md").read_text()
    artifacts = sorted(p.name for p in out.glob("model.*") if p.suffix in (".tflite", ".onnx"))
    assert len(artifacts) == 6
    table_rows = [
        line for line in report.splitlines() if line.startswith("| tflite") or line.startswith("| onnx")
    ]
    assert len(table_rows) == 6 and all("PASS" in row for row in table_rows)
    for section in (
        "## 1. Data",
        "## 2. Training",
        "## 3. Edge bundle",
        "## 4. Latency",
        "## 5. How to embed",
        "## 6. Environment",
        "0.9793",
    ):
        assert section in report
    for image in re.findall(r"!\[[^]]*\]\(([^)]+)\)", report):
        assert (out / image).is_file(), image

    again = runner.invoke(app, ["pipeline", "--quick", "--out", str(out)])
    assert again.exit_code == 0, again.output
    assert _statuses(again.output) == dict.fromkeys(STAGES, "skipped")

    # A different model in the folder (another seed) plus an exporter that writes a broken ONNX file:
    # export, verify and benchmark must run again, the gate must fail, and the report must still appear.
    from mnist_edge.train import TrainConfig, train

    train(TrainConfig(epochs=1, train_limit=2000, seed=7, verbose=0), out, data=mnist)
    _break_onnx_fp32(monkeypatch)
    (out / "report.md").unlink()
    failed = runner.invoke(app, ["pipeline", "--quick", "--out", str(out)])
    assert failed.exit_code == 1, failed.output
    statuses = _statuses(failed.output)
    assert statuses["train"] == "skipped"
    assert all(statuses[s] == "ran" for s in ("export", "verify", "benchmark", "report"))
    report = (out / "report.md").read_text()
    assert "parity gate: **FAIL**" in report
    onnx_row = next(line for line in report.splitlines() if "`model.fp32.onnx`" in line)
    assert "FAIL" in onnx_row and "agreement" in onnx_row
    parity = json.loads((out / "parity.json").read_text())
    assert parity["passed"] is False
    assert not list(Path(out).glob("*.mnist-edge-tmp-*"))
