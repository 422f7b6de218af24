"""AuC of the ab-error CDF: exact values, the curve, rebalancing by the training prior."""

from __future__ import annotations

import numpy as np
import pytest

from harness.color import PriorAccumulator, zhang313
from harness.metrics import ImageBatch, MetricUnavailable, ScoringContext
from harness.metrics import auc as A


def _batch(ab_pred, ab_true, prior=None):
    n, h, w, _ = ab_true.shape
    L = np.full((n, h, w), 60.0, np.float32)
    ctx = ScoringContext(bins=zhang313(), prior=prior)
    return ImageBatch(L, ab_pred.astype(np.float32), ab_true.astype(np.float32), ctx)


def _scene(rng, n, size=32, saturated=0.08):
    """ab images like natural photos: mostly low chroma, a few strongly coloured pixels."""
    ab = rng.normal(0.0, 6.0, (n, size, size, 2))
    sat = rng.random((n, size, size)) < saturated
    angle = rng.uniform(0.0, 2 * np.pi, sat.sum())
    radius = rng.uniform(45.0, 80.0, sat.sum())
    ab[sat] = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    return ab


def _prior(rng):
    acc = PriorAccumulator(zhang313())
    acc.add(_scene(rng, 40))
    return acc.prior()


def test_perfect_prediction_scores_one():
    ab = _scene(np.random.default_rng(0), 3)
    prior = _prior(np.random.default_rng(1))
    batch = _batch(ab, ab, prior)
    np.testing.assert_array_equal(A.auc(batch), 1.0)
    np.testing.assert_allclose(A.auc_rebalanced(batch), 1.0)


@pytest.mark.parametrize("e", [0.0, 0.5, 10.0, 37.25, 150.0, 151.0, 200.0])
def test_constant_error(e):
    true = np.zeros((2, 4, 4, 2))
    pred = true.copy()
    pred[..., 0] = 0.6 * e  # a 3-4-5 triangle: |(0.6 e, 0.8 e)| = e
    pred[..., 1] = 0.8 * e
    # thresholds t = 0..150 with e <= t: 151 - ceil(e) of them (none beyond 150)
    want = max(0, 151 - int(np.ceil(e))) / 151
    got = A.auc(_batch(pred, true))
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_curve_shape_and_relation_to_auc():
    rng = np.random.default_rng(3)
    err = rng.uniform(0.0, 200.0, (4, 10, 10))
    curves = A.accuracy_curves(err)
    assert curves.shape == (4, 151)
    assert (np.diff(curves, axis=1) >= 0).all() and (curves <= 1).all()
    # acc(t) is the fraction with err <= t, checked directly
    np.testing.assert_allclose(curves[:, 75], (err <= 75).mean(axis=(1, 2)))
    np.testing.assert_allclose(A.auc_scores(err), curves.mean(axis=1))


def test_weights_follow_the_prior_and_floor_zero_bins():
    prior = np.zeros(zhang313().q)
    prior[:3] = [0.5, 0.3, 0.2]  # every other bin unseen in training
    true = np.zeros((1, 1, 2, 2), np.float32)
    true[0, 0, 0] = zhang313().centres[2]  # rarest seen bin
    true[0, 0, 1] = zhang313().centres[200]  # unseen bin
    w = A.pixel_weights(_batch(true, true, prior))
    assert np.isfinite(w).all() and w[0, 0, 0] == pytest.approx(w[0, 0, 1])
    true[0, 0, 1] = zhang313().centres[0]
    w = A.pixel_weights(_batch(true, true, prior))
    assert w[0, 0, 0] / w[0, 0, 1] == pytest.approx(0.5 / 0.2)


def test_missing_prior_makes_rebalanced_unavailable():
    ab = np.zeros((1, 4, 4, 2))
    with pytest.raises(MetricUnavailable, match="prior is missing"):
        A.auc_rebalanced(_batch(ab, ab))
    assert A.auc(_batch(ab, ab))[0] == 1.0


def test_gray_is_punished_by_rebalancing():
    """As in Zhang et al.'s table (gray: 89.1 plain, 58.0 rebalanced)."""
    rng = np.random.default_rng(4)
    prior = _prior(rng)
    true = _scene(rng, 8)
    batch = _batch(np.zeros_like(true), true, prior)
    plain, rebalanced = A.auc(batch).mean(), A.auc_rebalanced(batch).mean()
    assert plain > 0.85
    assert rebalanced < plain - 0.25


def test_perfect_beats_noisy_on_both():
    rng = np.random.default_rng(5)
    prior = _prior(rng)
    true = _scene(rng, 4)
    noisy = true + rng.normal(0.0, 15.0, true.shape)
    for metric in A.METRICS:
        assert metric.granularity == "image" and metric.citation and metric.summary
        perfect = metric.value(metric.compute(_batch(true, true, prior)))
        bad = metric.value(metric.compute(_batch(noisy, true, prior)))
        assert (perfect > bad) == metric.higher_is_better, metric.name


def test_registers_two_metrics():
    got = []
    A.harness_register_metrics(register=got.append)
    assert [m.name for m in got] == ["auc", "auc-rebalanced"]
