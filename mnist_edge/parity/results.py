"""What verify returns: one row per artifact and the report around them, as values that serialise to
JSON (``parity.json``) and Markdown and read back with ``from_dict``. This module owns that format."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mnist_edge import __version__
from mnist_edge._mnist import CLASS_NAMES
from mnist_edge._text import MISSING, num
from mnist_edge.errors import ParityError
from mnist_edge.parity.metrics import Reference
from mnist_edge.parity.tolerances import Tolerance, Tolerances

__all__ = ["ParityReport", "ParityRow", "worst_digit"]


@dataclass(frozen=True)
class ParityRow:
    """One artifact against the reference. Metric fields are None when the artifact could not be run."""

    artifact: str
    format: str | None
    precision: str | None
    passed: bool
    reasons: tuple[str, ...]
    tolerance: Tolerance | None
    accuracy: float | None = None
    delta_pp: float | None = None
    agreement_pct: float | None = None
    disagreements: int | None = None
    max_prob_diff: float | None = None
    mean_prob_diff: float | None = None
    worst_class: int | None = None
    worst_class_diff_pp: float | None = None
    notes: tuple[str, ...] = ()
    seconds: float = 0.0
    #: Generated C only: its byte-for-byte comparison with the engine it must equal.
    bit_exact: dict[str, Any] | None = None

    @property
    def status(self) -> str:
        return "PASS" if self.passed else "FAIL"

    @property
    def name(self) -> str:
        return Path(self.artifact).name

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["status"] = self.status
        data["reasons"] = list(self.reasons)
        data["notes"] = list(self.notes)
        data["tolerance"] = None if self.tolerance is None else self.tolerance.to_dict()
        data["worst_class_name"] = None if self.worst_class is None else CLASS_NAMES[self.worst_class]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ParityRow:
        """Read back :meth:`to_dict` (its derived ``status`` and ``worst_class_name`` are recomputed)."""
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in fields}
        values["reasons"] = tuple(data.get("reasons", ()))
        values["notes"] = tuple(data.get("notes", ()))
        tolerance = data.get("tolerance")
        values["tolerance"] = None if tolerance is None else Tolerance(**tolerance)
        return cls(**values)


@dataclass(frozen=True)
class ParityReport:
    """Every row, the reference they were measured against, the limits used and the time it took."""

    rows: tuple[ParityRow, ...]
    reference: Reference
    tolerances: Tolerances
    images: int
    seconds: float
    forced: bool = False

    @property
    def passed(self) -> bool:
        return all(row.passed for row in self.rows)

    @property
    def failed(self) -> tuple[ParityRow, ...]:
        return tuple(row for row in self.rows if not row.passed)

    @property
    def reference_accuracy(self) -> float:
        return self.reference.accuracy

    def raise_if_failed(self) -> None:
        """The gate: :class:`~mnist_edge.errors.ParityError` (exit code 1) naming every failed artifact."""
        if not self.passed:
            names = ", ".join(row.name for row in self.failed)
            raise ParityError(f"{len(self.failed)} artifact(s) failed the parity check: {names}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            # The image count is the report's: a reference read back from JSON has no per-image arrays.
            "reference": {**self.reference.to_dict(), "images": self.images},
            "images": self.images,
            "seconds": self.seconds,
            "forced": self.forced,
            "tolerances": self.tolerances.to_dict(),
            "rows": [row.to_dict() for row in self.rows],
            "mnist_edge_version": __version__,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ParityReport:
        """Read back :meth:`to_dict` (a ``parity.json``); ``passed`` is recomputed from the rows."""
        return cls(
            rows=tuple(ParityRow.from_dict(row) for row in data["rows"]),
            reference=Reference.from_dict(data["reference"]),
            tolerances=Tolerances.from_dict(data["tolerances"]),
            images=data["images"],
            seconds=data["seconds"],
            forced=data.get("forced", False),
        )

    @classmethod
    def read(cls, folder: Path) -> ParityReport | None:
        """The ``parity.json`` in ``folder``; None when it is missing or not this format (a report
        or a comparison is still written without it)."""
        try:
            return cls.from_dict(json.loads((folder / "parity.json").read_text()))
        except (OSError, KeyError, TypeError, ValueError):
            return None

    def to_markdown(self) -> str:
        ref = self.reference
        lines = [
            "## Parity against the Keras reference",
            "",
            f"Reference `{Path(ref.path).name}` (sha256 `{ref.sha256[:12]}`): test accuracy "
            f"**{ref.accuracy:.4f}** on {self.images:,} images. Verified in {self.seconds:.1f} s.",
            "",
            "| artifact | precision | accuracy | Δ vs ref (pp) | top-1 agreement | max prob diff "
            "| mean prob diff | worst digit | result |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for row in self.rows:
            result = row.status if row.passed else f"FAIL: {'; '.join(row.reasons)}"
            lines.append(
                f"| `{row.name}` | {row.precision or '?'} | {num(row.accuracy, '.4f')} "
                f"| {num(row.delta_pp, '+.2f')} | {num(row.agreement_pct, '.2f', ' %')} "
                f"| {num(row.max_prob_diff, '.1e')} | {num(row.mean_prob_diff, '.1e')} "
                f"| {worst_digit(row)} | {result} |"
            )
        lines += [
            "",
            "Tolerances:",
            "",
            "| precision | abs accuracy diff | top-1 agreement | max prob diff |",
            "|---|---|---|---|",
        ]
        lines += [f"| {' | '.join((p, *tol.cells()))} |" for p, tol in self.tolerances.items()]
        return "\n".join(lines) + "\n"


def worst_digit(row: ParityRow) -> str:
    """``"7 (-0.39 pp)"``: the digit whose accuracy moved most, for tables ("-" when none moved)."""
    if row.worst_class is None or row.worst_class_diff_pp is None or row.worst_class_diff_pp == 0:
        return MISSING
    return f"{row.worst_class} ({row.worst_class_diff_pp:+.2f} pp)"
