"""The generated C on the host, aarch64 Linux (qemu-user) and a Cortex-M4F (qemu mps2-an386), beside
TensorFlow Lite Micro's figures for the same model -> benchmarks/results/mcu.json.

    python benchmarks/mcu.py [--folder artifacts --folder artifacts-cnn] [--images 10000] [--random 20000]

Per model (each --folder's int8 .tflite: the MLP, the CNN), target and rounding (litert, tflm):

* outputs: every probability byte of the test digits and the random images, compared with the
  host build and with the engine the rounding promises (LiteRT int8, the tflite-micro
  interpreter): the goal is 0 differing bytes;
* flash: ``.text`` (code) and ``.rodata`` (weights, biases, scales, tables) of the model's object
  file, from the target's ``size -A``;
* RAM: on the boards the stack high-water mark of one inference, measured by painting the stack,
  plus the object's ``.data`` and ``.bss`` (none); on Linux the compiler's ``-fstack-usage``;
* instructions per inference and per multiply-accumulate: on the board from SysTick under
  ``-icount shift=0`` (calibrated on a loop of known length) and, for every emulated target, by
  counting executed instructions in QEMU's translation-block trace (runs of 1 and 3 images,
  difference halved); on the host with valgrind's callgrind when installed.

TFLM's side: the .tflite (what TFLM keeps in flash), the smallest arena its Python interpreter
accepts (bisected, each size in a child process: too small an arena can crash it) and the
published size of its core runtime.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import ROOT, load_average, write_result

from mnist_edge._files import sha256_bytes
from mnist_edge.export.c import ROUNDINGS, generate
from mnist_edge.export.c_graph import read_model
from mnist_edge.parity import c_code

EXAMPLE = ROOT / "examples" / "mcu"
BOARD_TARGET = "cortex-m4"
LINUX_TARGETS = ("host", "aarch64")
TFLM_RUNTIME = {
    "core_runtime_bytes": 16 * 1024,
    "note": "published: 'The core runtime just fits in 16 KB on an Arm Cortex M3' (kernels extra)",
    "source": "https://ai.google.dev/edge/litert/microcontrollers/overview",
}
TARGETS_MAX_INSTRUCTIONS_PER_MAC = 2.0
TARGET_MLP_RAM_BYTES = 1024


def _runner() -> Any:
    spec = importlib.util.spec_from_file_location("run_check", EXAMPLE / "run_check.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


runner = _runner()


# --------------------------------------------------------------------------- instruction counts


def trace_instructions(command: list[str], cwd: Path) -> int:
    """Instructions QEMU executed: each translation block's length (from ``in_asm``) times the times
    it ran (``exec``, with chaining off so every run is logged)."""
    log = cwd / "qemu.log"
    done = subprocess.run(
        [command[0], "-d", "in_asm,exec,nochain", "-D", str(log), *command[1:]],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{command[0]} failed: {done.stderr}")
    lengths: dict[str, int] = {}
    executed = 0
    current: str | None = None
    with log.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            if line.startswith("IN:"):
                current = None
                continue
            if line.startswith("Trace "):
                pc = line.split("/")[1]
                executed += lengths.get(pc.lstrip("0"), 0)
                current = None
                continue
            match = re.match(r"^0x([0-9a-f]+):\s", line)
            if match:
                address = match.group(1).lstrip("0")
                if current is None:
                    current = address
                    lengths[current] = 0
                lengths[current] += 1
    log.unlink()
    return executed


def per_inference(counter: Any, images: np.ndarray, workdir: Path) -> int:
    """Instructions of one inference: (count with 3 images - count with 1) / 2."""
    counts = []
    for n in (1, 3):
        folder = workdir / f"count-{n}"
        folder.mkdir(parents=True, exist_ok=True)
        images[:n].tofile(folder / "images.bin")
        counts.append(counter(folder))
    return (counts[1] - counts[0]) // 2


def board_counter(target: Any, program: Path) -> Any:
    command = [*runner.QEMU_BOARD, "-M", target.board, "-kernel", str(program)]
    return lambda folder: trace_instructions(command, folder)


def linux_counter(target: Any, program: Path) -> Any:
    if target.emulator:
        return lambda folder: trace_instructions([*target.emulator, str(program)], folder)
    if shutil.which("valgrind") is None:
        return None

    def callgrind(folder: Path) -> int:
        done = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--toggle-collect=mnist_edge_infer",
                f"--callgrind-out-file={folder / 'callgrind.out'}",
                str(program),
            ],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
        return int(re.search(r"Collected : (\d+)", done.stderr).group(1))

    return callgrind


# --------------------------------------------------------------------------- TFLM


def tflm_arena(tflite: Path, low: int = 1024, high: int = 1 << 20) -> int | None:
    """The smallest arena (bytes) with which the tflite-micro interpreter runs the model."""
    if importlib.util.find_spec("tflite_micro") is None:
        return None
    probe = (
        "import sys, numpy as np\n"
        "from tflite_micro import runtime\n"
        "it = runtime.Interpreter.from_file(sys.argv[1], arena_size=int(sys.argv[2]))\n"
        "it.set_input(np.zeros((1, 28, 28), np.uint8), 0)\n"
        "it.invoke()\n"
        "print('ok')\n"
    )

    def works(size: int) -> bool:
        done = subprocess.run(
            [sys.executable, "-c", probe, str(tflite), str(size)], capture_output=True, text=True, timeout=300
        )
        return done.returncode == 0 and "ok" in done.stdout

    if not works(high):
        return None
    while low < high:
        middle = (low + high) // 2
        if works(middle):
            high = middle
        else:
            low = middle + 1
    return low


# --------------------------------------------------------------------------- the run


def stack_usage(build_dir: Path) -> int | None:
    """The entry point's frame plus its deepest callee's, from GCC's -fstack-usage (no recursion)."""
    su = build_dir / "model.su"
    if not su.exists():
        return None
    frames = {
        line.split("\t")[0].rsplit(":", 1)[-1]: int(line.split("\t")[1])
        for line in su.read_text().splitlines()
        if line.strip()
    }
    entry = next((v for k, v in frames.items() if k.endswith("_infer")), 0)
    return entry + max((v for k, v in frames.items() if not k.endswith("_infer")), default=0)


