"""The limits an artifact must meet, per precision: one table of defaults and the overrides a user types."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mnist_edge.errors import MnistEdgeError
from mnist_edge.manifest import PRECISIONS

__all__ = [
    "DEFAULT_TOLERANCES",
    "METRICS",
    "Tolerance",
    "Tolerances",
    "apply_overrides",
    "parse_override",
]


@dataclass(frozen=True)
class Tolerance:
    """The limits one artifact must meet. ``max_prob_diff=None`` means "not checked" (quantised
    models move probabilities by a quantisation step by design; their labels are what counts)."""

    max_acc_diff_pp: float
    min_agreement_pct: float
    max_prob_diff: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def cells(self) -> tuple[str, str, str]:
        """The three limits as every table shows them: ``("<= 0.01 pp", ">= 99.99 %", "<= 0.0001")``."""
        prob = "n/a" if self.max_prob_diff is None else f"<= {self.max_prob_diff:g}"
        return f"<= {self.max_acc_diff_pp:g} pp", f">= {self.min_agreement_pct:g} %", prob

    def describe(self) -> str:
        acc, agreement, prob = self.cells()
        return f"|acc diff| {acc}, agreement {agreement}, max prob diff {prob}"


#: The metric names :func:`parse_override` and the CLI accept, mapped to :class:`Tolerance` fields.
METRICS: dict[str, str] = {
    "max-acc-diff": "max_acc_diff_pp",
    "min-agreement": "min_agreement_pct",
    "max-prob-diff": "max_prob_diff",
}


@dataclass(frozen=True)
class Tolerances:
    """Precision -> :class:`Tolerance`. Immutable; :meth:`override` returns a changed copy."""

    fp32: Tolerance
    fp16: Tolerance
    dynamic: Tolerance
    int8: Tolerance

    def __getitem__(self, precision: str) -> Tolerance:
        if precision not in PRECISIONS:
            raise KeyError(precision)
        return getattr(self, precision)

    def items(self) -> list[tuple[str, Tolerance]]:
        return [(p, self[p]) for p in PRECISIONS]

    def override(self, precision: str | None, metric: str, value: float | None) -> Tolerances:
        """A copy with one limit changed; ``precision=None`` changes it for every precision."""
        attr = METRICS.get(metric, metric)
        if attr not in {f.name for f in dataclasses.fields(Tolerance)}:
            raise MnistEdgeError(f"unknown tolerance {metric!r}: choose one of {', '.join(METRICS)}")
        if value is None and attr != "max_prob_diff":
            raise MnistEdgeError(f"{metric} needs a number ('none' only turns off max-prob-diff)")
        if value is not None and (not math.isfinite(value) or value < 0):
            raise MnistEdgeError(f"{metric} must be a finite number >= 0, got {value}")
        if attr == "min_agreement_pct" and value is not None and value > 100:
            raise MnistEdgeError(f"{metric} is a percentage (0..100), got {value}")
        if precision is not None and precision not in PRECISIONS:
            raise MnistEdgeError(f"unknown precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
        targets = PRECISIONS if precision is None else (precision,)
        changes = {p: dataclasses.replace(self[p], **{attr: value}) for p in targets}
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {p: t.to_dict() for p, t in self.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Tolerances:
        return cls(**{p: Tolerance(**data[p]) for p in PRECISIONS})


#: The one table of default limits. They leave room for other machines and training runs, and none
#: for a real fault (what the trained model reaches is in each manifest's ``parity`` block).
DEFAULT_TOLERANCES = Tolerances(
    fp32=Tolerance(max_acc_diff_pp=0.01, min_agreement_pct=99.99, max_prob_diff=1e-4),
    fp16=Tolerance(max_acc_diff_pp=0.05, min_agreement_pct=99.9, max_prob_diff=5e-3),
    dynamic=Tolerance(max_acc_diff_pp=0.20, min_agreement_pct=99.5, max_prob_diff=None),
    int8=Tolerance(max_acc_diff_pp=0.30, min_agreement_pct=99.3, max_prob_diff=None),
)

_OVERRIDE = re.compile(r"^\s*(?:(?P<precision>[A-Za-z0-9_]+)\s*=)?\s*(?P<value>[^=]+?)\s*$")


def parse_override(tolerances: Tolerances, metric: str, spec: str) -> Tolerances:
    """Apply one ``PRECISION=VALUE`` (or bare ``VALUE``: every precision) override, as the CLI spells it.

    ``VALUE`` is a number; for ``max-prob-diff`` it may also be ``none`` (not checked).
    Raises :class:`MnistEdgeError` with what was wrong.
    """
    match = _OVERRIDE.match(spec)
    if not match:
        raise MnistEdgeError(f"--{metric} {spec!r}: expected PRECISION=VALUE (e.g. int8=0.5) or VALUE")
    precision = match["precision"].lower() if match["precision"] else None
    raw = match["value"].lower()
    value: float | None
    if raw in ("none", "off", "n/a"):
        value = None
    else:
        try:
            value = float(raw)
        except ValueError:
            raise MnistEdgeError(f"--{metric} {spec!r}: {raw!r} is not a number") from None
    return tolerances.override(precision, metric, value)


def apply_overrides(tolerances: Tolerances, overrides: Mapping[str, Sequence[str] | None]) -> Tolerances:
    """Every ``{metric: [spec, ...]}`` override applied in turn (see :func:`parse_override`)."""
    for metric, specs in overrides.items():
        for spec in specs or ():
            tolerances = parse_override(tolerances, metric, spec)
    return tolerances
