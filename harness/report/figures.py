"""The report's figures as PNG bytes (matplotlib's Agg canvas; no display, no pyplot state).

Per run: pages of the sample grid (grey input | each model | ground truth), colorfulness of each
model's predictions against the ground truth, 2-D ab histograms (log scale), the accuracy-vs-
threshold curve behind AuC, training loss curves, and human plausibility against seed 003's goals.
A figure that cannot be drawn (no predictions, no loss.csv, no votes) carries a note instead.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from harness.color import lab_to_rgb, to_uint8, zhang313
from harness.metrics.engine import GROUND_TRUTH
from harness.report.collect import RunData

#: Test images per page of the sample grid.
PER_PAGE = 4
#: Test images the distribution plots use at most (evenly spaced), bounding the report's time.
MAX_PLOT_IMAGES = 500
#: Pixels sampled for the ab histograms (every k-th pixel beyond this).
MAX_HIST_PIXELS = 2_000_000
#: Seed 003's goals for the share of colorized images rated plausible.
DEFAULT_GOALS = (("base", 0.40), ("target", 0.60), ("stretch", 1.00))
STUDY_HINT = ("No human votes for this run yet. Export a study kit with `harness study export "
              "RUN_DIR --out KIT_DIR`, let raters open KIT_DIR/index.html (works offline), "
              "import their votes with `harness study import RUN_DIR votes.csv` and rerun "
              "`harness report RUN_DIR`.")


@dataclass
class Figure:
    """One plot: ``png`` bytes, or ``None`` and a ``note`` saying why it is missing."""

    key: str
    title: str
    caption: str = ""
    png: bytes | None = None
    note: str = ""
    pages: list[bytes] = field(default_factory=list)  # the sample grid's pages


def _figure(**kwargs):
    """A matplotlib Figure on the Agg canvas (matplotlib imported only when drawing)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure as MplFigure

    fig = MplFigure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def _png(fig, dpi: int = 100) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def model_colours(models: Sequence[str]) -> dict[str, str]:
    """A stable colour per model (tab10 order); ground truth black, real-image control grey."""
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
               "#7f7f7f", "#bcbd22", "#17becf"]
    out = {m: palette[i % len(palette)] for i, m in enumerate(m for m in models
                                                             if not m.startswith("("))}
    out.update({m: "#444444" for m in models if m.startswith("(")})
    out[GROUND_TRUTH] = "#000000"
    return out


def _rgb(L: np.ndarray, ab: np.ndarray) -> np.ndarray:
    return lab_to_rgb(np.concatenate([np.asarray(L, np.float32)[..., None],
                                      np.asarray(ab, np.float32)], axis=-1))


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


