"""The self-contained HTML report: one file, CSS inline, every image a data: URI, no network."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Sequence
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from harness import __version__, protocol
from harness.report.collect import RunData
from harness.report.figures import Figure
from harness.report.tables import Cell, ComputeTable, Table, fmt, legend

TEMPLATES = Path(__file__).parent / "templates"


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def cell_html(cell: Cell | None, table: Table, reference: str | None = None) -> Markup:
    """One table cell's contents: value (bold if best), interval or ± spread, significance."""
    if cell is None or cell.empty:
        return Markup("")
    if cell.unavailable:
        return Markup('<span class="na" title="{}">unavailable</span>').format(cell.unavailable)
    value = escape(fmt(cell.value))
    if cell.best:
        value = Markup("<strong>{}</strong>").format(value)
    if table.kind == "aggregate":
        spread = (Markup(' <span class="spread">± {}</span>').format(fmt(cell.std))
                  if cell.std == cell.std else Markup(""))
        return Markup('{}{} <span class="n">(n={})</span>').format(value, spread, cell.n_runs)
    out = value
    if cell.significant:
        title = f"differs from {reference} (p < {table.alpha})" if reference else "significant"
        out += Markup('<sup class="sig" title="{}">*</sup>').format(title)
    if cell.low == cell.low and cell.high == cell.high:
        out += Markup(' <span class="ci">[{}, {}]</span>').format(fmt(cell.low), fmt(cell.high))
    return out


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["j2"]),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["data_uri"] = data_uri
    env.globals.update(cell_html=cell_html, fmt=fmt, legend=legend,
                       protocol_summary=protocol.summary)
    return env


def render_html(title: str, runs: Sequence[RunData], table: Table, aggregate: Table | None,
                figures: dict[str, list[Figure]], compute: ComputeTable | None = None) -> str:
    """The report page as a string (see templates/report.html.j2)."""
    return _environment().get_template("report.html.j2").render(
        title=title, runs=runs, table=table, aggregate=aggregate, figures=figures,
        compute=compute,
        version=__version__, generated=dt.datetime.now().isoformat(timespec="seconds"))
