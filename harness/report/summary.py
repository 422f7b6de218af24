"""What a finished run writes for comparison: per_image.csv, summary.csv, table.md, samples.png."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from harness import assistance
from harness.atomic import write_with
from harness.config import RunConfig
from harness.data.loader import Splits
from harness.metrics import Metric
from harness.metrics.engine import per_image_frame, summarise
from harness.rundir import SUMMARY_COLUMNS, RunDir


def summary_frame(cfg: RunConfig, metrics: Sequence[Metric], rows: Mapping, statuses: Mapping,
                  reference: str | None) -> pd.DataFrame:
    """Long-form summary of every (model, metric), failed models and extra figures included.

    ``assisted`` is empty for automatic models, ``hints=N`` or ``oracle`` for the others
    (:mod:`harness.assistance`).
    """
    frame = summarise(rows, metrics, reference, n_resamples=cfg.report.bootstrap,
                      seed=cfg.seed, alpha=cfg.report.alpha)
    meta = {m.name: m for m in metrics}
    frame["direction"] = [{True: "higher", False: "lower", None: ""}[
        meta[n].higher_is_better] for n in frame["metric"]]
    frame["unit"] = [meta[n].unit for n in frame["metric"]]
    frame["granularity"] = [meta[n].granularity for n in frame["metric"]]
    extra = []
    for model, status in statuses.items():
        if status["status"] != "done":
            extra.append({"model": model, "metric": "", "status": "failed",
                          "note": status.get("error", "")})
        for name, value in (status.get("extra") or {}).items():
            extra.append({"model": model, "metric": name, "value": value, "status": "ok",
                          "granularity": "model", "direction": "higher"})
    if extra:
        frame = pd.concat([frame, pd.DataFrame(extra)], ignore_index=True)
    frame["assisted"] = [assistance.of_status(statuses.get(m)) for m in frame["model"]]
    return frame.reindex(columns=SUMMARY_COLUMNS)


def markdown_table(summary: pd.DataFrame, metrics: Sequence[Metric], models: Sequence[str],
                   reference: str | None, alpha: float, n_test: int,
                   statuses: Mapping | None = None) -> str:
    """One row per model, one column per metric: value [95% CI], best in bold, * if p < alpha.

    Rendered by the report package (:mod:`harness.report.markdown`), so ``table.md`` and the
    report's tables never disagree. ``metrics`` order the columns through ``summary``.
    """
    from harness.report.collect import normalise_summary
    from harness.report.markdown import table_markdown
    from harness.report.tables import summary_table

    order = {m.name: i for i, m in enumerate(metrics)}
    frame = normalise_summary(summary)
    frame = frame.iloc[sorted(range(len(frame)),
                              key=lambda i: order.get(frame["metric"].iloc[i], len(order)))]
    return table_markdown(summary_table(frame, models, reference, alpha, n_test, statuses))


def samples_figure(path: Path, splits: Splits, preds: Mapping[str, np.ndarray], count: int) -> None:
    """Grid of the first ``count`` test images: grey input | each model | ground truth."""
    from harness.report.figures import sample_pages

    L, ab_true = splits.test.arrays()
    count = min(count, len(L))
    if count == 0:
        return
    lab = np.concatenate([L[:count, ..., None], ab_true[:count]], axis=-1)
    page = sample_pages(lab, {m: p[:count] for m, p in preds.items()}, list(splits.test.names),
                        count, per_page=count)[0]
    write_with(path, lambda p: p.write_bytes(page))


def write_tables(run: RunDir, cfg: RunConfig, metrics: Sequence[Metric], rows: Mapping,
                 statuses: Mapping, splits: Splits) -> pd.DataFrame:
    """Write per_image.csv, summary.csv, table.md and samples.png; return the summary."""
    models = list(statuses)
    automatic = [m for m in models if statuses[m]["status"] == "done"
                 and not assistance.of_status(statuses[m])]
    done = [m for m in models if statuses[m]["status"] == "done"]
    reference = cfg.report.reference or (automatic[0] if automatic else None)
    summary = summary_frame(cfg, metrics, rows, statuses, reference)
    run.write_frame("per_image", per_image_frame(rows, metrics, splits.test.names))
    run.write_frame("summary", summary)
    run.write_table(f"# {cfg.name}\n\n" + markdown_table(
        summary, metrics, models, reference, cfg.report.alpha, len(splits.test), statuses))
    preds = {m: run.model(m).predictions() for m in done}
    samples_figure(run.path / "samples.png", splits, preds, cfg.report.samples)
    return summary
