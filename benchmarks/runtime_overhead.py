"""What the runtime's wrapper costs on top of the bare engine call, per artifact, at batch 1 and 1,024.

    python benchmarks/runtime_overhead.py artifacts/        # any folder of .tflite / .onnx files

"Bare" is the engine call sequence a hand-written app would make on ready-made model input
(LiteRT: ``set_tensor`` + ``invoke`` + ``get_tensor``; onnxruntime: ``session.run``), on its own
engine instance with the same settings (1 thread). "Wrapper" is ``Classifier.predict_proba`` on
uint8 pixels, which also validates, converts to the model's input and dequantises/normalises the
output. The two alternate in short blocks so that machine noise hits both alike; each figure is
the median over blocks of the mean time per call (the best block is recorded too). Time is the
calling thread's CPU time by default - at 1 engine thread both engines compute on the calling
thread, and other processes on a shared machine then do not count - or elapsed time (--clock wall).
Budgets (from issue 4): median ratio <= 1.25 at batch 1, <= 1.05 at batch 1,024. Writes
``benchmarks/results/runtime_overhead.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mnist_edge.runtime import load  # noqa: E402
from mnist_edge.runtime.preprocess import quantize  # noqa: E402

BUDGET = {1: 1.25, 1024: 1.05}
#: (blocks, calls per block) per batch size: about a second per artifact and batch size.
PLAN = {1: (300, 40), 1024: (40, 1)}
OUT = ROOT / "benchmarks" / "results" / "runtime_overhead.json"
CLOCKS = {"cpu": time.thread_time_ns, "wall": time.perf_counter_ns}


def bare_litert(path: Path, pixels: np.ndarray) -> Callable[[], Any]:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=1)
    detail = interpreter.get_input_details()[0]
    index, out_index = detail["index"], interpreter.get_output_details()[0]["index"]
    interpreter.resize_tensor_input(index, [len(pixels), *detail["shape"][1:]])
    interpreter.allocate_tensors()
    dtype = np.dtype(detail["dtype"])
    if dtype.kind == "f":
        x = (pixels.astype(np.float32) / 255).astype(dtype).reshape(len(pixels), *detail["shape"][1:])
    else:
        from mnist_edge.manifest import TensorSpec

        scale, zero_point = detail["quantization"]
        spec = TensorSpec("in", (None,), dtype.name, float(scale), int(zero_point))
        x = quantize(pixels.astype(np.float32) / 255, spec).reshape(len(pixels), *detail["shape"][1:])

    def call() -> Any:
        interpreter.set_tensor(index, x)
        interpreter.invoke()
        return interpreter.get_tensor(out_index)

    return call


def bare_onnx(path: Path, pixels: np.ndarray) -> Callable[[], Any]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    node = session.get_inputs()[0]
    inner = [d for d in node.shape[1:]]
    x = (pixels.astype(np.float32) / 255).reshape(len(pixels), *inner)
    feed, outputs = {node.name: x}, [session.get_outputs()[0].name]
    return lambda: session.run(outputs, feed)


def timed_blocks(
    a: Callable[[], Any], b: Callable[[], Any], blocks: int, calls: int, clock: Callable[[], int]
) -> dict[str, float]:
    """Per-call microseconds of ``a`` and ``b`` (median and best block), measured in alternating blocks."""
    for _ in range(max(3, calls * 5)):  # warm-up: allocations, caches, branch predictors
        a()
        b()
    times_a, times_b = [], []
    for i in range(blocks):
        # Alternate which goes first, so neither always runs on a cache the other just warmed.
        order = ((a, times_a), (b, times_b)) if i % 2 == 0 else ((b, times_b), (a, times_a))
        for func, sink in order:
            start = clock()
            for _ in range(calls):
                func()
            sink.append((clock() - start) / calls / 1000)
    return {
        "a_median": statistics.median(times_a),
        "b_median": statistics.median(times_b),
        "a_min": min(times_a),
        "b_min": min(times_b),
    }


def _load_average() -> list[float] | None:
    """1/5/15-minute load: a benchmark on a busy machine should say so."""
    return [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="folder holding exported .tflite/.onnx artifacts")
    parser.add_argument("--out", type=Path, default=OUT, help=f"JSON results (default {OUT})")
    parser.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="cpu",
        help="cpu: this thread's CPU time (other processes on a shared machine do not count; the "
        "engines run on the calling thread at 1 thread); wall: elapsed time. Default cpu.",
    )
    args = parser.parse_args(argv)

    artifacts = sorted(p for p in args.folder.iterdir() if p.suffix in (".tflite", ".onnx"))
    if not artifacts:
        print(f"no .tflite or .onnx files in {args.folder}", file=sys.stderr)
        return 2
    rng = np.random.default_rng(0)
    machine = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "threads": 1,
        "clock": args.clock,
        "load_average_at_start": _load_average(),
    }
    for module in ("ai_edge_litert", "onnxruntime"):
        try:
            from importlib.metadata import version

            machine[module] = version(module.replace("_", "-"))
        except Exception:
            pass
    print(
        f"# {machine['processor']}, {machine['cpu_count']} CPUs, load {machine['load_average_at_start']}, "
        f"engine threads 1, numpy {np.__version__}, clock: {args.clock}"
    )
    print(
        f"{'artifact':22s} {'batch':>5s} {'bare us':>9s} {'wrapper us':>10s} {'ratio':>6s}  "
        f"{'(best-block ratio)':>18s}  budget"
    )
    rows = []
    for path in artifacts:
        clf = load(path)
        for batch, (blocks, calls) in PLAN.items():
            pixels = rng.integers(0, 256, (batch, 28, 28), dtype=np.uint8)
            bare = (bare_litert if path.suffix == ".tflite" else bare_onnx)(path, pixels)
            wrapper = lambda c=clf, p=pixels: c.predict_proba(p)  # noqa: E731
            t = timed_blocks(bare, wrapper, blocks, calls, CLOCKS[args.clock])
            bare_us, wrapper_us = t["a_median"], t["b_median"]
            ratio, best_ratio = wrapper_us / bare_us, t["b_min"] / t["a_min"]
            ok = ratio <= BUDGET[batch]
            print(
                f"{path.name:22s} {batch:5d} {bare_us:9.1f} {wrapper_us:10.1f} {ratio:6.3f}  "
                f"{best_ratio:18.3f}  <= {BUDGET[batch]} {'ok' if ok else 'OVER'}"
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
                    "bare_best_us": round(t["a_min"], 2),
                    "wrapper_best_us": round(t["b_min"], 2),
                    "best_ratio": round(best_ratio, 4),
                    "budget": BUDGET[batch],
                    "within_budget": ok,
                }
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    machine["load_average_at_end"] = _load_average()
    payload = {"machine": machine, "method": " ".join(__doc__.strip().split("\n\n")[2].split()), "rows": rows}
    args.out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