def _fit(draw, text: str, font, width: int) -> str:
    """``text``, shortened with an ellipsis until it fits ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def sample_pages(lab: np.ndarray, preds: Mapping[str, np.ndarray], names: Sequence[str],
                 max_images: int, per_page: int = PER_PAGE) -> list[bytes]:
    """Pages of up to ``per_page`` test images: grey input | each model | ground truth.

    Drawn with Pillow (fast, pixel-exact): each image is enlarged by an integer factor (nearest
    neighbour) to at least 96 pixels, or halved while it is over 256; column titles on top,
    image names on the left.
    """
    from PIL import Image, ImageDraw

    count = min(max_images, len(lab))
    titles = ["input (L)", *preds, "ground truth"]
    side = lab.shape[1]
    scale = max(1, -(-96 // side))
    cell = side * scale
    while cell > 256:
        cell //= 2
    pad, top, left = 4, 22, 104
    font = _font(12)
    pages = []
    for start in range(0, count, per_page):
        rows = list(range(start, min(start + per_page, count)))
        width = left + len(titles) * (cell + pad)
        height = top + len(rows) * (cell + pad)
        canvas = Image.new("RGB", (width, height), "white")
        draw = ImageDraw.Draw(canvas)
        for j, title in enumerate(titles):
            x = left + j * (cell + pad)
            text = _fit(draw, title, font, cell)
            draw.text((x + cell / 2, top / 2), text, fill="black", font=font, anchor="mm")
        for i, idx in enumerate(rows):
            y = top + i * (cell + pad)
            L, ab_true = lab[idx, ..., 0], lab[idx, ..., 1:]
            images = [np.zeros_like(ab_true), *(p[idx] for p in preds.values()), ab_true]
            for j, ab in enumerate(images):
                rgb = Image.fromarray(to_uint8(_rgb(L, ab)))
                resample = Image.Resampling.NEAREST if cell >= side else Image.Resampling.LANCZOS
                canvas.paste(rgb.resize((cell, cell), resample), (left + j * (cell + pad), y))
            name = names[idx] if idx < len(names) else f"#{idx}"
            draw.text((left - 6, y + cell / 2), _fit(draw, name, font, left - 10), fill="black",
                      font=font, anchor="rm")
        buf = io.BytesIO()
        canvas.save(buf, format="PNG", optimize=False)
        pages.append(buf.getvalue())
    return pages


def _colorfulness(L: np.ndarray, ab: np.ndarray) -> np.ndarray:
    from harness.metrics.basic import colorfulness_rgb

    return np.concatenate([colorfulness_rgb(_rgb(L[i:i + 16], ab[i:i + 16]))
                           for i in range(0, len(L), 16)])


def _margins(fig, left: float = 0.75, right: float = 0.25, bottom: float = 0.6,
             top: float = 0.4, wspace: float = 0.35, hspace: float = 0.55) -> None:
    """Fixed margins in inches (cheaper than constrained layout, and as tidy for these plots)."""
    w, h = fig.get_size_inches()
    fig.subplots_adjust(left=left / w, right=1 - right / w, bottom=bottom / h, top=1 - top / h,
                        wspace=wspace, hspace=hspace)


def _grid(n: int, width: float = 3.0, height: float = 2.6, cols: int = 4, right: float = 0.25):
    """A figure of ``n`` panels, ``cols`` per row, each about width x height inches."""
    cols = min(cols, n)
    rows = math.ceil(n / cols)
    fig = _figure(figsize=(width * cols + right, height * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    _margins(fig, right=right, bottom=0.6, top=0.35)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    return fig, axes.ravel()[:n]


def colorfulness_figure(lab: np.ndarray, preds: Mapping[str, np.ndarray],
                        colours: Mapping[str, str]) -> bytes:
    """Per-image colorfulness of each model (one row each) against the ground truth's (top row).

    Every image is a dot; the box spans the quartiles (bar: median, line: range); the dashed
    line is the ground truth's mean: a model whose dots sit left of it colorizes too timidly.
    """
    from matplotlib.patches import Rectangle

    L = np.asarray(lab[..., 0])
    rows = {"ground truth": _colorfulness(L, np.asarray(lab[..., 1:]))}
    rows.update({m: _colorfulness(L, np.asarray(ab)) for m, ab in preds.items()})
    fig = _figure(figsize=(7.5, 0.55 * len(rows) + 1.0))
    ax = fig.subplots()
    _margins(fig, left=1.4, right=1.1, bottom=0.6, top=0.15)
    rng = np.random.default_rng(0)
    positions = np.arange(len(rows))[::-1]
    for y, (name, values) in zip(positions, rows.items()):
        colour = colours.get(name, "#000000") if name != "ground truth" else "#000000"
        q1, median, q3 = np.percentile(values, [25, 50, 75])
        ax.hlines(y, values.min(), values.max(), color=colour, linewidth=1)
        ax.add_patch(Rectangle((q1, y - 0.22), q3 - q1, 0.44, fill=False, edgecolor=colour))
        ax.vlines(median, y - 0.22, y + 0.22, color=colour, linewidth=2)
        jitter = rng.uniform(-0.15, 0.15, len(values)) if len(values) > 1 else 0.0
        ax.scatter(values, y + jitter, s=12 if len(values) < 200 else 4, color=colour,
                   alpha=0.8 if len(values) < 200 else 0.35, zorder=3)
        ax.text(1.01, y, f"mean {values.mean():.3g}", transform=ax.get_yaxis_transform(),
                va="center", fontsize=8, color=colour)
    ax.axvline(rows["ground truth"].mean(), color="#555555", linestyle="--", linewidth=1)
    ax.set_yticks(positions, list(rows), fontsize=9)
    ax.set_xlabel("colorfulness per image (Hasler & Süsstrunk 2003)")
    ax.set_xlim(left=0)
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def _histogram_grid(ab: np.ndarray, bins) -> np.ndarray:
    flat = np.asarray(ab, np.float32).reshape(-1, 2)
    step = max(1, math.ceil(len(flat) / MAX_HIST_PIXELS))
    counts = bins.histogram(flat[::step])
    index, shape, _ = bins.lattice
    grid = np.zeros(shape)
    grid[index[:, 0], index[:, 1]] = counts / max(counts.sum(), 1.0)
    return grid


def ab_histogram_figure(lab: np.ndarray, preds: Mapping[str, np.ndarray]) -> bytes:
    """2-D histograms of ab on Zhang et al.'s 313 bins, log colour scale: truth, then models."""
    bins = zhang313()
    panels = {"ground truth": _histogram_grid(lab[..., 1:], bins)}
    panels.update({m: _histogram_grid(ab, bins) for m, ab in preds.items()})
    _, _, width = bins.lattice
    lo = bins.centres.min(axis=0) - width / 2
    hi = bins.centres.max(axis=0) + width / 2
    positive = [g[g > 0].min() for g in panels.values() if (g > 0).any()]
    from matplotlib.colors import LogNorm

    norm = LogNorm(vmin=min(positive) if positive else 1e-6, vmax=1.0)
    fig, axes = _grid(len(panels), width=2.6, height=2.7, right=1.3)
    image = None
    for ax, (name, grid) in zip(axes, panels.items()):
        shown = np.ma.masked_where(grid <= 0, grid)
        # grid[i, j]: i indexes a, j indexes b; show a across, b upwards (origin lower).
        image = ax.imshow(shown.T, origin="lower", extent=(lo[0], hi[0], lo[1], hi[1]),
                          norm=norm, cmap="viridis", interpolation="nearest")
        ax.set_facecolor("#f4f4f4")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("a", fontsize=8)
        ax.set_ylabel("b", fontsize=8)
    if image is not None:
        w, h = fig.get_size_inches()
        bar = fig.add_axes((1 - 1.05 / w, 0.6 / h, 0.15 / w, 1 - 0.95 / h))
        fig.colorbar(image, cax=bar, label="share of pixels (log)")
    return _png(fig)


