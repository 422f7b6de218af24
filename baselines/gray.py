"""The ``gray`` baseline: ab = 0 everywhere, the floor of every colour metric."""

from __future__ import annotations

import numpy as np

from harness.colorizer import Colorizer
from harness.hookspecs import hookimpl


class GrayColorizer(Colorizer):
    """Predicts no colour at all (ab = 0): the input returned as a grey image."""

    stateless = True

    def fit(self, train, val, budget, ctx) -> None:
        """Nothing to learn."""

    def predict(self, L: np.ndarray) -> np.ndarray:
        return np.zeros((*L.shape, 2), dtype=np.float32)


@hookimpl(trylast=True)
def harness_register_colorizers(register):
    register("gray", GrayColorizer, framework="numpy", summary="ab = 0: the grey floor")
