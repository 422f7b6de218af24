"""Levin et al. 2004: recovery on piecewise-constant images, grey without hints, solvers agree."""

from __future__ import annotations

import numpy as np
import pytest

from harness.hints import Hints, sample_hints
from harness_baselines.levin import LevinColorizer, LevinOptions, affinity, levin_propagate

BANDS = [(20, (40, -20)), (40, (-30, 30)), (60, (10, 60)), (80, (-50, -10))]


def banded(side: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """48 x 48: four 12-px bands of constant L and constant, distinct ab; one side x side hint
    at each band's centre. Returns L, true ab, hint mask."""
    L = np.zeros((48, 48))
    ab = np.zeros((48, 48, 2))
    mask = np.zeros((48, 48), dtype=bool)
    for k, (lum, colour) in enumerate(BANDS):
        L[:, 12 * k : 12 * k + 12] = lum
        ab[:, 12 * k : 12 * k + 12] = colour
        top, left = 24 - side // 2, 12 * k + 6 - side // 2
        mask[top : top + side, left : left + side] = True
    return L, ab, mask


def textured(seed: int = 0, size: int = 40) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    L = 50 + 30 * np.sin(6 * x + 2 * y) + rng.normal(0, 3, (size, size))
    ab = np.stack([40 * np.cos(4 * y), 30 * np.sin(5 * x)], axis=-1)
    return L, ab


def test_one_hint_per_region_recovers_piecewise_constant_ab():
    # Tolerance: mean |error| < 1 ab unit, worst pixel < 2.5 (the bands' colours differ by 40+).
    # Colour leaks only through the affinity's small cross-edge weights.
    L, ab, mask = banded(side=3)
    out = levin_propagate(L, mask, ab)
    error = np.abs(out - ab)
    assert error.mean() < 1.0 and error.max() < 2.5
    np.testing.assert_array_equal(out[mask], ab[mask].astype(np.float32))


def test_no_hint_is_exactly_grey():
    L, _, _ = banded()
    out = levin_propagate(L, np.zeros(L.shape, bool), np.full((*L.shape, 2), 50.0))
    assert out.dtype == np.float32 and not out.any()
    model = LevinColorizer()
    assert not model.predict(L[None]).any()
    assert not model.predict(L[None], Hints.empty(1, 48, 48)).any()


def test_direct_and_iterative_solvers_agree():
    L, ab = textured()
    hints = sample_hints(ab[None], 12, 0, [0], sampler="gaussian")
    direct = levin_propagate(L, hints.mask[0], hints.ab[0], solver="direct")
    iterative = levin_propagate(L, hints.mask[0], hints.ab[0], solver="iterative")
    np.testing.assert_allclose(iterative, direct, atol=1e-3)
    assert np.abs(direct).max() > 1  # a real propagation, not two zero answers


def test_solution_is_a_convex_combination_of_the_hints():
    L, ab = textured(seed=1)
    hints = sample_hints(ab[None], 8, 1, [0])
    out = levin_propagate(L, hints.mask[0], hints.ab[0])
    values = hints.ab[0][hints.mask[0]]
    assert (out >= values.min(axis=0) - 1e-3).all() and (out <= values.max(axis=0) + 1e-3).all()


def test_affinity_rows_are_positive_and_sum_to_one():
    L, _ = textured(size=12)
    L[3, 3] = 100.0  # an outlier: its neighbours still weigh something
    W = affinity(L)
    assert W.shape == (144, 144) and (W.data > 0).all()
    np.testing.assert_allclose(np.asarray(W.sum(axis=1)).ravel(), 1.0)
    per_row = np.diff(W.indptr)
    assert per_row.min() == 3 and per_row.max() == 8  # corners and interior pixels
    assert W[0, 0] == 0  # no self-weight


def test_colorizer_predicts_a_batch_from_host_hints():
    L, ab, _ = banded()
    Ls, abs_ = np.stack([L, L[:, ::-1]]), np.stack([ab, ab[:, ::-1]])
    hints = sample_hints(abs_, 30, 2, [0, 1])
    out = LevinColorizer(LevinOptions(solver="direct")).predict(Ls, hints)
    assert out.shape == (2, 48, 48, 2) and out.dtype == np.float32
    np.testing.assert_allclose(out[1], levin_propagate(Ls[1], hints.mask[1], hints.ab[1]))
    with pytest.raises(ValueError, match="hints must be drawn at the size"):
        LevinColorizer().predict(Ls[:, :32], hints)
