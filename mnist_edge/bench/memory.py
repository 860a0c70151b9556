"""Peak resident memory of one model, measured in a fresh subprocess per model so that one engine's
memory (or TensorFlow's, in the benchmark's own process) never pollutes another's figure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mnist_edge._mnist import IMAGE_SHAPE
from mnist_edge.bench.options import DEFAULT_BATCH_SIZES, parse_batch_sizes
from mnist_edge.bench.results import MemoryProbe
from mnist_edge.errors import MnistEdgeError

__all__ = ["PROBE_TIMEOUT", "measure_memory", "probe"]

#: Calls per batch size in the probe: enough for every engine buffer to reach its working size.
_PROBE_CALLS = 3
#: Seconds a probe may take: a model that needs longer to load and run is broken, not slow.
PROBE_TIMEOUT = 300.0
#: The line the probe prints its result on (anything else on stdout is an engine's chatter).
_MARKER = "MNIST_EDGE_MEMORY "

_PROBE_CODE = (
    "import json, sys\n"
    "from mnist_edge.bench.memory import _memory_probe\n"
    "result = _memory_probe(sys.argv[1], int(sys.argv[2]), [int(b) for b in sys.argv[3].split(',')])\n"
    f"sys.stdout.write({_MARKER!r} + json.dumps(result) + '\\n')\n"
)


def _peak_rss_bytes() -> int:
    """This process's peak resident memory so far.

    On Linux, ``VmHWM`` from ``/proc/self/status``: ``getrusage``'s ``ru_maxrss`` survives ``execve``, so
    in a child spawned by a big process (the benchmark, with TensorFlow loaded) it starts at the
    parent's peak and would report that instead of the child's own.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # macOS reports bytes, Linux KiB


def _memory_probe(path: str, threads: int, batch_sizes: Sequence[int]) -> dict[str, Any]:
    """Runs in the subprocess: load one model, run every batch size a few times, report the peaks.

    The images are random pixels: memory does not depend on their values, and the data set would
    add its own 55 MB to the figure.
    """
    baseline = _peak_rss_bytes()
    start = time.perf_counter()
    from mnist_edge.runtime import load

    clf = load(path, threads=threads)
    rng = np.random.default_rng(0)
    clf.predict_proba(rng.integers(0, 256, (1, *IMAGE_SHAPE), dtype=np.uint8))
    cold = time.perf_counter() - start
    for size in batch_sizes:
        pixels = rng.integers(0, 256, (size, *IMAGE_SHAPE), dtype=np.uint8)
        for _ in range(_PROBE_CALLS):
            clf.predict_proba(pixels)
    return {"peak_rss_bytes": _peak_rss_bytes(), "baseline_rss_bytes": baseline, "cold_load_seconds": cold}


def probe(
    path: str | os.PathLike[str], threads: int, sizes: Sequence[int], timeout: float = PROBE_TIMEOUT
) -> MemoryProbe:
    """:func:`measure_memory` for ``sizes`` already checked (see :func:`parse_batch_sizes`)."""
    root = str(Path(__file__).resolve().parents[2])  # the folder holding the mnist_edge package
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _PROBE_CODE, str(path), str(threads), ",".join(map(str, sizes))],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
    except subprocess.TimeoutExpired:
        raise MnistEdgeError(f"the memory probe for {path} took over {timeout:g} s") from None
    for line in proc.stdout.splitlines():
        if line.startswith(_MARKER):
            return MemoryProbe.from_dict(json.loads(line[len(_MARKER) :]))
    tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
    raise MnistEdgeError(f"the memory probe for {path} failed (exit {proc.returncode}): {tail}")


def measure_memory(
    path: str | os.PathLike[str],
    *,
    threads: int = 1,
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
    timeout: float = PROBE_TIMEOUT,
) -> MemoryProbe:
    """Peak resident memory of a fresh Python process that loads ``path`` and runs each batch size."""
    return probe(path, threads, parse_batch_sizes(batch_sizes), timeout)
