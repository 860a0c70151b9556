"""How well ``mnist-edge benchmark`` agrees with itself: run it twice back to back, compare every median.

    python benchmarks/repeatability.py artifacts/            # two runs of mnist-edge benchmark

Each run is a fresh ``mnist-edge benchmark`` process on the same artifacts (wrapper and raw engine,
every batch size; Keras and the memory probes are left out: they are not latency medians). For
every p50 the script reports ``run2 / run1 - 1``; the target is agreement within 10 %.
It also compares each run's wrapper/raw ratios, which is what README tells readers to compare: a
shared machine that is slower for a minute moves both halves of a ratio together.
Writes ``benchmarks/results/repeatability.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import cli, write_result

from mnist_edge.parity import find_artifacts

TARGET = 0.10


def p50s(report: dict[str, Any]) -> dict[str, float]:
    """Every latency median in a benchmark JSON, keyed ``artifact wrapper|raw batch``."""
    out = {}
    for row in report["rows"]:
        name = Path(row["path"]).name
        for kind, key in (("wrapper", "latency_by_batch"), ("raw", "raw_latency_by_batch")):
            for batch, stats in row[key].items():
                out[f"{name} {kind} {batch}"] = float(stats["p50_us"])
    return out


def compare(first: dict[str, float], second: dict[str, float]) -> list[dict[str, Any]]:
    return [
        {"figure": k, "run1_us": first[k], "run2_us": second[k], "change": second[k] / first[k] - 1}
        for k in sorted(first.keys() & second.keys())
    ]


def ratio_changes(first: dict[str, float], second: dict[str, float]) -> list[float]:
    """``ratio2 / ratio1 - 1`` of every wrapper/raw ratio present in both runs."""
    changes = []
    for key in sorted(first.keys() & second.keys()):
        name, kind, batch = key.rsplit(" ", 2)
        raw = f"{name} raw {batch}"
        if kind == "wrapper" and raw in first and raw in second:
            changes.append((second[key] / second[raw]) / (first[key] / first[raw]) - 1)
    return changes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="folder with model.keras and its artifacts")
    parser.add_argument("--min-time", default="2s", help="per measurement, as mnist-edge benchmark takes it")
    parser.add_argument("--min-calls", default="100", help="calls per measurement, at least")
    args = parser.parse_args(argv)
    artifacts = [str(p) for p in find_artifacts(args.folder)]
    if not artifacts:
        print(f"no .tflite or .onnx files in {args.folder}", file=sys.stderr)
        return 2
    runs = []
    with tempfile.TemporaryDirectory(prefix="mnist-edge-repeat-") as scratch:
        for i in (1, 2):
            out = Path(scratch, f"run{i}.json")
            budget = ["--min-time", args.min_time, "--min-calls", args.min_calls]
            command = cli("benchmark", *artifacts, "--no-keras", "--no-memory", *budget)
            print(f"run {i}: {' '.join(command[2:])}", flush=True)
            subprocess.run([*command, "--json", str(out)], check=True, stdout=subprocess.DEVNULL)
            runs.append(p50s(json.loads(out.read_text(encoding="utf-8"))))
    rows = compare(*runs)
    changes = [abs(r["change"]) for r in rows]
    ratios = [abs(c) for c in ratio_changes(*runs)]
    worst = max(rows, key=lambda r: abs(r["change"]))
    for r in rows:
        print(f"{r['figure']:34s} {r['run1_us']:10.1f} {r['run2_us']:10.1f} {r['change']:+7.1%}")
    summary = {
        "figures": len(rows),
        "max_abs_change": max(changes),
        "median_abs_change": statistics.median(changes),
        "worst": worst["figure"],
        "target": TARGET,
        "within_target": max(changes) <= TARGET,
        "min_time": args.min_time,
        "min_calls": int(args.min_calls),
        "ratios": len(ratios),
        "max_abs_ratio_change": max(ratios),
        "median_abs_ratio_change": statistics.median(ratios),
    }
    print(
        f"{len(rows)} medians: largest change {summary['max_abs_change']:.1%} ({worst['figure']}), "
        f"median {summary['median_abs_change']:.1%}; target within {TARGET:.0%}. "
        f"{len(ratios)} wrapper/raw ratios: largest change {summary['max_abs_ratio_change']:.1%}, "
        f"median {summary['median_abs_ratio_change']:.1%}"
    )
    write_result("repeatability", {**summary, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
