"""The ``mean-prior`` baseline: the mean training ab of each luminance band.

``statistic: mode`` predicts the band's most frequent quantised ab instead. On photos that is
(0, 0) in every band, since grey-ish pixels dominate each band, so the mode prior equals
``gray``; the mean keeps each band's colour cast (warm mid-tones, blue highlights).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from harness.atomic import write_json
from harness.color import bins_from_spec
from harness.colorizer import Colorizer, PluginOptions
from harness.hookspecs import hookimpl


class MeanPriorOptions(PluginOptions):
    bands: int = Field(10, ge=1, le=100, description="equal-width L bands over [0, 100]")
    statistic: Literal["mean", "mode"] = Field(
        "mean", description="mean ab of the band's training pixels, or the modal ab bin")
    bins: str = Field("zhang313", description="ab bin set the mode is taken over")


class MeanPriorColorizer(Colorizer):
    """Per luminance band, predicts the mean (or modal) ab of the training pixels."""

    Options = MeanPriorOptions

    def __init__(self, options: MeanPriorOptions | None = None) -> None:
        super().__init__(options)
        self.table = np.zeros((self.options.bands, 2), dtype=np.float32)

    def _band(self, L: np.ndarray) -> np.ndarray:
        band = (np.asarray(L) / 100.0 * self.options.bands).astype(np.int64)
        return np.clip(band, 0, self.options.bands - 1)

    def fit(self, train, val, budget, ctx) -> None:
        """One pass over the training samples, accumulating per band ab sums or bin counts."""
        bands = self.options.bands
        bins = bins_from_spec(self.options.bins)
        sums = np.zeros((bands, 2), dtype=np.float64)
        counts = np.zeros((bands, bins.q), dtype=np.int64)
        for L, ab, _ in train.iter_batches(16):
            band = self._band(L).ravel()
            flat_ab = ab.reshape(-1, 2).astype(np.float64)
            if self.options.statistic == "mean":
                for c in range(2):
                    sums[:, c] += np.bincount(band, weights=flat_ab[:, c], minlength=bands)
                counts[:, 0] += np.bincount(band, minlength=bands)
            else:
                flat = band * bins.q + bins.nearest(ab).ravel()
                counts += np.bincount(flat, minlength=counts.size).reshape(counts.shape)
        seen = counts.sum(axis=1, keepdims=True) > 0
        if self.options.statistic == "mean":
            table = sums / np.maximum(counts[:, :1], 1)
        else:
            table = bins.centres[counts.argmax(axis=1)]
        self.table = np.where(seen, table, 0).astype(np.float32)

    def predict(self, L: np.ndarray) -> np.ndarray:
        return self.table[self._band(L)]

    def save(self, directory: Path) -> None:
        write_json(Path(directory) / "mean_prior.json", {"table": self.table.tolist()})

    def load(self, directory: Path) -> None:
        data = json.loads((Path(directory) / "mean_prior.json").read_text())
        self.table = np.asarray(data["table"], dtype=np.float32)


@hookimpl(trylast=True)
def harness_register_colorizers(register):
    register("mean-prior", MeanPriorColorizer, framework="numpy",
             summary="Mean training ab per luminance band (statistic: mode for the modal bin)")
