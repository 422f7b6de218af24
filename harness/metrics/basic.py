"""Built-in per-image metrics on RGB: PSNR, SSIM, colorfulness, and dCF against ground truth."""

from __future__ import annotations

import numpy as np

from harness.hookspecs import hookimpl
from harness.metrics import ImageBatch, Metric


def psnr(batch: ImageBatch) -> np.ndarray:
    """Peak signal-to-noise ratio in dB per image, RGB in [0, 1]: 10 log10(1 / MSE).

    A perfect prediction is capped at 100 dB so averages stay finite.

    >>> import numpy as np
    >>> L = np.full((1, 8, 8), 50.0, np.float32); ab = np.zeros((1, 8, 8, 2), np.float32)
    >>> float(psnr(ImageBatch(L, ab, ab))[0])
    100.0
    """
    mse = ((batch.rgb_pred - batch.rgb_true) ** 2).reshape(len(batch), -1).mean(axis=1)
    return np.where(mse > 0, 10 * np.log10(1.0 / np.maximum(mse, 1e-10)), 100.0)


def ssim(batch: ImageBatch) -> np.ndarray:
    """Structural similarity per image (Wang et al. 2004) on RGB in [0, 1], 7x7 window."""
    from skimage.metrics import structural_similarity  # on use: registration stays light

    return np.array([
        structural_similarity(p, t, channel_axis=-1, data_range=1.0)
        for p, t in zip(batch.rgb_pred, batch.rgb_true)
    ])


def colorfulness_rgb(rgb: np.ndarray) -> np.ndarray:
    """Hasler & Suesstrunk (2003) colorfulness, signed opponent form, of (N, H, W, 3) RGB in [0, 1].

    On 0-255 RGB: rg = R - G, yb = (R + G) / 2 - B,
    CF = sqrt(std(rg)^2 + std(yb)^2) + 0.3 sqrt(mean(rg)^2 + mean(yb)^2).

    >>> import numpy as np
    >>> red = np.zeros((1, 4, 4, 3)); red[..., 0] = 1.0
    >>> round(float(colorfulness_rgb(red)[0]), 3)
    85.53
    """
    rgb = 255.0 * np.asarray(rgb, dtype=np.float64).reshape(len(rgb), -1, 3)
    rg = rgb[..., 0] - rgb[..., 1]
    yb = 0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]
    spread = np.sqrt(rg.std(axis=1) ** 2 + yb.std(axis=1) ** 2)
    centre = np.sqrt(rg.mean(axis=1) ** 2 + yb.mean(axis=1) ** 2)
    return spread + 0.3 * centre


def colorfulness(batch: ImageBatch) -> np.ndarray:
    """Colorfulness of each predicted image."""
    return colorfulness_rgb(batch.rgb_pred)


def colorfulness_pairs(batch: ImageBatch) -> np.ndarray:
    """(N, 2) per-image colorfulness of prediction and ground truth (the latter once per run)."""
    truth = batch.from_truth("colorfulness", lambda: colorfulness_rgb(batch.rgb_true))
    return np.stack([colorfulness_rgb(batch.rgb_pred), truth], axis=1)


def delta_colorfulness(pairs: np.ndarray) -> float:
    """dCF = |mean CF(prediction) - mean CF(ground truth)| over the images of ``pairs``."""
    return float(abs(pairs[:, 0].mean() - pairs[:, 1].mean()))


HASLER = "Hasler & Suesstrunk, Measuring colourfulness in natural images, SPIE 2003"
METRICS = (
    Metric("psnr", psnr, higher_is_better=True, unit="dB", citation="RGB in [0, 1]",
           summary="Peak signal-to-noise ratio of the RGB result"),
    Metric("ssim", ssim, higher_is_better=True, unit="",
           citation="Wang et al., Image quality assessment, IEEE TIP 2004",
           summary="Structural similarity of the RGB result"),
    Metric("colorfulness", colorfulness, higher_is_better=None, unit="CF", citation=HASLER,
           summary="Mean colorfulness of the predictions (ground truth's is the target)"),
    Metric("dcf", colorfulness_pairs, higher_is_better=False, unit="CF", citation=HASLER,
           summary="|mean colorfulness - ground truth's|", aggregate=delta_colorfulness),
)


@hookimpl
def harness_register_metrics(register):
    for metric in METRICS:
        register(metric)
