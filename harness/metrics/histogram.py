"""Dataset-level ab-histogram metrics: intersection, Jensen-Shannon divergence, earth mover's.

Each image contributes its two normalised ab histograms on the quantised grid (``context.bins``,
nearest-bin assignment); the aggregate averages them over the (resampled) images, so every
image weighs the same, and compares the predicted histogram P with the ground truth's G.

EMD solver: the transport LP solved by ``scipy.optimize.linprog`` (HiGHS simplex). Because the
ground distance (Euclidean between bin centres) is a metric, mass common to P and G stays in
place at no cost (Kantorovich-Rubinstein), so EMD(P, G) = EMD((P - G)+, (G - P)+) and the LP
only needs the bins where P exceeds G (sources) and where G exceeds P (sinks): at most
|S| x |T| <= 157 x 156 variables on the 313 bins, instead of one per pair of occupied bins.
``scipy.stats.wasserstein_distance_nd`` (scipy >= 1.13) solves the same problem exactly (its
dual, with ``milp``) and the tests check that the two agree, but it rebuilds the full problem
on every call: ~0.8 s against ~11 ms here on a typical pair, which the bootstrap (hundreds of
aggregates) cannot afford.
"""

from __future__ import annotations

import functools
import weakref

import numpy as np

from harness.color import ABBins, zhang313
from harness.hookspecs import hookimpl
from harness.metrics import ImageBatch, Metric
from harness.metrics.truth import digest

_BIN_INDEX_KEY = "histogram.bin-index"  # context.cache entry: the current batch's prediction

# Bin set of the statistics last computed with Q bins. `aggregate` receives only the (N, 2, Q)
# rows, so the EMD looks its support up here: the engine computes all batches of a run, then
# aggregates, so the latest bin set with that Q is the one its rows were counted on.
_BINS_BY_Q: dict[int, ABBins] = {}


def bins_name(bins: ABBins) -> str:
    """A name for ``bins`` in the ground-truth store: its name and a digest of its centres."""
    return f"{bins.name}:{digest(bins.centres)[:16]}"


def bin_index(batch: ImageBatch, which: str) -> np.ndarray:
    """Nearest-bin index (N, H, W) of ``batch.ab_pred`` (which="pred") or ``ab_true``.

    The ground truth's is computed once per context (shared by every model); the
    prediction's is cached in ``batch.context.cache`` for the current batch only (held by a
    weak reference), so the three histogram metrics and the rebalanced AuC query the bins once
    per batch.

    >>> ab = np.array([[[[-90.0, 51.0], [-89.0, 62.0]]]])
    >>> batch = ImageBatch(np.full((1, 1, 2), 50.0), ab, ab)
    >>> bin_index(batch, "true")  # zhang313's first two centres: (-90, 50), (-90, 60)
    array([[[0, 1]]])
    """
    bins = batch.context.bins if batch.context.bins is not None else zhang313()
    if which == "true":
        return batch.from_truth(f"bin-index:{bins_name(bins)}",
                                lambda: bins.nearest(batch.ab_true))
    entry = batch.context.cache.get(_BIN_INDEX_KEY)
    if entry is None or entry[0]() is not batch or entry[1] is not bins:
        entry = (weakref.ref(batch), bins, bins.nearest(batch.ab_pred))
        batch.context.cache[_BIN_INDEX_KEY] = entry
    return entry[2]


def image_histograms(index: np.ndarray, q: int) -> np.ndarray:
    """Per-image normalised histograms of bin indices: index (N, ...) ints -> (N, Q) float64.

    >>> image_histograms(np.array([[0, 0, 1, 0], [2, 2, 2, 2]]), 3)
    array([[0.75, 0.25, 0.  ],
           [0.  , 0.  , 1.  ]])
    """
    index = np.asarray(index).reshape(len(index), -1)  # (N, P)
    n, pixels = index.shape
    flat = (index + q * np.arange(n)[:, None]).ravel()
    return np.bincount(flat, minlength=n * q).reshape(n, q) / max(pixels, 1)


def ab_histograms(ab_pred, ab_true, bins: ABBins) -> np.ndarray:
    """Per-image (prediction, ground truth) ab histograms: (N, H, W, 2) x 2 -> (N, 2, Q).

    Each pixel counts for its nearest bin; each histogram sums to 1.

    >>> two = ABBins("two", [[0, 0], [10, 0]])
    >>> pred = np.array([[[[1.0, 0.0], [2.0, 1.0]]]])  # 1 image, 1 x 2 pixels
    >>> true = np.array([[[[9.0, 0.0], [1.0, 0.0]]]])
    >>> ab_histograms(pred, true, two)
    array([[[1. , 0. ],
            [0.5, 0.5]]])
    """
    q = bins.q
    return np.stack(
        [image_histograms(bins.nearest(ab_pred), q), image_histograms(bins.nearest(ab_true), q)],
        axis=1,
    )


