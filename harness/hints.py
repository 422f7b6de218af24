"""Simulated user hints drawn from the ground truth, identical for every hint-taking method.

A hint is a small square patch of the test image whose ab the "user" reveals: every pixel of
the patch is given the patch's mean ground-truth ab, as Zhang et al. 2017 simulate user input
("Real-time user-guided image colorization with learned deep priors", SIGGRAPH 2017, the
section on simulating user interactions: each revealed patch shows its average colour).

Patch side: uniform over the integers ``patch = (smallest, largest)`` (the paper draws 1x1 to
9x9; the default here is 1x1 to 5x5). Patch position, by ``sampler``:

- ``"uniform"``: the top-left corner uniform over the positions where the patch fits.
- ``"gaussian"``: Zhang et al. 2017's draw, a 2-D Gaussian centred on the image,
  mu = 1/2 [H, W], Sigma = diag((H/4)^2, (W/4)^2), taken here as the patch centre; the patch is
  then moved inside the image (clipped), as the authors' code (richzhang/colorization-pytorch,
  ``util.add_color_patches_rand_gt``) clips it.

Determinism and nesting. Image ``i`` of the test set draws from its own generator, seeded by
``numpy.random.SeedSequence([seed, i])`` where ``i`` is the caller's image index (so batching
never changes a hint). Hint ``k`` uses the ``k``-th triple of uniform numbers of that stream
whatever ``count`` is, so the hints for ``count = n`` are the first ``n`` of those for any
larger count. Where patches overlap, the earlier hint keeps its pixels; so the hinted pixels
and values of a smaller count are exactly contained in a larger count's:
``levin@1`` sees a subset of what ``levin@10`` sees, which sees a subset of ``levin@100``'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SAMPLERS = ("uniform", "gaussian")


@dataclass(frozen=True, eq=False)
class Hints:
    """Hints for a batch of N images of H x W pixels.

    ``mask`` (N, H, W) bool: the hinted pixels. ``ab`` (N, H, W, 2) float32: the hinted ab where
    ``mask`` is true, 0 elsewhere. Both arrays are read-only.
    """

    mask: np.ndarray
    ab: np.ndarray

    def __post_init__(self) -> None:
        mask = np.asarray(self.mask)
        ab = np.asarray(self.ab)
        if mask.ndim != 3 or mask.dtype != bool:
            raise ValueError(f"Hints.mask must be a (N, H, W) bool array, got {mask.dtype} "
                             f"{mask.shape}")
        if ab.shape != (*mask.shape, 2):
            raise ValueError(f"Hints.ab must have shape {(*mask.shape, 2)}, got {ab.shape}")
        ab = ab.astype(np.float32, copy=True)
        ab[~mask] = 0.0
        mask = mask.copy()
        for array in (mask, ab):
            array.setflags(write=False)
        object.__setattr__(self, "mask", mask)
        object.__setattr__(self, "ab", ab)

    @classmethod
    def empty(cls, n: int, h: int, w: int) -> Hints:
        """No hint at all for ``n`` images of ``h`` x ``w``."""
        return cls(np.zeros((n, h, w), dtype=bool), np.zeros((n, h, w, 2), dtype=np.float32))

    def __len__(self) -> int:
        return len(self.mask)

    def __getitem__(self, items: slice | Sequence[int] | np.ndarray) -> Hints:
        """The hints of some of the images (a slice or index array), e.g. one batch."""
        if isinstance(items, (int, np.integer)):
            raise TypeError("index Hints with a slice or an array of indices, not an int")
        return Hints(self.mask[items], self.ab[items])


def sample_hints(ab_true: np.ndarray, count: int, seed: int, indices: Sequence[int] | np.ndarray,
                 sampler: str = "uniform", patch: tuple[int, int] = (1, 5)) -> Hints:
    """Draw ``count`` hints per image from the ground truth ``ab_true`` (N, H, W, 2).

    ``indices`` (N,) are the images' positions in the test set (or any stable id): image
    ``indices[j]`` gets the same hints whichever batch it is drawn in. See the module docstring
    for the samplers, the seeding and why smaller counts are prefixes of larger ones.
    """
    ab_true = np.asarray(ab_true)
    if ab_true.ndim != 4 or ab_true.shape[-1] != 2:
        raise ValueError(f"ab_true must have shape (N, H, W, 2), got {ab_true.shape}")
    n, h, w, _ = ab_true.shape
    indices = np.asarray(indices)
    if indices.shape != (n,) or not np.issubdtype(indices.dtype, np.integer):
        raise ValueError(f"indices must be {n} integers (one per image), got {indices.dtype} "
                         f"{indices.shape}")
    if (indices < 0).any():
        raise ValueError("indices must be non-negative")
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
        raise ValueError(f"count must be a non-negative integer, got {count!r}")
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    smallest, largest = (int(p) for p in patch)
    if not 1 <= smallest <= largest:
        raise ValueError(f"patch must be (smallest, largest) sides with 1 <= smallest <= "
                         f"largest, got {patch}")
    if largest > min(h, w):
        raise ValueError(f"patch side {largest} does not fit a {h} x {w} image")
    mask = np.zeros((n, h, w), dtype=bool)
    ab = np.zeros((n, h, w, 2), dtype=np.float32)
    for j in range(n):
        boxes = _boxes(h, w, count, int(seed), int(indices[j]), sampler, smallest, largest)
        for top, left, side in boxes[::-1]:  # painted last to first: an earlier hint wins
            window = (slice(top, top + side), slice(left, left + side))
            ab[j][window] = ab_true[j][window].mean(axis=(0, 1), dtype=np.float64)
            mask[j][window] = True
    return Hints(mask, ab)


def _boxes(h: int, w: int, count: int, seed: int, index: int, sampler: str, smallest: int,
           largest: int) -> np.ndarray:
    """(count, 3) int rows ``(top, left, side)`` of one image's hint patches, in draw order."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
    u = rng.random((count, 3))  # one triple per hint, the same triple whatever the count
    side = smallest + np.minimum((u[:, 0] * (largest - smallest + 1)).astype(np.int64),
                                 largest - smallest)
    corners = []
    for axis, extent in ((1, h), (2, w)):
        room = extent - side + 1  # valid top-left positions: 0 .. extent - side
        if sampler == "uniform":
            corner = np.minimum((u[:, axis] * room).astype(np.int64), room - 1)
        else:  # the patch centre ~ N(extent / 2, (extent / 4)^2), then clipped into the image
            from scipy.special import ndtri  # the normal quantile, imported when drawn


            centre = extent / 2 + extent / 4 * ndtri(u[:, axis])
            corner = np.clip(np.rint(centre - side / 2), 0, room - 1).astype(np.int64)
        corners.append(corner)
    return np.stack([corners[0], corners[1], side], axis=1)
