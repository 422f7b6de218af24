"""Torch twins of the ab-bin operations for (N, C, H, W) tensors on any device."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def _centres(centres, like: Tensor) -> Tensor:
    """(Q, 2) centres (ndarray or tensor) on `like`'s device and dtype; pass a tensor already
    there (e.g. a registered buffer) to skip the host-to-device copy."""
    if isinstance(centres, Tensor):
        return centres.to(device=like.device, dtype=like.dtype)
    return torch.tensor(np.asarray(centres), device=like.device, dtype=like.dtype)


def _sq_dists(ab: Tensor, centres) -> Tensor:
    """Squared distances from every pixel to every centre: (N, 2, H, W) -> (N*H*W, Q)."""
    pixels = ab.movedim(1, -1).reshape(-1, 2)
    # The exact kernel: the matrix-product shortcut loses ~1e-3 of d^2 at |ab| ~ 100 in float32.
    dist = torch.cdist(pixels, _centres(centres, ab), compute_mode="donot_use_mm_for_euclid_dist")
    return dist.square()


@torch.no_grad()
def nearest_torch(ab: Tensor, centres) -> Tensor:
    """Index of the nearest centre: ab (N, 2, H, W) -> (N, H, W) int64."""
    n, _, h, w = ab.shape
    return _sq_dists(ab, centres).argmin(dim=1).reshape(n, h, w)


@torch.no_grad()
def soft_encode_torch(ab: Tensor, centres, k: int = 5, sigma: float = 5.0) -> Tensor:
    """Soft targets: ab (N, 2, H, W) -> (N, Q, H, W), Gaussian weights (sigma in ab units) on
    the k nearest centres, summing to 1 per pixel. A target, so not differentiable."""
    n, _, h, w = ab.shape
    d2 = _sq_dists(ab, centres)  # (P, Q)
    near, index = d2.topk(k, dim=1, largest=False)  # (P, k)
    weight = torch.softmax(-near / (2.0 * sigma**2), dim=1)
    out = d2.zero_().scatter_(1, index, weight)  # reuse the (P, Q) buffer
    return out.reshape(n, h, w, -1).permute(0, 3, 1, 2)


def decode_annealed_torch(
    logits_or_probs: Tensor, centres, T: float = 0.38, from_logits: bool = True
) -> Tensor:
    """Annealed mean (N, Q, H, W) -> ab (N, 2, H, W): softmax(log p / T) weighted centres.

    Differentiable for T > 0; T = 1 is the mean, T = 0 returns the mode's centre.
    """
    c = _centres(centres, logits_or_probs)
    if T == 0:
        return c[logits_or_probs.argmax(dim=1)].permute(0, 3, 1, 2)
    # log p / T differs from logits / T by a per-pixel constant, which the softmax drops.
    log_p = logits_or_probs if from_logits else logits_or_probs.log()
    weight = torch.softmax(log_p / T, dim=1)
    return torch.einsum("nqhw,qc->nchw", weight, c)


def decode_mean_torch(logits_or_probs: Tensor, centres, from_logits: bool = True) -> Tensor:
    """Expected ab (N, Q, H, W) -> (N, 2, H, W); probabilities are renormalised."""
    if from_logits:
        weight = torch.softmax(logits_or_probs, dim=1)
    else:
        weight = logits_or_probs / logits_or_probs.sum(dim=1, keepdim=True)
    return torch.einsum("nqhw,qc->nchw", weight, _centres(centres, logits_or_probs))