def _normalised(h) -> np.ndarray:
    h = np.asarray(h, dtype=np.float64)
    total = h.sum()
    if h.ndim != 1 or total <= 0 or (h < 0).any():
        raise ValueError("a histogram must be a non-negative (Q,) vector with positive mass")
    return h / total


def hist_intersection(p, g) -> float:
    """Histogram intersection sum_q min(P_q, G_q) of the normalised histograms, in [0, 1].

    >>> hist_intersection([1, 0], [0.5, 0.5])
    0.5
    """
    return float(np.minimum(_normalised(p), _normalised(g)).sum())


def hist_js(p, g) -> float:
    """Jensen-Shannon divergence in bits, in [0, 1]: with M = (P + G) / 2,
    JS = KL(P || M) / 2 + KL(G || M) / 2, logarithms base 2 (the square of
    ``scipy.spatial.distance.jensenshannon(P, G, base=2)``).

    P = (1, 0) against G = (1/2, 1/2) gives 3/2 - (3/4) log2 3:

    >>> round(hist_js([1, 0], [0.5, 0.5]), 6)
    0.311278
    """
    from scipy.spatial.distance import jensenshannon  # scipy on use: registration stays light

    return float(jensenshannon(_normalised(p), _normalised(g), base=2.0) ** 2)


@functools.lru_cache(maxsize=8)
def _ground_distance(bins: ABBins) -> np.ndarray:
    """(Q, Q) Euclidean distances between the bin centres, read-only, one per bin set."""
    c = bins.centres.astype(np.float64)
    from scipy.spatial.distance import cdist

    dist = cdist(c, c)
    dist.flags.writeable = False
    return dist


