"""Metric specification and the batch of predictions every metric reads.

A metric is one frozen :class:`Metric`: a pure ``compute`` function plus its semantics
(direction, granularity, unit, citation). Per-image metrics return one value per image and are
averaged; dataset-level metrics return per-image statistics (e.g. ab histograms) that
``aggregate`` turns into one number, so the engine can bootstrap both by resampling images.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from harness.color import lab_to_rgb
from harness.metrics.truth import TruthStore, digest


@dataclass
class ScoringContext:
    """What metrics may need beyond the images: bin set, training prior, device, caches.

    ``truth`` holds what is derived from the ground truth alone (see
    :meth:`ImageBatch.from_truth`); one context scores every model of a run, so each of those
    values is computed once per test image.
    """

    bins: Any = None
    prior: np.ndarray | None = None
    device: str = "cpu"
    cache: dict[str, Any] = field(default_factory=dict)
    truth: TruthStore = field(default_factory=TruthStore)


@dataclass
class ImageBatch:
    """Predictions and ground truth for N test images at the evaluation size.

    ``L`` (N, H, W) in [0, 100]; ``ab_pred``, ``ab_true`` (N, H, W, 2) in Lab units. RGB views
    (N, H, W, 3) in [0, 1] are computed on first use, the ground truth's once per context (it is
    read-only); the prediction's RGB is clipped to sRGB exactly as a saved image would be.
    """

    L: np.ndarray
    ab_pred: np.ndarray
    ab_true: np.ndarray
    context: ScoringContext = field(default_factory=ScoringContext)
    _truth: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.L)

    @cached_property
    def rgb_pred(self) -> np.ndarray:
        """The prediction as sRGB (N, H, W, 3) in [0, 1], clipped as a saved image would be."""
        return lab_to_rgb(np.concatenate([self.L[..., None], self.ab_pred], axis=-1))

    @cached_property
    def rgb_true(self) -> np.ndarray:
        """The ground truth as sRGB (N, H, W, 3) in [0, 1], computed once per context."""
        return self.from_truth("rgb", lambda: lab_to_rgb(
            np.concatenate([self.L[..., None], self.ab_true], axis=-1)))

    @cached_property
    def truth_key(self) -> str:
        """Digest of the batch's ground truth (L and ab_true): its entries' key in the store."""
        return digest(self.L, self.ab_true)

    def from_truth(self, name: str, compute: Callable[[], Any]) -> Any:
        """``compute()``, a function of the ground truth alone, computed once per context.

        Every batch with the same L and ab_true shares the value stored under ``name``, so
        ``name`` must identify everything else ``compute`` depends on (bin set, network). The
        batch keeps what it got, so it computes each value at most once even when the store
        is full.
        """
        if name not in self._truth:
            self._truth[name] = self.context.truth.get(self.truth_key, name, compute)
        return self._truth[name]


@dataclass(frozen=True)
class Metric:
    """A metric's maths and meaning.

    ``compute(batch) -> (N,)`` per-image values, or ``(N, ...)`` per-image statistics when
    ``aggregate`` is given (dataset-level metrics): ``aggregate(stats) -> float``.
    ``higher_is_better=None`` marks a descriptive metric (e.g. colorfulness): no best value is
    bolded and the table shows the ground truth's value beside the models'.
    """

    name: str
    compute: Callable[[ImageBatch], np.ndarray]
    higher_is_better: bool | None
    unit: str = ""
    citation: str = ""
    summary: str = ""
    aggregate: Callable[[np.ndarray], float] | None = None
    framework: str = "numpy"

    @property
    def granularity(self) -> str:
        """``"image"`` (mean of per-image values) or ``"dataset"``."""
        return "image" if self.aggregate is None else "dataset"

    def value(self, stats: np.ndarray) -> float:
        """The metric's value from the per-image rows of ``compute``."""
        if self.aggregate is None:
            return float(np.mean(stats))
        return float(self.aggregate(stats))


class MetricUnavailable(Exception):
    """A metric cannot be computed here (e.g. LPIPS without real weights); says why and how."""
