"""The benchmark: structure and sanity of its results, the memory subprocess, and the CLI.

Iteration counts are tiny and nothing here asserts a timing threshold: a loaded CI machine must not
fail these. What must hold on any machine is checked instead (ordered percentiles, counts, ratios
computed from the same run's numbers, files written, usage errors exit 2).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mnist_edge.bench import (
    BenchmarkReport,
    LatencyStats,
    benchmark,
    measure_memory,
    parse_batch_sizes,
    parse_duration,
    time_interleaved,
)
from mnist_edge.cli import app
from mnist_edge.errors import MnistEdgeError

runner = CliRunner()
TINY = {"min_time": 0.002, "min_calls": 5, "batch_sizes": (1, 8)}


@pytest.fixture(scope="module")
def images(mnist) -> np.ndarray:
    return mnist.x_test[:64]


@pytest.fixture(scope="module")
def report(exported, tiny_model_path, images) -> BenchmarkReport:
    """One small run over an int8 TFLite and an fp32 ONNX artifact plus the Keras reference."""
    paths = [exported["tflite", "int8"].path, exported["onnx", "fp32"].path]
    calls: list[tuple[int, int, str]] = []
    result = benchmark(
        paths,
        keras_model=tiny_model_path,
        images=images,
        memory=False,
        progress=lambda done, total, what: calls.append((done, total, what)),
        **TINY,
    )
    object.__setattr__(result, "_progress_calls", calls)  # kept for the progress test
    return result


def ordered(stats: LatencyStats) -> bool:
    return stats.min_us <= stats.p50_us <= stats.p90_us <= stats.p99_us and stats.std_us >= 0


# --------------------------------------------------------------------------- values and options


def test_latency_stats_are_microseconds_from_nanoseconds_and_ordered():
    stats = LatencyStats.from_ns([3000, 1000, 2000, 4000, 100_000])
    assert stats.count == 5
    assert stats.min_us == 1.0 and stats.p50_us == 3.0
    assert stats.mean_us == pytest.approx(22.0)
    assert ordered(stats)
    assert LatencyStats.from_dict(json.loads(json.dumps(stats.to_dict()))) == stats
    with pytest.raises(ValueError):
        LatencyStats.from_ns([])


@pytest.mark.parametrize(
    ("text", "seconds"), [("2s", 2.0), ("500ms", 0.5), ("1.5", 1.5), (" 0.25 S ", 0.25), ("1m", 60.0)]
)
def test_durations_read_like_a_person_writes_them(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["fast", "0s", "-1s", "2h", ""])
def test_bad_durations_are_usage_errors(text):
    with pytest.raises(MnistEdgeError):
        parse_duration(text)


def test_batch_sizes_are_sorted_unique_and_always_include_one():
    assert parse_batch_sizes("1,32,1024") == (1, 32, 1024)
    assert parse_batch_sizes("1024, 32,32") == (1, 32, 1024)
    assert parse_batch_sizes([16]) == (1, 16)


@pytest.mark.parametrize("text", ["0", "1,0", "-4", "a", "", "1,,2", "100000"])
def test_bad_batch_sizes_are_usage_errors(text):
    with pytest.raises(MnistEdgeError):
        parse_batch_sizes(text)


def test_interleaved_timing_meets_the_minimum_calls_for_every_callable():
    order: list[str] = []
    fast, slow = time_interleaved(
        [lambda: order.append("a"), lambda: order.append("b")], min_time=0.001, min_calls=50
    )
    assert fast.count >= 50 and slow.count >= 50
    assert ordered(fast) and ordered(slow)
    # Both ran during the same run, not one after the other: the timed part alternates.
    timed = "".join(order)
    assert "ab" in timed and "ba" in timed


def test_interleaved_timing_can_go_strictly_call_by_call():
    order: list[str] = []
    a, b = time_interleaved(
        [lambda: order.append("a"), lambda: order.append("b")],
        min_time=0.001,
        min_calls=20,
        warmup=0,
        block_calls=1,
    )
    assert a.count == b.count >= 20
    timed = "".join(order[-2 * a.count :])
    assert timed.startswith("abbaab") and "aaa" not in timed and "bbb" not in timed


# --------------------------------------------------------------------------- a small real run


def test_every_row_has_ordered_percentiles_and_enough_calls(report):
    assert [r.name for r in report.rows] == ["model.int8.tflite", "model.fp32.onnx"]
    for row in report.rows:
        for by_batch in (row.latency_by_batch, row.raw_latency_by_batch):
            assert sorted(by_batch) == [1, 8]
            for stats in by_batch.values():
                assert ordered(stats)
                assert stats.count >= TINY["min_calls"]
    keras = report.keras
    assert keras is not None and sorted(keras.predict_latency_by_batch) == [1, 8]
    assert ordered(keras.call_latency) and keras.call_latency.count >= TINY["min_calls"]
    assert ordered(keras.predict_latency)


def test_throughput_is_positive_and_ratios_come_from_the_same_run(report):
    for row in report.rows:
        assert all(v > 0 for v in row.throughput.values())
        assert all(v > 0 for v in row.raw_throughput.values())
        assert row.throughput[8] == pytest.approx(8 / (row.latency_by_batch[8].p50_us * 1e-6))
        assert row.ratio_batch1 == pytest.approx(row.latency.p50_us / row.raw_latency.p50_us)
        assert row.ratio_largest == pytest.approx(row.ratio(8))
        assert row.largest_batch == 8
    speedups = report.speedup_vs_keras_predict
    for row in report.rows:
        assert speedups[row.name] == pytest.approx(report.keras.predict_latency.p50_us / row.latency.p50_us)


def test_raw_baseline_gets_the_models_own_input_and_agrees_with_the_wrapper(report):
    for row in report.rows:
        assert row.raw_agreement == 1.0


def test_rows_describe_the_artifact_from_its_manifest(report, exported):
    int8 = report.row("tflite", "int8")
    assert int8 is not None and int8.precision == "int8" and int8.format == "tflite"
    assert int8.size_bytes == exported["tflite", "int8"].path.stat().st_size
    assert int8.load_seconds > 0
    assert report.row("onnx", "fp32").format == "onnx"
    assert report.threads == 1 and report.batch_sizes == (1, 8)
    assert report.machine["cores"] >= 1 and report.machine["cpu"]
    assert report.images == "64 given images"


def test_progress_is_reported_for_every_step_and_ends_complete(report):
    calls = report._progress_calls
    totals = {total for _, total, _ in calls}
    assert len(totals) == 1
    total = totals.pop()
    assert [done for done, _, _ in calls] == list(range(total + 1))
    assert any("model.int8.tflite" in what for _, _, what in calls)
    assert any("model.predict" in what for _, _, what in calls)


def test_report_round_trips_through_json_and_renders_markdown(report):
    data = json.loads(json.dumps(report.to_dict()))
    again = BenchmarkReport.from_dict(data)
    assert again.rows == report.rows and again.keras == report.keras
    assert again.speedup_vs_keras_predict == pytest.approx(report.speedup_vs_keras_predict)
    md = report.to_markdown()
    assert "| artifact | format | precision |" in md
    assert "model.int8.tflite" in md and "keras model.predict(x)" in md
    assert report.machine["cpu"] in md and "1 engine thread(s)" in md
    assert "x faster" in md  # the int8-vs-Keras highlight
    assert len(report.table_rows()) == 4 and all(
        len(r) == len(report.table_columns()) for r in report.table_rows()
    )


def test_the_machine_line_says_whether_int8_has_dot_product_instructions(report):
    from dataclasses import replace

    from mnist_edge.environment import simd_features

    x86 = "processor : 0\nflags : fpu sse2 avx2 fma bmi2 sha_ni\n"
    assert simd_features(x86) == ["avx2", "fma"]
    assert simd_features("Features : fp asimd asimddp i8mm\n") == ["asimd", "asimddp", "i8mm"]
    assert simd_features("no flags line\n") == []
    plain = replace(report, machine={**report.machine, "simd": ["avx2", "fma"]})
    assert "(avx2 fma; int8 dot product: none)" in plain.machine_line()
    vnni = replace(report, machine={**report.machine, "simd": ["avx2", "fma", "avx512f", "avx512_vnni"]})
    assert "int8 dot product: avx512_vnni" in vnni.machine_line()


def test_accuracy_comes_from_the_manifest_parity_block(exported, images, tmp_path):
    from mnist_edge.manifest import read_manifest, write_manifest

    src = exported["tflite", "fp32"].path
    path = tmp_path / src.name
    shutil.copyfile(src, path)
    shutil.copyfile(f"{src}.json", f"{path}.json")
    write_manifest(path, read_manifest(path).replace(parity={"accuracy": 0.9123}))
    result = benchmark([path], images=images, memory=False, **TINY)
    assert result.rows[0].accuracy == 0.9123
    assert result.keras is None and result.speedup_vs_keras_predict == {}


def test_bad_arguments_fail_before_any_measurement(exported, images, tmp_path):
    path = exported["tflite", "int8"].path
    with pytest.raises(MnistEdgeError, match="does not exist"):
        benchmark([tmp_path / "missing.tflite"], images=images)
    with pytest.raises(MnistEdgeError, match="suffix"):
        benchmark([tmp_path / "model.keras"], images=images)
    with pytest.raises(MnistEdgeError, match="threads"):
        benchmark([path], images=images, threads=0)
    with pytest.raises(MnistEdgeError, match="batch size"):
        benchmark([path], images=images, batch_sizes=(0,))
    with pytest.raises(MnistEdgeError, match="uint8"):
        benchmark([path], images=images.astype(np.float32))


# --------------------------------------------------------------------------- memory


def test_memory_is_measured_in_a_fresh_subprocess(exported):
    probe = measure_memory(exported["tflite", "int8"].path, batch_sizes=(1, 8))
    # A Python process with numpy and an engine: tens of MB, well under a few GB.
    assert 10 << 20 < probe.baseline_rss_bytes <= probe.peak_rss_bytes < 4 << 30
    assert probe.cold_load_seconds > 0


def test_memory_probe_failure_is_one_clear_error(tmp_path):
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"not a model")
    with pytest.raises(MnistEdgeError, match=r"memory probe for .*broken\.tflite failed"):
        measure_memory(broken, batch_sizes=(1,))


def test_importing_bench_does_not_import_tensorflow():
    code = "import sys, mnist_edge.bench; sys.exit(any(m in sys.modules for m in ('tensorflow', 'keras')))"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# --------------------------------------------------------------------------- CLI


@pytest.fixture()
def model_dir(exported, tiny_model_path, tmp_path) -> Path:
    """A folder with the tiny model and two of its artifacts (with manifests)."""
    folder = tmp_path / "artifacts"
    folder.mkdir()
    shutil.copyfile(tiny_model_path, folder / "model.keras")
    for key in (("tflite", "int8"), ("onnx", "int8")):
        src = exported[key].path
        shutil.copyfile(src, folder / src.name)
        shutil.copyfile(f"{src}.json", folder / f"{src.name}.json")
    return folder


def cli_args(model_dir: Path, *extra: str) -> list[str]:
    fast = ["--min-time", "2ms", "--min-calls", "3", "--batch-sizes", "1,4", "--no-memory"]
    return ["benchmark", "--model", str(model_dir / "model.keras"), *fast, *extra]


def test_cli_with_no_artifacts_measures_everything_beside_the_model_and_writes_files(model_dir, tmp_path):
    out = tmp_path / "out"
    args = cli_args(model_dir, "--json", str(out / "b.json"), "--markdown", str(out / "b.md"))
    result = runner.invoke(app, [*args, "--plot", str(out / "b.png")])
    assert result.exit_code == 0, result.output
    assert "model.int8.tflite" in result.stdout and "model.int8.onnx" in result.stdout
    assert "keras model.predict(x)" in result.stdout
    assert "engine thread(s)" in result.stdout and "onnxruntime" in result.stdout
    data = json.loads((out / "b.json").read_text())
    assert [r["name"] for r in data["rows"]] == ["model.int8.onnx", "model.int8.tflite"]
    assert data["keras"] is not None and data["threads"] == 1
    assert BenchmarkReport.from_dict(data).rows[0].latency.count >= 3
    assert "| model.int8.tflite |" in (out / "b.md").read_text()
    assert (out / "b.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_measures_named_artifacts_without_keras(model_dir):
    result = runner.invoke(app, [*cli_args(model_dir, "--no-keras"), str(model_dir / "model.int8.tflite")])
    assert result.exit_code == 0, result.output
    assert "model.int8.tflite" in result.stdout
    assert "model.int8.onnx" not in result.stdout and "keras model" not in result.stdout


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--batch-sizes", "0"], "batch size must be at least 1"),
        (["--batch-sizes", "1,x"], "not a whole number"),
        (["--min-time", "soon"], "as a duration"),
        (["--threads", "0"], "--threads must be at least 1"),
        (["--min-calls", "0"], "--min-calls must be at least 1"),
        (["{dir}/missing.tflite"], "does not exist"),
        (["{dir}/model.keras"], "not an exported artifact"),
        (["--model", "{dir}/nope/model.keras"], "does not exist"),
        (["--json", "{dir}"], "is a folder"),
    ],
    ids=[
        "batch-0",
        "batch-x",
        "min-time",
        "threads",
        "min-calls",
        "missing",
        "suffix",
        "no-model",
        "json-dir",
    ],
)
def test_cli_usage_errors_are_one_line_and_exit_2(model_dir, extra, message):
    result = runner.invoke(app, cli_args(model_dir, *(a.format(dir=model_dir) for a in extra)))
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_cli_without_artifacts_beside_the_model_is_a_usage_error(tiny_model_path, tmp_path):
    shutil.copyfile(tiny_model_path, tmp_path / "model.keras")
    result = runner.invoke(app, ["benchmark", "--model", str(tmp_path / "model.keras")])
    assert result.exit_code == 2
    assert "run `mnist-edge export` first" in result.stderr


# --------------------------------------------------------------------------- README table


@pytest.fixture()
def readme_tools():
    folder = str(Path(__file__).resolve().parent.parent / "benchmarks")
    sys.path.insert(0, folder)
    try:
        import make_readme_table

        yield make_readme_table
    finally:
        sys.path.remove(folder)


def test_readme_table_is_generated_from_the_result_json(report, readme_tools, tmp_path):
    (tmp_path / "benchmark.json").write_text(json.dumps({"git_commit": "abc1234", **report.to_dict()}))
    block = readme_tools.readme_table(tmp_path)
    assert "| model.int8.tflite | tflite | int8 |" in block
    assert "commit abc1234" in block and "make_readme_table.py" in block
    assert "### Training" not in block  # no training JSON in this folder: no section


def test_readme_block_is_rewritten_between_the_markers_only(readme_tools, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# Title\n\n<!-- results:start -->\nold\n<!-- results:end -->\n\nrest\n")
    assert readme_tools.update_readme("| new |\n", readme)
    assert readme.read_text() == "# Title\n\n<!-- results:start -->\n| new |\n<!-- results:end -->\n\nrest\n"
    assert not readme_tools.update_readme("| new |\n", readme)
    readme.write_text("no markers\n")
    with pytest.raises(SystemExit):
        readme_tools.update_readme("x", readme)


def test_repeatability_compares_every_median_of_two_runs_and_lands_in_the_table(
    report, readme_tools, tmp_path
):
    import repeatability  # beside make_readme_table, on the path readme_tools set up

    first = report.to_dict()
    second = json.loads(json.dumps(first))
    row = second["rows"][0]
    row["latency_by_batch"]["1"]["p50_us"] *= 1.2  # one figure 20 % slower in the second run
    rows = repeatability.compare(repeatability.p50s(first), repeatability.p50s(second))
    assert len(rows) == 2 * sum(len(r["latency_by_batch"]) for r in first["rows"])
    changed = [r for r in rows if abs(r["change"]) > 1e-12]
    assert [r["figure"] for r in changed] == [f"{Path(row['path']).name} wrapper 1"]
    assert changed[0]["change"] == pytest.approx(0.2)
    ratio_moves = repeatability.ratio_changes(repeatability.p50s(first), repeatability.p50s(second))
    assert len(ratio_moves) == len(rows) // 2
    assert sorted(abs(c) for c in ratio_moves)[-2:] == [0.0, pytest.approx(0.2)]
    (tmp_path / "repeatability.json").write_text(
        json.dumps(
            {"figures": 12, "max_abs_change": 0.034, "median_abs_change": 0.012, "worst": "x", "target": 0.1}
        )
    )
    block = readme_tools.readme_table(tmp_path)
    assert "over 12 p50 figures the median change was 1.2% and the largest 3.4% (x)" in block
    assert "target within 10%: met." in block