def hist_emd(p, g, centres, dist=None) -> float:
    """Earth mover's distance (Wasserstein-1) between two histograms on the support ``centres``.

    EMD = min_F sum_ij F_ij ||c_i - c_j||_2 over flows F >= 0 with row sums P and column sums
    G (both normalised), in the units of the centres (Lab ab units for bin centres). The bins
    are the support and the histogram heights the weights; they are never samples. Only bins
    where P and G differ enter the LP (see the module docstring); ``dist`` (Q, Q) may hold the
    precomputed centre distances.

    All mass in bin 0 against half of it moved 10 units away:

    >>> hist_emd([1, 0], [0.5, 0.5], [[0, 0], [10, 0]])
    5.0
    """
    from scipy import sparse
    from scipy.optimize import linprog
    from scipy.spatial.distance import cdist

    d = _normalised(p) - _normalised(g)
    src, dst = np.flatnonzero(d > 0), np.flatnonzero(d < 0)
    if src.size == 0 or dst.size == 0:
        return 0.0
    supply, demand = d[src], -d[dst]
    demand *= supply.sum() / demand.sum()  # equal totals to the last bit
    if dist is None:
        c = np.asarray(centres, dtype=np.float64)
        cost = cdist(c[src], c[dst])
    else:
        cost = dist[np.ix_(src, dst)]
    if src.size == 1 or dst.size == 1:  # one end of every flow is fixed: no choice to make
        return float(supply @ cost[:, 0] if dst.size == 1 else cost[0] @ demand)
    m, n = cost.shape
    k = np.arange(m * n)  # variable k is the flow from source k // n to sink k % n
    rows = np.concatenate([k // n, m + k % n])
    a_eq = sparse.csc_array((np.ones(2 * m * n), (rows, np.concatenate([k, k]))), (m + n, m * n))
    res = linprog(
        cost.ravel(),
        A_eq=a_eq,
        b_eq=np.concatenate([supply, demand]),
        bounds=(0, None),
        method="highs",
        options={"presolve": False},  # presolve only slows these small dense LPs down (2x)
    )
    if res.status != 0:
        raise RuntimeError(f"EMD transport LP failed: {res.message}")
    return float(res.fun)


def histogram_stats(batch: ImageBatch) -> np.ndarray:
    """``compute`` of the histogram metrics: (N, 2, Q) per-image (prediction, truth) histograms
    of the batch on ``context.bins`` (zhang313 when unset), each summing to 1.

    >>> ab = np.array([[[[-90.0, 51.0], [-89.0, 62.0]]]])
    >>> histogram_stats(ImageBatch(np.full((1, 1, 2), 50.0), ab, ab))[0, :, :3]
    array([[0.5, 0.5, 0. ],
           [0.5, 0.5, 0. ]])
    """
    bins = batch.context.bins if batch.context.bins is not None else zhang313()
    _BINS_BY_Q[bins.q] = bins
    true = batch.from_truth(f"histograms:{bins_name(bins)}",
                            lambda: image_histograms(bin_index(batch, "true"), bins.q))
    return np.stack([image_histograms(bin_index(batch, "pred"), bins.q), true], axis=1)


def pooled(stats) -> tuple[np.ndarray, np.ndarray]:
    """Dataset histograms (P, G), each (Q,) summing to 1, from (N, 2, Q) per-image rows:
    P = sum_n stats[n, 0] / sum(...), G likewise from stats[:, 1].

    >>> p, g = pooled(np.array([[[1.0, 0.0], [1.0, 0.0]], [[1.0, 0.0], [0.0, 1.0]]]))
    >>> p, g
    (array([1., 0.]), array([0.5, 0.5]))
    """
    stats = np.asarray(stats, dtype=np.float64)
    if stats.ndim != 3 or stats.shape[1] != 2:
        raise ValueError(f"expected (N, 2, Q) histogram rows, got {stats.shape}")
    total = stats.sum(axis=0)
    return _normalised(total[0]), _normalised(total[1])


def _bins_for(q: int) -> ABBins:
    if q in _BINS_BY_Q:
        return _BINS_BY_Q[q]
    if q == zhang313().q:
        return zhang313()
    raise ValueError(f"no bin set with {q} bins was used to compute these histograms")


def intersection_value(stats) -> float:
    """``aggregate`` of ab-hist-intersection: `hist_intersection` of the `pooled` rows.

    Two images on zhang313: the predictions all in bin 0, the truths in bins 0 and 1 (10 apart).

    >>> rows = np.zeros((2, 2, 313)); rows[:, 0, 0] = 1; rows[0, 1, 0] = rows[1, 1, 1] = 1
    >>> intersection_value(rows)
    0.5
    """
    return hist_intersection(*pooled(stats))


def js_value(stats) -> float:
    """``aggregate`` of ab-hist-js: `hist_js` (bits) of the `pooled` rows.

    >>> rows = np.zeros((2, 2, 313)); rows[:, 0, 0] = 1; rows[0, 1, 0] = rows[1, 1, 1] = 1
    >>> round(js_value(rows), 6)
    0.311278
    """
    return hist_js(*pooled(stats))


def emd_value(stats) -> float:
    """``aggregate`` of ab-hist-emd: `hist_emd` of the `pooled` rows, on the bin centres they
    were counted on (the last bin set with Q bins that `histogram_stats` saw; zhang313 if none).

    >>> rows = np.zeros((2, 2, 313)); rows[:, 0, 0] = 1; rows[0, 1, 0] = rows[1, 1, 1] = 1
    >>> emd_value(rows)
    5.0
    """
    p, g = pooled(stats)
    bins = _bins_for(len(p))
    return hist_emd(p, g, bins.centres, dist=_ground_distance(bins))


_GRID = "ab grid of Zhang et al., Colorful Image Colorization, ECCV 2016"
METRICS = (
    Metric(
        "ab-hist-intersection",
        histogram_stats,
        higher_is_better=True,
        unit="",
        citation=f"Swain & Ballard, Color Indexing, IJCV 1991; {_GRID}",
        summary="Overlap sum_q min(P_q, G_q) of the test set's predicted and true ab histograms",
        aggregate=intersection_value,
    ),
    Metric(
        "ab-hist-js",
        histogram_stats,
        higher_is_better=False,
        unit="bits",
        citation=f"Lin, Divergence measures based on the Shannon entropy, IEEE TIT 1991; {_GRID}",
        summary="Jensen-Shannon divergence (base 2) between predicted and true ab histograms",
        aggregate=js_value,
    ),
    Metric(
        "ab-hist-emd",
        histogram_stats,
        higher_is_better=False,
        unit="ab",
        citation=(
            "Rubner, Tomasi & Guibas, The Earth Mover's Distance as a Metric for Image "
            f"Retrieval, IJCV 2000; {_GRID}"
        ),
        summary="Earth mover's distance between predicted and true ab histograms (bin centres)",
        aggregate=emd_value,
    ),
)


@hookimpl
def harness_register_metrics(register):
    for metric in METRICS:
        register(metric)
