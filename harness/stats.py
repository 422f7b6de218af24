"""Uncertainty and significance: bootstrap intervals, paired tests, Holm correction."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats


def bootstrap_interval(
    rows: np.ndarray,
    value: Callable[[np.ndarray], float],
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """95% interval of ``value(rows)`` by resampling rows (images) with replacement.

    Per-image means use ``scipy.stats.bootstrap`` (BCa, vectorised); any other ``value``
    (a dataset-level aggregate) gets a seeded percentile bootstrap over image indices. Fewer
    than two rows, or a degenerate sample, give ``(nan, nan)``.

    >>> lo, hi = bootstrap_interval(np.arange(10.0), np.mean, seed=1)
    >>> bool(lo < 4.5 < hi)
    True
    """
    rows = np.asarray(rows)
    n = len(rows)
    if n < 2:
        return float("nan"), float("nan")
    if value is np.mean and rows.ndim == 1:
        if np.ptp(rows) == 0:
            return float(rows[0]), float(rows[0])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = stats.bootstrap((rows,), np.mean, n_resamples=n_resamples, vectorized=True,
                                  confidence_level=confidence, method="BCa",
                                  rng=np.random.default_rng(seed))
        lo, hi = res.confidence_interval
        if np.isfinite(lo) and np.isfinite(hi):
            return float(lo), float(hi)
    rng = np.random.default_rng(seed)
    draws = np.array([value(rows[rng.integers(0, n, n)]) for _ in range(n_resamples)])
    tail = 100 * (1 - confidence) / 2
    return float(np.percentile(draws, tail)), float(np.percentile(draws, 100 - tail))


def paired_test(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value for paired per-image values ``a`` vs ``b``.

    Returns 1.0 when every pair is equal and nan with fewer than two pairs.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2:
        return float("nan")
    if np.allclose(a, b, rtol=0, atol=1e-12):
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(stats.wilcoxon(a, b, zero_method="wilcox").pvalue)


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values; nan entries stay nan and are not counted.

    >>> holm([0.01, 0.04, 0.03]).round(3).tolist()
    [0.03, 0.06, 0.06]
    """
    p = np.asarray(pvalues, dtype=float)
    out = np.full_like(p, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m = len(valid)
    order = valid[np.argsort(p[valid])]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out