def auc_figure(curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
               colours: Mapping[str, str], title: str = "") -> bytes:
    """Accuracy (share of pixels with ab error <= threshold) against threshold, per model.

    The legend's AuC is the curve's mean over the thresholds, as the ``auc`` metric defines it.
    """
    fig = _figure(figsize=(6.5, 3.8))
    ax = fig.subplots()
    _margins(fig, left=0.75, right=0.2, bottom=0.6, top=0.2 + 0.3 * bool(title))
    for model, (thresholds, accuracy) in curves.items():
        thresholds = np.asarray(thresholds, dtype=float)
        accuracy = np.asarray(accuracy, dtype=float)
        ax.plot(thresholds, accuracy, color=colours.get(model), linewidth=1.8,
                label=f"{model} (AuC {accuracy.mean():.3f})")
    ax.set_xlabel("threshold on ab error (Lab units)")
    ax.set_ylabel("share of pixels within threshold")
    ax.set_xlim(0, 150)
    ax.set_ylim(0, 1.01)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    return _png(fig)


def loss_figure(curves: Mapping[str, pd.DataFrame], colours: Mapping[str, str]) -> bytes:
    """Training loss against step, one panel per model (losses differ in scale)."""
    fig, axes = _grid(len(curves), width=3.4, height=2.6, cols=3)
    for ax, (model, frame) in zip(axes, curves.items()):
        steps = frame["step"].to_numpy(dtype=float)
        loss = frame["loss"].to_numpy(dtype=float)
        ax.plot(steps, loss, color=colours.get(model), alpha=0.35 if len(loss) > 50 else 1.0,
                linewidth=1)
        if len(loss) > 50:
            window = max(2, len(loss) // 25)
            smooth = pd.Series(loss).rolling(window, min_periods=1).mean()
            ax.plot(steps, smooth, color=colours.get(model), linewidth=2,
                    label=f"mean of {window} steps")
            ax.legend(fontsize=7)
        finite = loss[np.isfinite(loss)]
        if len(finite) and finite.min() > 0 and finite.max() / finite.min() > 20:
            ax.set_yscale("log")
        ax.set_title(model, fontsize=10)
        ax.set_xlabel("step", fontsize=8)
        ax.set_ylabel("training loss", fontsize=8)
        ax.grid(alpha=0.3)
    return _png(fig)


def _goals() -> tuple[tuple[str, float], ...]:
    try:
        from harness.study.stats import GOALS
    except ImportError:
        return DEFAULT_GOALS
    return tuple(GOALS)


def human_figure(rows: pd.DataFrame, colours: Mapping[str, str],
                 goals: Sequence[tuple[str, float]]) -> bytes:
    """A human-study rate per model with its interval, against horizontal goal lines.

    ``rows``: summary rows of one ``human-*`` metric (rates in [0, 1] or percent); the
    ground-truth row is the real-image control.
    """
    rows = rows.reset_index(drop=True)
    percent = rows[["value", "ci_low", "ci_high"]].to_numpy(dtype=float)
    if np.nanmax(np.abs(percent)) <= 1.0 + 1e-9:
        percent = percent * 100.0  # shares in [0, 1]
    labels = ["real images (control)" if m == GROUND_TRUTH else m for m in rows["model"]]
    fig = _figure(figsize=(max(5.0, 1.1 * len(rows) + 3.0), 4.0))
    ax = fig.subplots()
    _margins(fig, left=0.8, right=0.2, bottom=1.0, top=0.2)
    for i, (model, (value, low, high)) in enumerate(zip(rows["model"], percent)):
        err = None
        if not (math.isnan(low) or math.isnan(high)):
            err = [[max(value - low, 0.0)], [max(high - value, 0.0)]]
        colour = "#9a9a9a" if model == GROUND_TRUTH else colours.get(model, "#888888")
        ax.bar(i, value, color=colour, alpha=0.85, width=0.6)
        ax.errorbar(i, value, yerr=err, color="black", capsize=5, linewidth=1.2)
        n = rows["n"].iloc[i]
        if n == n:
            ax.text(i, 1.5, f"n={int(n)}", ha="center", fontsize=7, color="white")
    for name, level in goals:
        ax.axhline(100 * level, color="#c0392b", linestyle=":", linewidth=1.2)
        ax.text(len(rows) - 0.45, 100 * level, f"{name} {100 * level:.0f}%", va="center",
                fontsize=8, color="#c0392b",
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 1})
    ax.set_xticks(range(len(rows)), labels, rotation=15, ha="right", fontsize=8)
    ax.set_xlim(-0.6, len(rows) + 0.5)
    ax.set_ylim(0, 105)
    ax.set_ylabel(f"{rows['metric'].iloc[0]} (%)")
    return _png(fig)


