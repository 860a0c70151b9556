"""Run check.c on a target and get back every output byte, to compare with the host.

    python examples/mcu/run_check.py cortex-m4 --model-dir artifacts --images 1000

builds ``check`` for the target with this folder's Makefile, writes the first test digits (and
as many random images) to ``images.bin``, runs it (natively, under ``qemu-aarch64``, or on the
emulated MPS2 board) and compares ``outputs.bin`` with the same program built for the host.
On the boards the program also reports its stack high-water mark and instructions per
inference (SysTick under ``-icount shift=0``). The tests and ``benchmarks/mcu.py`` use the
functions here.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
PIXELS, CLASSES = 784, 10


@dataclass(frozen=True)
class Target:
    name: str
    #: Programs that must be on PATH to build and run.
    tools: tuple[str, ...]
    board: str | None = None  # an MPS2 board under qemu-system-arm
    linux_cc: str | None = None  # a Linux build, run natively or under an emulator
    emulator: tuple[str, ...] = ()
    size_tool: str = "size"


TARGETS: dict[str, Target] = {
    "host": Target("host", ("gcc", "make"), linux_cc="gcc"),
    "aarch64": Target(
        "aarch64",
        ("aarch64-linux-gnu-gcc", "qemu-aarch64", "make"),
        linux_cc="aarch64-linux-gnu-gcc",
        emulator=("qemu-aarch64",),
        size_tool="aarch64-linux-gnu-size",
    ),
    "cortex-m4": Target(
        "cortex-m4",
        ("arm-none-eabi-gcc", "qemu-system-arm", "make"),
        board="mps2-an386",
        size_tool="arm-none-eabi-size",
    ),
    "cortex-m3": Target(
        "cortex-m3",
        ("arm-none-eabi-gcc", "qemu-system-arm", "make"),
        board="mps2-an385",
        size_tool="arm-none-eabi-size",
    ),
}
QEMU_BOARD = (
    "qemu-system-arm",
    "-nographic",
    "-monitor",
    "none",
    "-serial",
    "none",
    "-semihosting-config",
    "enable=on,target=native",
    "-icount",
    "shift=0",
)


@dataclass(frozen=True)
class Run:
    """What one run of check gave: the probability bytes, the returned digits, measurements."""

    outputs: np.ndarray  # (N, 10) uint8
    tops: np.ndarray  # (N,) uint8
    measurements: dict[str, int] = field(default_factory=dict)


def missing_tools(target: Target) -> list[str]:
    return [tool for tool in target.tools if shutil.which(tool) is None]


def build(target: Target, model_dir: Path, build_dir: Path, *, werror: bool = False) -> Path:
    """Build check for ``target`` from ``model_dir``'s model.int8.c; returns the program.
    ``werror`` turns the Makefile's warnings (-Wall -Wextra -Wconversion -pedantic) into errors."""
    model_dir, build_dir = model_dir.resolve(), build_dir.resolve()
    if target.board is not None:
        args = ["check", f"BOARD={target.board}", f"BUILD={build_dir}"]
        program = build_dir / "check.elf"
    else:
        args = ["linux-check", f"LINUX_CC={target.linux_cc}", f"LINUX_BUILD={build_dir}"]
        program = build_dir / "check"
    if werror:
        args.append("WARNINGS=-Wall -Wextra -Wconversion -pedantic -Werror")
    _run(["make", "-s", "-C", str(HERE), f"MODEL_DIR={model_dir}", *args])
    return program


def run(target: Target, program: Path, images: np.ndarray, workdir: Path) -> Run:
    """Run ``program`` on ``images`` (uint8, N x 784) in ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    np.ascontiguousarray(images, np.uint8).reshape(-1, PIXELS).tofile(workdir / "images.bin")
    if target.board is not None:
        command = [*QEMU_BOARD, "-M", target.board, "-kernel", str(program)]
    else:
        command = [*target.emulator, str(program)]
    done = _run(command, cwd=workdir, timeout=3600)
    raw = np.fromfile(workdir / "outputs.bin", np.uint8).reshape(-1, CLASSES + 1)
    measurements = {key: int(value) for key, value in re.findall(r"^(\w+) (\d+)$", done, flags=re.MULTILINE)}
    return Run(raw[:, :CLASSES], raw[:, CLASSES], measurements)


def section_sizes(target: Target, build_dir: Path) -> dict[str, int]:
    """Bytes of code (.text) and of constant data (.rodata) in the model's object file."""
    model = build_dir / "model.o"
    table = _run([target.size_tool, "-A", str(model)])
    sizes = {"text": 0, "rodata": 0, "data": 0, "bss": 0}
    for name, size in re.findall(r"^\.(text|rodata|data|bss)\S*\s+(\d+)", table, flags=re.MULTILINE):
        sizes[name] += int(size)
    return sizes


def _run(command: list[str], cwd: Path | None = None, timeout: int = 600) -> str:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stdout}{done.stderr}")
    return done.stdout + done.stderr  # QEMU prints semihosting output on stderr


def test_images(count: int, seed: int = 0) -> np.ndarray:
    """The first ``count`` MNIST test digits and ``count`` random images."""
    from mnist_edge.data import load_mnist_data

    mnist = load_mnist_data(log=lambda _msg: None)
    noise = np.random.default_rng(seed).integers(0, 256, (count, PIXELS), dtype=np.uint8)
    return np.concatenate([mnist.x_test[:count].reshape(-1, PIXELS), noise])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", choices=sorted(TARGETS))
    parser.add_argument("--model-dir", type=Path, default=Path("artifacts"))
    parser.add_argument("--images", type=int, default=1000, help="test digits (and as many random images)")
    args = parser.parse_args()
    target = TARGETS[args.target]
    if missing := missing_tools(target):
        print(f"not installed: {', '.join(missing)} (run `make mcu-tools`)", file=sys.stderr)
        return 2
    images = test_images(args.images)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        result = run(target, build(target, args.model_dir, folder / "target"), images, folder / "run-target")
        host = TARGETS["host"]
        reference = run(host, build(host, args.model_dir, folder / "host"), images, folder / "run-host")
    differing = int((result.outputs != reference.outputs).sum())
    summary = {
        "target": target.name,
        "images": len(images),
        "differing_bytes": differing,
        **result.measurements,
    }
    print(json.dumps(summary, indent=2))
    return 0 if differing == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
