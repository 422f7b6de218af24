"""``harness report``: read runs, make the tables and figures once, write each requested format.

Formats and the files they write in the output folder:

- ``html``: ``report.html``, one self-contained page (tables, the learned models' compute
  table, sample grids, plots, data report, environment; images as data: URIs, CSS inline, no
  request to any host).
- ``md``: ``report.md`` with ``figures/*.png`` beside it, and ``table.md`` (the tables alone).
- ``csv``: ``report_summary.csv`` (every run's summary.csv stacked, with run, group and seed
  columns) and, for several runs, ``report_aggregate.csv`` (mean, std, min, max, runs).
- ``latex``: ``table.tex``, booktabs tables with caption and label.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

from harness.atomic import write_text, write_with
from harness.report.collect import ReportError, RunData, aggregate, load_runs, merged_summary
from harness.report.figures import Figure, model_colours, run_figures
from harness.report.markdown import figure_files, report_markdown, slug, table_markdown
from harness.report.tables import Table, aggregate_table, compute_table, run_table
from harness.rundir import write_table

FORMATS = ("html", "md", "csv", "latex")
DEFAULT_FORMATS = ("html", "md")
#: Test images shown in the sample grid of each run (pages of four).
MAX_SAMPLES = 24

log = logging.getLogger("harness")


def default_out(runs: Sequence[RunData]) -> Path:
    """The run's own folder for one run; ``<common parent>/report-<timestamp>`` for several."""
    if len(runs) == 1:
        return runs[0].path
    parents = [r.path.parent for r in runs]
    common = parents[0]
    while any(common not in (p, *p.parents) for p in parents):
        common = common.parent
    return common / f"report-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"


def _title(runs: Sequence[RunData]) -> str:
    if len(runs) == 1:
        return f"{runs[0].name}: colorization comparison"
    names = list(dict.fromkeys(r.name for r in runs))
    return f"{', '.join(names)}: colorization comparison over {len(runs)} runs"


def build_report(paths: Iterable[Path], out: Path | None = None,
                 formats: Sequence[str] = DEFAULT_FORMATS, max_samples: int = MAX_SAMPLES,
                 title: str | None = None) -> list[Path]:
    """Write the report of the runs under ``paths`` into ``out``; return the files written."""
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise ValueError(f"unknown report format(s) {unknown}; expected {list(FORMATS)}")
    runs = load_runs(paths)
    out = Path(out) if out is not None else default_out(runs)
    if len(runs) > 1:
        inside = next((r for r in runs if out.resolve() == r.path.resolve()
                       or r.path.resolve() in out.resolve().parents), None)
        if inside is not None:
            raise ReportError(f"--out {out}: inside the run {inside.path}, where the report of "
                              f"{len(runs)} runs would replace that run's own table.md and "
                              f"report; choose a folder outside the runs")
    title = title or _title(runs)
    table = run_table(runs)
    agg_frame = aggregate(runs) if len(runs) > 1 else None
    agg = aggregate_table(runs, agg_frame) if agg_frame is not None else None
    compute = compute_table(runs)
    figures: dict[str, list[Figure]] = {}
    if {"html", "md"} & set(formats):
        models = list(dict.fromkeys(m for r in runs for m in r.models))
        colours = model_colours(models)
        figures = {r.label: run_figures(r, max_samples, colours) for r in runs}

    written: list[Path] = []

    def put(name: str, text: str) -> None:
        write_text(out / name, text)
        written.append(out / name)

    if "html" in formats:
        from harness.report.html import render_html

        put("report.html", render_html(title, runs, table, agg, figures, compute))
    if "md" in formats:
        for name, png in figure_files(runs, figures).items():
            write_with(out / name, lambda p, png=png: p.write_bytes(png))
            written.append(out / name)
        put("report.md", report_markdown(title, runs, table, agg, figures, compute))
        written.append(write_table(out, tables_markdown(runs, table, agg)))
    if "csv" in formats:
        merged = merged_summary(runs)
        write_with(out / "report_summary.csv", lambda p: merged.to_csv(p, index=False))
        written.append(out / "report_summary.csv")
        if agg_frame is not None:
            write_with(out / "report_aggregate.csv", lambda p: agg_frame.to_csv(p, index=False))
            written.append(out / "report_aggregate.csv")
    if "latex" in formats:
        put("table.tex", tables_latex(runs, table, agg))
    return written


def tables_markdown(runs: Sequence[RunData], table: Table, agg: Table | None) -> str:
    """table.md: ``# name`` and the table (as ``harness run`` writes it), then across runs."""
    text = f"# {runs[0].name if len(runs) == 1 else _title(runs)}\n\n" + table_markdown(table)
    if agg is not None:
        text += "\n## Across runs\n\n" + table_markdown(agg)
    return text


def tables_latex(runs: Sequence[RunData], table: Table, agg: Table | None) -> str:
    from harness.report.latex import table_latex

    names = list(dict.fromkeys(r.name for r in runs))
    config = ", ".join(names)
    text = table_latex(table, config, f"tab:{slug('-'.join(names))}")
    if agg is not None:
        text += "\n" + table_latex(agg, config, f"tab:{slug('-'.join(names))}-across-runs")
    return text


def report_after_run(run_dir: Path) -> None:
    """report.html, report.md and table.tex for a run that just finished; never raises.

    (CSV is left out: for one run it would repeat summary.csv.)
    """
    try:
        build_report([run_dir], run_dir, formats=("html", "md", "latex"))
    except Exception as exc:  # the run's results stand without the report
        log.warning("report not written (%s: %s); retry with `harness report %s`",
                    type(exc).__name__, exc, run_dir)