def _human(run: RunData, colours: Mapping[str, str]) -> Figure:
    """Plausibility against seed 003's goals; or, for a 2AFC study, the fooling rate vs 50%."""
    human = run.human()
    human = human[human["value"].notna() & ~human["model"].isin(["(all raters)"])]
    plausible = human[human["metric"] == "human-plausible"]
    fooling = human[human["metric"] == "human-fooling"]
    if len(plausible):
        fig = Figure("human", "Human plausibility",
                     "Share of each method's colorized images that raters judged plausible, with "
                     "95% (Wilson) intervals, beside the real-image control; dotted lines are "
                     "seed 003's goals (40 / 60 / 100 %).")
        return _attempt(fig, lambda: human_figure(plausible, colours, _goals()))
    if len(fooling):
        fig = Figure("human", "Human study: fooling rate (2AFC)",
                     "Share of trials in which raters took the colorized image for the real one, "
                     "with 95% intervals; 50% means indistinguishable.")
        return _attempt(fig, lambda: human_figure(fooling, colours,
                                                  (("indistinguishable", 0.5),)))
    return Figure("human", "Human plausibility", note=STUDY_HINT)


def _auc_curves(lab: np.ndarray, preds: Mapping[str, np.ndarray]):
    """(thresholds, mean accuracy curve) per model, from the AuC metric's own functions."""
    from harness.metrics.auc import THRESHOLDS, ab_error, accuracy_curves

    truth = lab[..., 1:]
    out = {}
    for model, ab in preds.items():
        curves = np.concatenate([
            accuracy_curves(ab_error(ab[i:i + 32], truth[i:i + 32]), thresholds=THRESHOLDS)
            for i in range(0, len(ab), 32)])
        out[model] = (THRESHOLDS, curves.mean(axis=0))
    return out


