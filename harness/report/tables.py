"""The comparison table as data (rows, columns, cells with flags), shared by every output format.

Two comparison tables: :func:`run_table` has one row per (run, model) with each value's 95%
interval, the best value of a run in bold and a mark where a model differs significantly from
the run's reference (user-assisted and oracle rows carry :mod:`harness.assistance`'s mark and
are never bold: the best is taken over automatic rows); :func:`aggregate_table` has one row
per (group, model) with the mean, standard deviation and number of runs. :func:`compute_table`
shows what each learned model's training computed (FLOPs and rates, from its ``status.json``).
Renderers (Markdown, LaTeX, HTML) only format these cells.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from harness import assistance
from harness.metrics.engine import GROUND_TRUTH
from harness.report.collect import HUMAN_PREFIX, RunData

ARROWS = {"higher": "↑", "lower": "↓"}


@dataclass
class Column:
    """One metric column: its name, direction (higher/lower/''), unit and kind."""

    metric: str
    direction: str = ""
    unit: str = ""
    granularity: str = ""

    @property
    def human(self) -> bool:
        return self.metric.startswith(HUMAN_PREFIX)

    @property
    def arrow(self) -> str:
        return ARROWS.get(self.direction, "")

    @property
    def header(self) -> str:
        """``psnr ↑ (dB)``: name, arrow, unit."""
        text = f"{self.metric} {self.arrow}".strip()
        return text + (f" ({self.unit})" if self.unit else "")


@dataclass
class Cell:
    """A value with its interval or spread; flags say how to show it."""

    value: float = math.nan
    low: float = math.nan
    high: float = math.nan
    std: float = math.nan
    n_runs: int = 0
    best: bool = False
    significant: bool = False
    unavailable: str = ""  # the reason, when the metric could not be computed

    @property
    def empty(self) -> bool:
        return not self.unavailable and math.isnan(self.value)


@dataclass
class Row:
    """One (run, model) or (group, model) row; ``failed`` holds the error of a failed model."""

    keys: list[str]
    model: str
    cells: dict[str, Cell] = field(default_factory=dict)
    failed: str = ""
    reference: bool = False
    note: str = ""  # e.g. "failed in 1 of 3 runs"
    assisted: str = ""  # "hints=N" or "oracle" (harness.assistance); "" automatic

    @property
    def special(self) -> bool:
        """Ground truth or a study's control: shown, never ranked."""
        return self.model.startswith("(")

    @property
    def mark(self) -> str:
        """† for a user-assisted row, ‡ for an oracle, "" for an automatic one."""
        return assistance.mark(self.assisted)

    @property
    def mark_title(self) -> str:
        """What the mark means for this row, e.g. "user-assisted: 10 hints from the ..."."""
        return assistance.describe(self.assisted)


@dataclass
class Table:
    """Rows and columns; ``key_names`` head the leading key columns (e.g. run, model)."""

    key_names: list[str]
    columns: list[Column]
    rows: list[Row]
    kind: str  # "runs" (value [interval]) or "aggregate" (mean ± std)
    unavailable: dict[str, str] = field(default_factory=dict)
    references: dict[str, str] = field(default_factory=dict)  # block key -> reference model
    alpha: float = 0.05
    n_images: list[int] = field(default_factory=list)

    def reference_for(self, row: Row) -> str | None:
        """The model ``row`` was tested against (its run's reference)."""
        if len(self.key_names) > 1:
            return self.references.get(row.keys[0])
        return next(iter(self.references.values()), None)


def fmt(x: float, sign: str = "") -> str:
    """Four significant digits (``sign="+"`` shows the sign of positives too); empty for NaN.

    >>> fmt(0.123456), fmt(2.5, "+"), fmt(float("nan"))
    ('0.1235', '+2.5', '')
    """
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    return f"{x:{sign}.4g}"


def _columns(summary: pd.DataFrame) -> list[Column]:
    """Metric columns in order of first appearance (config order); human-study columns last."""
    cols: dict[str, Column] = {}
    for _, r in summary[summary["metric"] != ""].iterrows():
        if r["metric"] not in cols:
            cols[r["metric"]] = Column(r["metric"], r["direction"], r["unit"], r["granularity"])
    ordered = list(cols.values())
    return [c for c in ordered if not c.human] + [c for c in ordered if c.human]


def _mark_best(rows: Sequence[Row], columns: Sequence[Column]) -> None:
    """Flag the best value of each ranked column among the automatic models (two or more
    needed); user-assisted and oracle rows are never ranked."""
    for col in columns:
        if col.direction not in ARROWS:
            continue
        cells = [r.cells[col.metric] for r in rows if not r.special and not r.failed
                 and not r.assisted and col.metric in r.cells
                 and not math.isnan(r.cells[col.metric].value)]
        if len(cells) < 2:
            continue
        values = np.array([c.value for c in cells])
        best = values.max() if col.direction == "higher" else values.min()
        for cell, v in zip(cells, values):
            cell.best = bool(np.isclose(v, best, rtol=1e-9, atol=0.0))


