"""The ``levin`` baseline: Levin, Lischinski & Weiss 2004, "Colorization using Optimization".

Each of a and b is propagated from the hinted pixels by asking every other pixel ``r`` to
equal the weighted mean of its 3x3 neighbours ``s``:

    x_r - sum_s w_rs x_s = 0,   w_rs proportional to exp(-(L_r - L_s)^2 / (2 sigma_r^2)),

with ``sum_s w_rs = 1``: the paper's intensity affinity, ``sigma_r`` from the variance of L
over the 3x3 window around ``r``. The paper leaves the scale open; the authors' released
code (``getColorExact.m``) sets ``2 sigma_r^2 = 0.6 var_r``, raised where needed so that the
most similar neighbour weighs at least 0.01, and at least 2e-6 on [0, 1] intensities (0.02 in
L units, ``sigma_floor`` = 0.1 L). Those constants are used here, since they decide how much
colour leaks across an edge (with ``2 sigma_r^2 = 2 var_r`` a straight edge passes e^-2.25 of
a neighbour's weight instead of e^-7.5). Hinted pixels keep their hint value. Eliminating
them leaves ``(I - W)_UU x_U = W_UC c`` over the unhinted pixels ``U``: an irreducibly
diagonally dominant M-matrix (no 3x3 weight vanishes, see :func:`affinity`), so the solution
exists, is unique, and each pixel's a (or b) is a convex combination of the hinted values.
With no hint the right side is 0 and so is the answer: grey by construction.

Solvers. ``direct``: one sparse LU factorisation (SuperLU) of ``(I - W)_UU``, shared by a and
b. ``iterative``: restarted GMRES preconditioned by an incomplete LU of the same matrix, for
images too large to factorise. The system is not symmetric (``sigma_r`` belongs to row
``r``, and rows are normalised), so conjugate gradients would need the normal equations,
whose condition number is the square of this one's; GMRES solves the paper's system as it
stands, and both solvers agree to the iterative tolerance. ``auto`` factorises images up to
``DIRECT_MAX_PIXELS`` pixels (512 x 512) and iterates beyond.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field

from harness.colorizer import Colorizer, PluginOptions
from harness.hints import Hints
from harness.hookspecs import hookimpl

if TYPE_CHECKING:  # scipy.sparse is imported where it is used: registering stays light
    import scipy.sparse as sp

#: Largest image (in pixels) the ``auto`` solver factorises; larger ones are solved iteratively.
DIRECT_MAX_PIXELS = 512 * 512
SOLVERS = ("auto", "direct", "iterative")
#: Smallest sigma_r (L units): the authors' 2 sigma_r^2 >= 2e-6 on [0, 1] intensities.
SIGMA_FLOOR = 0.1
_VARIANCE_SCALE = 0.6  # 2 sigma_r^2 = 0.6 var_r, as in the authors' code
_WINDOW = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]


def affinity(L: np.ndarray, sigma_floor: float = SIGMA_FLOOR) -> sp.csr_matrix:
    """The row-normalised 3x3 intensity affinity ``W`` (H*W x H*W, CSR) of one image ``L``.

    Pixels are numbered row-major; windows are cut at the image border. ``2 sigma_r^2`` is the
    largest of ``0.6 var_r`` (the window's variance of L), ``min_s (L_r - L_s)^2 / ln 100``
    (the closest neighbour weighs at least 0.01) and ``2 sigma_floor^2``. As the window holds
    both ends of every difference it weighs, ``var_r >= (L_r - L_s)^2 / 18``, so no exponent
    exceeds 30: every row has 3 to 8 positive entries, summing to 1.
    """
    import scipy.sparse as sp

    L = np.asarray(L, dtype=np.float64)
    if L.ndim != 2:
        raise ValueError(f"L must be one (H, W) image, got shape {L.shape}")
    h, w = L.shape
    padded = np.pad(L, 1)
    inside = np.pad(np.ones((h, w), dtype=bool), 1)
    index = np.pad(np.arange(h * w).reshape(h, w), 1, constant_values=-1)

    def shifted(a: np.ndarray, dy: int, dx: int) -> np.ndarray:
        return a[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]

    window = np.stack([shifted(padded, dy, dx) for dy, dx in _WINDOW])
    valid = np.stack([shifted(inside, dy, dx) for dy, dx in _WINDOW])
    n = valid.sum(axis=0)
    var = (((window - (window * valid).sum(axis=0) / n) ** 2) * valid).sum(axis=0) / n
    diff2 = np.where(valid, (window - L) ** 2, np.inf)
    diff2[_WINDOW.index((0, 0))] = np.inf
    two_sigma2 = np.maximum.reduce([_VARIANCE_SCALE * var, diff2.min(axis=0) / np.log(100.0),
                                    np.full_like(var, 2.0 * sigma_floor**2)])
    ok = valid & np.isfinite(diff2)
    rows = np.broadcast_to(index[1:-1, 1:-1], ok.shape)[ok]
    cols = np.stack([shifted(index, dy, dx) for dy, dx in _WINDOW])[ok]
    weights = np.exp(-diff2 / two_sigma2)[ok]
    weights /= np.bincount(rows, weights, minlength=h * w)[rows]
    return sp.csr_matrix((weights, (rows, cols)), shape=(h * w, h * w))


def levin_propagate(L: np.ndarray, mask: np.ndarray, hint_ab: np.ndarray, *,
                    solver: str = "auto", sigma_floor: float = SIGMA_FLOOR,
                    rtol: float = 1e-8) -> np.ndarray:
    """ab (H, W, 2) float32 propagated from the hints of one image.

    ``L`` (H, W) in [0, 100]; ``mask`` (H, W) bool, the hinted pixels; ``hint_ab`` (H, W, 2),
    read where ``mask`` is true. ``solver``: "auto", "direct" or "iterative" (module
    docstring); ``rtol`` is the iterative solver's relative residual tolerance.
    """
    import scipy.sparse as sp

    L = np.asarray(L, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    hint_ab = np.asarray(hint_ab, dtype=np.float64)
    if L.ndim != 2 or mask.shape != L.shape or hint_ab.shape != (*L.shape, 2):
        raise ValueError(f"expected L (H, W), mask (H, W) and hint_ab (H, W, 2); got "
                         f"{L.shape}, {mask.shape} and {hint_ab.shape}")
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    h, w = L.shape
    out = np.zeros((h * w, 2), dtype=np.float64)
    hinted = mask.ravel()
    if not hinted.any():  # right side 0: the solution is 0, grey
        return out.reshape(h, w, 2).astype(np.float32)
    out[hinted] = hint_ab.reshape(-1, 2)[hinted]
    free = ~hinted
    if free.any():
        W = affinity(L, sigma_floor)
        W_free = W[free]
        A = (sp.identity(int(free.sum()), format="csr") - W_free[:, free]).tocsc()
        rhs = W_free[:, hinted] @ out[hinted]
        if solver == "auto":
            solver = "direct" if h * w <= DIRECT_MAX_PIXELS else "iterative"
        out[free] = _direct(A, rhs) if solver == "direct" else _iterative(A, rhs, rtol)
    return out.reshape(h, w, 2).astype(np.float32)


def _direct(A: sp.csc_matrix, rhs: np.ndarray) -> np.ndarray:
    """Both channels from one LU factorisation."""
    import scipy.sparse.linalg as spla

    return spla.splu(A).solve(rhs)


def _iterative(A: sp.csc_matrix, rhs: np.ndarray, rtol: float) -> np.ndarray:
    """Each channel by GMRES, preconditioned by one incomplete LU shared by both."""
    import scipy.sparse.linalg as spla

    ilu = spla.spilu(A, drop_tol=1e-5, fill_factor=20)
    precondition = spla.LinearOperator(A.shape, ilu.solve)
    out = np.empty_like(rhs)
    for channel in range(rhs.shape[1]):
        x, info = spla.gmres(A, rhs[:, channel], M=precondition, rtol=rtol, atol=0.0,
                             restart=50, maxiter=200)
        if info != 0:
            raise RuntimeError(f"levin: GMRES did not converge to rtol {rtol} in {info} "
                               f"iterations (channel {'ab'[channel]}, {A.shape[0]} unknowns)")
        out[:, channel] = x
    return out


class LevinOptions(PluginOptions):
    solver: Literal["auto", "direct", "iterative"] = Field(
        "auto", description=f"sparse LU up to {DIRECT_MAX_PIXELS} pixels, GMRES beyond (auto)")
    sigma_floor: float = Field(SIGMA_FLOOR, gt=0,
                               description="smallest sigma_r of the affinity (L units)")


class LevinColorizer(Colorizer):
    """Levin et al. 2004: spreads hinted ab along similar intensities (user-assisted)."""

    Options = LevinOptions
    #: Takes hints (see :mod:`harness.hints`); without them it predicts grey.
    takes_hints = True
    stateless = True

    def fit(self, train, val, budget, ctx) -> None:
        """Nothing to learn: the method is a per-image optimisation."""

    def predict(self, L: np.ndarray, hints: Hints | None = None) -> np.ndarray:
        """ab (N, H, W, 2) for ``L`` (N, H, W), propagated from ``hints`` (grey without)."""
        L = np.asarray(L)
        if hints is None or not len(L):
            return np.zeros((*L.shape, 2), dtype=np.float32)
        if hints.mask.shape != L.shape:
            raise ValueError(f"levin: hints are for images of shape {hints.mask.shape[1:]} "
                             f"(x{len(hints)}), L is {L.shape[1:]} (x{len(L)}); hints must be "
                             f"drawn at the size L is given")
        return np.stack([
            levin_propagate(image, m, ab, solver=self.options.solver,
                            sigma_floor=self.options.sigma_floor)
            for image, m, ab in zip(L, hints.mask, hints.ab)])


@hookimpl(trylast=True)
def harness_register_colorizers(register):
    register("levin", LevinColorizer, framework="numpy",
             summary="Levin et al. 2004 hint propagation (user-assisted)")
