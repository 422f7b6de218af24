"""mean-prior: per luminance band, the mean training ab (or, as an option, the modal bin)."""

from __future__ import annotations

import numpy as np

from harness.color import bins_from_spec
from harness.data.dataset import LabSet
from harness_baselines.mean_prior import MeanPriorColorizer, MeanPriorOptions


def _train() -> tuple[LabSet, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    L = rng.uniform(0, 100, (6, 8, 8)).astype(np.float32)
    ab = np.stack([0.5 * L - 20 + rng.normal(0, 3, L.shape),
                   rng.normal(0, 1, L.shape) - 0.1 * L], -1).astype(np.float32)
    lab = np.concatenate([L[..., None], ab], axis=-1)
    return LabSet(lab, range(6), [f"i{k}" for k in range(6)], np.full(6, -1), []), L, ab


def test_mean_is_the_band_average_of_the_training_pixels():
    train, L, ab = _train()
    model = MeanPriorColorizer(MeanPriorOptions(bands=4))
    model.fit(train, None, None, None)
    band = np.clip((L / 25).astype(int), 0, 3).ravel()
    for k in range(4):
        np.testing.assert_allclose(model.table[k], ab.reshape(-1, 2)[band == k].mean(0),
                                   rtol=1e-5)
    pred = model.predict(np.array([[[10.0, 90.0]]], dtype=np.float32))
    np.testing.assert_allclose(pred[0, 0], model.table[[0, 3]])


def test_mode_is_a_bin_centre_and_differs_from_the_mean():
    train, _, _ = _train()
    mode = MeanPriorColorizer(MeanPriorOptions(bands=4, statistic="mode"))
    mode.fit(train, None, None, None)
    mean = MeanPriorColorizer(MeanPriorOptions(bands=4))
    mean.fit(train, None, None, None)
    centres = bins_from_spec("zhang313").centres
    assert all(any(np.allclose(row, c) for c in centres) for row in mode.table)
    assert not np.allclose(mode.table, mean.table)