def _model_order_of(models: Iterable[str]) -> list[str]:
    """Models in first-seen order; ground truth, then other special rows, last."""
    seen = [m for m in dict.fromkeys(models) if m]
    special = [m for m in seen if m.startswith("(")]
    return ([m for m in seen if not m.startswith("(")]
            + sorted(special, key=lambda m: m != GROUND_TRUTH))


def _model_order(runs: Sequence[RunData]) -> list[str]:
    return _model_order_of(m for run in runs for m in run.models)


def _add_block(table: Table, summary: pd.DataFrame, order: Sequence[str],
               reference: str | None, statuses: Mapping[str, Mapping],
               run: Sequence[str] = ()) -> None:
    """Append one run's rows to ``table``, keyed by ``run`` + model (best marked per run)."""
    present = set(summary["model"]) | set(statuses)
    block = []
    for model in order:
        if model not in present:
            continue
        mine = summary[summary["model"] == model]
        row = Row([*run, model] if run else [model], model, reference=model == reference)
        status = statuses.get(model, {})
        row.assisted = assistance.of_status(status) or next(
            (a for a in mine.get("assisted", ()) if isinstance(a, str) and a), "")
        failed = mine[mine["status"] == "failed"]
        if status.get("status") == "failed" or len(failed):
            row.failed = (status.get("error")
                          or (failed["note"].iloc[0] if len(failed) else "") or "failed")
        for _, r in mine[mine["metric"] != ""].iterrows():
            tested = model != reference or r["metric"].startswith(HUMAN_PREFIX)  # vs control
            cell = Cell(r["value"], r["ci_low"], r["ci_high"],
                        significant=bool(r["significant"]) and tested)
            if r["status"] == "unavailable":
                cell = Cell(unavailable=r["note"] or "unavailable")
                table.unavailable.setdefault(r["metric"], cell.unavailable)
            row.cells[r["metric"]] = cell
        block.append(row)
    _mark_best(block, table.columns)
    table.rows.extend(block)
    if reference:
        table.references[run[0] if run else ""] = reference


def summary_table(summary: pd.DataFrame, models: Sequence[str], reference: str | None,
                  alpha: float, n_images: int, statuses: Mapping[str, Mapping] | None = None
                  ) -> Table:
    """The table of one run straight from its summary frame (see ``normalise_summary``).

    ``models`` in row order; ground truth and a study's control rows follow them.
    """
    order = list(models) + [m for m in _model_order_of(summary["model"]) if m not in models]
    table = Table(["model"], _columns(summary), [], kind="runs", alpha=alpha,
                  n_images=[n_images])
    _add_block(table, summary, order, reference, statuses or {})
    return table


def run_table(runs: Sequence[RunData]) -> Table:
    """One row per (run, model); the run column is left out for a single run."""
    columns = _columns(pd.concat([r.summary for r in runs], ignore_index=True))
    multi = len(runs) > 1
    table = Table(["run", "seed", "model"] if multi else ["model"], columns, [], kind="runs",
                  alpha=runs[0].alpha)
    for run in runs:
        _add_block(table, run.summary, _model_order([run]), run.reference, run.statuses,
                   (run.label, str(run.seed)) if multi else ())
        test = (run.data_report.get("splits") or {}).get("test")
        if test is not None:
            table.n_images.append(int(test))
    return table


def aggregate_table(runs: Sequence[RunData], agg: pd.DataFrame) -> Table:
    """One row per (group, model): mean ± std over its runs, n runs; best mean in bold."""
    columns = _columns(pd.concat([r.summary for r in runs], ignore_index=True))
    groups = list(dict.fromkeys(r.group for r in runs))
    multi = len(groups) > 1
    table = Table(["group", "model"] if multi else ["model"], columns, [], kind="aggregate",
                  alpha=runs[0].alpha)
    order = _model_order(runs)
    gone: dict[tuple[str, str], set[str]] = {}  # (group, model) -> metrics unavailable there
    for run in runs:
        rows = run.summary[run.summary["status"] == "unavailable"]
        for model, metric, note in zip(rows["model"], rows["metric"], rows["note"]):
            table.unavailable.setdefault(metric, note or "unavailable")
            gone.setdefault((run.group, model), set()).add(metric)
    for group in groups:
        mine = agg[agg["group"] == group]
        n_group = sum(r.group == group for r in runs)
        block = []
        for model in order:
            rows = mine[mine["model"] == model]
            if rows.empty and (group, model) not in gone:
                continue
            row = Row([group, model] if multi else [model], model,
                      assisted=next((a for r in runs if r.group == group
                                     and (a := r.assisted(model))), ""))
            n_failed = int(rows["n_failed"].max()) if len(rows) else 0
            ok = rows[rows["metric"].fillna("") != ""]
            if n_failed and ok.empty:
                error = next((e for e in rows["error"] if isinstance(e, str) and e), "")
                runs_text = "its only run" if n_failed == 1 else f"all {n_failed} runs"
                row.failed = f"{error} (in {runs_text})" if error else f"in {runs_text}"
            elif n_failed:
                row.note = f"failed in {n_failed} of {n_group} runs"
            for _, r in ok.iterrows():
                row.cells[r["metric"]] = Cell(r["mean"], r["min"], r["max"], std=r["std"],
                                              n_runs=int(r["n_runs"]))
            for metric in gone.get((group, model), set()) - set(row.cells):
                row.cells[metric] = Cell(unavailable=table.unavailable[metric])
            block.append(row)
        _mark_best(block, columns)
        table.rows.extend(block)
    return table


