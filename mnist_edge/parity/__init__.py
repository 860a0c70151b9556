"""The accuracy-parity gate: is what runs on the device the model that was trained?

:func:`verify` runs the Keras reference once and every artifact through
:func:`mnist_edge.runtime.load` - exactly as an embedding app would - on the full MNIST test set,
and compares them: accuracy and its difference from the reference, top-1 agreement, probability
differences, the digit that suffers most. Each artifact passes or fails against the tolerance of its
precision (:data:`DEFAULT_TOLERANCES`, the one table of limits); a failure names the metric, the
value and the limit. Unlike Optimum, which downgrades a failed check to a warning, this is a gate:
the CLI exits 1 when any artifact fails.

Two deliberate choices:

* **Provenance is checked before anything runs.** An artifact whose manifest names a different
  source model (``source_model_sha256``) than the reference - or names none - is *refused* with a
  :class:`~mnist_edge.errors.MnistEdgeError` (exit 2, a usage error: the wrong ``--model`` was
  given), not turned into a FAIL row, because numbers against the wrong reference mean nothing.
  ``force=True`` compares anyway and notes it in the row.
* **A file that cannot be trusted is a FAIL row, not a crash.** When the runtime refuses to load an
  artifact (sha256 no longer matches its manifest, truncated file, ...) the row fails with the
  runtime's own message as the reason; the other artifacts are still verified.

Results are written into each artifact's manifest (the ``parity`` block) atomically. That does not
disturb the runtime's hash gate: the manifest's ``sha256`` is the artifact's, and only ``parity``
changes.

The package is split by job: ``tolerances`` (the limits and their overrides), ``metrics`` (the
reference's outputs and the comparison), ``results`` (rows and report, to and from JSON and
Markdown), ``gate`` (which artifacts, provenance, running them, writing manifests) and ``bundle``
(the device bundle: the reference's outputs and the test digits, so that a device without
TensorFlow runs the same gate).
"""

from __future__ import annotations

from mnist_edge.manifest import ARTIFACT_SUFFIXES
from mnist_edge.parity.bundle import BUNDLE_NAME, DeviceBundle, locate_bundle, read_bundle
from mnist_edge.parity.gate import choose_reference, find_artifacts, resolve_artifacts, verify
from mnist_edge.parity.metrics import Reference, compare, compute_reference, judge, reference_path
from mnist_edge.parity.results import ParityReport, ParityRow, worst_digit
from mnist_edge.parity.tolerances import (
    DEFAULT_TOLERANCES,
    METRICS,
    Tolerance,
    Tolerances,
    apply_overrides,
    parse_override,
)

__all__ = [
    "ARTIFACT_SUFFIXES",
    "BUNDLE_NAME",
    "DEFAULT_TOLERANCES",
    "METRICS",
    "DeviceBundle",
    "ParityReport",
    "ParityRow",
    "Reference",
    "Tolerance",
    "Tolerances",
    "apply_overrides",
    "choose_reference",
    "compare",
    "compute_reference",
    "find_artifacts",
    "judge",
    "locate_bundle",
    "parse_override",
    "read_bundle",
    "reference_path",
    "resolve_artifacts",
    "verify",
    "worst_digit",
]
