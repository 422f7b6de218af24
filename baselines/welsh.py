"""The ``welsh`` baseline: Welsh, Ashikhmin & Mueller 2002, "Transferring Color to Greyscale
Images", global matching with jittered samples (the paper's automatic mode).

For a target (greyscale) image and a colour reference:

1. Luminance remapping (the paper's global matching step, after Hertzmann et al. 2001): the
   reference's luminance is shifted and scaled to the target's mean and standard deviation,
   ``L_ref' = sd_t / sd_ref * (L_ref - mean_ref) + mean_t``; the target's L is untouched.
2. About ``samples`` (200 in the paper) reference pixels are drawn on a jittered grid: a
   g x g grid of cells, ``g = round(sqrt(samples))`` (200 -> 14 x 14 = 196), one uniformly
   placed sample per cell.
3. Every target pixel takes the ab of the sample that minimises the weighted sum
   ``weight * |L_t - L_s'| + (1 - weight) * |sd5_t - sd5_s'|``, where ``sd5`` is the standard
   deviation of L over the 5x5 neighbourhood (the paper weighs the two 50/50). The search is
   a k-d tree (``scipy.spatial.cKDTree``) in the L1 metric on the weighted features.

Only ab is returned: the host recombines it with the input's own L, which stays exact.

Reference choice, from the training split only. ``fit`` indexes every training image whole
(``ctx.train_full``, the training photos at the evaluation size, resized with antialiasing to
the side of ``train``'s crops, which is the size the host gives ``predict`` L at; outside a run,
``train`` itself): its luminance features, its jittered samples and its colour statistics (see
:class:`RefIndex`). That is a few histograms per image, well under a second for the 257
training photos.

- ``reference: auto`` ranks the training images by the L1 distance between L-only features:
  a 16-bin histogram of L over [0, 100] and an 8-bin histogram of the 5x5 neighbourhood
  standard deviation (edges 0, 0.5, 1, 2, 4, 8, 16, 32, inf L), each normalised to sum to 1.
  They are the marginal distributions of the two quantities the matcher compares, so a
  reference close in them offers every target pixel a sample of similar luminance and texture;
  they cost two histograms per image. :meth:`WelshColorizer.choose` receives L alone, and
  in this mode the model is automatic: the host gives ``predict`` no colour at all.
- ``reference: oracle`` picks the training image whose ab distribution, summarised by its mean
  and covariance, is nearest to the test image's ground truth in the 2-Wasserstein distance
  between Gaussians. It USES THE GROUND TRUTH and shows what a good reference is worth: the
  model then declares ``uses_ground_truth`` (:mod:`harness.colorizer`), the host passes
  ``predict(L, ab_true=...)``, and the tables mark its row "oracle (uses ground truth)".

Every choice is appended to :attr:`WelshColorizer.chosen` (one :class:`Choice` per image, in
prediction order); in a run :meth:`WelshColorizer.write_extras` saves them to the model's
``references.csv`` (test image, chosen training image, distance, auto or oracle).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from harness.atomic import write_json, write_text, write_with
from harness.colorizer import Colorizer, PluginOptions
from harness.hookspecs import hookimpl

L_BINS = 16
SD_EDGES = np.array([0, 0.5, 1, 2, 4, 8, 16, 32, np.inf])
NEIGHBOURHOOD = 5
INDEX_FILE, NAMES_FILE = "welsh_index.npz", "welsh_index.json"
REFERENCES_FILE = "references.csv"


def neighbourhood_sd(L: np.ndarray, size: int = NEIGHBOURHOOD) -> np.ndarray:
    """Standard deviation of ``L`` (H, W) over each pixel's ``size`` x ``size`` neighbourhood
    (mirrored at the border)."""
    from scipy.ndimage import uniform_filter  # here, not at import: registering stays light

    L = np.asarray(L, dtype=np.float64)
    mean = uniform_filter(L, size, mode="reflect")
    return np.sqrt(np.maximum(uniform_filter(L * L, size, mode="reflect") - mean**2, 0.0))


def luminance_features(L: np.ndarray) -> np.ndarray:
    """The L-only feature vector of one image (module docstring): (16 + 8,) float64."""
    L = np.asarray(L, dtype=np.float64)
    lum = np.histogram(np.clip(L, 0, 100), bins=L_BINS, range=(0, 100))[0]
    sd = np.histogram(neighbourhood_sd(L), bins=SD_EDGES)[0]
    return np.concatenate([lum / max(lum.sum(), 1), sd / max(sd.sum(), 1)])


def colour_statistics(ab: np.ndarray) -> np.ndarray:
    """Mean and covariance of one image's ab (H, W, 2): (5,) = mean a, mean b, aa, ab, bb."""
    flat = np.asarray(ab, dtype=np.float64).reshape(-1, 2)
    cov = np.cov(flat, rowvar=False, bias=True)
    return np.array([*flat.mean(axis=0), cov[0, 0], cov[0, 1], cov[1, 1]])


