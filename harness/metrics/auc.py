"""AuC of the per-pixel ab-error CDF (Zhang et al. 2016, sec. 3.1), plain and class-rebalanced.

For one image, acc(t) is the (weighted) fraction of pixels whose ab error ||ab_pred - ab_true||_2
is at most t, for the thresholds t = 0, 1, ..., 150; the image's AuC is the mean of acc(t) over
those 151 thresholds, which is the area under the curve normalised to [0, 1] (a perfect
prediction scores 1). The reported value is the mean of the per-image AuCs.

Rebalanced: each pixel weighs 1 / p[q], p the training prior (``context.prior``, unsmoothed) and
q its ground-truth bin, so rare saturated colours count as much as common dull ones. Bins the
training set never saw (p = 0) get the weight of the rarest seen bin (the prior is floored at its
smallest positive value): they are at least that rare, and an infinite weight would let one
pixel decide an image. This is ``rebalance_weights(prior, lam=0)`` of the colour module; its
normalisation cancels in each image's weighted mean.
"""

from __future__ import annotations

import numpy as np

from harness.color import rebalance_weights, zhang313
from harness.hookspecs import hookimpl
from harness.metrics import ImageBatch, Metric, MetricUnavailable
from harness.metrics.histogram import bin_index

THRESHOLDS = np.arange(151.0)  # ab-error thresholds 0..150, step 1 (Zhang et al. 2016)


def ab_error(ab_pred, ab_true) -> np.ndarray:
    """Per-pixel Euclidean ab error ||ab_pred - ab_true||_2: (..., 2) x 2 -> (...,) float64.

    >>> ab_error([[3.0, 4.0], [1.0, 1.0]], [[0.0, 0.0], [1.0, 1.0]])
    array([5., 0.])
    """
    diff = np.asarray(ab_pred, dtype=np.float64) - np.asarray(ab_true, dtype=np.float64)
    return np.sqrt(np.einsum("...c,...c->...", diff, diff))


def accuracy_curves(err, weights=None, thresholds=THRESHOLDS) -> np.ndarray:
    """Per-image accuracy curves: err (N, ...) -> (N, T) with
    acc[n, t] = sum_p w_p [err_p <= thresholds[t]] / sum_p w_p over the pixels p of image n.

    ``weights`` (N, ...) or None (all 1); ``thresholds`` increasing. ``curves.mean(axis=0)`` is
    the curve to plot for a method; its mean over thresholds is the reported AuC.

    >>> accuracy_curves(np.array([[0.0, 1.5, 2.0, 9.0]]), thresholds=np.arange(4.0))
    array([[0.25, 0.25, 0.75, 0.75]])
    """
    err = np.asarray(err, dtype=np.float64)
    err = err.reshape(len(err), -1)  # (N, P)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    n, t = len(err), len(thresholds)
    # first threshold >= err: the pixel counts from there on (index t: never)
    first = np.searchsorted(thresholds, err.ravel(), side="left").reshape(err.shape)
    flat = (first + (t + 1) * np.arange(n)[:, None]).ravel()
    if weights is None:
        w = None
        total = np.full(n, float(err.shape[1]))
    else:
        w = np.broadcast_to(np.asarray(weights, dtype=np.float64).reshape(n, -1), err.shape)
        total = w.sum(axis=1)
        w = w.ravel()
    counts = np.bincount(flat, weights=w, minlength=n * (t + 1)).reshape(n, t + 1)
    return np.cumsum(counts[:, :t], axis=1) / total[:, None]


def auc_scores(err, weights=None, thresholds=THRESHOLDS) -> np.ndarray:
    """Per-image AuC in [0, 1]: the mean over ``thresholds`` of `accuracy_curves`, (N,).

    A constant error of 10 misses the thresholds 0..9 and meets 10..150: 141 / 151.

    >>> float(auc_scores(np.full((1, 4, 4), 10.0))[0]) == 141 / 151
    True
    >>> auc_scores(np.zeros((2, 3)))
    array([1., 1.])
    """
    return accuracy_curves(err, weights, thresholds).mean(axis=1)


