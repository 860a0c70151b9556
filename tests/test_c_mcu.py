"""The generated C on other CPUs: aarch64 Linux under qemu-user, Cortex-M4F and Cortex-M3 boards
under qemu-system-arm. Each must give the host's bytes (and so LiteRT's or TFLM's) image for
image; on the boards the stack high-water mark and the instruction count are measured too.

Slow (emulators); skipped with the reason when the cross tools are missing (`make mcu-tools`).
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mnist_edge.errors import ToolchainError
from mnist_edge.export.c import ROUNDINGS, generate
from mnist_edge.parity import c_code

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "mcu"
IMAGES = 300  # test digits, and as many random images
MLP_RAM_BYTES = 1024


def _load_runner():
    spec = importlib.util.spec_from_file_location("run_check", EXAMPLE / "run_check.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


runner = _load_runner()


def _target(name: str):
    target = runner.TARGETS[name]
    missing = runner.missing_tools(target)
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed: run `make mcu-tools`")
    return target


def _c_folders(tmp_path_factory, tflite: Path, tag: str) -> dict[str, tuple[Path, Any]]:
    """The C of ``tflite`` for each rounding, each in its own folder: (folder, CSource)."""
    data = tflite.read_bytes()
    folders = {}
    for rounding in ROUNDINGS:
        folder = tmp_path_factory.mktemp(f"{tag}-{rounding}")
        source = generate(data, rounding=rounding)
        (folder / source.c_name).write_bytes(source.c_bytes)
        (folder / source.h_name).write_bytes(source.h_bytes)
        folders[rounding] = (folder, source)
    return folders


@pytest.fixture(scope="module")
def models(tmp_path_factory, exported) -> dict[str, Path]:
    """The tiny model's C for each rounding, each in its own folder."""
    folders = _c_folders(tmp_path_factory, exported["tflite", "int8"].path, "c")
    return {rounding: folder for rounding, (folder, _) in folders.items()}


@pytest.fixture(scope="module")
def images(mnist) -> np.ndarray:
    noise = np.random.default_rng(11).integers(0, 256, (IMAGES, 784), dtype=np.uint8)
    return np.concatenate([mnist.x_test[-IMAGES:].reshape(-1, 784), noise])


@pytest.fixture(scope="module")
def host_bytes(exported):
    """The host build's probability bytes for (rounding, images): the reference every target must equal
    (test_c_export.py proves the host build equal to LiteRT and TFLM)."""
    data = exported["tflite", "int8"].path.read_bytes()

    def compute(rounding: str, images: np.ndarray) -> np.ndarray:
        try:
            c_code.find_compiler()
        except ToolchainError as exc:
            pytest.skip(str(exc))
        with c_code.CLibrary(generate(data, rounding=rounding)) as library:
            return library.run(images)[0]

    return compute


@pytest.mark.parametrize("rounding", sorted(ROUNDINGS))
@pytest.mark.parametrize("name", ["aarch64", "cortex-m4", "cortex-m3"])
def test_target_gives_the_hosts_bytes(tmp_path, models, images, host_bytes, name, rounding):
    target = _target(name)
    program = runner.build(target, models[rounding], tmp_path / "build", werror=True)
    result = runner.run(target, program, images, tmp_path / "run")
    expected = host_bytes(rounding, images)
    assert result.outputs.shape == expected.shape
    assert np.array_equal(result.outputs, expected), f"{(result.outputs != expected).sum()} bytes differ"
    assert np.array_equal(result.tops, expected.argmax(axis=1))
    if target.board is not None:
        sizes = runner.section_sizes(target, tmp_path / "build")
        ram = result.measurements["stack_bytes"] + sizes["data"] + sizes["bss"]
        assert 0 < ram <= MLP_RAM_BYTES, result.measurements
        assert result.measurements["milli_instructions_per_tick"] > 0


