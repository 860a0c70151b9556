"""One command for every number in the README: train, export + verify, overhead, benchmark, table.

    python benchmarks/run_all.py                                   # everything, training included
    python benchmarks/run_all.py --steps benchmark,table           # re-measure the exported artifacts
    python benchmarks/run_all.py --steps table --update-readme     # regenerate README's block only

Steps, in order (``--steps`` picks a subset):

* ``train``     ``reproduce_tutorial.py`` (the 30-epoch model into the artifacts folder) and
                ``train_speed.py``;
* ``export``    ``mnist-edge export --format all --quantize all`` then ``mnist-edge verify`` (parity goes
                into each manifest, where the benchmark reads accuracy, and into ``parity.json``);
* ``overhead``  ``runtime_overhead.py`` on the artifacts;
* ``benchmark`` ``mnist-edge benchmark`` on every artifact plus the Keras reference:
                ``benchmark.json``, ``benchmark.md`` and ``benchmark.png``;
* ``repeat``    ``repeatability.py``: ``mnist-edge benchmark`` twice more, every median compared;
* ``table``     README's results block from the JSON (``make_readme_table.py``), written to
                ``readme_table.md``; with ``--update-readme`` also into README.md between its markers.

Everything lands in ``benchmarks/results/``. Each script runs in its own process, so one engine's or
TensorFlow's state never leaks into another step's timings.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from _common import RESULTS, ROOT, cli, write_result

STEPS = ("train", "export", "overhead", "benchmark", "repeat", "table")
HERE = Path(__file__).resolve().parent


def run(args: list[str]) -> None:
    print(f"$ {' '.join(args)}", flush=True)
    subprocess.run(args, cwd=ROOT, check=True)


def benchmark_step(model: Path, threads: int, batch_sizes: str, min_time: str) -> None:
    """``mnist-edge benchmark`` with its JSON, Markdown and chart in the results folder; the JSON is
    then stamped like every other result."""
    json_out = RESULTS / "benchmark.json"
    options = ["--threads", str(threads), "--batch-sizes", batch_sizes, "--min-time", min_time]
    outputs = ["--json", str(json_out), "--markdown", str(RESULTS / "benchmark.md")]
    run(cli("benchmark", "--model", str(model), *options, *outputs, "--plot", str(RESULTS / "benchmark.png")))
    write_result("benchmark", json.loads(json_out.read_text(encoding="utf-8")))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=Path, default=ROOT / "artifacts", help="model + artifacts folder")
    parser.add_argument("--steps", default=",".join(STEPS), help=f"comma-separated, from {','.join(STEPS)}")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-sizes", default="1,32,1024")
    parser.add_argument("--min-time", default="2s")
    parser.add_argument("--update-readme", action="store_true", help="rewrite README.md's results block")
    args = parser.parse_args(argv)
    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    unknown = sorted(set(steps) - set(STEPS))
    if unknown:
        parser.error(f"unknown step(s) {', '.join(unknown)}; choose from {', '.join(STEPS)}")
    folder = args.artifacts.resolve()
    model = folder / "model.keras"

    started = time.perf_counter()
    if "train" in steps:
        run([sys.executable, str(HERE / "reproduce_tutorial.py"), "--out", str(folder)])
        run([sys.executable, str(HERE / "train_speed.py")])
    if "export" in steps:
        run(cli("export", "--model", str(model), "--format", "all", "--quantize", "all", "--no-verify"))
        run(cli("verify", "--model", str(model), "--json", str(RESULTS / "parity.json")))
    if "overhead" in steps:
        run([sys.executable, str(HERE / "runtime_overhead.py"), str(folder)])
    if "benchmark" in steps:
        if not model.is_file():
            raise SystemExit(f"{model} does not exist: run the train step first")
        benchmark_step(model, args.threads, args.batch_sizes, args.min_time)
    if "repeat" in steps:
        run([sys.executable, str(HERE / "repeatability.py"), str(folder), "--min-time", args.min_time])
    if "table" in steps:
        out = RESULTS / "readme_table.md"
        table = [sys.executable, str(HERE / "make_readme_table.py"), "--out", str(out)]
        run([*table, "--update-readme"] if args.update_readme else table)
    print(f"run_all: {', '.join(steps)} in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
