"""``zhang-rebalanced``: Zhang et al. 2016 with class rebalancing and seed 000's segmentation term.

Registration and options only (no framework import); the loss lives in
:mod:`harness_plugins.zhang_rebalanced_model`.
"""

from __future__ import annotations

from pydantic import ConfigDict, Field

from harness.hookspecs import hookimpl
from harness_plugins.zhang import ZhangOptions


class ZhangRebalancedOptions(ZhangOptions):
    """Zhang's options plus the rebalancing mix ``lambda`` and the segmentation term's.

    Weights are ``((1 - lambda) p + lambda / Q)^-1``, normalised to mean 1 under ``p``: lower
    ``lambda`` pushes harder towards rare, saturated colours (seed 000's vibrancy knob).

    The term is in Lab units squared; at ``seg_weight: 1`` it holds the smoothness penalty near
    0.01 on the demo photos (0.2 to 1.7 without it). It is cheapest to satisfy with flatter,
    greyer expected colours, and does that: in ``configs/all.yaml`` over three splits, weight 1
    took mean colourfulness from 50 to 28 with rebalancing and from 26 to 15 without, while
    rebalanced AuC rose from 0.69 to 0.70 and from 0.71 to 0.72.
    """

    model_config = ConfigDict(populate_by_name=True)

    lam: float = Field(
        0.5, ge=0, le=1, alias="lambda",
        description="share of the uniform distribution mixed into the prior (eq. 4): 0 none, "
                    "weights 1/p; 0.5 the paper's; 1 uniform, equal weights (no rebalancing)")
    seg_weight: float = Field(1.0, ge=0, description="weight of the segmentation term; 0 = off")
    seg_radius: int = Field(1, ge=1, description="neighbourhood radius, logit pixels")
    seg_sigma: float = Field(5.0, gt=0, description="lightness similarity scale, L units")


@hookimpl
def harness_register_colorizers(register):
    register("zhang-rebalanced", "harness_plugins.zhang_rebalanced_model:ZhangRebalancedColorizer",
             framework="torch", options=ZhangRebalancedOptions,
             summary="Zhang et al. 2016 with class rebalancing and seed 000's segmentation term")