def gaussian_w2(stats: np.ndarray, others: np.ndarray) -> np.ndarray:
    """2-Wasserstein distances between the Gaussian of ``stats`` (5,) and each row of ``others``
    (M, 5) (:func:`colour_statistics` layout), by the closed form for 2 x 2 covariances:
    ``|m1 - m2|^2 + tr S1 + tr S2 - 2 sqrt(tr(S1 S2) + 2 sqrt(det S1 det S2))``."""
    m1, (aa1, ab1, bb1) = stats[:2], stats[2:]
    m2, aa2, ab2, bb2 = others[:, :2], others[:, 2], others[:, 3], others[:, 4]
    tr_prod = aa1 * aa2 + 2 * ab1 * ab2 + bb1 * bb2
    dets = np.maximum(aa1 * bb1 - ab1**2, 0) * np.maximum(aa2 * bb2 - ab2**2, 0)
    cross = np.sqrt(np.maximum(tr_prod + 2 * np.sqrt(dets), 0))
    w2 = ((m2 - m1) ** 2).sum(axis=1) + aa1 + bb1 + aa2 + bb2 - 2 * cross
    return np.sqrt(np.maximum(w2, 0))


def jittered_positions(h: int, w: int, samples: int, rng: np.random.Generator) -> np.ndarray:
    """(g*g, 2) int (row, col) pixel positions, one uniform draw in each cell of a g x g grid
    over an ``h`` x ``w`` image, ``g = max(1, round(sqrt(samples)))``."""
    g = max(1, round(np.sqrt(samples)))
    cells = np.stack(np.meshgrid(np.arange(g), np.arange(g), indexing="ij"), axis=-1)
    spot = (cells.reshape(-1, 2) + rng.random((g * g, 2))) / g * np.array([h, w])
    return np.minimum(spot.astype(np.int64), np.array([h - 1, w - 1]))


@dataclass(frozen=True)
class Choice:
    """The reference chosen for one test image: position and name in the training split, the
    feature (auto) or colour-statistics (oracle) distance, and whether ground truth was used."""

    train_index: int
    name: str
    distance: float
    oracle: bool

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class RefIndex:
    """What ``fit`` keeps of the training images, one row per image.

    ``features`` (M, 24): :func:`luminance_features`; ``sample_L``, ``sample_sd`` (M, S) and
    ``sample_ab`` (M, S, 2): the jittered samples' L, 5x5 standard deviation and ab;
    ``lum_mean``, ``lum_sd`` (M,): each image's L mean and standard deviation (for remapping);
    ``colour`` (M, 5): :func:`colour_statistics`, read only by the oracle; ``names`` (M,).
    """

    features: np.ndarray
    sample_L: np.ndarray
    sample_sd: np.ndarray
    sample_ab: np.ndarray
    lum_mean: np.ndarray
    lum_sd: np.ndarray
    colour: np.ndarray
    names: tuple[str, ...]

    ARRAYS = ("features", "sample_L", "sample_sd", "sample_ab", "lum_mean", "lum_sd", "colour")


