"""ab-histogram metrics: hand-worked histograms, the EMD solver, the metric specs."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import wasserstein_distance_nd

from harness.color import ABBins, zhang313
from harness.metrics import ImageBatch, ScoringContext
from harness.metrics import histogram as H

TWO = np.array([[0.0, 0.0], [10.0, 0.0]])  # two bins 10 ab units apart


def _metric(name):
    return next(m for m in H.METRICS if m.name == name)


def test_identical_histograms():
    p = np.array([0.2, 0.5, 0.3])
    centres = [[0, 0], [10, 0], [0, 10]]
    assert H.hist_intersection(p, p) == pytest.approx(1.0)
    assert H.hist_js(p, p) == pytest.approx(0.0, abs=1e-12)
    assert H.hist_emd(p, p, centres) == 0.0


def test_all_mass_in_neighbouring_bins():
    p, g = [1.0, 0.0], [0.0, 1.0]
    assert H.hist_intersection(p, g) == 0.0
    assert H.hist_js(p, g) == pytest.approx(1.0)
    assert H.hist_emd(p, g, TWO) == pytest.approx(10.0)


def test_two_bin_split_worked_by_hand():
    # P = (1, 0), G = (1/2, 1/2): half the mass moves 10 units; M = (3/4, 1/4), so
    # JS = [log2(4/3) + (1/2) log2(2/3) + (1/2) log2 2] / 2 = 3/2 - (3/4) log2 3.
    p, g = [1.0, 0.0], [0.5, 0.5]
    assert H.hist_intersection(p, g) == pytest.approx(0.5)
    assert H.hist_js(p, g) == pytest.approx(1.5 - 0.75 * np.log2(3.0))
    assert H.hist_emd(p, g, TWO) == pytest.approx(5.0)
    # unnormalised counts mean the same distributions
    assert H.hist_emd([4, 0], [1, 1], TWO) == pytest.approx(5.0)


def test_emd_uses_centres_as_support_not_samples():
    # Same heights on a support stretched 3x: the distance scales with the support.
    p, g = [0.7, 0.3, 0.0], [0.0, 0.3, 0.7]
    line = np.array([[0.0, 0.0], [10.0, 0.0], [20.0, 0.0]])
    assert H.hist_emd(p, g, line) == pytest.approx(14.0)  # 0.7 moved 20 units
    assert H.hist_emd(p, g, 3 * line) == pytest.approx(42.0)


def test_emd_matches_scipy_wasserstein_nd_on_313_bins():
    rng = np.random.default_rng(1)
    bins = zhang313()
    p = rng.gamma(0.3, size=bins.q) * (rng.random(bins.q) < 0.6)
    g = rng.gamma(0.3, size=bins.q) * (rng.random(bins.q) < 0.6)
    got = H.hist_emd(p, g, bins.centres, dist=H._ground_distance(bins))
    keep = (p > 0) | (g > 0)
    c = bins.centres[keep].astype(np.float64)
    want = wasserstein_distance_nd(c, c, p[keep], g[keep])
    assert got == pytest.approx(want, rel=1e-6)
    assert H.hist_emd(p, g, bins.centres) == pytest.approx(got, rel=1e-12)


def test_emd_with_a_single_source_or_sink():
    centres = [[0, 0], [10, 0], [0, 20]]
    assert H.hist_emd([0, 0.5, 0.5], [1, 0, 0], centres) == pytest.approx(15.0)
    assert H.hist_emd([1, 0, 0], [0, 0.5, 0.5], centres) == pytest.approx(15.0)


def test_histograms_are_per_image_and_normalised():
    bins = ABBins("two", TWO)
    pred = np.zeros((2, 2, 2, 2))
    true = np.zeros((2, 2, 2, 2))
    true[1, :, :, 0] = 9.0  # second image: all pixels in bin 1
    true[0, 0, 0, 0] = 8.0  # first image: one pixel of four in bin 1
    stats = H.ab_histograms(pred, true, bins)
    assert stats.shape == (2, 2, 2)
    np.testing.assert_allclose(stats[:, 0], [[1, 0], [1, 0]])
    np.testing.assert_allclose(stats[:, 1], [[0.75, 0.25], [0, 1]])
    p, g = H.pooled(stats)
    np.testing.assert_allclose(g, [0.375, 0.625])  # each image weighs the same
    np.testing.assert_allclose(p, [1, 0])


def _batch(ab_pred, ab_true, bins=None):
    n, h, w, _ = ab_true.shape
    L = np.full((n, h, w), 60.0, np.float32)
    return ImageBatch(L, ab_pred, ab_true, ScoringContext(bins=bins or zhang313()))


def _synthetic(rng, n=6, size=24):
    """Smooth colour fields: a per-image base colour plus a gentle gradient."""
    base = rng.normal(0.0, 25.0, (n, 1, 1, 2))
    yy, xx = np.mgrid[0:size, 0:size] / size
    grad = rng.normal(0.0, 15.0, (n, 1, 1, 2, 2))
    field = base + grad[..., 0] * xx[None, ..., None] + grad[..., 1] * yy[None, ..., None]
    return field.astype(np.float32)


def test_metric_specs_and_perfect_beats_noisy():
    rng = np.random.default_rng(0)
    true = _synthetic(rng)
    noisy = (0.5 * true + rng.normal(0.0, 12.0, true.shape)).astype(np.float32)
    perfect_rows = H.histogram_stats(_batch(true.copy(), true))
    noisy_rows = H.histogram_stats(_batch(noisy, true))
    assert perfect_rows.shape == noisy_rows.shape == (len(true), 2, zhang313().q)
    for metric in H.METRICS:
        assert metric.granularity == "dataset" and metric.citation and metric.summary
        perfect, bad = metric.value(perfect_rows), metric.value(noisy_rows)
        assert perfect != bad
        assert (perfect > bad) == metric.higher_is_better, metric.name
    assert _metric("ab-hist-intersection").value(perfect_rows) == pytest.approx(1.0)
    assert _metric("ab-hist-emd").value(perfect_rows) == 0.0
    assert _metric("ab-hist-js").value(perfect_rows) == pytest.approx(0.0, abs=1e-12)


def test_aggregate_of_resampled_rows_and_bin_sharing():
    rng = np.random.default_rng(2)
    true = _synthetic(rng, n=5)
    pred = (true + rng.normal(0.0, 8.0, true.shape)).astype(np.float32)
    batch = _batch(pred, true)
    rows = H.histogram_stats(batch)
    # the index cache is per batch: a second metric on the same batch reuses it
    cached = H.bin_index(batch, "true")
    assert H.bin_index(batch, "true") is cached
    assert H.bin_index(_batch(pred, true), "true") is not cached
    np.testing.assert_array_equal(rows, H.ab_histograms(pred, true, zhang313()))
    emd = _metric("ab-hist-emd")
    idx = rng.integers(0, len(rows), size=len(rows))
    p, g = H.pooled(rows[idx])
    assert emd.value(rows[idx]) == pytest.approx(H.hist_emd(p, g, zhang313().centres))


def test_emd_on_other_bin_sets():
    bins = ABBins("three", [[0, 0], [10, 0], [20, 0]])
    true = np.zeros((1, 2, 2, 2), np.float32)
    pred = true.copy()
    pred[..., 0] = 20.0
    rows = H.histogram_stats(_batch(pred, true, bins))
    assert _metric("ab-hist-emd").value(rows) == pytest.approx(20.0)
    with pytest.raises(ValueError, match="no bin set with 7 bins"):
        H.emd_value(np.ones((1, 2, 7)))


def test_rejects_bad_histograms():
    with pytest.raises(ValueError):
        H.hist_intersection([0, 0], [1, 0])
    with pytest.raises(ValueError):
        H.pooled(np.ones((3, 5)))


def test_registers_three_metrics():
    got = []
    H.harness_register_metrics(register=got.append)
    assert [m.name for m in got] == ["ab-hist-intersection", "ab-hist-js", "ab-hist-emd"]
