"""The runtime on 64-bit ARM Linux (emulated) against this machine, artifact by artifact.

Under ``qemu-aarch64 -cpu cortex-a72`` (a Raspberry Pi 4's CPU), in the arm64 root that
``tools/arm/build-root.sh`` builds with the runtime-only install (no TensorFlow):

* every artifact's raw engine outputs and the runtime's probabilities on the first ``--images``
  test digits, compared with the same on x86: output values and bytes that differ, the largest
  probability difference, the largest difference in output levels (quantised outputs), top-1
  agreement;
* ``mnist-edge verify`` of every artifact against the device bundle, on the same digits
  (``tools/arm/check.py``), with the default tolerances, beside the same run on x86;
* the known-answer check on the emulator's default CPU model (``-cpu max``), where qemu 7.2
  computes LiteRT's int8 kernels wrongly: which artifacts ``load()`` refuses there.

Writes ``benchmarks/results/arm.json``. Emulated times say nothing about a real Pi's speed.

    python benchmarks/arm.py [--artifacts artifacts] [--images 10000]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import ROOT, load_average, write_result

sys.path.insert(0, str(ROOT / "tools" / "arm"))
import check as arm

#: Run on both machines: raw engine outputs and runtime probabilities for every artifact.
DUMP = """
import json, sys, time, warnings
from pathlib import Path
import numpy as np
from mnist_edge.bench.engines import model_input, raw_engine
from mnist_edge.manifest import read_manifest
from mnist_edge.runtime import load

warnings.simplefilter("ignore")
folder, out, n = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
out.mkdir(exist_ok=True)
with np.load(folder / "model.bundle.npz", allow_pickle=False) as bundle:
    pixels = bundle["images"][:n]
seconds = {}
for name in sys.argv[4:]:
    path = folder / name
    manifest = read_manifest(path)
    engine = raw_engine(path, 1)
    x = model_input(pixels, manifest.input, engine.inner, manifest.preprocessing.get("divide_by", 255.0))
    start = time.perf_counter()
    parts = []
    for i in range(0, n, 100):
        chunk = np.ascontiguousarray(x[i : i + 100])
        if i == 0 or len(chunk) != 100:
            call = engine.caller(chunk.shape)
        parts.append(np.array(call(chunk)))
    raw = np.concatenate(parts)
    seconds[name] = time.perf_counter() - start
    with load(path) as clf:
        probs = clf.predict_proba(pixels)
    np.save(out / f"{name}.raw.npy", raw)
    np.save(out / f"{name}.proba.npy", probs)
print(json.dumps(seconds))
"""


def differences(arm_dir: Path, x86_dir: Path, name: str) -> dict[str, object]:
    def read(folder: Path, kind: str) -> np.ndarray:
        return np.load(folder / f"{name}.{kind}.npy", allow_pickle=False)

    raw_a, raw_x = read(arm_dir, "raw"), read(x86_dir, "raw")
    p_a, p_x = read(arm_dir, "proba"), read(x86_dir, "proba")
    bytes_a = np.frombuffer(raw_a.tobytes(), np.uint8)
    bytes_x = np.frombuffer(raw_x.tobytes(), np.uint8)
    quantised = raw_a.dtype.kind in "iu"
    row: dict[str, object] = {
        "artifact": name,
        "output_dtype": str(raw_a.dtype),
        "output_values": int(raw_a.size),
        "values_differing": int(np.count_nonzero(raw_a != raw_x)),
        "output_bytes": int(bytes_a.size),
        "bytes_differing": int(np.count_nonzero(bytes_a != bytes_x)),
        "max_level_diff": int(np.abs(raw_a.astype(np.int64) - raw_x.astype(np.int64)).max())
        if quantised
        else None,
        "max_raw_diff": float(np.abs(raw_a.astype(np.float64) - raw_x.astype(np.float64)).max()),
        "max_prob_diff": float(np.abs(p_a.astype(np.float64) - p_x.astype(np.float64)).max()),
        "top1_agreement_pct": float(100.0 * np.mean(p_a.argmax(1) == p_x.argmax(1))),
    }
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--artifacts", type=Path, default=ROOT / "artifacts")
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--cpu", default=arm.DEFAULT_CPU)
    args = parser.parse_args()
    lacking = arm.missing_tools()
    if lacking:
        raise SystemExit(f"{', '.join(lacking)} not installed: run `make arm-tools`")
    folder = args.artifacts.resolve()
    started = time.perf_counter()
    build_seconds = arm.build_root()
    print(f"root ready in {build_seconds:.1f} s")

    with tempfile.TemporaryDirectory(prefix="mnist-edge-arm-bench-") as tmp:
        scratch = Path(tmp)
        names = arm.copy_artifacts(folder, scratch)
        outputs = {}
        for side, runner in (("arm", arm.run_arm), ("x86", arm.run_host)):
            kwargs = {"cpu": args.cpu} if side == "arm" else {}
            done = runner(
                ["-c", DUMP, str(scratch), str(scratch / side), str(args.images), *names],
                cwd=scratch,
                **kwargs,
            )
            if done.code != 0:
                raise SystemExit(f"the {side} run failed:\n{done.tail(20)}")
            outputs[side] = {
                "seconds": json.loads(done.stdout.strip().splitlines()[-1]),
                "wall": done.seconds,
            }
            print(
                f"{side}: outputs of {len(names)} artifacts on {args.images:,} digits in {done.seconds:.0f} s"
            )
        rows = []
        for name in names:
            row = differences(scratch / "arm", scratch / "x86", name)
            row["arm_emulated_ms_per_image"] = round(1e3 * outputs["arm"]["seconds"][name] / args.images, 3)
            row["x86_ms_per_image"] = round(1e3 * outputs["x86"]["seconds"][name] / args.images, 4)
            rows.append(row)
            print(
                f"{name:22} {row['values_differing']:>6,} of {row['output_values']:,} values differ "
                f"({row['bytes_differing']:,} bytes), max prob diff {row['max_prob_diff']:.1e}, "
                f"top-1 agreement {row['top1_agreement_pct']:.2f} %"
            )
        refused_on_max = arm.load_each(names, scratch, cpu="max")
        for name, outcome in refused_on_max.items():
            print(f"-cpu max: {name}: {outcome[:150]}")

    report = arm.check(folder, limit=args.images, cpu=args.cpu, build=False)
    write_result(
        "arm",
        {
            "artifacts": str(args.artifacts),
            "images": args.images,
            "emulator": subprocess.run(
                ["qemu-aarch64", "--version"], capture_output=True, text=True
            ).stdout.split("\n")[0],
            "cpu": args.cpu,
            "host": platform.machine(),
            "arm_root": report.get("smoke", {}),
            "build_seconds_this_run": round(build_seconds, 1),
            "load_average": load_average(),
            "differences_from_x86": rows,
            "verify": report.get("verify"),
            "predict": report.get("predict"),
            "checks": report["checks"],
            "passed": report["passed"],
            "known_answers_on_cpu_max": refused_on_max,
            "seconds": round(time.perf_counter() - started, 1),
        },
    )


if __name__ == "__main__":
    main()
