"""Quantised ab space (Zhang et al. 2016): bin sets, soft encoding, decoding, prior, rebalancing."""

from __future__ import annotations

import functools
import io
import re
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # scipy is imported where it is used, so importing this module stays light
    from scipy.spatial import cKDTree

from harness.color.convert import AB_NORM, in_srgb_gamut

GAMUT_SAMPLES = 11  # points per cell side, edges included, tested for sRGB reachability
GAMUT_L = np.arange(0.0, 101.0)  # lightness levels tried, step 1 (finer changes nothing)
_GAMUT_CHUNK = 1 << 22  # Lab points tested at once (bounds memory for fine grids)
_GRID_SPEC = re.compile(r"grid:([1-9]\d*)(?:\+(\d+))?")


@dataclass(frozen=True, eq=False)
class ABBins:
    """Q ab bin centres. `centres`: (Q, 2) float32 (a, b) in Lab units, stored read-only."""

    name: str
    centres: np.ndarray

    def __post_init__(self) -> None:
        centres = np.array(self.centres, dtype=np.float32)
        if centres.ndim != 2 or centres.shape[1] != 2 or len(centres) == 0:
            raise ValueError(f"bins {self.name!r}: centres must be (Q, 2), got {centres.shape}")
        centres.flags.writeable = False
        object.__setattr__(self, "centres", centres)

    def __repr__(self) -> str:
        return f"ABBins({self.name!r}, q={self.q})"

    @property
    def q(self) -> int:
        """Number of bins Q."""
        return len(self.centres)

    @functools.cached_property
    def _tree(self) -> cKDTree:
        from scipy.spatial import cKDTree

        return cKDTree(self.centres.astype(np.float64))

    @functools.cached_property
    def lattice(self) -> tuple[np.ndarray, tuple[int, int], float]:
        """The regular grid the centres sit on: (cell indices (Q, 2) int, grid shape, width).

        Width is the smallest spacing between distinct coordinates; ValueError if the centres
        are not all on that grid.
        """
        c = self.centres.astype(np.float64)
        gaps = np.concatenate([np.diff(np.unique(c[:, j])) for j in (0, 1)])
        width = float(gaps.min()) if gaps.size else 1.0
        lo = c.min(axis=0)
        index = np.rint((c - lo) / width).astype(np.intp)
        if not np.allclose(index * width + lo, c, atol=1e-3 * width):
            raise ValueError(f"bins {self.name!r}: centres are not on a regular grid")
        index.flags.writeable = False
        return index, (int(index[:, 0].max()) + 1, int(index[:, 1].max()) + 1), width

    def _pixels(self, ab) -> tuple[np.ndarray, tuple[int, ...]]:
        ab = np.asarray(ab)
        if ab.shape[-1:] != (2,):
            raise ValueError(f"ab must have shape (..., 2), got {ab.shape}")
        return ab.reshape(-1, 2).astype(np.float64, copy=False), ab.shape[:-1]

    def nearest(self, ab) -> np.ndarray:
        """Index of the nearest centre: ab (..., 2) -> (...,) intp."""
        flat, shape = self._pixels(ab)
        return self._tree.query(flat, k=1, workers=-1)[1].reshape(shape)

    def soft_encode(self, ab, k: int = 5, sigma: float = 5.0) -> np.ndarray:
        """Soft targets: ab (..., 2) -> (..., Q) float32.

        Gaussian weights exp(-d^2 / 2 sigma^2) on the k nearest centres, summing to 1.
        """
        if not 1 <= k <= self.q:
            raise ValueError(f"k must be in [1, {self.q}], got {k}")
        flat, shape = self._pixels(ab)
        dist, index = self._tree.query(flat, k=list(range(1, k + 1)), workers=-1)  # (P, k)
        weight = np.exp(-(dist**2 - dist[:, :1] ** 2) / (2.0 * sigma**2))  # nearest weighs 1
        out = np.zeros((len(flat), self.q), dtype=np.float32)
        np.put_along_axis(out, index, weight / weight.sum(axis=1, keepdims=True), axis=1)
        return out.reshape(*shape, self.q)

    def histogram(self, ab, weights=None) -> np.ndarray:
        """Nearest-bin counts: ab (..., 2), optional weights (...,) -> (Q,) float64."""
        index = self.nearest(ab).ravel()
        if weights is not None:
            weights = np.asarray(weights, dtype=np.float64).ravel()
        return np.bincount(index, weights=weights, minlength=self.q).astype(np.float64)

    def _probs(self, probs) -> np.ndarray:
        probs = np.asarray(probs, dtype=np.float32)
        if probs.shape[-1:] != (self.q,):
            raise ValueError(f"probs must have shape (..., {self.q}), got {probs.shape}")
        return probs

    def decode_annealed(self, probs, T: float = 0.38) -> np.ndarray:
        """Annealed mean: probs (..., Q) -> ab (..., 2) float32.

        Weights probs^(1/T), renormalised (computed as a softmax of log(probs) / T); T = 1 is
        the mean, T -> 0 the mode, and T = 0 returns the mode's centre exactly.
        """
        probs = self._probs(probs)
        if T == 0:
            return self.centres[probs.argmax(axis=-1)]
        with np.errstate(divide="ignore"):
            logit = np.log(probs) / T
        weight = np.exp(logit - logit.max(axis=-1, keepdims=True))
        return (weight / weight.sum(axis=-1, keepdims=True)) @ self.centres

    def decode_mean(self, probs) -> np.ndarray:
        """Expected ab under probs (..., Q), renormalised -> (..., 2) float32."""
        probs = self._probs(probs)
        return (probs / probs.sum(axis=-1, keepdims=True)) @ self.centres


