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
    return np.where(f > _DELTA, f * f * f, 3 * _DELTA**2 * (f - _F_OFFSET))  # no pow: faster


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


def rgb_to_l(rgb) -> np.ndarray:
    """The L channel of :func:`rgb_to_lab` alone: sRGB (..., 3) floats -> L (...) float32."""
    lin = _srgb_to_linear(_float32(rgb, "rgb"))
    return 116.0 * _f(lin @ _XYZN_FROM_RGB[1].astype(np.float32)) - 16.0


# Each 8-bit sRGB level's share of Y (relative luminance), per channel: 3 x 256 float32.
_Y_OF_SRGB8 = np.ascontiguousarray(
    (_srgb_to_linear(np.arange(256, dtype=np.float32) / 255.0)[:, None]
     * _XYZN_FROM_RGB[1].astype(np.float32)).T)
_CHUNK = 1 << 16  # pixels per slice in the 8-bit paths: their temporaries stay in cache


def srgb8_to_l(rgb8) -> np.ndarray:
    """8-bit sRGB (..., 3) uint8 -> L (...) float32: :func:`rgb_to_lab`'s L of ``rgb8 / 255``
    to float rounding, from per-level tables instead of a float image (no transfer curve)."""
    rgb8 = np.asarray(rgb8)
    if rgb8.dtype != np.uint8 or rgb8.shape[-1:] != (3,):
        raise TypeError(f"rgb8 must be uint8 of shape (..., 3), got {rgb8.dtype} {rgb8.shape}")
    flat = rgb8.reshape(-1, 3)
    L = np.empty(len(flat), dtype=np.float32)
    for s in range(0, len(flat), _CHUNK):
        px = flat[s : s + _CHUNK]
        y = np.take(_Y_OF_SRGB8[0], px[:, 0]) + np.take(_Y_OF_SRGB8[1], px[:, 1])
        y += np.take(_Y_OF_SRGB8[2], px[:, 2])
        L[s : s + _CHUNK] = 116.0 * _f(y) - 16.0
    return L.reshape(rgb8.shape[:-1])


_L_OF_GREY8 = srgb8_to_l(np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1))


def grey8_to_l(grey8) -> np.ndarray:
    """8-bit grey levels (...) uint8 (R = G = B) -> L (...) float32, as :func:`srgb8_to_l`."""
    grey8 = np.asarray(grey8)
    if grey8.dtype != np.uint8:
        raise TypeError(f"grey8 must be uint8, got {grey8.dtype}")
    return np.take(_L_OF_GREY8, grey8)


# Linear light on a uniform grid of _GRID + 1 points in [0, 1] -> rounded 8-bit sRGB. Between
# grid points the transfer curve moves at most 255 * 12.92 / (2 * _GRID) < 0.03 of a level.
_GRID = 1 << 16
_SRGB8_OF_LINEAR = np.rint(
    255.0 * _linear_to_srgb(np.arange(_GRID + 1, dtype=np.float64) / _GRID)).astype(np.uint8)


def lab_to_srgb8(L, a, b) -> np.ndarray:
    """CIE Lab as three (...) arrays -> 8-bit sRGB (..., 3) uint8, computed in float32.

    ``to_uint8(lab_to_rgb(lab))`` to within one level (the transfer curve and the rounding
    are one table lookup; clipped alike), without materialising a float image.
    """
    L, a, b = (np.asarray(x, dtype=np.float32) for x in (L, a, b))
    if not L.shape == a.shape == b.shape:
        raise ValueError(f"L, a, b must have one shape, got {L.shape}, {a.shape}, {b.shape}")
    flat_l, flat_a, flat_b = L.reshape(-1), a.reshape(-1), b.reshape(-1)
    out = np.empty((len(flat_l), 3), dtype=np.uint8)
    for s in range(0, len(flat_l), _CHUNK):
        e = s + _CHUNK
        for c, lin in enumerate(_linear_rgb_channels(flat_l[s:e], flat_a[s:e], flat_b[s:e], 0.0)):
            np.multiply(lin, _GRID, out=lin)
            np.clip(lin, 0.0, _GRID, out=lin)
            lin += 0.5
            out[s:e, c] = np.take(_SRGB8_OF_LINEAR, lin.astype(np.intp))
    return out.reshape(*L.shape, 3)


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
