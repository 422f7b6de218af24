"""The ``mean-prior`` baseline: the most frequent training ab for each luminance band."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pydantic import Field

from harness.atomic import write_json
from harness.color import bins_from_spec
from harness.colorizer import Colorizer, PluginOptions
from harness.hookspecs import hookimpl


class MeanPriorOptions(PluginOptions):
    bands: int = Field(10, ge=1, le=100, description="equal-width L bands over [0, 100]")
    bins: str = Field("zhang313", description="ab bin set the mode is taken over")


class MeanPriorColorizer(Colorizer):
    """Per luminance band, predicts the modal quantised ab of the training pixels."""

    Options = MeanPriorOptions

    def __init__(self, options: MeanPriorOptions | None = None) -> None:
        super().__init__(options)
        self.table = np.zeros((self.options.bands, 2), dtype=np.float32)

    def _band(self, L: np.ndarray) -> np.ndarray:
        band = (np.asarray(L) / 100.0 * self.options.bands).astype(np.int64)
        return np.clip(band, 0, self.options.bands - 1)

    def fit(self, train, val, budget, ctx) -> None:
        """One pass over the training samples counting (luminance band, nearest ab bin) pairs."""
        bins = bins_from_spec(self.options.bins)
        counts = np.zeros((self.options.bands, bins.q), dtype=np.int64)
        for start in range(0, len(train), 16):
            L, ab = train.batch(range(start, min(start + 16, len(train))))
            flat = self._band(L).ravel() * bins.q + bins.nearest(ab).ravel()
            counts += np.bincount(flat, minlength=counts.size).reshape(counts.shape)
        modes = bins.centres[counts.argmax(axis=1)]
        self.table = np.where(counts.sum(axis=1, keepdims=True) > 0, modes, 0).astype(np.float32)

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
             summary="Modal training ab per luminance band")
