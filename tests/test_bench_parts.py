"""The benchmark's parts on their own: options read once, and bare engines built like the runtime's.

The whole run is tested in test_bench.py; these pin down what the run's layout promises: the
options are parsed in one place and trusted afterwards, and the raw baseline differs from the
runtime only in the runtime's own code (same engine settings, engine chosen by the same registry).
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from mnist_edge._mnist import PIXEL_SCALE
from mnist_edge.bench import BenchOptions, MemoryProbe, benchmark, model_input, raw_engine
from mnist_edge.errors import MnistEdgeError, ModelLoadError


@pytest.fixture(scope="module")
def images(mnist) -> np.ndarray:
    return mnist.x_test[:16]


def test_options_are_read_from_what_a_person_types_and_checked():
    options = BenchOptions.checked(threads=2, batch_sizes="1024, 32", min_time="500ms", min_calls=5)
    assert options == BenchOptions(threads=2, batch_sizes=(1, 32, 1024), min_time=0.5, min_calls=5)
    assert options.largest_batch == 1024
    assert options.to_dict() == {"threads": 2, "batch_sizes": [1, 32, 1024], "min_time": 0.5, "min_calls": 5}
    assert BenchOptions.checked() == BenchOptions()


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"threads": 0}, "threads"),
        ({"threads": True}, "threads"),
        ({"min_time": 0.0}, "min_time"),
        ({"min_time": float("nan")}, "min_time"),
        ({"min_time": "soon"}, "as a duration"),
        ({"min_calls": 0}, "min_calls"),
        ({"batch_sizes": "0"}, "batch size"),
    ],
)
def test_bad_options_are_usage_errors(bad, message):
    with pytest.raises(MnistEdgeError, match=message):
        BenchOptions.checked(**bad)


def test_a_run_parses_its_batch_sizes_once_and_hands_them_on(exported, images, monkeypatch):
    from mnist_edge.bench import options, run

    parsed: list[object] = []
    real_parse = options.parse_batch_sizes
    monkeypatch.setattr(options, "parse_batch_sizes", lambda text: parsed.append(text) or real_parse(text))
    probed: list[tuple[int, ...]] = []
    fake = MemoryProbe(peak_rss_bytes=2, baseline_rss_bytes=1, cold_load_seconds=0.1)
    monkeypatch.setattr(run, "probe", lambda path, threads, sizes: probed.append(sizes) or fake)

    report = benchmark(
        [exported["tflite", "int8"].path], images=images, batch_sizes="8", min_time="2ms", min_calls=3
    )
    assert parsed == ["8"]
    assert probed == [(1, 8)]
    assert report.batch_sizes == (1, 8) and report.min_time == pytest.approx(0.002)
    assert report.rows[0].memory == fake


@pytest.mark.parametrize(
    ("key", "module", "builder"),
    [
        (("tflite", "int8"), "mnist_edge.runtime.litert", "new_interpreter"),
        (("onnx", "fp32"), "mnist_edge.runtime.onnxrt", "session_options"),
    ],
)
def test_bare_engines_are_built_with_the_backends_settings(
    exported, images, monkeypatch, key, module, builder
):
    target = importlib.import_module(module)
    real = getattr(target, builder)
    threads_seen: list[int] = []

    def spy(*args):
        threads_seen.append(args[-1])
        return real(*args)

    monkeypatch.setattr(target, builder, spy)
    artifact = exported[key]
    engine = raw_engine(artifact.path, 2)
    assert threads_seen == [2]

    from mnist_edge.runtime import load

    clf = load(artifact.path)
    x = model_input(images, clf.input_spec, engine.inner, PIXEL_SCALE)
    raw_top1 = np.asarray(engine.runner(x)()).argmax(axis=1)
    assert np.array_equal(raw_top1, clf.predict(images))


def test_the_bare_engine_is_the_one_the_runtime_registry_picks(tmp_path):
    keras_file = tmp_path / "model.keras"
    keras_file.write_bytes(b"")
    with pytest.raises(ModelLoadError, match="no bare engine"):
        raw_engine(keras_file, 1)
    with pytest.raises(ModelLoadError, match="suffix"):
        raw_engine(tmp_path / "model.bin", 1)
