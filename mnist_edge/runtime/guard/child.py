"""The sandbox's child process: limit itself, then load and run model bytes sent by the parent.

Started by :class:`~mnist_edge.runtime.guard.sandbox.Sandbox` as a fresh Python. It limits its own
address space (``RLIMIT_AS``), CPU time and core dumps, then serves trials - one JSON header line
plus the model bytes on stdin, one JSON result line on stdout - until stdin closes. Each trial is
exactly what ``load()`` does after the hash gate (:func:`~mnist_edge.runtime._open.open_bytes`).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["serve"]


def _limit(memory_bytes: int) -> None:
    try:
        import resource
    except ImportError:  # Windows: only the parent's timeout applies
        return
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))


def _cpu_budget(cpu_seconds: int) -> None:
    """Allow the next trial ``cpu_seconds`` of CPU time (SIGXCPU after): RLIMIT_CPU counts the
    whole life of the process, so a child serving many trials moves its soft limit each time."""
    try:
        import resource
    except ImportError:
        return
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = int(usage.ru_utime + usage.ru_stime) + 1
    hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
    soft = used + cpu_seconds
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _peak_rss() -> int:
    """This process's peak resident memory in bytes. Linux's VmHWM, not ru_maxrss: the latter
    survives exec, so a child of a big parent would report the parent's peak."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import resource
    except ImportError:
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) * (1 if sys.platform == "darwin" else 1024)


def _run_trial(name: str, backend: str | None, data: bytes) -> dict[str, Any]:
    import warnings

    import numpy as np

    from mnist_edge.errors import MnistEdgeError
    from mnist_edge.runtime._open import open_bytes

    rng = np.random.default_rng(1)
    batches = [rng.integers(0, 256, (1, 28, 28), dtype=np.uint8), rng.integers(0, 256, (7, 28, 28), np.uint8)]
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            classifier = open_bytes(Path(name), data, backend=backend)
            outputs = [classifier.predict_proba(batch) for batch in batches]
    except MnistEdgeError as exc:
        if isinstance(exc.__context__, MemoryError):  # load() wraps it; the limit is what matters here
            return {"outcome": "memory", "kind": "MemoryError", "detail": str(exc)}
        return {"outcome": "refused", "kind": type(exc).__name__, "detail": str(exc)}
    except MemoryError:
        return {"outcome": "memory", "kind": "MemoryError", "detail": "MemoryError"}
    except Exception as exc:
        return {"outcome": "error", "kind": type(exc).__name__, "detail": str(exc)[:2000]}
    seconds = time.perf_counter() - start
    for batch, probs in zip(batches, outputs, strict=True):
        probs = np.asarray(probs)
        bad = None
        if probs.shape != (len(batch), 10) or probs.dtype != np.float32:
            bad = f"output {probs.dtype}{probs.shape} for a batch of {len(batch)}"
        elif not np.isfinite(probs).all():
            bad = "NaN or infinite probabilities"
        elif (np.abs(probs.sum(axis=1, dtype=np.float64) - 1) > 1e-3).any():
            bad = f"rows sum to {probs.sum(axis=1).tolist()}"
        if bad:
            return {"outcome": "bad-output", "detail": bad, "seconds": seconds}
    return {"outcome": "ran", "seconds": seconds}


def serve(memory_bytes: int, cpu_seconds: int) -> None:
    import faulthandler

    _limit(memory_bytes)
    faulthandler.enable()  # a crash leaves a Python traceback on stderr, which the parent reports
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # anything an engine prints goes to stderr, never into the answers
    requests = sys.stdin.buffer
    while True:
        header = requests.readline()
        if not header:
            return
        request = json.loads(header)
        data = requests.read(request["size"])
        _cpu_budget(cpu_seconds)
        answer = _run_trial(request["name"], request.get("backend"), data)
        answer["peak_rss"] = _peak_rss()
        answers.write(json.dumps(answer) + "\n")
        answers.flush()
