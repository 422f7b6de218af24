"""The host's hint sampler: seeded per image, nested across counts, patch means of the truth."""

from __future__ import annotations

import numpy as np
import pytest

from harness.hints import Hints, sample_hints


def truth(n: int = 6, h: int = 32, w: int = 40, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-80, 80, (n, h, w, 2)).astype(np.float32)


def same(a: Hints, b: Hints) -> bool:
    return np.array_equal(a.mask, b.mask) and np.array_equal(a.ab, b.ab)


@pytest.mark.parametrize("sampler", ["uniform", "gaussian"])
def test_same_call_same_hints_for_every_method(sampler):
    ab = truth()
    first = sample_hints(ab, 10, 3, np.arange(6), sampler=sampler)
    assert same(first, sample_hints(ab, 10, 3, np.arange(6), sampler=sampler))
    assert not first.mask.flags.writeable and not first.ab.flags.writeable
    assert not same(first, sample_hints(ab, 10, 4, np.arange(6), sampler=sampler))


@pytest.mark.parametrize("sampler", ["uniform", "gaussian"])
def test_batching_and_order_do_not_change_an_image_hints(sampler):
    ab = truth()
    whole = sample_hints(ab, 10, 3, np.arange(6), sampler=sampler)
    part = sample_hints(ab[2:5], 10, 3, [2, 3, 4], sampler=sampler)
    assert same(part, whole[2:5])
    backwards = sample_hints(ab[::-1], 10, 3, np.arange(6)[::-1], sampler=sampler)
    assert same(backwards, whole[::-1])


@pytest.mark.parametrize("sampler", ["uniform", "gaussian"])
def test_smaller_counts_are_contained_in_larger_ones(sampler):
    ab = truth()
    h1, h10, h100 = (sample_hints(ab, c, 5, np.arange(6), sampler=sampler) for c in (1, 10, 100))
    for small, large in ((h1, h10), (h10, h100)):
        assert (large.mask[small.mask]).all()
        np.testing.assert_array_equal(small.ab[small.mask], large.ab[small.mask])
        assert large.mask.sum() > small.mask.sum()


def test_each_hint_is_a_square_patch_holding_the_patch_mean():
    ab = truth(n=40, h=20, w=24)
    hints = sample_hints(ab, 1, 0, np.arange(40), patch=(1, 5))
    sides = set()
    for j in range(40):
        rows, cols = np.nonzero(hints.mask[j])
        side = rows.max() - rows.min() + 1
        assert cols.max() - cols.min() + 1 == side and len(rows) == side * side
        sides.add(int(side))
        expected = ab[j][hints.mask[j]].mean(axis=0)
        np.testing.assert_allclose(hints.ab[j][hints.mask[j]], np.broadcast_to(
            expected, (len(rows), 2)), rtol=1e-5, atol=1e-4)
        assert not hints.ab[j][~hints.mask[j]].any()
    assert sides <= {1, 2, 3, 4, 5} and len(sides) >= 4


def test_zero_hints_is_an_empty_mask():
    hints = sample_hints(truth(), 0, 1, np.arange(6))
    assert hints.mask.shape == (6, 32, 40) and not hints.mask.any() and not hints.ab.any()
    assert same(hints, Hints.empty(6, 32, 40))


def test_gaussian_centres_on_the_image_with_a_quarter_side_spread():
    ab = np.zeros((600, 64, 48, 2), dtype=np.float32)
    positions = {}
    for sampler in ("uniform", "gaussian"):
        mask = sample_hints(ab, 1, 2, np.arange(600), sampler=sampler, patch=(1, 1)).mask
        positions[sampler] = np.array([np.argwhere(m)[0] for m in mask], dtype=np.float64)
    gauss, uniform = positions["gaussian"], positions["uniform"]
    np.testing.assert_allclose(gauss.mean(axis=0), [32, 24], atol=1.5)
    # sigma = side / 4, a little less after clipping the tails into the image
    assert 13.5 < gauss[:, 0].std() < 16.5 and 10 < gauss[:, 1].std() < 12.5
    assert uniform[:, 0].std() > 17  # uniform on 64 rows: 64 / sqrt(12) = 18.5
    # Patches that overhang an edge are clipped into the image, never dropped
    clipped = sample_hints(ab[:50], 1, 2, np.arange(50), sampler="gaussian", patch=(5, 5))
    assert (clipped.mask.sum(axis=(1, 2)) == 25).all()


@pytest.mark.parametrize("kwargs, message", [
    ({"count": -1}, "count"), ({"sampler": "grid"}, "sampler"), ({"patch": (3, 2)}, "patch"),
    ({"patch": (1, 33)}, "does not fit"), ({"indices": [0, 1]}, "indices"),
])
def test_bad_arguments_are_named(kwargs, message):
    args = {"count": 3, "seed": 0, "indices": np.arange(6), **kwargs}
    with pytest.raises(ValueError, match=message):
        sample_hints(truth(), **args)
