"""Paired comparisons of two models on the same test images: ``harness compare``.

For every metric, the difference ``value(A) - value(B)`` with a 95% interval from a paired
bootstrap (images resampled jointly, so both models are scored on the same draw each time) and
a two-sided p-value: Wilcoxon signed-rank on per-image values for per-image metrics; for
dataset-level metrics (dCF, ab histograms) the bootstrap's own p, twice the share of draws on
the other side of zero. Over several runs (seeds, splits) each run is compared on its own and
the table counts the runs in which A was better.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from harness.metrics import Metric
from harness.report.tables import fmt
from harness.rundir import RunDir
from harness.stats import paired_test

COLUMNS = ["run", "metric", "a", "b", "value_a", "value_b", "diff", "ci_low", "ci_high", "p",
           "test", "n", "better"]


def paired_difference(metric: Metric, a: np.ndarray, b: np.ndarray, n_resamples: int = 2000,
                      seed: int = 0) -> dict[str, float | str]:
    """``value(a) - value(b)`` of ``metric`` over paired per-image rows, its interval and p."""
    a, b = np.asarray(a), np.asarray(b)
    if len(a) != len(b):
        raise ValueError(f"{metric.name}: {len(a)} against {len(b)} images; not paired")
    n = len(a)
    value_a, value_b = metric.value(a), metric.value(b)
    diff = value_a - value_b
    idx = np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))
    draws = np.array([metric.value(a[i]) - metric.value(b[i]) for i in idx])
    lo, hi = np.percentile(draws, [2.5, 97.5])
    if metric.aggregate is None:
        p, test = paired_test(a, b), "wilcoxon"
    else:
        p = min(1.0, 2 * min(np.mean(draws <= 0), np.mean(draws >= 0)))
        test = "paired bootstrap"
    better = "" if metric.higher_is_better is None or diff == 0 else \
        "a" if (diff > 0) == metric.higher_is_better else "b"
    return {"value_a": value_a, "value_b": value_b, "diff": float(diff),
            "ci_low": float(lo), "ci_high": float(hi), "p": float(p), "test": test, "n": n,
            "better": better}


def compare_runs(run_dirs: Sequence[Path], a: str, b: str, metrics: Sequence[Metric],
                 n_resamples: int = 2000) -> pd.DataFrame:
    """One row per (run, metric) comparing models ``a`` and ``b`` (see the module docstring)."""
    records = []
    for run_dir in map(Path, run_dirs):
        rows = {m: RunDir(run_dir).model(m).rows() for m in (a, b)}
        for metric in metrics:
            ra, rb = rows[a].get(metric.name), rows[b].get(metric.name)
            if not isinstance(ra, np.ndarray) or not isinstance(rb, np.ndarray):
                continue
            records.append({"run": run_dir.name, "metric": metric.name, "a": a, "b": b,
                            **paired_difference(metric, ra, rb, n_resamples)})
    return pd.DataFrame.from_records(records, columns=COLUMNS)


def describe(frame: pd.DataFrame) -> str:
    """A Markdown table of ``compare_runs``' rows, then per metric how many runs favour A."""
    if frame.empty:
        return "No metric was scored for both models.\n"
    lines = ["| run | metric | A | B | A - B [95% CI] | p | better |",
             "|---|---|---|---|---|---|---|"]
    for r in frame.itertuples():
        lines.append(f"| {r.run} | {r.metric} | {fmt(r.value_a)} | {fmt(r.value_b)} | "
                     f"{fmt(r.diff, '+')} [{fmt(r.ci_low, '+')}, {fmt(r.ci_high, '+')}] | "
                     f"{r.p:.3g} ({r.test}) | {r.better or '-'} |")
    if frame["run"].nunique() > 1:
        lines += ["", "| metric | mean A - B | runs A better | runs B better | runs p < 0.05 |",
                  "|---|---|---|---|---|"]
        for metric, rows in frame.groupby("metric", sort=False):
            lines.append(f"| {metric} | {fmt(rows['diff'].mean(), '+')} | "
                         f"{(rows['better'] == 'a').sum()} | {(rows['better'] == 'b').sum()} | "
                         f"{(rows['p'] < 0.05).sum()} of {len(rows)} |")
    return "\n".join(lines) + "\n"