def welsh_transfer(L: np.ndarray, index: RefIndex, ref: int, weight: float = 0.5) -> np.ndarray:
    """ab (H, W, 2) float32 for the target ``L`` (H, W), from reference row ``ref`` of ``index``."""
    from scipy.spatial import cKDTree

    L = np.asarray(L, dtype=np.float64)
    mean_t, sd_t = L.mean(), L.std()
    sd_r = index.lum_sd[ref]
    scale = sd_t / sd_r if sd_r > 1e-6 else 1.0  # a flat reference is only shifted
    ref_L = scale * (index.sample_L[ref] - index.lum_mean[ref]) + mean_t
    ref_sd = scale * index.sample_sd[ref]
    w = np.array([weight, 1.0 - weight])
    tree = cKDTree(np.stack([ref_L, ref_sd], axis=1) * w)
    target = np.stack([L.ravel(), neighbourhood_sd(L).ravel()], axis=1) * w
    _, nearest = tree.query(target, k=1, p=1)
    return index.sample_ab[ref][nearest].reshape(*L.shape, 2).astype(np.float32)


class WelshOptions(PluginOptions):
    reference: Literal["auto", "oracle"] = Field(
        "auto", description="auto: nearest training image by L features; oracle: by the test "
                            "image's ground-truth colour (uses ground truth)")
    samples: int = Field(200, ge=1, description="jittered reference samples (the paper: 200)")
    weight: float = Field(0.5, ge=0, le=1,
                          description="weight of luminance against 5x5 standard deviation")


