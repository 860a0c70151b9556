"""Small text helpers shared by the library's messages and the rendered tables."""

from __future__ import annotations

#: What a table shows where a value was not measured or does not apply.
MISSING = "-"


def first_line(exc: BaseException, limit: int = 300) -> str:
    """An exception's first message line, cut to ``limit`` characters: enough to name the cause in
    a one-line error without pasting an engine's multi-page dump."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else "(no message)"


def num(value: float | None, spec: str = "", suffix: str = "") -> str:
    """``value`` formatted with ``spec`` (and ``suffix``), or :data:`MISSING` when there is none."""
    return MISSING if value is None else f"{value:{spec}}{suffix}"


__all__ = ["MISSING", "first_line", "num"]