def _attempt(figure: Figure, draw: Callable[[], bytes]) -> Figure:
    try:
        figure.png = draw()
    except Exception as exc:  # a plot must never sink the report
        figure.note = f"could not draw: {type(exc).__name__}: {exc}"
    return figure


def run_figures(run: RunData, max_samples: int, colours: Mapping[str, str]) -> list[Figure]:
    """Every figure of one run, in report order; missing inputs give notes, not errors."""
    lab = run.test_lab()
    preds = run.predictions()
    no_arrays = ("this run has no test_lab.npy (made by an older harness?)" if lab is None
                 else "no trained model left predictions (pred_ab.npy)")
    figures = []
    subset = ""

    samples = Figure("samples", "Sample colorizations",
                     f"Test images, {PER_PAGE} per page: grey input | each model | ground truth.")
    if lab is not None and len(lab) and max_samples > 0:
        try:
            samples.pages = sample_pages(lab, preds, run.image_names, max_samples)
        except Exception as exc:
            samples.note = f"could not draw: {type(exc).__name__}: {exc}"
        if len(lab) > max_samples:
            samples.caption += f" First {max_samples} of {len(lab)} test images."
    else:
        samples.note = "no test images in this run" if lab is not None else no_arrays
    figures.append(samples)

    plots = [
        ("colorfulness", "Colorfulness against ground truth",
         "Colorfulness of every test image (dots; boxes span the quartiles) as each model "
         "colorizes it and in the ground truth (top row); the dashed line is the ground truth's "
         "mean.",
         lambda: colorfulness_figure(lab, preds, colours)),
        ("ab-histogram", "ab histograms",
         "Share of test pixels per ab bin (Zhang et al.'s 313 bins), log colour scale; a model "
         "that matches the ground truth's spread of colours has a similar footprint.",
         lambda: ab_histogram_figure(lab, preds)),
    ]
    if lab is not None and len(lab) > MAX_PLOT_IMAGES:  # bound the time on huge test sets
        pick = np.linspace(0, len(lab) - 1, MAX_PLOT_IMAGES).round().astype(np.intp)
        subset = f" Drawn from {MAX_PLOT_IMAGES} of the {len(lab)} test images, evenly spaced."
        lab, preds = lab[pick], {m: ab[pick] for m, ab in preds.items()}
        plots = [(k, t, c + subset, d) for k, t, c, d in plots]
    for key, title, caption, draw in plots:
        fig = Figure(key, title, caption)
        figures.append(_attempt(fig, draw) if preds and lab is not None
                       else Figure(key, title, caption, note=no_arrays))

    auc = Figure("auc", "Accuracy against threshold (AuC)",
                 "Share of pixels whose ab error (Euclidean, Lab units) is within each "
                 "threshold 0..150, averaged over images; its mean over thresholds is the plain "
                 "AuC (Zhang et al. 2016).")
    auc.caption += subset
    figures.append(_attempt(auc, lambda: auc_figure(_auc_curves(lab, preds), colours))
                   if preds and lab is not None
                   else Figure(auc.key, auc.title, auc.caption, note=no_arrays))

    curves = {m: f for m in run.trained if (f := run.loss(m)) is not None}
    loss = Figure("loss", "Training loss", "Loss per step from each model's loss.csv.")
    missing = [m for m in run.trained if m not in curves]
    if missing:
        loss.caption += (f" No curve for {', '.join(missing)} (no loss.csv: fitted without "
                         f"gradient steps).")
    figures.append(_attempt(loss, lambda: loss_figure(curves, colours)) if curves
                   else Figure(loss.key, loss.title, note="no model reported a training loss "
                               "(loss.csv); baselines fit in one pass."))

    figures.append(_human(run, colours))
    return figures
