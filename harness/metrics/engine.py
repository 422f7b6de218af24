"""Scoring engine: per-image rows for every metric, then values, intervals and paired tests."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from harness.metrics import ImageBatch, Metric, MetricUnavailable, ScoringContext
from harness.stats import bootstrap_interval, holm, paired_test

#: Row label of the ground truth, scored on descriptive metrics (no direction) only.
GROUND_TRUTH = "(ground truth)"


def compute_rows(
    metrics: Sequence[Metric],
    L: np.ndarray,
    ab_pred: np.ndarray,
    ab_true: np.ndarray,
    context: ScoringContext,
    batch_size: int = 50,
    progress: Callable[[int], None] | None = None,
) -> dict[str, np.ndarray | str]:
    """Per-image rows of each metric, or the reason it is unavailable, for one model."""
    parts: dict[str, list[np.ndarray]] = {m.name: [] for m in metrics}
    unavailable: dict[str, str] = {}
    for start in range(0, len(L), batch_size):
        sl = slice(start, start + batch_size)
        batch = ImageBatch(L[sl], ab_pred[sl], ab_true[sl], context)
        for metric in metrics:
            if metric.name in unavailable:
                continue
            try:
                parts[metric.name].append(np.asarray(metric.compute(batch), dtype=np.float64))
            except MetricUnavailable as exc:
                unavailable[metric.name] = str(exc)
        if progress:
            progress(len(batch))
    return {name: unavailable.get(name) or np.concatenate(rows) for name, rows in parts.items()}


def _interval(metric: Metric, rows: np.ndarray, n_resamples: int, seed: int):
    value = np.mean if metric.aggregate is None else metric.aggregate
    resamples = n_resamples if metric.aggregate is None else max(100, n_resamples // 5)
    return bootstrap_interval(rows, value, n_resamples=resamples, seed=seed)


def summarise(
    rows: Mapping[str, Mapping[str, np.ndarray | str]],
    metrics: Sequence[Metric],
    reference: str | None,
    n_resamples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """The long-form summary: one row per (model, metric).

    Columns: model, metric, value, ci_low, ci_high, n, p_vs_ref (Wilcoxon signed-rank on
    per-image values against ``reference``, Holm-corrected over the models per metric; empty for
    dataset-level metrics and the reference itself), significant, status and note.
    """
    records = []
    for metric in metrics:
        tested = []
        for model, by_metric in rows.items():
            got = by_metric.get(metric.name)
            if got is None:
                continue
            rec = {"model": model, "metric": metric.name, "value": np.nan, "ci_low": np.nan,
                   "ci_high": np.nan, "n": 0, "p_vs_ref": np.nan, "status": "ok", "note": ""}
            if isinstance(got, str):
                rec.update(status="unavailable", note=got)
            else:
                lo, hi = _interval(metric, got, n_resamples, seed)
                rec.update(value=metric.value(got), ci_low=lo, ci_high=hi, n=len(got))
                ref = rows.get(reference, {}).get(metric.name) if reference else None
                if (metric.aggregate is None and model != reference and model != GROUND_TRUTH
                        and isinstance(ref, np.ndarray) and len(ref) == len(got)):
                    rec["p_vs_ref"] = paired_test(got, ref)
                    tested.append(len(records))
            records.append(rec)
        adjusted = holm([records[i]["p_vs_ref"] for i in tested])
        for i, p in zip(tested, adjusted):
            records[i]["p_vs_ref"] = p
    frame = pd.DataFrame.from_records(records, columns=[
        "model", "metric", "value", "ci_low", "ci_high", "n", "p_vs_ref", "status", "note"])
    frame["significant"] = frame["p_vs_ref"] < alpha
    return frame


def per_image_frame(rows: Mapping[str, Mapping[str, np.ndarray | str]],
                    metrics: Sequence[Metric], images: Sequence[str]) -> pd.DataFrame:
    """Long-form per-image values (model, image, metric, value) of the per-image metrics."""
    frames = []
    for model, by_metric in rows.items():
        for metric in metrics:
            got = by_metric.get(metric.name)
            if metric.aggregate is None and isinstance(got, np.ndarray):
                frames.append(pd.DataFrame({"model": model, "image": list(images),
                                            "metric": metric.name, "value": got}))
    if not frames:
        return pd.DataFrame(columns=["model", "image", "metric", "value"])
    return pd.concat(frames, ignore_index=True)