def smallest_wilcoxon_p(n: int) -> float:
    """The smallest two-sided p the exact Wilcoxon signed-rank test gives for ``n`` pairs:
    every difference of one sign, probability 2 / 2**n.

    >>> smallest_wilcoxon_p(3), smallest_wilcoxon_p(6)
    (0.25, 0.03125)
    """
    return 2.0 / 2.0**n


def legend(table: Table) -> list[str]:
    """Plain-text sentences explaining the marks of ``table`` (renderers restyle them)."""
    lines = []
    if table.kind == "runs":
        counts = sorted(set(table.n_images))
        images = (f"{counts[0]} test images. " if len(counts) == 1 else
                  f"{'/'.join(map(str, counts))} test images per run. " if counts else "")
        lines.append(f"{images}Values with 95% bootstrap intervals; best in bold; "
                     f"↑/↓ higher/lower is better.")
        refs = sorted(set(table.references.values()))
        if refs:
            lines.append(f"* differs from {' / '.join(f'`{r}`' for r in refs)} (Wilcoxon "
                         f"signed-rank on per-image values, Holm-corrected, p < {table.alpha}).")
            fewest = min(counts) if counts else 0
            if fewest and smallest_wilcoxon_p(fewest) >= table.alpha:
                lines.append(f"With {fewest} test images no per-image difference can reach "
                             f"p < {table.alpha}: the smallest two-sided Wilcoxon p is "
                             f"2/2^{fewest} = {fmt(smallest_wilcoxon_p(fewest))}, so no * can "
                             f"appear; at least 6 images are needed.")
    else:
        lines.append("Mean ± standard deviation across runs (n = number of runs); best mean "
                     "in bold; ↑/↓ higher/lower is better.")
    lines += assistance.footnotes(r.assisted for r in table.rows)
    if any(c.human for c in table.columns):
        lines.append("human-* columns come from the run's human study (`harness study "
                     "import`): shares of votes with Wilson 95% intervals; a * there marks a "
                     "difference from the real images (Fisher's exact test) or, for 2AFC, from "
                     "50%.")
    return lines


#: Columns of the compute table after its key columns (figures from each status.json).
COMPUTE_HEADERS = ("parameters", "GFLOP/step", "steps", "train s", "images/s",
                   "achieved GFLOP/s", "% of attainable")


@dataclass
class ComputeTable:
    """What each learned model's training computed: one row of formatted cells per model."""

    key_names: list[str]
    rows: list[list[str]]
    notes: list[str]
    headers: tuple[str, ...] = COMPUTE_HEADERS


def _number(x: Any, spec: str) -> str:
    return "" if x is None else format(x, spec)


def compute_table(runs: Sequence[RunData]) -> ComputeTable | None:
    """The compute table of ``runs``, or None when no model recorded compute figures."""
    multi = len(runs) > 1
    rows, probes = [], {}
    for run in runs:
        for model in run.models:
            c = run.statuses.get(model, {}).get("compute")
            if not isinstance(c, dict):
                continue
            gflop = None if c.get("flops_per_step") is None else c["flops_per_step"] / 1e9
            rows.append([*((run.label,) if multi else ()), model,
                         _number(c.get("parameters"), ","), fmt(gflop),
                         _number(c.get("steps"), "d"), _number(c.get("train_seconds"), ".1f"),
                         fmt(c.get("images_per_s")), fmt(c.get("achieved_gflops")),
                         _number(c.get("percent_of_attainable"), ".1f")])
            probe = c.get("probe")
            if isinstance(probe, dict):
                probes[json.dumps(probe, sort_keys=True)] = probe
    if not rows:
        return None
    notes = ["GFLOP/step: the convolutions' and matrix products' floating-point operations "
             "(2 per multiply-add) in one full-batch training step, forward and backward "
             "(torch: torch.utils.flop_counter over the first step; Keras: TensorFlow's traced "
             "graph of the step); element-wise work is not counted. Achieved: GFLOP/step × "
             "steps / train seconds, the whole fit's wall time (data, logging and "
             "checkpoints included). On a GPU, % of attainable is the model FLOPs "
             "utilisation against the matrix product's rate."]
    notes += [f"Attainable: {p.get('gflops')} GFLOP/s, the fastest {p.get('dtype')} "
              f"{p.get('size')}-square torch.mm on {p.get('device')} ({p.get('cpu')}, "
              f"{p.get('threads')} threads, torch {p.get('torch')}), measured "
              f"{p.get('measured')} at a load average of {p.get('load_average')}; other "
              f"work on the machine then lowers it (delete attainable.json in the harness "
              f"cache to measure again)." for p in probes.values()]
    return ComputeTable(["run", "model"] if multi else ["model"], rows, notes)
