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


@dataclass
class ScoringContext:
    """What metrics may need beyond the images: bin set, training prior, device, caches."""

    bins: Any = None
    prior: np.ndarray | None = None
    device: str = "cpu"
    cache: dict[str, Any] = field(default_factory=dict)


@dataclass
class ImageBatch:
    """Predictions and ground truth for N test images at the evaluation size.

    ``L`` (N, H, W) in [0, 100]; ``ab_pred``, ``ab_true`` (N, H, W, 2) in Lab units. RGB views
    (N, H, W, 3) in [0, 1] are computed on first use; the prediction's RGB is clipped to sRGB
    exactly as a saved image would be.
    """

    L: np.ndarray
    ab_pred: np.ndarray
    ab_true: np.ndarray
    context: ScoringContext = field(default_factory=ScoringContext)

    def __len__(self) -> int:
        return len(self.L)

    @cached_property
    def rgb_pred(self) -> np.ndarray:
        return lab_to_rgb(np.concatenate([self.L[..., None], self.ab_pred], axis=-1))

    @cached_property
    def rgb_true(self) -> np.ndarray:
        return lab_to_rgb(np.concatenate([self.L[..., None], self.ab_true], axis=-1))


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

    @property
    def arrow(self) -> str:
        return {True: "↑", False: "↓", None: ""}[self.higher_is_better]

    def value(self, stats: np.ndarray) -> float:
        """The metric's value from the per-image rows of ``compute``."""
        if self.aggregate is None:
            return float(np.mean(stats))
        return float(self.aggregate(stats))


class MetricUnavailable(Exception):
    """A metric cannot be computed here (e.g. LPIPS without real weights); says why and how."""
