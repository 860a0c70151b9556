"""Child process for the concurrency test: one Classifier shared by many threads, checked against
the same calls made one after another. Run in a child so that a crash or a deadlock fails the test
instead of taking pytest down with it. Not a test module.

Usage: ``python thread_worker.py ARTIFACT PIXELS.npy THREADS CALLS SEED``; prints one JSON line.
"""

from __future__ import annotations

import json
import sys
import threading
import time

import numpy as np


def jobs_for(seed: int, calls: int, images: int) -> list[tuple[str, int, int]]:
    """(method, start, batch) per call: mostly 1-16 images, one call in 25 larger (65-160), so both
    the engines' small-batch paths (per-thread buffers) and the large ones are hit; predict and
    predict_proba mixed. Every call changes the batch size LiteRT's interpreter was sized for."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(calls):
        n = int(rng.integers(65, 161)) if rng.random() < 0.04 else int(rng.integers(1, 17))
        start = int(rng.integers(0, images - n))
        out.append(("predict" if rng.random() < 0.25 else "predict_proba", start, n))
    return out


def main() -> None:
    from mnist_edge.runtime import load

    artifact, pixels_path = sys.argv[1], sys.argv[2]
    threads, calls, seed = (int(v) for v in sys.argv[3:6])
    clf = load(artifact)
    pixels = np.load(pixels_path, allow_pickle=False)
    plans = [jobs_for(seed + t, calls, len(pixels)) for t in range(threads)]

    started = time.perf_counter()
    expected = [[getattr(clf, m)(pixels[s : s + n]) for m, s, n in plan] for plan in plans]
    sequential = time.perf_counter() - started

    results: list[list[np.ndarray] | None] = [None] * threads
    errors: list[str] = []
    barrier = threading.Barrier(threads)

    def work(t: int) -> None:
        try:
            barrier.wait()
            results[t] = [getattr(clf, m)(pixels[s : s + n]) for m, s, n in plans[t]]
        except BaseException as exc:  # reported, not raised: the parent counts them
            errors.append(f"thread {t}: {type(exc).__name__}: {exc}")

    workers = [threading.Thread(target=work, args=(t,), daemon=True) for t in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    concurrent = time.perf_counter() - started

    mismatches = 0
    first = None
    for t in range(threads):
        for i, (got, want) in enumerate(zip(results[t] or [], expected[t], strict=False)):
            if got.shape != want.shape or not np.array_equal(got, want):
                mismatches += 1
                first = first or f"thread {t} call {i} {plans[t][i]}"
    print(
        json.dumps(
            {
                "threads": threads,
                "calls_per_thread": calls,
                "images": sum(n for plan in plans for _, _, n in plan),
                "completed_calls": sum(len(r) for r in results if r is not None),
                "mismatches": mismatches,
                "first_mismatch": first,
                "errors": errors[:5],
                "error_count": len(errors),
                "sequential_s": round(sequential, 2),
                "concurrent_s": round(concurrent, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
