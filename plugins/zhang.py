"""``zhang``: Zhang, Isola & Efros, "Colorful Image Colorization" (ECCV 2016), no rebalancing.

This module is the plugin's registration and options; it imports no framework, so listing
plugins and validating configs stay fast. The network and training live in
:mod:`harness_plugins.zhang_model`, imported only when a run uses the model.
"""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from harness.color import bins_from_spec
from harness.hookspecs import hookimpl
from harness.train.options import TorchTrainOptions


class ZhangOptions(TorchTrainOptions):
    """Network width, bin set, soft-encoding neighbours, decoding temperature, grey mask."""

    width: float = Field(1.0, gt=0, description="channel multiplier; 1.0 = the paper's net")
    bins: str = Field("zhang313", description='"zhang313" or "grid:N" (seed 000: "grid:22")')
    k: int = Field(5, ge=1, description="nearest bins in the soft encoding")
    temperature: float = Field(0.38, ge=0, description="annealed-mean temperature T")
    gray_threshold: float = Field(
        5.0, ge=0, description="images whose chroma never exceeds this are left out of the loss")

    @field_validator("bins")
    @classmethod
    def _known_bins(cls, spec: str) -> str:
        bins_from_spec(spec)
        return spec

    @model_validator(mode="after")
    def _k_within_bins(self) -> ZhangOptions:
        if self.k > bins_from_spec(self.bins).q:
            raise ValueError(f"k: {self.k} exceeds the {self.bins} bin count")
        return self


@hookimpl
def harness_register_colorizers(register):
    register("zhang", "harness_plugins.zhang_model:ZhangColorizer", framework="torch",
             options=ZhangOptions,
             summary="Zhang et al. 2016: ab-bin classification, annealed mean, no rebalancing")