def measure(
    name: str,
    rounding: str,
    model_dir: Path,
    images: np.ndarray,
    host: np.ndarray,
    engine: np.ndarray,
    macs: int,
    work: Path,
) -> dict[str, Any]:
    target = runner.TARGETS[name]
    started = time.perf_counter()
    program = runner.build(target, model_dir, work / "build", werror=True)
    result = runner.run(target, program, images, work / "run")
    sizes = runner.section_sizes(target, work / "build")
    counter = board_counter(target, program) if target.board else linux_counter(target, program)
    traced = per_inference(counter, images, work / "trace") if counter is not None else None
    systick = result.measurements.get("instructions_per_inference")
    instructions = systick if systick is not None else traced
    row: dict[str, Any] = {
        "target": name,
        "rounding": rounding,
        "images": len(images),
        "differing_bytes_vs_host": int((result.outputs != host).sum()),
        "differing_bytes_vs_engine": int((result.outputs != engine).sum()),
        "top_digit_matches_outputs": bool(np.array_equal(result.tops, result.outputs.argmax(axis=1))),
        "flash_code_bytes": sizes["text"],
        "flash_model_bytes": sizes["rodata"],
        "static_ram_bytes": sizes["data"] + sizes["bss"],
        "instructions_per_inference": instructions,
        "instructions_traced": traced,
        "instructions_systick": systick,
        "instructions_per_mac": None if instructions is None else round(instructions / macs, 3),
        "seconds": round(time.perf_counter() - started, 1),
    }
    if target.board:
        row["stack_high_water_bytes"] = result.measurements["stack_bytes"]
        row["ram_bytes"] = row["stack_high_water_bytes"] + row["static_ram_bytes"]
    else:
        row["stack_static_bytes"] = stack_usage(work / "build")
    return row


