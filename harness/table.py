"""The comparison outputs of a run: per_image.csv, summary.csv, table.md and samples.png."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from harness.atomic import write_text, write_with
from harness.color import lab_to_rgb
from harness.config import RunConfig
from harness.data.loader import Splits
from harness.metrics import Metric
from harness.metrics.engine import GROUND_TRUTH, per_image_frame, summarise

SUMMARY_COLUMNS = ["model", "metric", "value", "ci_low", "ci_high", "n", "p_vs_ref",
                   "significant", "direction", "unit", "granularity", "status", "note"]


def summary_frame(cfg: RunConfig, metrics: Sequence[Metric], rows: Mapping, statuses: Mapping,
                  reference: str | None) -> pd.DataFrame:
    """Long-form summary of every (model, metric), failed models and extra figures included."""
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
    return frame.reindex(columns=SUMMARY_COLUMNS)


def _fmt(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    return f"{x:.4g}"


def markdown_table(summary: pd.DataFrame, metrics: Sequence[Metric], models: Sequence[str],
                   reference: str | None, alpha: float, n_test: int) -> str:
    """One row per model, one column per metric: value [95% CI], best in bold, * if p < alpha."""
    meta = {m.name: m for m in metrics}
    ok = summary[summary["status"] == "ok"]
    columns = [m.name for m in metrics] + sorted(
        set(ok["metric"]) - set(meta) - {""})
    header = ["model"] + [
        f"{c} {meta[c].arrow}".strip() + (f" ({meta[c].unit})" if c in meta and meta[c].unit
                                            else "") if c in meta else c for c in columns]
    best: dict[str, float] = {}
    for c in columns:
        m = meta.get(c)
        vals = ok[(ok["metric"] == c) & (ok["model"] != GROUND_TRUTH)]["value"].dropna()
        if m is not None and m.higher_is_better is not None and len(vals) > 1:
            best[c] = vals.max() if m.higher_is_better else vals.min()
    notes: dict[str, str] = {}
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for model in list(models) + ([GROUND_TRUTH] if GROUND_TRUTH in set(summary["model"]) else []):
        mine = summary[summary["model"] == model]
        failed = mine[mine["status"] == "failed"]
        if len(failed):
            lines.append(f"| {model} | failed: {failed['note'].iloc[0]} |"
                         + " |" * (len(columns) - 1))
            continue
        cells = [model + (" (ref)" if model == reference else "")]
        for c in columns:
            row = mine[mine["metric"] == c]
            if not len(row):
                cells.append("")
                continue
            r = row.iloc[0]
            if r["status"] == "unavailable":
                notes[c] = r["note"]
                cells.append("unavailable")
                continue
            text = _fmt(r["value"])
            if c in best and np.isclose(r["value"], best[c]):
                text = f"**{text}**"
            if not math.isnan(r["ci_low"]):
                text += f" [{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]"
            if r["p_vs_ref"] == r["p_vs_ref"] and r["p_vs_ref"] < alpha:
                text += " *"
            cells.append(text)
        lines.append("| " + " | ".join(cells) + " |")
    legend = [f"\n{n_test} test images. Values with 95% bootstrap intervals; best in bold; "
              f"↑/↓ higher/lower is better."]
    if reference:
        legend.append(f"* differs from `{reference}` (Wilcoxon signed-rank on per-image values, "
                      f"Holm-corrected, p < {alpha}).")
    legend += [f"`{c}` unavailable: {why}" for c, why in notes.items()]
    return "\n".join(lines) + "\n" + "\n".join(legend) + "\n"


def samples_figure(path: Path, splits: Splits, preds: Mapping[str, np.ndarray], count: int) -> None:
    """Grid of test images: grey input | each model | ground truth."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    L, ab_true = splits.test.arrays()
    count = min(count, len(L))
    if count == 0:
        return
    titles = ["input (L)", *preds, "ground truth"]
    fig, axes = plt.subplots(count, len(titles), figsize=(2 * len(titles), 2 * count),
                             squeeze=False)
    for i in range(count):
        grey = np.zeros_like(ab_true[i])
        images = [grey, *(p[i] for p in preds.values()), ab_true[i]]
        for j, ab in enumerate(images):
            ax = axes[i, j]
            ax.imshow(lab_to_rgb(np.concatenate([L[i][..., None], ab], axis=-1)))
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(titles[j], fontsize=9)
        axes[i, 0].set_ylabel(splits.test.names[i], fontsize=8)
    fig.tight_layout()
    write_with(path, lambda p: fig.savefig(p, dpi=100, format="png"))
    plt.close(fig)


def write_tables(run_dir: Path, cfg: RunConfig, metrics: Sequence[Metric], rows: Mapping,
                 statuses: Mapping, splits: Splits) -> pd.DataFrame:
    """Write per_image.csv, summary.csv, table.md and samples.png; return the summary."""
    models = list(statuses)
    done = [m for m in models if statuses[m]["status"] == "done"]
    reference = cfg.report.reference or (done[0] if done else None)
    summary = summary_frame(cfg, metrics, rows, statuses, reference)
    write_with(run_dir / "per_image.csv", lambda p: per_image_frame(
        rows, metrics, splits.test.names).to_csv(p, index=False))
    write_with(run_dir / "summary.csv", lambda p: summary.to_csv(p, index=False))
    write_text(run_dir / "table.md", f"# {cfg.name}\n\n" + markdown_table(
        summary, metrics, models, reference, cfg.report.alpha, len(splits.test)))
    preds = {m: np.load(run_dir / "models" / m / "pred_ab.npy") for m in done}
    samples_figure(run_dir / "samples.png", splits, preds, cfg.report.samples)
    return summary
