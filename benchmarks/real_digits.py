"""How well `mnist-edge predict` reads real pictures: printed and drawn digits, one perturbation at a time.

Builds the non-MNIST evaluation set of ``digit_pictures.py`` (every font on the machine, and
hand-drawn strokes: 2,140 clean pictures in two halves), runs each picture through
``mnist_edge.images.fit_digit`` and the exported model, and reports accuracy per axis and level
on the held-out half (the pipeline's constants were chosen looking at the ``tune`` half only).
Also: the time for a 12-megapixel photo (read, fitted and classified), the time for a 28x28
input, and whether MNIST test digits saved as PNG read back as the arrays did.

    python benchmarks/real_digits.py                 # held-out half -> results/real_digits.json
    python benchmarks/real_digits.py --split tune --no-write
    python benchmarks/real_digits.py --markdown      # the README table from the JSON
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, ROOT, load_average, write_result
from digit_pictures import AXES, SPLITS, Sample, apply, clean_samples, font_files, photo

from mnist_edge.errors import InputError
from mnist_edge.images import fit_digit, load_image
from mnist_edge.runtime import load

DEFAULT_MODEL = ROOT / "artifacts" / "model.int8.tflite"
#: The targets: clean printed and drawn digits at least this accurate ...
CLEAN_TARGET = 0.90
#: ... and these levels within this many points of clean.
ROBUST_AXES = {"noise": (2, 4, 8), "blur": (1.0, 2.0, 3.0), "gradient": (0.3, 0.6, "shadow"), "jpeg": (30,)}
ROBUST_POINTS = 3.0
PHOTO_TARGET_S = 0.3
SMALL_TARGET_MS = 1.0
MNIST_AGREEMENT_TARGET = 0.999


def accuracy_table(classifier: Any, samples: list[Sample]) -> list[dict[str, Any]]:
    """One row per axis and level: accuracy overall, on printed and on drawn digits, how many
    pictures gave "no digit found" (counted wrong), and the median time to fit one picture."""
    labels = np.array([s.label for s in samples])
    printed = np.array([s.kind == "printed" for s in samples])
    rows = []
    for axis, levels in AXES.items():
        for level in levels:
            digits, seconds, missed = [], [], 0
            for sample in samples:
                picture = apply(sample, axis, level)
                start = time.perf_counter()
                try:
                    digits.append(fit_digit(picture))
                except InputError:
                    digits.append(np.zeros((28, 28), np.uint8))
                    missed += 1
                seconds.append(time.perf_counter() - start)
            found = np.array([d.any() for d in digits])
            correct = (classifier.predict(np.stack(digits)) == labels) & found
            row = {
                "axis": axis,
                "level": level,
                "pictures": len(samples),
                "accuracy": float(correct.mean()),
                "printed": float(correct[printed].mean()),
                "drawn": float(correct[~printed].mean()),
                "no_digit_found": missed,
                "fit_ms_p50": 1e3 * statistics.median(seconds),
            }
            rows.append(row)
            print(
                f"{axis:9} {level!s:>12}  {row['accuracy']:.3f}  printed {row['printed']:.3f}  "
                f"drawn {row['drawn']:.3f}  {row['fit_ms_p50']:.2f} ms",
                flush=True,
            )
    return rows


def photo_timing(classifier: Any, folder: Path, repeats: int = 7) -> dict[str, Any]:
    """Median seconds to read, fit and classify a 12-megapixel photo, as a JPEG and as a PNG."""
    from PIL import Image

    pixels = photo(5)
    out: dict[str, Any] = {"width": pixels.shape[1], "height": pixels.shape[0]}
    for name, options in (("jpeg", {"quality": 92}), ("png", {})):
        path = folder / f"photo.{'jpg' if name == 'jpeg' else 'png'}"
        Image.fromarray(pixels).save(path, **options)
        times, label = [], None
        for _ in range(repeats):
            start = time.perf_counter()
            label = int(classifier.predict(load_image(path))[0])
            times.append(time.perf_counter() - start)
        out[name] = {"seconds_p50": statistics.median(times), "bytes": path.stat().st_size, "label": label}
        print(f"12 MP {name}: {out[name]['seconds_p50'] * 1e3:.0f} ms (label {label}, true 5)", flush=True)
    return out


def small_timing(mnist_x: np.ndarray, folder: Path) -> dict[str, Any]:
    """Median milliseconds to fit a 28x28 MNIST digit given as an array, and read from a PNG."""
    from PIL import Image

    digits = mnist_x[:1000]
    for digit in digits[:20]:  # warm-up
        fit_digit(digit)
    array_times = []
    for digit in digits:
        start = time.perf_counter()
        fit_digit(digit)
        array_times.append(time.perf_counter() - start)
    path = folder / "digit.png"
    Image.fromarray(digits[0]).save(path)
    file_times = []
    for _ in range(300):
        start = time.perf_counter()
        load_image(path)
        file_times.append(time.perf_counter() - start)
    out = {
        "array_ms_p50": 1e3 * statistics.median(array_times),
        "png_file_ms_p50": 1e3 * statistics.median(file_times),
    }
    print(f"28x28: array {out['array_ms_p50']:.3f} ms, PNG file {out['png_file_ms_p50']:.3f} ms", flush=True)
    return out


def mnist_png_agreement(classifier: Any, x: np.ndarray, y: np.ndarray, folder: Path) -> dict[str, Any]:
    """Every MNIST test digit saved as PNG and read back with load_image: how often the model's
    answer is the one it gives for the array."""
    from PIL import Image

    read = []
    for i, digit in enumerate(x):
        path = folder / f"{i}.png"
        Image.fromarray(digit).save(path)
        read.append(load_image(path))
        path.unlink()
    from_arrays, from_png = classifier.predict(x), classifier.predict(np.stack(read))
    out = {
        "images": len(x),
        "agreement": float((from_arrays == from_png).mean()),
        "accuracy_arrays": float((from_arrays == y).mean()),
        "accuracy_png": float((from_png == y).mean()),
    }
    print(f"MNIST as PNG: agreement {out['agreement']:.4f} ({len(x):,} digits)", flush=True)
    return out


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Each number the pipeline must reach, what was measured (in ``unit``), and whether it was met."""
    rows = {(r["axis"], r["level"]): r for r in result["accuracy"]}
    clean = rows["clean", "-"]["accuracy"]
    checks = [_check(f"clean printed and drawn >= {CLEAN_TARGET:.0%}", clean, "%", clean >= CLEAN_TARGET)]
    for axis, levels in ROBUST_AXES.items():
        for level in levels:
            gap = 100 * (clean - rows[axis, level]["accuracy"])
            checks.append(
                _check(
                    f"{axis} {level}: clean minus this <= {ROBUST_POINTS:g} pp",
                    gap,
                    "pp",
                    gap <= ROBUST_POINTS,
                )
            )
    seconds = result["photo_12mp"]["jpeg"]["seconds_p50"]
    checks.append(_check(f"12 MP JPEG photo <= {PHOTO_TARGET_S} s", seconds, "s", seconds <= PHOTO_TARGET_S))
    small = result["small_input"]["array_ms_p50"]
    checks.append(_check(f"28x28 input < {SMALL_TARGET_MS:g} ms", small, "ms", small < SMALL_TARGET_MS))
    agreement = result["mnist_png"]["agreement"]
    checks.append(
        _check(
            f"MNIST as PNG agrees >= {MNIST_AGREEMENT_TARGET:.1%}",
            agreement,
            "%",
            agreement >= MNIST_AGREEMENT_TARGET,
        )
    )
    return checks


