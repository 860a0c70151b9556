"""What the known-answer check adds to ``load()`` (target: under 1 ms), per artifact.

Two parts, both timed here:

* the comparison itself: ``load()`` of each artifact with its manifest's known answers, against
  ``load()`` of a copy whose manifest has none (everything else identical), taking turns, median of
  the per-round differences;
* the four faint-stroke probe images the check added to the load-time probe: one engine run of
  those four images through the classifier, median of many.

Also counts false refusals: every artifact in the folder must load with its known answers.

    python benchmarks/known_answers.py [--artifacts artifacts] [--rounds 40]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
import warnings
from pathlib import Path

from _common import ROOT, load_average, write_result

from mnist_edge.manifest import manifest_path
from mnist_edge.parity import find_artifacts
from mnist_edge.runtime import known_answers, load, preprocess

#: The probe images the known-answer check brought in (the first four were there before).
ADDED_PROBES = slice(4, None)


def _without_answers(path: Path, folder: Path) -> Path:
    copy = folder / path.name
    shutil.copy(path, copy)
    data = json.loads(manifest_path(path).read_text())
    data.pop("known_answers", None)
    manifest_path(copy).write_text(json.dumps(data))
    return copy


def _load_seconds(path: Path) -> float:
    start = time.perf_counter()
    with load(path):
        pass
    return time.perf_counter() - start


def measure(path: Path, bare: Path, rounds: int) -> dict[str, object]:
    for _ in range(3):  # warm the file cache, the engine's libraries and numpy
        _load_seconds(path), _load_seconds(bare)
    diffs, with_check, without = [], [], []
    for i in range(rounds):
        # Alternate the order so that neither side always runs second.
        if i % 2:
            a = _load_seconds(path)
            b = _load_seconds(bare)
        else:
            b = _load_seconds(bare)
            a = _load_seconds(path)
        with_check.append(a)
        without.append(b)
        diffs.append(a - b)
    with load(path) as clf:
        added = preprocess.check_images()[ADDED_PROBES]
        probe_runs = []
        for _ in range(200):
            start = time.perf_counter()
            clf.predict_proba(added)
            probe_runs.append(time.perf_counter() - start)
        probs = clf.predict_proba(preprocess.check_images())
        check_runs = []
        for _ in range(2000):
            start = time.perf_counter()
            known_answers.check(clf.manifest.known_answers, clf.precision, probs, path)
            check_runs.append(time.perf_counter() - start)
    compare_us = statistics.median(check_runs) * 1e6
    probes_us = statistics.median(probe_runs) * 1e6
    return {
        "artifact": path.name,
        "load_ms_with_known_answers": round(statistics.median(with_check) * 1e3, 3),
        "load_ms_without": round(statistics.median(without) * 1e3, 3),
        "load_difference_ms": round(statistics.median(diffs) * 1e3, 3),
        "compare_us": round(compare_us, 1),
        "added_probe_images_us": round(probes_us, 1),
        "added_ms": round((compare_us + probes_us) / 1e3, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--artifacts", type=Path, default=ROOT / "artifacts")
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    paths = find_artifacts(args.artifacts)
    if not paths:
        raise SystemExit(f"no artifacts in {args.artifacts}: run `make demo` first")
    rows, refused = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for path in paths:
            try:
                with load(path):
                    pass
            except Exception as exc:
                refused.append(f"{path.name}: {exc}")
                continue
            rows.append(measure(path, _without_answers(path, Path(tmp)), args.rounds))
            row = rows[-1]
            print(
                f"{row['artifact']:22} load {row['load_ms_without']:.2f} ms -> "
                f"{row['load_ms_with_known_answers']:.2f} ms "
                f"(median diff {row['load_difference_ms']:+.3f} ms); check {row['compare_us']:.0f} us + "
                f"4 probe images {row['added_probe_images_us']:.0f} us = {row['added_ms']:.3f} ms"
            )
    worst = max(row["added_ms"] for row in rows)
    write_result(
        "known_answers",
        {
            "artifacts": str(args.artifacts),
            "rounds": args.rounds,
            "load_average": load_average(),
            "rows": rows,
            "false_refusals": refused,
            "max_added_ms": worst,
            "target_ms": 1.0,
            "met": worst < 1.0 and not refused,
        },
    )
    print(f"largest addition {worst:.3f} ms (target < 1 ms); false refusals: {len(refused)}")


if __name__ == "__main__":
    main()