def test_cortex_m4_runs_the_dsp_kernel_at_under_two_instructions_per_mac(tmp_path, models, images, exported):
    target = _target("cortex-m4")
    program = runner.build(target, models["litert"], tmp_path / "build")
    instructions = runner.run(target, program, images[:2], tmp_path / "run").measurements[
        "instructions_per_inference"
    ]
    macs = generate(exported["tflite", "int8"].path.read_bytes()).macs
    assert instructions / macs <= 2.0, instructions
    # The portable C on the M3 is the control: the DSP kernel is what makes the difference.
    m3 = _target("cortex-m3")
    plain = runner.run(m3, runner.build(m3, models["litert"], tmp_path / "m3"), images[:2], tmp_path / "r3")
    assert plain.measurements["instructions_per_inference"] > 1.5 * instructions


def test_mcu_demo_prints_the_hosts_predictions(tmp_path, models, mnist, host_bytes):
    _target("cortex-m4")
    build = tmp_path / "build"
    done = subprocess.run(
        [
            "make",
            "-s",
            "-C",
            str(EXAMPLE),
            "run",
            f"MODEL_DIR={models['litert']}",
            f"BUILD={build}",
            f"PYTHON={sys.executable}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    printed = done.stdout + done.stderr
    assert done.returncode == 0, printed
    predicted = [int(p) for p in re.findall(r"predicted (\d)", printed)]
    expected = host_bytes("litert", mnist.x_test[:10]).argmax(axis=1).tolist()
    assert predicted == expected
    assert re.search(r"about \d+ instructions per digit", printed)


# --------------------------------------------------------------------------- the CNN

CNN_IMAGES = 10  # test digits, and as many random images: every kernel path, few emulated seconds


@pytest.fixture(scope="module")
def cnn_models(tmp_path_factory, train_cnn_int8) -> dict[str, tuple[Path, Any]]:
    """The C of train's CNN for each rounding: (its folder, the CSource)."""
    return _c_folders(tmp_path_factory, train_cnn_int8, "cnn-c")


def _run_as_on_the_host(target, folder: Path, source, mnist, tmp_path: Path):
    """Builds the C in ``folder`` for ``target``, runs it on test digits and as many random images,
    checks its bytes against the host build's, and hands the run back."""
    noise = np.random.default_rng(5).integers(0, 256, (CNN_IMAGES, 784), dtype=np.uint8)
    images = np.concatenate([mnist.x_test[:CNN_IMAGES].reshape(-1, 784), noise])
    program = runner.build(target, folder, tmp_path / "build", werror=True)
    result = runner.run(target, program, images, tmp_path / "run")
    with c_code.CLibrary(source) as library:
        expected = library.run(images)[0]
    assert np.array_equal(result.outputs, expected), f"{(result.outputs != expected).sum()} bytes differ"
    return result


@pytest.mark.parametrize("rounding", sorted(ROUNDINGS))
@pytest.mark.parametrize("name", ["aarch64", "cortex-m4", "cortex-m3"])
def test_the_cnn_on_a_target_gives_the_hosts_bytes(tmp_path, cnn_models, mnist, name, rounding):
    target = _target(name)
    folder, source = cnn_models[rounding]
    result = _run_as_on_the_host(target, folder, source, mnist, tmp_path)
    if name == "cortex-m4":
        sizes = runner.section_sizes(target, tmp_path / "build")
        ram = result.measurements["stack_bytes"] + sizes["data"] + sizes["bss"]
        # the activations and the two patches, plus a few call frames: nothing else
        assert source.arena_bytes < ram <= source.arena_bytes + 512, result.measurements
        per_mac = result.measurements["instructions_per_inference"] / source.macs
        assert per_mac <= 2.0, result.measurements


@pytest.mark.parametrize("rounding", sorted(ROUNDINGS))
def test_other_conv_geometries_on_the_cortex_m4_give_the_hosts_bytes(
    tmp_path_factory, tmp_path, other_geometry_int8, mnist, rounding
):
    """The DSP kernels (two output pixels at a time, an odd last one alone) on the convolutions
    train's CNN never has: filter rows not a whole block of four, odd numbers of groups of four
    columns and of output pixels; the host build, proven equal to both engines, is the reference."""
    target = _target("cortex-m4")
    folder, source = _c_folders(tmp_path_factory, other_geometry_int8, "other-c")[rounding]
    _run_as_on_the_host(target, folder, source, mnist, tmp_path)
