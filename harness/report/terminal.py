"""The compact table ``harness run`` prints: headline metrics only, at most 100 columns wide.

The full table (every metric, with intervals and significance marks) is ``table.md``.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence

import pandas as pd

from harness import assistance
from harness.report.collect import normalise_summary
from harness.report.tables import fmt

WIDTH = 100


def _cell(row: pd.Series) -> str:
    value, low, high = row["value"], row["ci_low"], row["ci_high"]
    if math.isnan(value):
        return "-"
    if math.isnan(low) or math.isnan(high):
        return fmt(value)
    return f"{fmt(value)} ±{(high - low) / 2:.2g}"


def compact_table(summary: pd.DataFrame, models: Sequence[str], headline: Sequence[str],
                  reference: str | None = None, width: int = WIDTH) -> str:
    """Rows of ``models`` by metric (value ± half the 95% interval): the ``headline`` metrics
    first, then the others; metrics are dropped from the right until a row fits ``width``."""
    frame = normalise_summary(summary)
    ok = frame[frame["status"] == "ok"]
    present = list(dict.fromkeys(ok["metric"]))
    metrics = [m for m in headline if m in present] + [m for m in present if m not in headline]
    failed = dict(zip(frame.loc[frame["status"] == "failed", "model"],
                      frame.loc[frame["status"] == "failed", "note"]))
    marks = {m: assistance.mark(a) for m, a in zip(frame["model"], frame["assisted"]) if a}
    notes = assistance.footnotes(a for a in frame["assisted"] if a)
    labels = [f"{m} (ref)" if m == reference else m + marks.get(m, "") for m in models]
    cells = {m: {name: _cell(r) for name, r in
                 ok[ok["model"] == m].drop_duplicates("metric").set_index("metric").iterrows()}
             for m in models}
    columns = [("model", labels)] + [
        (name, [cells[m].get(name, "failed" if m in failed else "-") for m in models])
        for name in metrics]
    widths = [max(len(head), *(len(v) for v in values)) for head, values in columns]
    while sum(widths) + 2 * (len(widths) - 1) > width and len(columns) > 2:
        columns, widths = columns[:-1], widths[:-1]  # the last metric goes first
    lines = ["  ".join(head.ljust(w) for (head, _), w in zip(columns, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for i in range(len(models)):
        lines.append("  ".join(values[i].ljust(w) for (_, values), w in
                               zip(columns, widths)).rstrip())
    lines += [""] + [textwrap.fill(n, width) for n in notes] if notes else []
    return "\n".join(lines) + "\n"
