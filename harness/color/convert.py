"""sRGB (D65) <-> CIE Lab conversion, the sRGB gamut test and the network normalisation of Lab."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

L_CENT = 50.0
L_NORM = 100.0
AB_NORM = 110.0

# CIE Lab reference white (D65, 2 degree observer) and the sRGB primaries (IEC 61966-2-1),
# as scikit-image defines them so that the two implementations agree.
WHITE_D65 = np.array([0.95047, 1.0, 1.08883])
XYZ_FROM_LINEAR_RGB = np.array(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ]
)
# Same maps with XYZ divided by the white point (the form Lab works in).
_XYZN_FROM_RGB = XYZ_FROM_LINEAR_RGB / WHITE_D65[:, None]
_RGB_FROM_XYZN = np.linalg.inv(XYZ_FROM_LINEAR_RGB) * WHITE_D65

_DELTA = 6.0 / 29.0  # Lab's f switches from cube root to linear below t = DELTA**3
_F_OFFSET = 4.0 / 29.0
_SRGB_LINEAR_MAX = 0.0031308  # sRGB transfer curve: linear segment below this (linear light)
_SRGB_SLOPE = 12.92
_SRGB_GAMMA = 2.4


def normalize_l(L):
    """L in [0, 100] -> [-0.5, 0.5]; numpy arrays and torch tensors alike."""
    return (L - L_CENT) / L_NORM


def denormalize_l(x):
    """Inverse of `normalize_l`."""
    return x * L_NORM + L_CENT


def normalize_ab(ab):
    """ab in Lab units -> about [-1, 1]; numpy arrays and torch tensors alike."""
    return ab / AB_NORM


def denormalize_ab(x):
    """Inverse of `normalize_ab`."""
    return x * AB_NORM


def _float32(x, what: str) -> np.ndarray:
    """`x` as a float32 array with last axis 3; integer images are refused, not rescaled."""
    arr = np.asarray(x)
    if not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(f"{what} must be a float array, got {arr.dtype} (divide uint8 by 255)")
    if arr.shape[-1:] != (3,):
        raise ValueError(f"{what} must have shape (..., 3), got {arr.shape}")
    return arr.astype(np.float32, copy=False)


def _srgb_to_linear(c: np.ndarray) -> np.ndarray:
    knee = _SRGB_SLOPE * _SRGB_LINEAR_MAX
    curve = ((np.maximum(c, knee) + 0.055) / 1.055) ** _SRGB_GAMMA
    return np.where(c > knee, curve, c / _SRGB_SLOPE)


def _linear_to_srgb(v: np.ndarray) -> np.ndarray:
    curve = 1.055 * np.maximum(v, _SRGB_LINEAR_MAX) ** (1.0 / _SRGB_GAMMA) - 0.055
    return np.where(v > _SRGB_LINEAR_MAX, curve, v * _SRGB_SLOPE)


def _f(t: np.ndarray) -> np.ndarray:
    return np.where(t > _DELTA**3, np.cbrt(t), t / (3 * _DELTA**2) + _F_OFFSET)


def _f_inv(f: np.ndarray) -> np.ndarray:
    return np.where(f > _DELTA, f**3, 3 * _DELTA**2 * (f - _F_OFFSET))


def _linear_rgb_channels(L, a, b, fz_floor: float = -np.inf) -> Iterator[np.ndarray]:
    """Yield linear R, G, B (unclipped) for broadcastable L, a, b, one channel at a time.

    X depends on (L, a) only, Y on L, Z on (L, b): with L, a, b on separate axes the full
    broadcast shape is materialised only by the final sum of each channel.
    """
    fy = (L + 16.0) / 116.0
    fz = np.maximum(fy - b / 200.0, fz_floor)
    x, y, z = _f_inv(fy + a / 500.0), _f_inv(fy), _f_inv(fz)
    for mx, my, mz in _RGB_FROM_XYZN.tolist():
        yield mx * x + my * y + mz * z


def rgb_to_lab(rgb) -> np.ndarray:
    """sRGB (..., 3) floats in [0, 1] -> CIE Lab (..., 3) float32, L in [0, 100]."""
    lin = _srgb_to_linear(_float32(rgb, "rgb"))
    fx, fy, fz = np.moveaxis(_f(lin @ _XYZN_FROM_RGB.T.astype(np.float32)), -1, 0)
    return np.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)


def lab_to_rgb(lab, clip: bool = True) -> np.ndarray:
    """CIE Lab (..., 3) -> sRGB (..., 3) float32; out-of-gamut values clipped to [0, 1] unless
    `clip` is False (then the transfer curve is extended: linear below 0, power law above 1).

    Like scikit-image's lab2rgb (and so the reference colorization code), f_z is floored at 0
    for very dark yellows (b > 200 (L + 16) / 116), so both render the same image.
    """
    L, a, b = np.moveaxis(_float32(lab, "lab"), -1, 0)
    rgb = _linear_to_srgb(np.stack(list(_linear_rgb_channels(L, a, b, 0.0)), axis=-1))
    return np.clip(rgb, 0.0, 1.0) if clip else rgb


def in_srgb_gamut(L, a, b) -> np.ndarray:
    """Whether Lab colours map into the sRGB cube (linear channels in [0, 1], zero tolerance).

    L, a, b: broadcastable arrays (use float64 near the gamut boundary); returns bool of the
    broadcast shape. Put L, a and b on separate axes to test a whole lattice cheaply. With
    these constants the white itself (L = 100, a = b = 0) lies 1e-5 outside.
    """
    ok = np.asarray(True)
    for v in _linear_rgb_channels(L, a, b):
        ok = ok & (v >= 0.0) & (v <= 1.0)
    return ok


def gray_to_rgb(L) -> np.ndarray:
    """Lightness (...,) in [0, 100] -> the neutral sRGB image (..., 3) float32 it implies."""
    L = np.asarray(L, dtype=np.float32)
    zero = np.zeros_like(L)
    return lab_to_rgb(np.stack([L, zero, zero], axis=-1))


def to_uint8(rgb) -> np.ndarray:
    """sRGB floats (..., 3) in [0, 1] -> uint8 (..., 3), clipped and rounded."""
    return np.rint(np.clip(np.asarray(rgb), 0.0, 1.0) * 255.0).astype(np.uint8)