def _check(target: str, measured: float, unit: str, met: bool) -> dict[str, Any]:
    return {"target": target, "measured": measured, "unit": unit, "met": bool(met)}


def _shown(check: dict[str, Any]) -> str:
    value, unit = check["measured"], check["unit"]
    return {
        "%": f"{100 * value:.2f} %",
        "pp": f"{value:+.2f} pp",
        "s": f"{1e3 * value:.0f} ms",
        "ms": f"{value:.2f} ms",
    }[unit]


def markdown(result: dict[str, Any]) -> str:
    """The README's tables: accuracy per axis and level, and the targets."""
    lines = [
        f"Held-out half of `benchmarks/digit_pictures.py`: {result['pictures']:,} clean pictures "
        f"({result['fonts']} fonts, {result['writers']} writers), each axis applied to all of them; "
        f"model `{result['model']}`; commit {result.get('git_commit', '?')}, load average "
        f"{result.get('load_average')}.",
        "",
        "| axis | level | accuracy | printed | drawn | fit p50 |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for row in result["accuracy"]:
        lines.append(
            f"| {row['axis']} | {row['level']} | {row['accuracy']:.1%} | {row['printed']:.1%} | "
            f"{row['drawn']:.1%} | {row['fit_ms_p50']:.1f} ms |"
        )
    photo, small, mnist = result["photo_12mp"], result["small_input"], result["mnist_png"]
    lines += [
        "",
        "| target | measured | met |",
        "|---|---:|---|",
        *(f"| {c['target']} | {_shown(c)} | {'yes' if c['met'] else '**no**'} |" for c in targets(result)),
        "",
        f"Also measured: the same 12 MP photo as PNG {1e3 * photo['png']['seconds_p50']:.0f} ms (decoding a "
        f"{photo['png']['bytes'] / 2**20:.0f} MiB PNG is most of it), a 28x28 PNG file "
        f"{small['png_file_ms_p50']:.2f} ms; MNIST test digits read back from PNG: accuracy "
        f"{mnist['accuracy_png']:.2%} vs {mnist['accuracy_arrays']:.2%} from the arrays.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", type=Path, default=DEFAULT_MODEL, help="exported model (default: %(default)s)"
    )
    parser.add_argument("--split", choices=SPLITS, default="heldout")
    parser.add_argument("--limit", type=int, default=None, help="first N samples of each kind (a quick look)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave the JSON as it is")
    parser.add_argument(
        "--markdown", action="store_true", help="print the README table from the JSON and stop"
    )
    args = parser.parse_args(argv)

    if args.markdown:
        print(markdown(json.loads((RESULTS / "real_digits.json").read_text())))
        return 0
    from mnist_edge.data import load_mnist_data

    classifier = load(args.model)
    samples = list(clean_samples(args.split, limit_per_kind=args.limit))
    writers = len({s.source for s in samples if s.kind == "drawn"})
    print(
        f"{len(samples)} pictures ({args.split} half), {len(font_files())} fonts, {writers} writers",
        flush=True,
    )
    started = time.perf_counter()
    result: dict[str, Any] = {
        "model": args.model.name,
        "split": args.split,
        "pictures": len(samples),
        "fonts": len({s.source for s in samples if s.kind == "printed"}),
        "writers": writers,
        "accuracy": accuracy_table(classifier, samples),
    }
    mnist = load_mnist_data(log=lambda _line: None)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        result["photo_12mp"] = photo_timing(classifier, folder)
        result["small_input"] = small_timing(mnist.x_test, folder)
        result["mnist_png"] = mnist_png_agreement(classifier, mnist.x_test, mnist.y_test, folder)
    result["targets"] = targets(result)
    result["seconds"] = time.perf_counter() - started
    result["load_average"] = load_average()
    for check in result["targets"]:
        print(f"{'met' if check['met'] else 'MISSED':6} {check['target']}: {check['measured']}")
    if not args.no_write:
        write_result("real_digits", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