def pixel_weights(batch: ImageBatch) -> np.ndarray:
    """Inverse-prior weight of each ground-truth pixel, (N, H, W), from ``context.prior``.

    w = 1 / max(p[q], min_{p > 0} p) for the true bin q, scaled so that sum_q p_q w_q = 1.
    Raises MetricUnavailable when the context has no training prior.

    >>> from harness.metrics import ScoringContext
    >>> prior = np.zeros(313); prior[:2] = [0.8, 0.2]  # zhang313's (-90, 50) and (-90, 60)
    >>> ab = np.array([[[[-90.0, 50.0], [-90.0, 60.0], [0.0, 0.0]]]])
    >>> batch = ImageBatch(np.full((1, 1, 3), 50.0), ab, ab, ScoringContext(prior=prior))
    >>> pixel_weights(batch)  # (0, 0) was never seen: its prior is floored at 0.2
    array([[[0.625, 2.5  , 2.5  ]]])
    """
    prior = batch.context.prior
    if prior is None:
        raise MetricUnavailable(
            "the training split's ab prior is missing (context.prior is None); the rebalanced "
            "AuC weighs pixels by its inverse"
        )
    bins = batch.context.bins if batch.context.bins is not None else zhang313()
    if np.shape(prior) != (bins.q,):
        raise ValueError(f"prior has shape {np.shape(prior)}, expected ({bins.q},) for {bins}")
    return rebalance_weights(prior, lam=0.0)[bin_index(batch, "true")]


def auc(batch: ImageBatch) -> np.ndarray:
    """Per-image AuC of the ab-error CDF, every pixel weighing 1, (N,).

    >>> true = np.zeros((1, 1, 2, 2)); pred = np.array([[[[0.0, 0.0], [30.0, 40.0]]]])
    >>> float(auc(ImageBatch(np.full((1, 1, 2), 50.0), pred, true))[0]) == (151 + 101) / 302
    True
    """
    return auc_scores(ab_error(batch.ab_pred, batch.ab_true))


def auc_rebalanced(batch: ImageBatch) -> np.ndarray:
    """Per-image AuC with pixels weighted by the inverse prior of their true bin, (N,):
    sum_p w_p AuC_p / sum_p w_p, w from `pixel_weights`.

    The rare pixel (prior 0.2, weight 4x the common one's) is off by 50, so it meets 101 of
    the 151 thresholds: AuC = (1 * 151 + 4 * 101) / (5 * 151).

    >>> from harness.metrics import ScoringContext
    >>> prior = np.zeros(313); prior[:2] = [0.8, 0.2]
    >>> true = np.array([[[[-90.0, 50.0], [-90.0, 60.0]]]])
    >>> pred = np.array([[[[-90.0, 50.0], [-60.0, 100.0]]]])
    >>> batch = ImageBatch(np.full((1, 1, 2), 50.0), pred, true, ScoringContext(prior=prior))
    >>> round(float(auc_rebalanced(batch)[0]), 6), round(555 / 755, 6)
    (0.735099, 0.735099)
    """
    return auc_scores(ab_error(batch.ab_pred, batch.ab_true), pixel_weights(batch))


_ZHANG = "Zhang, Isola & Efros, Colorful Image Colorization, ECCV 2016, sec. 3.1"
METRICS = (
    Metric(
        "auc",
        auc,
        higher_is_better=True,
        unit="",
        citation=_ZHANG,
        summary="Area under the CDF of per-pixel ab error, thresholds 0..150 (mean of the CDF)",
    ),
    Metric(
        "auc-rebalanced",
        auc_rebalanced,
        higher_is_better=True,
        unit="",
        citation=_ZHANG,
        summary="AuC of the ab-error CDF with pixels weighted by 1 / training prior of their bin",
    ),
)


@hookimpl
def harness_register_metrics(register):
    for metric in METRICS:
        register(metric)
