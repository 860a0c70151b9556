#!/usr/bin/env python3
"""Prove the runtime on 64-bit ARM Linux, emulated: `make arm-check` and the slow test run this.

1. build (or reuse) the arm64 Debian root with the runtime-only install (build-root.sh);
2. under `qemu-aarch64 -cpu cortex-a72` (a Raspberry Pi 4's CPU): import the runtime, and make sure
   TensorFlow is not there;
3. `mnist-edge verify` every artifact in the folder against its device bundle, on the first
   --limit test digits, and the same on this machine, so each row can be compared with x86's;
4. `mnist-edge predict` a picture with the int8 TFLite model on both, and compare.

The artifacts are copied to a scratch folder first: verify records its results in the manifests,
and an emulated partial run must not overwrite the ones beside the real artifacts.

Exit codes: 0 every check passed, 1 a check failed, 2 the tools or the artifacts are missing.
Options it does not know go to `mnist-edge verify` (for example `--min-agreement int8=98.5`).
Prints a summary; --json writes every number. Library-free on purpose: it drives the CLI as a user
would (and the host's numpy/Pillow only draw the picture).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BUNDLE = "model.bundle.npz"
SUFFIXES = (".tflite", ".onnx")
TOOLS = ("qemu-aarch64", "debootstrap", "dpkg-deb")
#: The emulated CPU: a Raspberry Pi 4's. qemu 7.2's default `max` breaks LiteRT's int8 kernels.
DEFAULT_CPU = "cortex-a72"
DEFAULT_LIMIT = 1000
#: What predict is shown: the edge's usual model.
PREDICT_MODEL = "model.int8.tflite"


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def arm_home() -> Path:
    return Path(os.environ.get("MNIST_EDGE_ARM_HOME") or Path.home() / ".cache" / "mnist-edge" / "arm")


def build_root(python: str = sys.executable) -> float:
    """Run build-root.sh (cached); returns the seconds it took."""
    start = time.perf_counter()
    env = {**os.environ, "PYTHON": python}
    done = subprocess.run(["bash", str(HERE / "build-root.sh")], env=env, text=True, capture_output=True)
    sys.stderr.write(done.stderr)
    if done.returncode != 0:
        raise SystemExit(f"arm: building the root failed (exit {done.returncode})")
    return time.perf_counter() - start


def run_arm(args: list[str], *, cwd: Path, cpu: str = DEFAULT_CPU, timeout: float = 1800) -> Run:
    """``python3.11 ARGS`` on the emulated CPU; the scratch folder as the working directory, so the
    checkout's own sources are never on the path - only the installed wheel is."""
    env = {**os.environ, "MNIST_EDGE_ARM_CPU": cpu}
    return Run.of(["bash", str(HERE / "python.sh"), *args], cwd=cwd, env=env, timeout=timeout)


def run_host(args: list[str], *, cwd: Path, timeout: float = 1800) -> Run:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH")))),
    }
    return Run.of([sys.executable, *args], cwd=cwd, env=env, timeout=timeout)


class Run:
    """One finished command: exit code, output, wall time."""

    def __init__(self, code: int, stdout: str, stderr: str, seconds: float) -> None:
        self.code, self.stdout, self.stderr, self.seconds = code, stdout, stderr, seconds

    @classmethod
    def of(cls, cmd: list[str], *, cwd: Path, env: dict[str, str], timeout: float) -> Run:
        start = time.perf_counter()
        done = subprocess.run(cmd, cwd=cwd, env=env, text=True, capture_output=True, timeout=timeout)
        return cls(done.returncode, done.stdout, done.stderr, time.perf_counter() - start)

    def tail(self, lines: int = 5) -> str:
        return "\n".join((self.stderr or self.stdout).strip().splitlines()[-lines:])


def copy_artifacts(folder: Path, scratch: Path) -> list[str]:
    """Copy the artifacts, their manifests and the bundle; returns the artifacts' names."""
    names = sorted(p.name for p in folder.iterdir() if p.suffix in SUFFIXES and p.is_file())
    for name in [*names, *(f"{n}.json" for n in names), BUNDLE]:
        if (folder / name).is_file():
            shutil.copy(folder / name, scratch / name)
    return names


