"""Colour maths: sRGB <-> Lab, quantised ab bins, and their torch twins (imported lazily).

Conventions: numpy arrays are channel-last float32; RGB is sRGB (D65) in [0, 1]; Lab has L in
[0, 100] and a, b in Lab units. Torch ops use (N, C, H, W). Networks see
normalize_l(L) = (L - 50) / 100 and normalize_ab(ab) = ab / 110.
"""

from importlib import import_module

from harness.color.bins import (
    ABBins,
    PriorAccumulator,
    bins_from_spec,
    gamut_bins,
    gamut_bins_from_centres,
    rebalance_weights,
    smooth_prior,
    zhang313,
)
from harness.color.convert import (
    AB_NORM,
    L_CENT,
    L_NORM,
    denormalize_ab,
    denormalize_l,
    gray_to_rgb,
    grey8_to_l,
    in_srgb_gamut,
    lab_to_rgb,
    lab_to_srgb8,
    normalize_ab,
    normalize_l,
    rgb_to_l,
    rgb_to_lab,
    srgb8_to_l,
    to_uint8,
)

_TORCH_OPS = (
    "decode_annealed_torch",
    "decode_mean_torch",
    "nearest_torch",
    "soft_encode_torch",
)

__all__ = [
    "AB_NORM",
    "L_CENT",
    "L_NORM",
    "ABBins",
    "PriorAccumulator",
    "bins_from_spec",
    "denormalize_ab",
    "denormalize_l",
    "gamut_bins",
    "gamut_bins_from_centres",
    "gray_to_rgb",
    "grey8_to_l",
    "in_srgb_gamut",
    "lab_to_rgb",
    "lab_to_srgb8",
    "normalize_ab",
    "normalize_l",
    "rebalance_weights",
    "rgb_to_l",
    "rgb_to_lab",
    "smooth_prior",
    "srgb8_to_l",
    "to_uint8",
    "zhang313",
    *_TORCH_OPS,
]


def __getattr__(name: str):
    """Import torch only when a torch op is asked for, so numpy/Keras users never load it."""
    if name in _TORCH_OPS:
        return getattr(import_module("harness.color.torch_ops"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
