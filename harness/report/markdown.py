"""Markdown outputs: the comparison table (``table.md``) and ``report.md`` with PNG figures."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from harness import protocol
from harness.report.collect import RunData
from harness.report.figures import Figure
from harness.report.tables import Cell, ComputeTable, Table, fmt, legend


def _escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def cell_markdown(cell: Cell | None, table: Table) -> str:
    """``**20.26** [16.1, 24.42] *``, ``20.26 ± 0.4 (n=3)`` or ``unavailable``."""
    if cell is None or cell.empty:
        return ""
    if cell.unavailable:
        return "unavailable"
    text = fmt(cell.value)
    if cell.best:
        text = f"**{text}**"
    if table.kind == "aggregate":
        spread = "" if math.isnan(cell.std) else f" ± {fmt(cell.std)}"
        return f"{text}{spread} (n={cell.n_runs})"
    if not (math.isnan(cell.low) or math.isnan(cell.high)):
        text += f" [{fmt(cell.low)}, {fmt(cell.high)}]"
    if cell.significant:
        text += " *"
    return text


def table_markdown(table: Table) -> str:
    """The table, its legend and the reasons for unavailable metrics, as Markdown."""
    header = list(table.key_names) + [c.header for c in table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in table.rows:
        keys = [_escape(k) for k in row.keys]
        keys[-1] += f" {row.mark}" if row.mark else ""
        keys[-1] += " (ref)" if row.reference else ""
        keys[-1] += f" ({row.note})" if row.note else ""
        if row.failed:
            lines.append("| " + " | ".join(keys) + f" | failed: {_escape(row.failed)} |"
                         + " |" * (len(table.columns) - 1))
            continue
        cells = [cell_markdown(row.cells.get(c.metric), table) for c in table.columns]
        lines.append("| " + " | ".join(keys + cells) + " |")
    notes = ["\n" + legend(table)[0]] + legend(table)[1:]
    notes += [f"`{m}` unavailable: {why}" for m, why in table.unavailable.items()]
    return "\n".join(lines) + "\n" + "\n".join(notes) + "\n"


def compute_markdown(table: ComputeTable) -> str:
    """The compute table and its notes as Markdown."""
    header = [*table.key_names, *table.headers]
    rule = "|" + "---|" * len(table.key_names) + "---:|" * len(table.headers)
    lines = ["| " + " | ".join(header) + " |", rule]
    lines += ["| " + " | ".join(_escape(c) for c in row) + " |" for row in table.rows]
    return "\n".join(lines) + "\n\n" + "\n\n".join(table.notes) + "\n"


def slug(text: str) -> str:
    """A file-name-safe version of a run label."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "run"


def figure_files(runs: Sequence[RunData], figures: dict[str, list[Figure]]) -> dict[str, bytes]:
    """``figures/<name>.png`` -> PNG bytes; with several runs names start with the run's."""
    files = {}
    for run in runs:
        prefix = "" if len(runs) == 1 else slug(run.label) + "-"
        for fig in figures[run.label]:
            for k, page in enumerate(fig.pages, 1):
                files[f"figures/{prefix}{fig.key}-{k}.png"] = page
            if fig.png:
                files[f"figures/{prefix}{fig.key}.png"] = fig.png
    return files


def report_markdown(title: str, runs: Sequence[RunData], table: Table, aggregate: Table | None,
                    figures: dict[str, list[Figure]], compute: ComputeTable | None = None) -> str:
    """report.md: tables (the compute table too, given one), then per run the figures (as
    links to figures/*.png) and data counts."""
    out = [f"# {title}", ""]
    out += [f"- `{r.label}`: config `{r.name}`, seed {r.seed}, `{r.path}`; "
            f"{protocol.summary(r.environment.get('protocol') or {})}" for r in runs]
    out += ["", "## Comparison", "", table_markdown(table)]
    if aggregate is not None:
        out += ["## Across runs", "", table_markdown(aggregate)]
    if compute is not None:
        out += ["## Compute", "", compute_markdown(compute)]
    for run in runs:
        prefix = "" if len(runs) == 1 else slug(run.label) + "-"
        out += [f"## Run {run.label}", ""]
        for fig in figures[run.label]:
            out += [f"### {fig.title}", ""]
            for k in range(1, len(fig.pages) + 1):
                out.append(f"![{fig.title}, page {k}](figures/{prefix}{fig.key}-{k}.png)")
            if fig.png:
                out.append(f"![{fig.title}](figures/{prefix}{fig.key}.png)")
            out += ["", fig.caption or fig.note, ""]
        dr = run.data_report
        if dr:
            splits = dr.get("splits") or {}
            out += ["### Data", "",
                    f"{dr.get('found', '?')} files found, {dr.get('decoded', '?')} decoded, "
                    f"{dr.get('used', '?')} used; {len(dr.get('skipped') or [])} skipped, "
                    f"{len(dr.get('grey_excluded') or [])} excluded as nearly grey; split "
                    f"{splits.get('train', '?')} / {splits.get('val', '?')} / "
                    f"{splits.get('test', '?')} (train / val / test).", ""]
            for s in dr.get("skipped") or []:
                if isinstance(s, dict):
                    out.append(f"- skipped `{s.get('file', '')}`: {s.get('reason', '')}")
            out.append("")
        env = run.environment
        if env:
            out += ["### Environment", "",
                    f"Python {env.get('python', '?')} on {env.get('platform', '?')}, device "
                    f"{env.get('device', '?')} ({env.get('device_name', '')}), git "
                    f"`{env.get('git_revision') or 'unknown'}`.", ""]
    return "\n".join(out).rstrip() + "\n"
