"""Reproduce the tutorial: the full recipe (30 epochs), val and test accuracy next to 0.9794 / 0.9793.

python benchmarks/reproduce_tutorial.py [--out artifacts] [--seed 42]
"""

from __future__ import annotations

import argparse

from _common import write_result

from mnist_edge._mnist import TUTORIAL_ACCURACY as TUTORIAL
from mnist_edge.train import TrainConfig, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="artifacts")
    parser.add_argument("--seed", type=int, default=TrainConfig().seed)
    args = parser.parse_args()

    result = train(TrainConfig(seed=args.seed, verbose=2), args.out)
    print(f"val accuracy  {result.val_accuracy:.4f}   tutorial {TUTORIAL['val_accuracy']:.4f}")
    print(f"test accuracy {result.test_accuracy:.4f}   tutorial {TUTORIAL['test_accuracy']:.4f}")
    print(f"trained in {result.train_seconds:.1f} s")
    write_result(
        "reproduce_tutorial",
        {
            "config": TrainConfig(seed=args.seed).__dict__,
            "val_accuracy": result.val_accuracy,
            "test_accuracy": result.test_accuracy,
            "test_loss": result.test_loss,
            "train_seconds": result.train_seconds,
            "tutorial": TUTORIAL,
            "history": result.history,
        },
    )


if __name__ == "__main__":
    main()
