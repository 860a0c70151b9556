"""The long run: a million batch-1 predictions in one process, as an app serving requests would make.

    python benchmarks/long_run.py [artifacts/model.int8.tflite] [--calls 1000000]

Does the runtime leak, slow down or drift? One ``Classifier`` classifies the MNIST test images one
at a time, round and round. The first pass (the warm-up, 10,000 calls) records each image's
probabilities; afterwards every 100th result must equal them exactly. Resident memory (from
/proc/self/statm) is sampled 100 times; every call's latency (wall clock) is kept in a buffer
allocated before the warm-up, so the measurement itself does not grow the process.

Passing: resident memory grows by less than 5 MB after the warm-up, and the p99 latency
of the last 10 % of calls is within 1.5x of the first 10 %. Writes
``benchmarks/results/long_run.json`` (or ``--out``); exit 1 if a check fails.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import ROOT, load_average, write_result

RSS_GROWTH_LIMIT_MB = 5.0
P99_RATIO_LIMIT = 1.5
CHECK_EVERY = 100
SAMPLES = 100


def rss_bytes() -> int:
    """Resident set size now (not the peak): /proc/self/statm's second field, in pages."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def long_run(artifact: Path, calls: int, images: np.ndarray) -> dict[str, Any]:
    """Run ``calls`` batch-1 predictions after a warm-up pass over ``images``; return the figures."""
    from mnist_edge.runtime import load

    clf = load(artifact)
    predict = clf.predict_proba
    views = [images[i : i + 1] for i in range(len(images))]  # contiguous (1, 28, 28) views, made once
    # Written now, so that their pages are resident before the baseline (np.zeros maps pages lazily).
    latencies = np.empty(calls, dtype=np.int64)
    latencies.fill(0)
    rss = np.empty(SAMPLES + 1, dtype=np.int64)
    rss.fill(0)
    sample_every = max(1, calls // SAMPLES)
    clock = time.perf_counter_ns

    expected = [predict(view) for view in views]  # the warm-up: one pass over the images
    gc.collect()
    baseline = rss_bytes()
    wrong = 0
    count = len(views)
    started = time.perf_counter()
    load_start = load_average()
    for i in range(calls):
        view = views[i % count]
        t0 = clock()
        probs = predict(view)
        latencies[i] = clock() - t0
        if i % CHECK_EVERY == 0 and not np.array_equal(probs, expected[i % count]):
            wrong += 1
        if i % sample_every == 0:
            rss[i // sample_every] = rss_bytes()
    seconds = time.perf_counter() - started
    gc.collect()
    final = rss_bytes()
    rss[-1] = final

    tenth = calls // 10
    first, last = latencies[:tenth] / 1000.0, latencies[-tenth:] / 1000.0
    p99_first, p99_last = float(np.percentile(first, 99)), float(np.percentile(last, 99))
    deciles = [float(np.percentile(part / 1000.0, 99)) for part in np.array_split(latencies, 10)]
    growth_mb = (final - baseline) / 2**20
    return {
        "artifact": artifact.name,
        "backend": clf.backend,
        "precision": clf.precision,
        "calls": calls,
        "warmup_calls": count,
        "seconds": round(seconds, 1),
        "calls_per_second": round(calls / seconds),
        "latency_us": {
            "p50_first_10pct": round(float(np.percentile(first, 50)), 2),
            "p50_last_10pct": round(float(np.percentile(last, 50)), 2),
            "p99_first_10pct": round(p99_first, 2),
            "p99_last_10pct": round(p99_last, 2),
            "p99_ratio_last_to_first": round(p99_last / p99_first, 3),
            "p99_per_decile": [round(v, 2) for v in deciles],
            "max": round(float(latencies.max()) / 1000.0, 1),
        },
        "rss_mb": {
            "after_warmup": round(baseline / 2**20, 2),
            "final": round(final / 2**20, 2),
            "growth_after_warmup": round(growth_mb, 3),
            "max_growth_after_warmup": round((int(rss.max()) - baseline) / 2**20, 3),
        },
        "results_checked": calls // CHECK_EVERY + (calls % CHECK_EVERY > 0),
        "results_wrong": wrong,
        "load_average_at_start": load_start,
        "load_average_at_end": load_average(),
        "checks": {
            f"rss_growth_under_{RSS_GROWTH_LIMIT_MB:g}_mb": growth_mb < RSS_GROWTH_LIMIT_MB,
            f"p99_last_within_{P99_RATIO_LIMIT:g}x_of_first": p99_last <= P99_RATIO_LIMIT * p99_first,
            "every_checked_result_exact": wrong == 0,
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "artifact", nargs="?", type=Path, default=ROOT / "artifacts" / "model.int8.tflite", help="model file"
    )
    parser.add_argument("--calls", type=int, default=1_000_000, help="measured calls (default 1,000,000)")
    parser.add_argument("--out", type=Path, default=None, help="JSON results (default benchmarks/results/)")
    args = parser.parse_args(argv)
    if not args.artifact.is_file():
        parser.error(
            f"{args.artifact} does not exist: run `mnist-edge pipeline` or `mnist-edge export` first"
        )
    if args.calls < 10:
        parser.error("--calls must be at least 10")

    from mnist_edge.data import load_mnist_data

    images = load_mnist_data(log=lambda _msg: None).x_test
    result = long_run(args.artifact, args.calls, images)
    result["method"] = __doc__.split("\n\n", 2)[2].strip()
    if args.out is None:
        write_result("long_run", result)
    else:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    lat, mem = result["latency_us"], result["rss_mb"]
    print(
        f"{result['calls']:,} calls in {result['seconds']} s ({result['calls_per_second']:,}/s); "
        f"RSS growth after warm-up {mem['growth_after_warmup']:+.2f} MB "
        f"(max {mem['max_growth_after_warmup']:+.2f}); "
        f"p99 {lat['p99_first_10pct']} us first 10 % -> {lat['p99_last_10pct']} us last 10 % "
        f"({lat['p99_ratio_last_to_first']}x); {result['results_wrong']} of {result['results_checked']} "
        "checked results wrong"
    )
    return 0 if all(result["checks"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
