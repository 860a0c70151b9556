"""Model-file fuzzing: mutants of every export of a tiny MLP and of a tiny CNN, each loaded and run
by ``mnist_edge.runtime`` in a sandbox child limited to 2 GiB and 30 s.

Passing means every mutant either loads and returns finite probabilities that sum to 1, or is
refused with ``ModelLoadError``; no child dies by a signal or runs out of memory or time. Half the
mutants are random damage (flips, truncation, zeroed blocks, duplicated regions, appended junk),
half structure-aware edits (flatbuffer fields, ModelProto fields), spread over the format's
precisions. The seed is fixed; CI runs 200 mutants per format and model, the long run more::

    MNIST_EDGE_FUZZ_COUNT=1000 python -m pytest -m fuzz tests/reliability

A failing mutant is saved (``MNIST_EDGE_FUZZ_OUT``, default the test's tmp dir) to be shrunk into
the corpus (``corpus/make_corpus.py``). ``MNIST_EDGE_FUZZ_REPORT=path`` appends each run's figures
as a JSON line.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path

import pytest

from mnist_edge.runtime.guard.sandbox import Sandbox

from . import mutators

COUNT = int(os.environ.get("MNIST_EDGE_FUZZ_COUNT", "200"))
SEED = os.environ.get("MNIST_EDGE_FUZZ_SEED", "mnist-edge-issue-8")
MEMORY_BYTES = 2 << 30
TIMEOUT_S = 30.0


@pytest.mark.fuzz
@pytest.mark.parametrize("kind", ["random", "structure"])
@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_every_mutant_runs_correctly_or_is_refused(model, fmt, kind, request, tmp_path):
    """``mlp``: the tutorial's tiny MLP; ``cnn``: a tiny CNN with every convolutional layer family."""
    exported = request.getfixturevalue("exported" if model == "mlp" else "cnn_exported")
    sources = sorted((p, r.path.read_bytes()) for (f, p), r in exported.items() if f == fmt)
    count = COUNT // 2  # per kind: COUNT per format and model
    out = Path(os.environ.get("MNIST_EDGE_FUZZ_OUT", tmp_path))
    outcomes: Counter[str] = Counter()
    failures: list[str] = []
    peak = 0
    start = time.perf_counter()
    with Sandbox(memory_bytes=MEMORY_BYTES, timeout=TIMEOUT_S) as box:
        for i in range(count):
            precision, data = sources[i % len(sources)]
            # The MLP's seeds are those of earlier runs, so its mutants stay the same.
            seed = f"{SEED}-{'' if model == 'mlp' else 'cnn-'}{fmt}-{precision}-{kind}-{i}"
            mutant, what = mutators.mutant(fmt, kind, data, seed)
            trial = box.trial(f"mutant.{fmt}", mutant)
            outcomes[trial.outcome if trial.outcome != "refused" else f"refused:{trial.kind}"] += 1
            peak = max(peak, trial.peak_rss)
            if not trial.ok:
                saved = out / f"{seed}.{fmt}"
                saved.parent.mkdir(parents=True, exist_ok=True)
                saved.write_bytes(mutant)
                failures.append(f"{seed}: {what}\n    -> {trial.outcome} {trial.kind}: {trial.detail[-500:]}")
        children = box.started
    seconds = time.perf_counter() - start
    figures = {
        "model": model,
        "format": fmt,
        "kind": kind,
        "mutants": count,
        "outcomes": dict(outcomes),
        "children": children,
        "seconds": round(seconds, 1),
        "peak_rss_mib": peak >> 20,
        "seed": SEED,
    }
    print(json.dumps(figures))
    if os.environ.get("MNIST_EDGE_FUZZ_REPORT"):
        with open(os.environ["MNIST_EDGE_FUZZ_REPORT"], "a", encoding="utf-8") as report:
            report.write(json.dumps(figures) + "\n")
    assert not failures, f"{len(failures)} of {count} mutants misbehaved (saved in {out}):\n" + "\n".join(
        failures[:20]
    )
    assert outcomes["ran"] + outcomes["refused:ModelLoadError"] == count
