"""What the runtime's wrapper costs on top of the bare engine call, per artifact, at batch 1 and 1,024.

    python benchmarks/runtime_overhead.py artifacts/        # any folder of .tflite / .onnx files

"Bare" is the engine call sequence a hand-written app would make on ready-made model input
(LiteRT: ``set_tensor`` + ``invoke`` + ``get_tensor``; onnxruntime: ``session.run``), on its own
engine instance with the same settings (1 thread) - ``mnist-edge benchmark``'s raw baseline.
"Wrapper" is ``Classifier.predict_proba`` on uint8 pixels, which also validates, converts to the
model's input and dequantises/normalises the output. Both see the same real test digits: batch 1
steps through 1,000 of them, batch 1,024 is the first 1,024. The two alternate call by call (which one
goes first alternates too) and every call is timed on its own, so slow drifts of a shared
machine hit both alike; each figure is the median over calls, which ignores the calls an
interruption hit. This repeats for several rounds; the ratio reported is the median round's,
with the lowest and highest beside it, so the run shows its own repeatability. Budgets: ratio
<= 1.25 at batch 1, <= 1.05 at batch 1,024. Writes ``benchmarks/results/runtime_overhead.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np
from _common import RESULTS, load_average

from mnist_edge.bench import Contender, time_interleaved
from mnist_edge.data import load_mnist_data
from mnist_edge.parity import find_artifacts

BUDGET = {1: 1.25, 1024: 1.05}
#: Timed calls of each per round, per batch size: enough for a steady median at each size, few enough
#: that a round stays short next to a shared machine's slow drifts.
CALLS = {1: 5000, 1024: 200}
ROUNDS = 5
OUT = RESULTS / "runtime_overhead.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="folder holding exported .tflite/.onnx artifacts")
    parser.add_argument("--out", type=Path, default=OUT, help=f"JSON results (default {OUT})")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help=f"rounds per figure (default {ROUNDS})")
    args = parser.parse_args(argv)

    artifacts = find_artifacts(args.folder)
    if not artifacts:
        print(f"no .tflite or .onnx files in {args.folder}", file=sys.stderr)
        return 2
    images = load_mnist_data(log=lambda _msg: None).x_test
    machine = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "threads": 1,
        "rounds": args.rounds,
        "load_average_at_start": load_average(),
    }
    for module in ("ai_edge_litert", "onnxruntime"):
        try:
            from importlib.metadata import version

            machine[module] = version(module.replace("_", "-"))
        except Exception:
            pass
    print(
        f"# {machine['processor']}, {machine['cpu_count']} CPUs, load {machine['load_average_at_start']}, "
        f"engine threads 1, numpy {np.__version__}, {args.rounds} rounds"
    )
    print(
        f"{'artifact':22s} {'batch':>5s} {'bare us':>9s} {'wrapper us':>10s} {'ratio':>6s}  "
        f"{'(rounds: min-max)':>17s}  budget"
    )
    rows = []
    for path in artifacts:
        contender = Contender(path, images, threads=1)
        clf = contender.clf
        for batch, calls in CALLS.items():
            wrapper, bare = contender.callables(batch)
            rounds = []
            for _ in range(args.rounds):  # call by call, the first of each pair alternating
                b, w = time_interleaved(
                    [bare, wrapper], min_time=1e-3, min_calls=calls, warmup=0.1, block_calls=1
                )
                rounds.append((b.p50_us, w.p50_us))
            ratios = [w / b for b, w in rounds]
            middle = sorted(range(len(rounds)), key=ratios.__getitem__)[len(rounds) // 2]
            bare_us, wrapper_us = rounds[middle]
            ratio = ratios[middle]
            ok = ratio <= BUDGET[batch]
            print(
                f"{path.name:22s} {batch:5d} {bare_us:9.1f} {wrapper_us:10.1f} {ratio:6.3f}  "
                f"{min(ratios):8.3f}-{max(ratios):.3f}  <= {BUDGET[batch]} {'ok' if ok else 'OVER'}",
                flush=True,
            )
            rows.append(
                {
                    "artifact": path.name,
                    "format": clf.format,
                    "precision": clf.precision,
                    "batch": batch,
                    "bare_us": round(bare_us, 2),
                    "wrapper_us": round(wrapper_us, 2),
                    "ratio": round(ratio, 4),
                    "ratio_min": round(min(ratios), 4),
                    "ratio_max": round(max(ratios), 4),
                    "round_ratios": [round(r, 4) for r in ratios],
                    "budget": BUDGET[batch],
                    "within_budget": ok,
                }
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    machine["load_average_at_end"] = load_average()
    payload = {"machine": machine, "method": " ".join(__doc__.strip().split("\n\n")[2].split()), "rows": rows}
    args.out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
