import re
from pathlib import Path

import numpy as np
import pytest

from harness.color import (
    ABBins,
    PriorAccumulator,
    bins_from_spec,
    gamut_bins,
    gamut_bins_from_centres,
    rebalance_weights,
    smooth_prior,
    zhang313,
)

FLAGS = Path(__file__).parents[1] / "data" / "ab_grid_gamut_flags.csv"
GRID10 = np.arange(-110.0, 111.0, 10.0)  # 23 centres, cells of width 10
RNG = np.random.default_rng(0)


def _as_set(centres):
    return set(map(tuple, np.asarray(centres).tolist()))


@pytest.fixture(scope="module")
def flags():
    """Flag column -> (n, 2) grid centres where it is set."""
    table = np.genfromtxt(FLAGS, delimiter=",", names=True)
    ab = np.stack([table["a"], table["b"]], axis=1)
    return {name: ab[table[name] == 1] for name in table.dtype.names[2:]}


def test_zhang313_centres():
    bins = zhang313()
    assert bins is zhang313() and bins.q == 313 and bins.centres.dtype == np.float32
    assert len(_as_set(bins.centres)) == 313
    assert (bins.centres % 10 == 0).all()
    assert tuple(bins.centres[0]) == (-90, 50) and tuple(bins.centres[-1]) == (100, 0)
    assert not bins.centres.flags.writeable
    _, shape, width = bins.lattice
    assert width == 10 and shape == (20, 22)


def test_gamut_cells_are_the_reference_262_all_within_313(flags):
    bins = gamut_bins_from_centres(GRID10, 10.0)
    assert bins.q == 262
    assert _as_set(bins.centres) == _as_set(flags["cell_reachable"])
    assert _as_set(bins.centres) <= _as_set(zhang313().centres)
    assert _as_set(flags["in_313"]) == _as_set(zhang313().centres)


def test_one_cell_margin_covers_the_313_plus_31(flags):
    # The 313 sit between the gamut cells (262) and their one-ring dilation (344): they are
    # the gamut plus most of its ring, with 31 ring cells left out (rule unknown, see GAMUT.md).
    ring = _as_set(gamut_bins_from_centres(GRID10, 10.0, margin=1).centres)
    published = _as_set(zhang313().centres)
    assert len(ring) == 344 and published < ring and len(ring - published) == 31
    assert _as_set(flags["pm10_reachable"]) <= ring
    assert gamut_bins_from_centres(GRID10, 10.0, margin=2).q == 422


def test_grid22_and_specs():
    bins = bins_from_spec("grid:22")
    # 22 cells of width 10 centred on odd multiples of 5: 265 of the 484 reach sRGB.
    assert bins.name == "grid:22" and bins.q == 265
    np.testing.assert_array_equal(bins.centres, gamut_bins(22).centres)
    assert (np.abs(bins.centres) % 10 == 5).all()
    assert bins_from_spec("grid:22+1").q == 344
    assert bins_from_spec("zhang313") is zhang313()
    assert bins_from_spec("grid:2").q == 4  # four 110-wide quadrants, all reachable


@pytest.mark.parametrize("spec", ["grid:0", "grid:", "grid:22-1", "313", "Zhang313", "grid:2+x"])
def test_bad_spec_names_itself_and_the_options(spec):
    with pytest.raises(ValueError, match=re.escape(repr(spec)) + ".*zhang313.*grid:N"):
        bins_from_spec(spec)


def test_bins_validate_their_centres():
    with pytest.raises(ValueError, match=r"\(Q, 2\)"):
        ABBins("bad", np.zeros((3, 3)))
    with pytest.raises(ValueError, match="regular grid"):
        _ = ABBins("skew", [[0, 0], [10, 0], [15, 3]]).lattice


def test_nearest_and_soft_encode():
    bins = zhang313()
    ab = RNG.uniform(-100, 100, (7, 9, 2))
    dist = np.linalg.norm(ab[..., None, :] - bins.centres, axis=-1)  # (7, 9, Q)
    np.testing.assert_array_equal(bins.nearest(ab), dist.argmin(-1))
    soft = bins.soft_encode(ab)
    assert soft.shape == (7, 9, 313) and soft.dtype == np.float32
    np.testing.assert_allclose(soft.sum(-1), 1.0, rtol=1e-6)
    assert ((soft > 0).sum(-1) == 5).all()
    np.testing.assert_array_equal(soft.argmax(-1), bins.nearest(ab))
    hard = bins.soft_encode(ab, k=1)
    np.testing.assert_array_equal(hard, np.eye(313, dtype=np.float32)[bins.nearest(ab)])
    with pytest.raises(ValueError, match="k must be"):
        bins.soft_encode(ab, k=0)


