"""64-bit ARM Linux, emulated: a runtime-only install (no TensorFlow) runs ``mnist-edge verify`` with
the device bundle and ``mnist-edge predict`` under ``qemu-aarch64 -cpu cortex-a72`` and agrees with
this machine; and on qemu 7.2's default CPU model, whose int8 arithmetic is wrong, ``load()`` refuses
the int8 TFLite model by its known answers instead of answering wrongly.

The arm64 root is built once and cached (``tools/arm/build-root.sh``); emulation costs ~4 s per
start and 0.7-3.5 ms per digit, so verify runs on the first :data:`LIMIT` test digits.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools" / "arm"))
import check as arm  # noqa: E402

pytestmark = pytest.mark.slow

#: Digits verified under emulation: enough for every row to say something, about 20 s.
LIMIT = 1000
#: The tiny fixture model's int8 limits (test_parity.py says why), as verify options.
TINY_INT8 = ["--min-agreement", "int8=98.5", "--max-acc-diff", "int8=0.5"]


@pytest.fixture(scope="module")
def arm_root() -> Path:
    missing = arm.missing_tools()
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed: run `make arm-tools`")
    arm.build_root()
    return arm.arm_home()


@pytest.fixture(scope="module")
def report(arm_root, exported_dir) -> dict:
    return arm.check(exported_dir, limit=LIMIT, overrides=TINY_INT8, build=False, log=lambda _msg: None)


def test_the_runtime_imports_on_aarch64_without_tensorflow(report):
    assert report["smoke"]["machine"] == "aarch64"
    assert report["smoke"]["tensorflow"] is False


def test_verify_with_the_device_bundle_gives_x86s_verdicts_on_aarch64(report):
    verify = report["verify"]
    assert verify["images"] == LIMIT
    assert len(verify["rows"]) == 6
    for row in verify["rows"]:
        assert row["arm"] == row["x86"], row
        assert row["agreement_gap_pct"] <= 0.2, row  # at most two of the 1,000 digits change label
        if "fp32" in row["artifact"]:
            assert row["arm"] == "PASS" and row["max_prob_diff_gap"] < 1e-5, row
    assert verify["arm_exit_code"] == verify["x86_exit_code"]


def test_predict_on_a_picture_prints_what_x86_prints(report):
    assert report["predict"]["identical_json"], report["predict"]
    assert report["predict"]["arm_label"] == report["predict"]["label"]


def test_qemus_default_cpu_model_is_caught_by_the_known_answers(arm_root, exported_dir, tmp_path):
    """``-cpu max`` in qemu 7.2 computes LiteRT's int8 kernels wrongly (11 % accuracy on the trained
    model, outputs still probabilities): the load-time check must refuse, not answer."""
    scratch = tmp_path / "max"
    scratch.mkdir()
    arm.copy_artifacts(exported_dir, scratch)
    outcome = arm.load_each(["model.int8.tflite", "model.fp32.tflite"], scratch, cpu="max")
    assert "does not give its known answers" in outcome["model.int8.tflite"]
    assert outcome["model.fp32.tflite"] == "loaded"
