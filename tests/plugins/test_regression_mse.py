"""regression-mse: registration, options, learning, any size, the Huber option."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from harness.colorizer import Budget, FitContext
from harness.data.dataset import LabSet
from harness.progress import LossLog
from harness_plugins.regression_mse_model import (
    RegressionColorizer,
    RegressionOptions,
    build_regression_net,
)


def lab_set(n: int = 16, size: int = 16) -> LabSet:
    """Diagonal ramps of L; ab a fixed function of L (learnable pixel by pixel)."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:size, 0:size] / size
    slope = rng.uniform(-1, 1, (n, 2, 1, 1))
    L = 50 + 45 * np.tanh(2 * (slope[:, 0] * x + slope[:, 1] * y - 0.5 * slope.sum(1)))
    lab = np.stack([L, 0.8 * (L - 50), 40 - 0.8 * L], -1).astype(np.float32)
    return LabSet(lab, range(n), [f"img{i}" for i in range(n)], np.full(n, -1), [])


def fit(tmp_path, steps: int, **options) -> tuple[RegressionColorizer, FitContext]:
    ctx = FitContext(device="cpu", seed=0, model_dir=tmp_path,
                     loss_log=LossLog(tmp_path / "loss.csv"))
    model = RegressionColorizer(RegressionOptions(
        **{"width": 0.0625, "batch_size": 8, "log_every": 5, **options}))
    model.fit(lab_set(), None, Budget(steps=steps), ctx)
    return model, ctx


def test_options_name_the_bad_field():
    with pytest.raises(ValidationError, match="loss"):
        RegressionOptions(loss="l1")
    with pytest.raises(ValidationError, match="widht"):
        RegressionOptions(widht=0.5)


def test_any_multiple_of_8_keeps_its_size_and_ab_stays_in_range():
    net = build_regression_net(0.0625)
    ab = np.asarray(net(np.full((2, 24, 40, 1), 50, np.float32)))
    assert ab.shape == (2, 24, 40, 2)
    assert np.abs(ab).max() <= 110


def test_mse_learns_and_predicts_any_size(tmp_path):
    model, ctx = fit(tmp_path, 40)
    losses = [row["loss"] for row in ctx.loss_log.rows]
    assert losses[-1] < 0.5 * losses[0]
    ab = model.predict(np.random.default_rng(0).uniform(0, 100, (3, 24, 40)).astype(np.float32))
    assert ab.shape == (3, 24, 40, 2) and np.isfinite(ab).all()


def test_huber_option_selects_a_huber_loss():
    loss, weights = RegressionColorizer(RegressionOptions(loss="huber", huber_delta=5.0)).loss(0)
    assert (loss.kind, loss.delta, weights) == ("huber", 5.0, None)
    true, pred = np.zeros((1, 1, 2, 2), np.float32), np.array([[[[1.0, 1.0], [110, 110]]]])
    # quadratic below the knee of 5 ab units, linear above it, in normalize_ab units
    expected = np.mean([0.5 * (1 / 110) ** 2, 5 / 110 * (1 - 0.5 * 5 / 110)])
    assert float(loss(true, pred.astype(np.float32))) == pytest.approx(expected, rel=1e-5)