def test_soft_encode_weights_follow_the_gaussian():
    bins = zhang313()
    soft = bins.soft_encode(np.array([3.0, 0.0]), k=2, sigma=5.0)  # centres (0,0), (10,0)
    i, j = bins.nearest(np.array([[0.0, 0.0], [10.0, 0.0]]))
    ratio = np.exp(-(7.0**2 - 3.0**2) / (2 * 5.0**2))
    np.testing.assert_allclose(soft[[i, j]], [1 / (1 + ratio), ratio / (1 + ratio)], rtol=1e-6)


def test_histogram_counts_every_pixel():
    bins = zhang313()
    ab = RNG.uniform(-80, 80, (4, 16, 16, 2))
    hist = bins.histogram(ab)
    assert hist.shape == (313,) and hist.dtype == np.float64 and hist.sum() == 4 * 16 * 16
    mask = RNG.random((4, 16, 16)) < 0.5
    assert bins.histogram(ab, weights=mask).sum() == mask.sum()


def test_decoding_limits():
    bins = zhang313()
    probs = RNG.dirichlet(np.full(313, 0.3), size=(5, 6)).astype(np.float32)
    mode = bins.centres[probs.argmax(-1)]
    np.testing.assert_array_equal(bins.decode_annealed(probs, T=0), mode)
    np.testing.assert_allclose(bins.decode_annealed(probs, T=1e-4), mode, atol=1e-3)
    np.testing.assert_allclose(bins.decode_annealed(probs, T=1), bins.decode_mean(probs), atol=1e-4)
    np.testing.assert_allclose(bins.decode_mean(probs), probs @ bins.centres, atol=1e-3)
    annealed = bins.decode_annealed(probs)
    assert annealed.shape == (5, 6, 2) and annealed.dtype == np.float32
    probs[..., :100] = 0  # zero probabilities are fine in log space
    assert np.isfinite(bins.decode_annealed(probs)).all()


def test_prior_streams_and_smoothing_keeps_mass():
    bins = zhang313()
    ab = RNG.normal(0, 30, (2, 32, 32, 2))
    whole, batched = PriorAccumulator(bins), PriorAccumulator(bins)
    whole.add(ab)
    batched.add(ab[:1])
    batched.add(ab[1:])
    np.testing.assert_array_equal(whole.counts, batched.counts)
    p = whole.prior()
    assert p.sum() == pytest.approx(1.0)
    smooth = smooth_prior(p, bins, sigma=5.0)
    assert smooth.sum() == pytest.approx(1.0) and (smooth >= 0).all()
    assert (smooth > 0).sum() > (p > 0).sum()  # mass spreads to neighbours
    with pytest.raises(ValueError, match="empty"):
        PriorAccumulator(bins).prior()


def test_smoothing_a_delta_is_symmetric():
    bins = zhang313()
    p = np.zeros(313)
    centre, right, left = bins.nearest(np.array([[0.0, 0.0], [10.0, 0.0], [-10.0, 0.0]]))
    p[centre] = 1
    smooth = smooth_prior(p, bins, sigma=5.0)
    assert smooth[centre] == smooth.max() and smooth[left] == pytest.approx(smooth[right])


def test_rebalance_weights():
    p = RNG.dirichlet(np.full(50, 0.5))
    w = rebalance_weights(p)
    assert np.dot(p, w) == pytest.approx(1.0)
    order = np.argsort(p)
    assert (np.diff(w[order]) <= 1e-12).all()  # rarer bins weigh more
    assert w[order[0]] > w[order[-1]]
    np.testing.assert_allclose(rebalance_weights(p, lam=1.0), 1.0)
    np.testing.assert_allclose(rebalance_weights(p * 7, lam=0.5), w)  # counts work too
    p[:5] = 0
    p /= p.sum()
    inverse = rebalance_weights(p, lam=0.0)
    assert np.dot(p, inverse) == pytest.approx(1.0) and np.isfinite(inverse).all()
    seen = p > 0
    np.testing.assert_allclose(inverse[seen] * p[seen], 1.0 / seen.sum())  # 1 / p, rescaled
    np.testing.assert_allclose(inverse[~seen], inverse[seen].max())
    with pytest.raises(ValueError, match="lam"):
        rebalance_weights(p, lam=1.5)
