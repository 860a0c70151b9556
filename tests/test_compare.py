"""Architectures side by side: ``mnist-edge compare``, ``pipeline --arch cnn --compare-with`` and the
option errors of both (plus ``train --arch``)."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from mnist_edge.cli import app
from mnist_edge.compare import Comparison, compare

runner = CliRunner()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--arch", "rnn"], "unknown --arch 'rnn': use one of mlp, cnn"),
        (["pipeline", "--arch", "rnn"], "unknown --arch 'rnn'"),
        (["pipeline", "--compare-with", "/nonexistent/folder"], "is not a folder of exported files"),
        (["compare", "/nonexistent/folder", "/other"], "is not a folder"),
    ],
)
def test_option_mistakes_are_one_line_and_exit_2(args, message, tmp_path):
    result = runner.invoke(app, [*args, *(["--out", str(tmp_path / "out")] if args[0] != "compare" else [])])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    out = tmp_path / "out"
    assert not out.exists() or not any(out.iterdir())  # refused before any stage wrote a file


def test_compare_needs_two_folders(tmp_path):
    with pytest.raises(Exception, match="at least two folders"):
        compare([tmp_path])


@pytest.mark.slow
def test_compare_measures_every_file_of_both_folders_in_one_run(exported_dir, cnn_exported, tmp_path):
    cnn_dir = next(iter(cnn_exported.values())).path.parent
    json_out = tmp_path / "architectures.json"
    budget = ["--min-time", "10ms", "--min-calls", "5", "--batch-sizes", "1,8", "--json", str(json_out)]
    result = runner.invoke(app, ["compare", str(exported_dir), str(cnn_dir), *budget])
    assert result.exit_code == 0, result.output
    comparison = Comparison.from_dict(json.loads(json_out.read_text()))
    base, other = (run.name for run in comparison.runs)
    assert base == exported_dir.name and other == cnn_dir.name  # no metrics.json: the folder names
    assert len(comparison.rows) == 12 and comparison.batch_sizes == (1, 8)
    assert all(row.p50_us > 0 and row.size_bytes > 0 for row in comparison.rows)
    ratio = comparison.latency_ratio(other, "tflite", "int8")
    mine, theirs = comparison.row(other, "tflite", "int8"), comparison.row(base, "tflite", "int8")
    assert ratio == pytest.approx(mine.p50_us / theirs.p50_us)
    table = comparison.to_markdown()
    assert f"{other.upper()}/{base.upper()} b1" in table
    assert len(re.findall(r"^\| (tflite|onnx) \|", table, re.MULTILINE)) == 6
    assert Comparison.from_dict(comparison.to_dict()) == comparison


@pytest.mark.slow
def test_quick_cnn_pipeline_reports_both_architectures(exported_dir, tmp_path):
    out = tmp_path / "cnn"
    args = ["pipeline", "--arch", "cnn", "--quick", "--out", str(out), "--compare-with", str(exported_dir)]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert re.search(r"^compare\s+ran", first.output, re.MULTILINE), first.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["arch"] == "cnn" and metrics["params"] == 34_138
    report = (out / "report.md").read_text()
    assert "Recipe (CNN): Adam" in report and "### Architectures side by side" in report
    assert f"| Keras test accuracy | - | {metrics['test_accuracy']:.4f} |" in report
    manifests = [json.loads(p.read_text()) for p in out.glob("model.*.json")]
    assert len(manifests) == 6 and {m["output_kind"] for m in manifests} == {"probabilities"}

    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert re.search(r"^compare\s+skipped", again.output, re.MULTILINE), again.output
