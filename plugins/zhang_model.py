"""``zhang``: Zhang, Isola & Efros, "Colorful Image Colorization" (ECCV 2016), without rebalancing.

Classification over Q quantised ab bins: a VGG-style network predicts a distribution per pixel
at a quarter of the input resolution, trained with cross-entropy against soft-encoded ground
truth (the paper's "class, no rebalancing" row) and decoded with the annealed mean.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness.color import bins_from_spec, normalize_l
from harness.color.torch_ops import decode_annealed_torch, soft_encode_torch
from harness.train.torch_trainer import TorchColorizer
from harness_plugins.zhang import ZhangOptions

SOFT_SIGMA = 5.0  # Gaussian width of the soft encoding, ab units (the paper's)


class _NormalizeL(nn.Module):
    """L in [0, 100] -> (L - 50) / 100, the network's input scale."""

    def forward(self, L: Tensor) -> Tensor:
        return normalize_l(L)


def _block(c_in: int, c_out: int, convs: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    """``convs`` 3x3 convolutions with ReLUs, the last one strided, then batch norm."""
    layers: list[nn.Module] = []
    for i in range(convs):
        s = stride if i == convs - 1 else 1
        layers += [nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, stride=s, padding=dilation,
                             dilation=dilation), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers, nn.BatchNorm2d(c_out))


def zhang_network(num_bins: int = 313, width: float = 1.0) -> nn.Sequential:
    """The network of Zhang et al. 2016: L (B, 1, H, W) in [0, 100] -> logits (B, Q, H/4, W/4).

    ``width`` scales every channel count; 1.0 is the paper's network (32.2M parameters with
    313 bins). H and W should be multiples of 8.
    """

    def c(channels: int) -> int:
        return max(1, round(channels * width))

    conv8 = nn.Sequential(
        nn.ConvTranspose2d(c(512), c(256), 4, stride=2, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(c(256), c(256), 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(c(256), c(256), 3, padding=1), nn.ReLU(inplace=True),
    )
    return nn.Sequential(OrderedDict(
        normalize=_NormalizeL(),                                  # B x 1 x H x W
        conv1=_block(1, c(64), 2, stride=2),                      # B x 64 x H/2 x W/2
        conv2=_block(c(64), c(128), 2, stride=2),                 # B x 128 x H/4 x W/4
        conv3=_block(c(128), c(256), 3, stride=2),                # B x 256 x H/8 x W/8
        conv4=_block(c(256), c(512), 3),                          # B x 512 x H/8 x W/8
        conv5=_block(c(512), c(512), 3, dilation=2),
        conv6=_block(c(512), c(512), 3, dilation=2),
        conv7=_block(c(512), c(512), 3),
        conv8=conv8,                                              # B x 256 x H/4 x W/4
        logits=nn.Conv2d(c(256), num_bins, 1),                    # B x Q x H/4 x W/4
    ))


class ZhangColorizer(TorchColorizer):
    """Zhang et al. 2016, classification loss without class rebalancing."""

    Options = ZhangOptions
    options: ZhangOptions

    def __init__(self, options: ZhangOptions | None = None) -> None:
        super().__init__(options)
        self.bins = bins_from_spec(self.options.bins)
        self.buffers["centres"] = torch.tensor(self.bins.centres)  # Q x 2

    def build_network(self) -> nn.Module:
        return zhang_network(self.bins.q, self.options.width)

    def loss(self, logits: Tensor, batch: dict[str, Tensor]) -> Tensor:
        return self.class_loss(logits, batch)

    def class_loss(self, logits: Tensor, batch: dict[str, Tensor]) -> Tensor:
        """Soft-encoded cross-entropy, averaged over the pixels of colourful images.

        The ground-truth ab is area-averaged to the logits' resolution, soft-encoded on its
        ``k`` nearest bins, and each pixel's loss scaled by :meth:`pixel_weights`.
        """
        ab = F.adaptive_avg_pool2d(batch["ab"], logits.shape[-2:])   # B x 2 x h x w
        target = soft_encode_torch(ab, self.buffers["centres"], k=self.options.k,
                                   sigma=SOFT_SIGMA)                 # B x Q x h x w
        pixel = -(target * F.log_softmax(logits, dim=1)).sum(dim=1)  # B x h x w
        weights = self.pixel_weights(ab)
        if weights is not None:
            pixel = pixel * weights
        chroma2 = batch["ab"].square().sum(dim=1).flatten(1)         # B x HW
        colourful = (chroma2 > self.options.gray_threshold**2).any(dim=1).to(pixel.dtype)
        return (pixel.mean(dim=(1, 2)) * colourful).sum() / colourful.sum().clamp_min(1)

    def pixel_weights(self, ab: Tensor) -> Tensor | None:
        """Per-pixel loss weights (B, h, w) for ground truth ab (B, 2, h, w); None: uniform."""
        return None

    def decode(self, logits: Tensor) -> Tensor:
        """Annealed mean at temperature T: logits (B, Q, h, w) -> ab (B, 2, h, w)."""
        return decode_annealed_torch(logits, self.buffers["centres"], T=self.options.temperature)