@functools.cache
def zhang313() -> ABBins:
    """The 313 published bin centres of Zhang et al. (2016), multiples of 10, (a, b) sorted."""
    text = resources.files(__package__).joinpath("data/pts_in_hull_313.csv").read_text()
    return ABBins("zhang313", np.loadtxt(io.StringIO(text), delimiter=",", skiprows=1))


@functools.cache
def _reachable_cells(centres_1d: tuple[float, ...], width: float) -> np.ndarray:
    """(n, n) bool, read-only: cell (i, j), the square of side `width` centred on
    (centres_1d[i], centres_1d[j]), holds a colour in the sRGB gamut for some L.

    Tests an 11 x 11 lattice per cell, edges included, at every L in GAMUT_L.
    """
    n = len(centres_1d)
    offsets = np.linspace(-width / 2, width / 2, GAMUT_SAMPLES)
    s = (np.asarray(centres_1d)[:, None] + offsets).ravel()  # (n * S,) coordinates per axis
    hit = np.zeros((s.size, s.size), dtype=bool)  # any L reaches sample (a_i, b_j)
    for levels in np.array_split(GAMUT_L, -(-GAMUT_L.size * s.size**2 // _GAMUT_CHUNK)):
        hit |= in_srgb_gamut(levels[:, None, None], s[:, None], s[None, :]).any(axis=0)
    cells = hit.reshape(n, GAMUT_SAMPLES, n, GAMUT_SAMPLES).any(axis=(1, 3))
    cells.flags.writeable = False
    return cells


def gamut_bins_from_centres(
    centres_1d, width: float, margin: int = 0, name: str = "gamut"
) -> ABBins:
    """Bins of the square grid centres_1d x centres_1d (cells of side `width`) that reach the
    sRGB gamut, plus every cell within `margin` cells of one (8-neighbourhood rings).

    Reachable: some point of an 11 x 11 lattice over the cell, edges included, is in gamut
    (linear sRGB in [0, 1], zero tolerance) at some integer L in [0, 100] (halving both steps
    changes nothing, see GAMUT.md). On the grid of multiples of 10 this gives 262 cells, all
    among the published 313; margin=1 gives 344, all 313 plus 31. Ordered by a, then b.
    """
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    c = np.asarray(centres_1d, dtype=np.float64).ravel()
    mask = _reachable_cells(tuple(c.tolist()), float(width))
    if margin:
        from scipy import ndimage

        mask = ndimage.binary_dilation(mask, np.ones((3, 3), bool), iterations=margin)
    ia, ib = np.nonzero(mask)
    return ABBins(name, np.stack([c[ia], c[ib]], axis=1))


@functools.cache
def gamut_bins(per_channel: int = 22, ab_range: float = AB_NORM, margin: int = 0) -> ABBins:
    """`gamut_bins_from_centres` on `per_channel` cells per axis tiling [-ab_range, ab_range].

    The default, 22 cells of width 10 centred on odd multiples of 5, keeps 265 of 484 cells
    (344 with margin=1).
    """
    width = 2.0 * ab_range / per_channel
    centres = -ab_range + width * (np.arange(per_channel) + 0.5)
    name = f"grid:{per_channel}" + (f"+{margin}" if margin else "")
    if ab_range != AB_NORM:
        name += f" over +-{ab_range:g}"
    return gamut_bins_from_centres(centres, width, margin, name)


def bins_from_spec(spec: str) -> ABBins:
    """Bin set from a config string: "zhang313", "grid:N" or "grid:N+M" (N cells per axis over
    [-110, 110], gamut cells plus M rings of margin)."""
    if spec == "zhang313":
        return zhang313()
    match = _GRID_SPEC.fullmatch(spec)
    if match is None:
        raise ValueError(
            f"unknown ab bin spec {spec!r}; expected 'zhang313', 'grid:N' or 'grid:N+M' "
            "(N >= 1 cells per channel over [-110, 110], M >= 0 cells of margin)"
        )
    return gamut_bins(int(match[1]), margin=int(match[2] or 0))


class PriorAccumulator:
    """Streaming histogram of ground-truth ab over a data set: `add` batches, then `prior`.

    Class-rebalancing weights, as in the paper: rebalance_weights(smooth_prior(acc.prior(), bins)).
    """

    __slots__ = ("bins", "counts")

    def __init__(self, bins: ABBins) -> None:
        self.bins = bins
        self.counts = np.zeros(bins.q)  # (Q,) float64

    def add(self, ab, weights=None) -> None:
        """Count a batch: ab (..., 2), optional per-pixel weights (...,) (e.g. a 0/1 mask)."""
        self.counts += self.bins.histogram(ab, weights)

    def prior(self) -> np.ndarray:
        """Empirical bin distribution (Q,) float64, summing to 1."""
        total = self.counts.sum()
        if total <= 0:
            raise ValueError("empty prior: no pixels were added")
        return self.counts / total


def smooth_prior(p, bins: ABBins, sigma: float = 5.0) -> np.ndarray:
    """Gaussian-smooth a prior (Q,) in the ab plane; sigma in ab units. Returns (Q,) summing to 1.

    p is placed on the bins' lattice (zero elsewhere), filtered, read back at the bins and
    renormalised, so mass spread off the bin set is discarded.
    """
    index, shape, width = bins.lattice
    plane = np.zeros(shape)
    plane[index[:, 0], index[:, 1]] = p
    from scipy import ndimage

    smooth = ndimage.gaussian_filter(plane, sigma / width, mode="constant")
    at_bins = smooth[index[:, 0], index[:, 1]]
    return at_bins / at_bins.sum()


def rebalance_weights(p, lam: float = 0.5) -> np.ndarray:
    """Class-rebalancing weights (Zhang et al. eq. 4): p (Q,) -> w (Q,) float64.

    w is proportional to 1 / ((1 - lam) p + lam / Q), scaled so that sum(p * w) = 1; lam = 1
    is uniform. p is normalised first. With lam = 0, bins of zero prior get the weight of the
    rarest observed bin (they are at least that rare) instead of infinity.
    """
    p = np.asarray(p, dtype=np.float64)
    if p.ndim != 1 or (p < 0).any() or p.sum() <= 0:
        raise ValueError("prior must be a non-negative (Q,) vector with positive mass")
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must be in [0, 1], got {lam}")
    p = p / p.sum()
    mix = (1.0 - lam) * p + lam / p.size
    w = 1.0 / np.maximum(mix, mix[mix > 0].min())
    return w / np.dot(p, w)
