"""Known answers: what an exported file answered on the probe images, checked at every load.

The hash gate proves that the bytes are the ones the manifest names. It cannot tell a file that was
rewritten together with its manifest's hash, nor an engine that computes the right file wrongly (a
miscompiled build, a broken kernel, an emulator bug: qemu 7.2's default ARM CPU model turns the int8
TFLite model into an 11 %-accurate one whose outputs still look like probabilities). So at export
the new file is loaded through this runtime and its probabilities on the load-time probe images
(:func:`~mnist_edge.runtime.preprocess.check_images`) go into the manifest; at every load the probe
runs anyway, and its probabilities must match within :data:`TOLERANCES`.

The check knows nothing about the model beyond its probabilities, so it holds for any architecture
the exporters produce. A manifest without known answers (older exports), or with answers to
another set of probe images, loads as before, unchecked.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from mnist_edge.errors import ModelLoadError
from mnist_edge.runtime import preprocess

__all__ = ["TOLERANCES", "check", "probe_id", "record"]

#: Largest |probability - known answer| allowed at load, per precision. Wide enough for another
#: CPU's kernels (aarch64 against x86: see benchmarks/results/arm.json) and for the dynamic-range
#: model's folded division; narrow enough that a changed weight or a wrong kernel shows. int8
#: allows three output levels (a level is 1/256; rows are renormalised to sum to 1).
TOLERANCES: dict[str, float] = {"fp32": 1e-4, "fp16": 5e-3, "dynamic": 1e-2, "int8": 3.5 / 256}
#: Decimals kept in the manifest: far below every tolerance, and short JSON.
_DECIMALS = 7


@functools.cache
def probe_id() -> str:
    """Names the probe images: known answers recorded on other images are not compared."""
    return "sha256:" + hashlib.sha256(preprocess.check_images().tobytes()).hexdigest()[:16]


def record(probabilities: np.ndarray) -> dict[str, Any]:
    """The manifest's ``known_answers`` block for a model's probabilities on the probe images."""
    rows = np.asarray(probabilities, dtype=np.float64)
    return {
        "probe": probe_id(),
        "probabilities": [[round(float(v), _DECIMALS) for v in row] for row in rows],
    }


def check(
    known: Mapping[str, Any] | None, precision: str | None, probabilities: np.ndarray, where: object
) -> None:
    """Raise :class:`ModelLoadError` when ``probabilities`` (the model's on the probe images, as
    this engine computes them) differ from the known answers by more than the precision allows."""
    if not known or known.get("probe") != probe_id() or precision not in TOLERANCES:
        return
    tolerance = TOLERANCES[precision]
    got = np.asarray(probabilities, dtype=np.float64)
    try:
        expected = np.asarray(known["probabilities"], dtype=np.float64)
    except (KeyError, TypeError, ValueError):
        expected = np.empty(0)
    if expected.shape != got.shape or not np.isfinite(expected).all():
        raise ModelLoadError(
            f"the manifest of {where} has malformed known answers (expected {got.shape[0]} rows of "
            f"{got.shape[1]} probabilities); re-run `mnist-edge export`"
        )
    diff = np.abs(got - expected)
    worst = float(diff.max())
    if worst <= tolerance:
        return
    image, cls = np.unravel_index(int(diff.argmax()), diff.shape)
    changed = int(np.count_nonzero(got.argmax(axis=1) != expected.argmax(axis=1)))
    raise ModelLoadError(
        f"{where} does not give its known answers: on the probe image "
        f"'{preprocess.CHECK_IMAGE_NAMES[image]}' class {cls} has probability {got[image, cls]:.4f}, "
        f"{expected[image, cls]:.4f} when exported (|diff| {worst:.2g}, limit {tolerance:.2g} for "
        f"{precision}; top-1 differs on {changed} of {len(got)} probe images). Either the file was "
        "changed together with its manifest's hash, or this engine computes it wrongly on this "
        "machine: re-export it, and run `mnist-edge verify` here"
    )
