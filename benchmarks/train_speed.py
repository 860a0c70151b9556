"""Training speed: the tutorial's plain ``model.fit`` vs ``mnist-edge train``, same seed, same machine.

Both runs use the same recipe and seed; the only difference is ``steps_per_execution`` (1 for the
tutorial, 64 for mnist-edge). Prints both times, the speed-up, and the largest difference between
the two per-epoch histories (they should match to float rounding).

    python benchmarks/train_speed.py [--epochs 3]
"""

from __future__ import annotations

import argparse
import time

from _common import write_result

from mnist_edge.data import load_mnist_data
from mnist_edge.train import DEFAULT_STEPS_PER_EXECUTION, TrainConfig, fit, split


def timed_fit(config: TrainConfig, arrays: dict) -> tuple[float, dict[str, list[float]]]:
    start = time.perf_counter()
    _, history = fit(config, arrays)
    return time.perf_counter() - start, history


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()

    data = load_mnist_data()
    plain = TrainConfig(epochs=args.epochs, steps_per_execution=1, verbose=0)
    ours = TrainConfig(epochs=args.epochs, steps_per_execution=DEFAULT_STEPS_PER_EXECUTION, verbose=0)
    arrays = split(data, plain)
    timed_fit(TrainConfig(epochs=1, train_limit=2048, verbose=0), arrays)  # warm up TF once

    plain_s, plain_hist = timed_fit(plain, arrays)
    ours_s, ours_hist = timed_fit(ours, arrays)
    max_diff = max(
        abs(a - b) for key in plain_hist for a, b in zip(plain_hist[key], ours_hist[key], strict=True)
    )
    ratio = plain_s / ours_s
    print(f"tutorial fit (steps_per_execution=1): {plain_s:6.1f} s for {args.epochs} epochs")
    print(f"mnist-edge  (steps_per_execution={ours.steps_per_execution}): {ours_s:6.1f} s")
    print(f"speed-up {ratio:.2f}x   max |history difference| {max_diff:.2e}")
    plain_val, ours_val = plain_hist["val_accuracy"][-1], ours_hist["val_accuracy"][-1]
    print(f"final val_accuracy: tutorial {plain_val:.4f}, ours {ours_val:.4f}")
    write_result(
        "train_speed",
        {
            "epochs": args.epochs,
            "plain_seconds": plain_s,
            "ours_seconds": ours_s,
            "steps_per_execution": ours.steps_per_execution,
            "speedup": ratio,
            "max_history_diff": max_diff,
            "plain_history": plain_hist,
            "ours_history": ours_hist,
        },
    )


if __name__ == "__main__":
    main()
