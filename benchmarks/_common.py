"""Helpers shared by the benchmark scripts: where results go and how they are stamped."""

from __future__ import annotations

import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))

from mnist_edge._files import atomic_write_json  # noqa: E402
from mnist_edge.environment import git_commit, machine_info  # noqa: E402


def write_result(name: str, payload: dict[str, Any]) -> Path:
    """Write ``benchmarks/results/<name>.json`` stamped with the machine, versions and commit."""
    stamped = {
        "benchmark": name,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git_commit(ROOT),
        "machine": machine_info(),
        **payload,
    }
    path = RESULTS / f"{name}.json"
    atomic_write_json(path, stamped)
    print(f"wrote {path.relative_to(ROOT)}")
    return path


def load_average() -> list[float] | None:
    """1/5/15-minute load: a benchmark on a busy machine should say so."""
    return [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None


def cli(*args: str) -> list[str]:
    """The command line that runs ``mnist-edge ARGS`` with this interpreter."""
    return [sys.executable, "-m", "mnist_edge", *args]