def draw_picture(scratch: Path) -> tuple[Path, int]:
    """The bundle's first digit as a photo would show it: dark on light, 4x larger. Returns the
    picture and its label."""
    import numpy as np
    from PIL import Image

    with np.load(scratch / BUNDLE, allow_pickle=False) as bundle:
        pixels, label = bundle["images"][0], int(bundle["labels"][0])
    picture = scratch / "digit.png"
    Image.fromarray(255 - pixels).resize((112, 112), Image.Resampling.BILINEAR).save(picture)
    return picture, label


def verify_args(names: list[str], limit: int | None, overrides: list[str]) -> list[str]:
    args = ["-m", "mnist_edge", "verify", *names, "--bundle", BUNDLE, "--json", "{out}"]
    if limit:
        args += ["--limit", str(limit)]
    return args + overrides


def compare_rows(arm: dict[str, Any], x86: dict[str, Any]) -> list[dict[str, Any]]:
    """Per artifact: both verdicts and how far ARM's metrics are from x86's on the same digits."""
    host = {Path(row["artifact"]).name: row for row in x86["rows"]}
    rows = []
    for row in arm["rows"]:
        name = Path(row["artifact"]).name
        other = host.get(name, {})

        def gap(key: str, row: dict[str, Any] = row, other: dict[str, Any] = other) -> float | None:
            a, b = row.get(key), other.get(key)
            return None if a is None or b is None else abs(a - b)

        rows.append(
            {
                "artifact": name,
                "arm": row["status"],
                "x86": other.get("status"),
                "arm_reasons": row["reasons"],
                "accuracy": row.get("accuracy"),
                "agreement_pct": row.get("agreement_pct"),
                "max_prob_diff": row.get("max_prob_diff"),
                "accuracy_gap": gap("accuracy"),
                "agreement_gap_pct": gap("agreement_pct"),
                "max_prob_diff_gap": gap("max_prob_diff"),
            }
        )
    return rows


def check(
    folder: Path,
    *,
    limit: int | None = DEFAULT_LIMIT,
    cpu: str = DEFAULT_CPU,
    overrides: list[str] | None = None,
    build: bool = True,
    log=print,
) -> dict[str, Any]:
    """Every step above; returns the report (``passed`` says whether all held)."""
    overrides = overrides or []
    report: dict[str, Any] = {"folder": str(folder), "cpu": cpu, "limit": limit, "checks": {}}
    checks = report["checks"]
    if build:
        report["build_seconds"] = round(build_root(), 1)
        log(f"arm: root ready in {report['build_seconds']} s ({arm_home()})")
    with tempfile.TemporaryDirectory(prefix="mnist-edge-arm-") as tmp:
        scratch = Path(tmp)
        names = copy_artifacts(folder, scratch)
        if not names or not (scratch / BUNDLE).is_file():
            raise SystemExit(f"arm: {folder} needs artifacts and {BUNDLE}: run `mnist-edge export` first")

        smoke = run_arm(["-c", SMOKE], cwd=scratch, cpu=cpu)
        facts = json.loads(smoke.stdout.strip().splitlines()[-1]) if smoke.code == 0 else {}
        report["smoke"] = {**facts, "seconds": round(smoke.seconds, 2)}
        checks["runtime imports on aarch64 without TensorFlow"] = (
            facts.get("machine") == "aarch64" and facts.get("tensorflow") is False
        )
        log(f"arm: smoke {facts or smoke.tail()} in {smoke.seconds:.1f} s")

        template = verify_args(names, limit, overrides)
        arm_verify = run_arm([a.format(out="arm.json") for a in template], cwd=scratch, cpu=cpu)
        # The same check on this machine, on fresh copies (verify wrote into the manifests).
        host_dir = scratch / "x86"
        host_dir.mkdir()
        copy_artifacts(folder, host_dir)
        host_verify = run_host([a.format(out="x86.json") for a in template], cwd=host_dir)
        if arm_verify.code not in (0, 1) or host_verify.code not in (0, 1):
            log(f"arm: verify failed to run:\n{arm_verify.tail()}\n{host_verify.tail()}")
            checks["verify runs on aarch64"] = False
        else:
            arm_json = json.loads((scratch / "arm.json").read_text())
            x86_json = json.loads((host_dir / "x86.json").read_text())
            rows = compare_rows(arm_json, x86_json)
            report["verify"] = {
                "images": arm_json["images"],
                "arm_exit_code": arm_verify.code,
                "x86_exit_code": host_verify.code,
                "arm_seconds": round(arm_verify.seconds, 1),
                "x86_seconds": round(host_verify.seconds, 1),
                "rows": rows,
            }
            checks["verify: every artifact passes on aarch64"] = arm_verify.code == 0
            checks["verify: aarch64 verdicts equal x86's"] = all(r["arm"] == r["x86"] for r in rows)
            for r in rows:
                log(
                    f"arm: verify {r['artifact']:22} arm {r['arm']} x86 {r['x86']}  agreement "
                    f"{r['agreement_pct']:.2f} % (gap {r['agreement_gap_pct']:.2f}), max prob diff gap "
                    f"{r['max_prob_diff_gap']:.1e}"
                )

        if PREDICT_MODEL in names:
            picture, label = draw_picture(scratch)
            args = ["-m", "mnist_edge", "predict", PREDICT_MODEL, picture.name, "--json", "--top", "3"]
            arm_predict = run_arm(args, cwd=scratch, cpu=cpu)
            host_predict = run_host(args, cwd=scratch)
            same = arm_predict.code == 0 and arm_predict.stdout == host_predict.stdout
            arm_label = (
                json.loads(arm_predict.stdout)["predictions"][0]["label"] if arm_predict.code == 0 else None
            )
            report["predict"] = {
                "model": PREDICT_MODEL,
                "label": label,
                "arm_label": arm_label,
                "identical_json": same,
                "seconds": round(arm_predict.seconds, 1),
            }
            checks["predict on a picture: same JSON as x86"] = same
            log(f"arm: predict {PREDICT_MODEL} on a '{label}': {arm_label} (same output as x86: {same})")
    report["passed"] = all(checks.values())
    return report


