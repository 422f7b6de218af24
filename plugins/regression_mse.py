"""regression-mse: an encoder-decoder regressing ab from L, the desaturated baseline.

Registration and options only (no framework import); the Keras network lives in
:mod:`harness_plugins.regression_mse_model`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from harness.hookspecs import hookimpl
from harness.train.options import KerasTrainOptions


class RegressionOptions(KerasTrainOptions):
    """``width`` scales every layer's channels (1: 64 to 512); ``loss`` is ``mse`` or
    ``huber`` (knee at ``huber_delta`` Lab units), for comparison."""

    width: float = Field(1.0, gt=0)
    loss: Literal["mse", "huber"] = "mse"
    huber_delta: float = Field(10.0, gt=0)


@hookimpl
def harness_register_colorizers(register):
    register("regression-mse", "harness_plugins.regression_mse_model:RegressionColorizer",
             framework="keras", options=RegressionOptions,
             summary="encoder-decoder regressing ab with mean squared error (Keras)")