def measure_model(folder: Path, images: np.ndarray, targets: list[str], work: Path) -> dict[str, Any]:
    """Every target and rounding for the int8 model in ``folder``, beside TFLM's figures for it."""
    tflite = folder / "model.int8.tflite"
    data = tflite.read_bytes()
    model = read_model(data)
    name = "cnn" if "CONV_2D" in model.operators else "mlp"
    rows = []
    for rounding in ROUNDINGS:
        source = generate(data, rounding=rounding, source_name=tflite.name)
        model_dir = work / f"{name}-{rounding}"
        model_dir.mkdir(parents=True)
        (model_dir / source.c_name).write_bytes(source.c_bytes)
        (model_dir / source.h_name).write_bytes(source.h_bytes)
        with c_code.CLibrary(source) as library:
            host = library.run(images)[0]
        engine, engine_name = c_code.engine_outputs(data, images, rounding)
        print(f"{name} {rounding}: host vs {engine_name}: {int((host != engine).sum())} differing bytes")
        for target in targets:
            row = measure(
                target,
                rounding,
                model_dir,
                images,
                host,
                engine,
                source.macs,
                work / f"{name}-{rounding}-{target}",
            )
            row["engine"] = engine_name
            rows.append(row)
            print(
                {
                    k: row[k]
                    for k in ("target", "rounding", "differing_bytes_vs_engine", "instructions_per_mac")
                }
            )
    arena = tflm_arena(tflite)
    board = next((r for r in rows if r["target"] == BOARD_TARGET and r["rounding"] == "litert"), None)
    checks = {}
    if board is not None:
        checks = {
            "zero_differing_bytes": all(
                r["differing_bytes_vs_engine"] == 0 and r["differing_bytes_vs_host"] == 0 for r in rows
            ),
            "cortex_m4_instructions_per_mac_at_most_2": board["instructions_per_mac"]
            <= TARGETS_MAX_INSTRUCTIONS_PER_MAC,
            "cortex_m4_flash_at_most_tflite": board["flash_code_bytes"] + board["flash_model_bytes"]
            <= len(data),
            "ram_below_tflm_arena": arena is None or board["ram_bytes"] < arena,
        }
        if name == "mlp":
            checks["cortex_m4_ram_at_most_1_kb"] = board["ram_bytes"] <= TARGET_MLP_RAM_BYTES
    return {
        "name": name,
        "model": str(tflite.relative_to(ROOT) if tflite.is_relative_to(ROOT) else tflite),
        "tflite_sha256": sha256_bytes(data),
        "operators": list(model.operators),
        "macs": model.macs,
        "rows": rows,
        "tflm": {"tflite_bytes": len(data), "arena_bytes": arena, **TFLM_RUNTIME},
        "checks": checks,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--folder",
        type=Path,
        action="append",
        help="holds model.int8.tflite; repeat for several models (default: artifacts)",
    )
    parser.add_argument("--images", type=int, default=10_000, help="MNIST test digits")
    parser.add_argument("--random", type=int, default=c_code.RANDOM_IMAGES, help="random images")
    parser.add_argument("--targets", default=",".join((*LINUX_TARGETS, BOARD_TARGET)))
    args = parser.parse_args()
    folders = args.folder or [ROOT / "artifacts"]
    targets = [t for t in args.targets.split(",") if t]
    for name in targets:
        if missing := runner.missing_tools(runner.TARGETS[name]):
            print(f"{name}: not installed: {', '.join(missing)} (run `make mcu-tools`)", file=sys.stderr)
            return 2
    from mnist_edge.data import load_mnist_data

    mnist = load_mnist_data(log=lambda _msg: None)
    noise = np.random.default_rng(0).integers(0, 256, (args.random, 784), dtype=np.uint8)
    images = np.concatenate([mnist.x_test[: args.images].reshape(-1, 784), noise])
    with tempfile.TemporaryDirectory(prefix="mnist-edge-mcu-") as tmp:
        models = [
            measure_model(folder, images, targets, Path(tmp) / str(index))
            for index, folder in enumerate(folders)
        ]
    payload = {
        "images": {"test": args.images, "random": args.random},
        "load_average": load_average(),
        "models": models,
        "checks": {f"{m['name']}_{check}": ok for m in models for check, ok in m["checks"].items()},
    }
    write_result("mcu", payload)
    print(markdown(payload))
    return 0 if all(payload["checks"].values()) else 1


#: How the README names each target (the board in bold: it is the one the targets are for).
TARGET_LABELS = {
    "host": "x86-64 host",
    "aarch64": "aarch64 (qemu-user)",
    "cortex-m4": "**Cortex-M4F (mps2-an386)**",
}


def markdown(payload: dict[str, Any]) -> str:
    """The README table (paste it over the old one)."""
    lines = [
        "| model | target | rounding | images | differing bytes | flash: model | flash: code | RAM "
        "| instructions / inference | per MAC |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for model in payload["models"]:
        name = model["name"].upper()
        for r in model["rows"]:
            board = "ram_bytes" in r
            ram = (
                f"**{r['ram_bytes']:,} B** (stack, measured)"
                if board
                else f"{r['stack_static_bytes']:,} B (stack, static)"
            )
            count = "-" if r["instructions_per_inference"] is None else f"{r['instructions_per_inference']:,}"
            per_mac = "-" if r["instructions_per_mac"] is None else f"{r['instructions_per_mac']:.2f}"
            per_mac = f"**{per_mac}**" if board and per_mac != "-" else per_mac
            target = TARGET_LABELS.get(r["target"], r["target"])
            lines.append(
                f"| {name} | {target} | {r['rounding']} | {r['images']:,} "
                f"| {r['differing_bytes_vs_engine']} | {r['flash_model_bytes']:,} B "
                f"| {r['flash_code_bytes']:,} B | {ram} | {count} | {per_mac} |"
            )
        tflm = model["tflm"]
        arena = "-" if tflm["arena_bytes"] is None else f"{tflm['arena_bytes']:,} B (arena alone)"
        lines.append(
            f"| {name} | TFLM, same model | - | - | - | {tflm['tflite_bytes']:,} B (the .tflite) "
            f"| ~{tflm['core_runtime_bytes'] // 1024} KB core runtime (published) + kernels "
            f"| {arena} | - | - |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