#: Run on the emulated CPU: load() each file named, and say what happened.
LOAD_EACH = """
import json, sys, warnings
from mnist_edge.errors import ModelLoadError
from mnist_edge.runtime import load
warnings.simplefilter("ignore")
result = {}
for name in sys.argv[1:]:
    try:
        with load(name):
            result[name] = "loaded"
    except ModelLoadError as exc:
        result[name] = str(exc)
print(json.dumps(result))
"""


def load_each(names: list[str], folder: Path, *, cpu: str = DEFAULT_CPU) -> dict[str, str]:
    """``load()`` each artifact in ``folder`` on the emulated ``cpu``: "loaded", or the refusal."""
    done = run_arm(["-c", LOAD_EACH, *names], cwd=folder, cpu=cpu)
    if done.code != 0:
        raise RuntimeError(f"loading on -cpu {cpu} failed to run:\n{done.tail(20)}")
    return json.loads(done.stdout.strip().splitlines()[-1])


#: Run on the emulated CPU: what machine, which engines, and that TensorFlow is absent.
SMOKE = """
import importlib.util, json, platform, sys
import mnist_edge.runtime
import ai_edge_litert, onnxruntime
print(json.dumps({
    "machine": platform.machine(),
    "python": platform.python_version(),
    "onnxruntime": onnxruntime.__version__,
    "tensorflow": importlib.util.find_spec("tensorflow") is not None,
}))
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folder", nargs="?", default="artifacts", type=Path, help="artifacts + bundle")
    parser.add_argument("--limit", type=int, default=DEFAULT_LIMIT, help="test digits to verify (0 = all)")
    parser.add_argument("--cpu", default=DEFAULT_CPU, help="qemu CPU model (cortex-a76: a Pi 5's)")
    parser.add_argument("--json", type=Path, help="write the report here")
    parser.add_argument("--no-build", action="store_true", help="use the root as it is")
    # Any other option goes to mnist-edge verify, e.g. --min-agreement int8=98.5.
    args, overrides = parser.parse_known_args(argv)
    lacking = missing_tools()
    if lacking:
        print(f"arm: {', '.join(lacking)} not installed: run `make arm-tools`", file=sys.stderr)
        return 2
    if not args.folder.is_dir():
        print(
            f"arm: {args.folder} is not a folder: run `make demo` or `mnist-edge export` first",
            file=sys.stderr,
        )
        return 2
    report = check(
        args.folder, limit=args.limit or None, cpu=args.cpu, overrides=overrides, build=not args.no_build
    )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    for name, ok in report["checks"].items():
        print(f"{'PASS' if ok else 'FAIL'} {name}")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
