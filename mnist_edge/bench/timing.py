"""Per-call timing of several callables at once, taking turns, so that a burst of load from elsewhere
on a shared machine hits all of them alike and their ratios stay same-window comparisons."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from mnist_edge.bench.options import DEFAULT_MIN_CALLS, DEFAULT_MIN_TIME, check_budget
from mnist_edge.bench.results import LatencyStats

__all__ = ["BLOCK_SECONDS", "time_interleaved"]

#: Target length of one block of calls in the interleaved loop (seconds): long enough that the
#: switch between callables costs nothing measurable, short enough that each sees the same load.
BLOCK_SECONDS = 0.01
#: Warm-up calls a callable makes at the least, however long the first ones take.
_WARMUP_CALLS = 3


def _timed_calls(func: Callable[[], Any], calls: int, sink: list[int]) -> int:
    clock = time.perf_counter_ns
    total = 0
    for _ in range(calls):
        start = clock()
        func()
        elapsed = clock() - start
        sink.append(elapsed)
        total += elapsed
    return total


def _warm_up(func: Callable[[], Any], seconds: float) -> float:
    """Run ``func`` for ``seconds`` (at least a few calls), untimed; its seconds per call."""
    calls, clock = 0, time.perf_counter_ns
    start = clock()
    while calls < _WARMUP_CALLS or clock() - start < seconds * 1e9:
        func()
        calls += 1
    return (clock() - start) / calls / 1e9


def time_interleaved(
    funcs: Sequence[Callable[[], Any]],
    *,
    min_time: float = DEFAULT_MIN_TIME,
    min_calls: int = DEFAULT_MIN_CALLS,
    warmup: float | None = None,
    block_calls: int | None = None,
) -> list[LatencyStats]:
    """Time each callable per call, alternating in blocks, until each has run ``min_time`` seconds and
    ``min_calls`` calls. The order of the callables rotates every block.

    ``warmup`` seconds per callable (default a tenth of ``min_time``, at most 0.5 s, at least 3 calls)
    are run and discarded first; they also size the blocks (about :data:`BLOCK_SECONDS` each) unless
    ``block_calls`` fixes them (1: strictly call by call, as ``benchmarks/runtime_overhead.py`` does).
    """
    check_budget(min_time, min_calls)
    warmup = min(0.5, min_time / 10) if warmup is None else warmup
    blocks = []
    for func in funcs:
        per_call = _warm_up(func, warmup)
        blocks.append(block_calls or max(1, min(1000, int(BLOCK_SECONDS / max(per_call, 1e-9)))))
    sinks: list[list[int]] = [[] for _ in funcs]
    totals = [0] * len(funcs)
    need_ns = min_time * 1e9
    turn = 0
    while any(t < need_ns or len(s) < min_calls for t, s in zip(totals, sinks, strict=True)):
        n = len(funcs)
        for k in range(n):
            i = (turn + k) % n
            totals[i] += _timed_calls(funcs[i], blocks[i], sinks[i])
        turn += 1
    return [LatencyStats.from_ns(s) for s in sinks]
