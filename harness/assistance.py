"""Rows that saw more than the grey input: user-assisted (hints) and oracle (ground truth).

A row's *assistance* is a short string, the value of ``summary.csv``'s ``assisted`` column:

- ``""``: automatic, the grey input only;
- ``"hints=N"``: user-assisted, N simulated hints per test image drawn from its ground truth
  (a hint-taking model's row ``NAME@N``; its ``status.json`` has ``hints: N``);
- ``"oracle"``: the model read the test ground truth (its ``status.json`` has
  ``uses_ground_truth: true``).

Every table marks such rows and ranks only automatic ones: the best value of a column is
taken over automatic rows, and the reference the others are tested against is automatic.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

#: Table marks, after the model's name.
HINT_MARK, ORACLE_MARK = "†", "‡"


def of_status(status: Mapping[str, Any] | None) -> str:
    """The assistance recorded in a row's ``status.json`` ("" for an automatic model)."""
    status = status or {}
    if status.get("hints") is not None:
        return f"hints={int(status['hints'])}"
    return "oracle" if status.get("uses_ground_truth") else ""


def mark(assistance: str) -> str:
    """The table mark of an assistance value: † user-assisted, ‡ oracle, "" automatic."""
    if assistance.startswith("hints="):
        return HINT_MARK
    return ORACLE_MARK if assistance == "oracle" else ""


def describe(assistance: str) -> str:
    """A phrase for an assistance value, e.g. "user-assisted: 10 hints from the ground truth"."""
    if assistance.startswith("hints="):
        return f"user-assisted: {assistance.partition('=')[2]} hints from the ground truth"
    return "oracle (uses ground truth)" if assistance == "oracle" else "automatic"


def footnotes(assistances: Iterable[str]) -> list[str]:
    """One sentence per kind of assistance present, explaining its mark."""
    kinds = {mark(a) for a in assistances} - {""}
    lines = []
    if HINT_MARK in kinds:
        lines.append(f"{HINT_MARK} user-assisted: N hints per test image from its ground truth "
                     f"(the N of NAME@N; patches of the true mean colour, identical for every "
                     f"hint-taking method).")
    if ORACLE_MARK in kinds:
        lines.append(f"{ORACLE_MARK} oracle (uses ground truth): the method read the test "
                     f"image's true colour.")
    if lines:
        lines.append("Marked rows are never ranked against automatic ones: best values and the "
                     "reference are automatic rows only.")
    return lines
