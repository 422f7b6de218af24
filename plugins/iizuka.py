"""iizuka: Iizuka, Simo-Serra & Ishikawa (SIGGRAPH 2016), global and local priors fused.

Registration and options only (no framework import); the Keras network lives in
:mod:`harness_plugins.iizuka_model`.
"""

from __future__ import annotations

from pydantic import Field

from harness.hookspecs import hookimpl
from harness.train.options import KerasTrainOptions


class IizukaOptions(KerasTrainOptions):
    """``width`` scales the channels of every layer (1: the paper's) and, below 1, the fully
    connected sizes too (1024, 512, 256, 256 at width >= 1). ``global_size`` is the side of
    the global branch's rescaled copy (paper: 224; 64 suits a CPU). ``alpha`` weighs the
    classification loss against the ab MSE measured in [0, 1] units, as in the paper."""

    width: float = Field(1.0, gt=0)
    global_size: int = Field(64, ge=32, multiple_of=32)
    alpha: float = Field(1 / 300, ge=0)


@hookimpl
def harness_register_colorizers(register):
    register("iizuka", "harness_plugins.iizuka_model:IizukaColorizer", framework="keras",
             options=IizukaOptions,
             summary="global and local priors fused, joint classification (Iizuka 2016, Keras)")
