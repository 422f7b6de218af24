"""``zhang-rebalanced``: Zhang et al. 2016 with class rebalancing plus seed 000's segmentation term.

The network and decoder are :mod:`harness_plugins.zhang_model`'s. The loss weights each pixel by the
rebalancing weight of its ground-truth bin (Zhang et al. eq. 4, prior from the training set)
and adds a penalty pulling each pixel's expected ab towards the average of its neighbours',
weighted by lightness similarity (Levin et al. 2004's affinity). ``seg_weight: 0`` gives
rebalancing alone, ``lambda: 1`` (uniform weights) the segmentation term alone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from harness.color import PriorAccumulator, rebalance_weights, smooth_prior
from harness.color.torch_ops import decode_mean_torch, nearest_torch
from harness.colorizer import FitContext
from harness.data.dataset import LabSet
from harness_plugins.zhang_model import ZhangColorizer
from harness_plugins.zhang_rebalanced import ZhangRebalancedOptions

PRIOR_SIGMA = 5.0  # Gaussian smoothing of the empirical prior, ab units (the paper's)


def segmentation_term(ab: Tensor, L: Tensor, radius: int = 1, sigma: float = 5.0) -> Tensor:
    """Mean over pixels p of ||ab_p - sum_q w_pq ab_q||^2, in Lab units squared.

    q runs over the (2 radius + 1)^2 neighbourhood of p inside the image, p excluded;
    w_pq is proportional to exp(-(L_p - L_q)^2 / (2 sigma^2)) and sums to 1 over q.
    ab: (B, 2, h, w) colours (differentiable); L: (B, 1, h, w) lightness at the same size.
    """
    n, _, h, w = ab.shape
    size = 2 * radius + 1

    def neighbours(x: Tensor) -> Tensor:  # B x C x h x w -> B x C x K x h x w, zero outside
        return F.unfold(x, size, padding=radius).view(n, x.shape[1], size * size, h, w)

    # B x 1 x K x h x w: log w_pq up to a constant; -inf (below) where q is outside or is p
    log_affinity = -(neighbours(L) - L.unsqueeze(2)).square() / (2.0 * sigma**2)
    outside = neighbours(torch.ones_like(L)) == 0
    outside[:, :, size * size // 2] = True  # the centre pixel is not its own neighbour
    weight = torch.softmax(log_affinity.masked_fill(outside, float("-inf")), dim=2)
    average = (weight * neighbours(ab)).sum(dim=2)                    # B x 2 x h x w
    return (ab - average).square().sum(dim=1).mean()


class ZhangRebalancedColorizer(ZhangColorizer):
    """Zhang et al. 2016 with class rebalancing and seed 000's segmentation term."""

    Options = ZhangRebalancedOptions
    options: ZhangRebalancedOptions

    def prepare(self, train: LabSet, ctx: FitContext) -> None:
        """Rebalancing weights from the smoothed ab prior of one pass over ``train``."""
        counter = PriorAccumulator(self.bins)
        for _, ab, _ in train.iter_batches(max(self.options.batch_size, 64)):
            counter.add(ab)
        prior = smooth_prior(counter.prior(), self.bins, sigma=PRIOR_SIGMA)
        self.buffers["prior"] = torch.tensor(prior, dtype=torch.float32)  # Q
        self.buffers["class_weights"] = torch.tensor(
            rebalance_weights(prior, self.options.lam), dtype=torch.float32)  # Q

    def pixel_weights(self, ab: Tensor) -> Tensor:
        """The rebalancing weight of each pixel's nearest bin: (B, 2, h, w) -> (B, h, w)."""
        return self.buffers["class_weights"][nearest_torch(ab, self.buffers["centres"])]

    def loss(self, logits: Tensor, batch: dict[str, Tensor]) -> Tensor:
        loss = self.class_loss(logits, batch)
        if self.options.seg_weight:
            ab = decode_mean_torch(logits, self.buffers["centres"])  # B x 2 x h x w
            L = F.adaptive_avg_pool2d(batch["L"], logits.shape[-2:])  # B x 1 x h x w
            loss = loss + self.options.seg_weight * segmentation_term(
                ab, L, self.options.seg_radius, self.options.seg_sigma)
        return loss