class WelshColorizer(Colorizer):
    """Welsh et al. 2002: colour transferred from the most similar training photo."""

    Options = WelshOptions

    def __init__(self, options: WelshOptions | None = None) -> None:
        super().__init__(options)
        self.index: RefIndex | None = None
        #: One :class:`Choice` per predicted image, in order (clear it to start a new record).
        self.chosen: list[Choice] = []

    @property
    def uses_ground_truth(self) -> bool:
        """True with ``reference: oracle``: the host then passes the test ground truth."""
        return self.options.reference == "oracle"

    def fit(self, train, val, budget, ctx) -> None:
        """Index the training images (no learning): features, jittered samples, colour stats.

        The images are ``ctx.train_full`` (whole) when the host gives it, resized to the side
        of ``train``'s samples, else ``train``'s. Image ``k`` draws its samples from
        ``SeedSequence([ctx.seed, k])``.
        """
        from skimage.transform import resize

        images = ctx.train_full if ctx.train_full is not None else train
        if not len(images):
            raise ValueError("welsh: the training set is empty; it needs reference images")
        side = train.image_size
        rows: dict[str, list] = {name: [] for name in RefIndex.ARRAYS}
        k = 0
        for L_batch, ab_batch, _ in images.iter_batches(16):
            for L, ab in zip(L_batch.astype(np.float64), ab_batch.astype(np.float64)):
                if L.shape != (side, side):
                    lab = resize(np.concatenate([L[..., None], ab], axis=-1), (side, side),
                                 order=1, anti_aliasing=True, preserve_range=True)
                    L, ab = lab[..., 0], lab[..., 1:]
                rng = np.random.default_rng(np.random.SeedSequence([ctx.seed, k]))
                r, c = jittered_positions(*L.shape, self.options.samples, rng).T
                rows["features"].append(luminance_features(L))
                rows["sample_L"].append(L[r, c])
                rows["sample_sd"].append(neighbourhood_sd(L)[r, c])
                rows["sample_ab"].append(ab[r, c])
                rows["lum_mean"].append(L.mean())
                rows["lum_sd"].append(L.std())
                rows["colour"].append(colour_statistics(ab))
                k += 1
        self.index = RefIndex(**{name: np.asarray(v, dtype=np.float32 if name == "sample_ab"
                                                  else np.float64) for name, v in rows.items()},
                              names=tuple(images.names))
        self.chosen = []

    def _index(self) -> RefIndex:
        if self.index is None:
            raise RuntimeError("welsh: no reference index; call fit (or load) first")
        return self.index

    def choose(self, L: np.ndarray) -> list[Choice]:
        """The auto reference for each image of ``L`` (N, H, W): L only, never colour."""
        index = self._index()
        out = []
        for image in np.asarray(L):
            distance = np.abs(index.features - luminance_features(image)).sum(axis=1)
            best = int(np.argmin(distance))
            out.append(Choice(best, index.names[best], float(distance[best]), oracle=False))
        return out

    def choose_oracle(self, ab_true: np.ndarray) -> list[Choice]:
        """The oracle reference for each image of the ground truth ``ab_true`` (N, H, W, 2)."""
        index = self._index()
        out = []
        for ab in np.asarray(ab_true):
            distance = gaussian_w2(colour_statistics(ab), index.colour)
            best = int(np.argmin(distance))
            out.append(Choice(best, index.names[best], float(distance[best]), oracle=True))
        return out

    def _transfer(self, L: np.ndarray, choices: list[Choice]) -> np.ndarray:
        self.chosen.extend(choices)
        index, L = self._index(), np.asarray(L)
        out = np.zeros((*L.shape, 2), dtype=np.float32)
        for j, choice in enumerate(choices):
            out[j] = welsh_transfer(L[j], index, choice.train_index, self.options.weight)
        return out

    def predict(self, L: np.ndarray, ab_true: np.ndarray | None = None) -> np.ndarray:
        """ab (N, H, W, 2) for ``L`` (N, H, W), each image from its chosen reference.

        ``reference: auto`` chooses on L and takes no ``ab_true``; ``reference: oracle``
        needs the ground truth ``ab_true`` (N, H', W', 2) of the same images (any size).
        """
        if not self.uses_ground_truth:
            if ab_true is not None:
                raise ValueError("welsh: reference 'auto' chooses on L alone; it takes no "
                                 "ab_true")
            return self._transfer(L, self.choose(L))
        if ab_true is None:
            raise ValueError("welsh: reference 'oracle' needs the test ground truth ab_true")
        if len(L) != len(ab_true):
            raise ValueError(f"welsh: {len(L)} L images but {len(ab_true)} ab images")
        return self._transfer(L, self.choose_oracle(ab_true))

    def write_extras(self, directory: Path, test) -> None:
        """``references.csv``: per test image, the training image chosen as its reference."""
        if len(self.chosen) != len(test):
            raise ValueError(f"welsh: {len(self.chosen)} references recorded for "
                             f"{len(test)} test images")
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["image", "reference", "distance", "choice"])
        writer.writerows([name, c.name, f"{c.distance:.6g}", "oracle" if c.oracle else "auto"]
                         for name, c in zip(test.names, self.chosen))
        write_text(Path(directory) / REFERENCES_FILE, buffer.getvalue())

    def save(self, directory: Path) -> None:
        index = self._index()
        arrays = {name: getattr(index, name) for name in RefIndex.ARRAYS}
        write_with(Path(directory) / INDEX_FILE, lambda p: np.savez(p, **arrays))
        write_json(Path(directory) / NAMES_FILE, {"names": list(index.names)})

    def load(self, directory: Path) -> None:
        path = Path(directory) / INDEX_FILE
        with np.load(path, allow_pickle=False) as data:
            missing = [name for name in RefIndex.ARRAYS if name not in data]
            if missing:
                raise ValueError(f"{path}: missing array(s) {', '.join(missing)}")
            arrays = {name: data[name] for name in RefIndex.ARRAYS}
        names = json.loads((Path(directory) / NAMES_FILE).read_text())["names"]
        if len(names) != len(arrays["features"]):
            raise ValueError(f"{Path(directory) / NAMES_FILE}: {len(names)} names for "
                             f"{len(arrays['features'])} indexed images")
        self.index = RefIndex(**arrays, names=tuple(names))
        self.chosen = []


@hookimpl(trylast=True)
def harness_register_colorizers(register):
    register("welsh", WelshColorizer, framework="numpy",
             summary="Welsh et al. 2002 colour transfer from the nearest training photo")
