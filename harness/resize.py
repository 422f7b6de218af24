"""The host's resizing, identical for every plugin: antialiased L down, bilinear ab up.

torch's ``interpolate`` does the work (one implementation of antialiased bilinear); it is
imported on first use, so modules that merely import this one stay framework-free.
"""

from __future__ import annotations

import numpy as np


def _resize(x: np.ndarray, size: int | tuple[int, int], antialias: bool) -> np.ndarray:
    """(N, H, W, C) -> (N, h, w, C) bilinear, float32; ``size`` is a side or ``(h, w)``."""
    shape = (size, size) if isinstance(size, int) else tuple(size)
    if x.shape[1:3] == shape:
        return np.asarray(x, dtype=np.float32)
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).permute(0, 3, 1, 2)
    out = F.interpolate(t, size=shape, mode="bilinear", align_corners=False,
                        antialias=antialias)
    return out.permute(0, 2, 3, 1).numpy()


def resize_l(L: np.ndarray, size: int) -> np.ndarray:
    """L (N, H, W) -> (N, size, size), antialiased when shrinking."""
    return _resize(L[..., None], size, antialias=True)[..., 0]


def resize_ab(ab: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """ab (N, h, w, 2) -> (N, size, size, 2), or (N, H, W, 2) for ``size=(H, W)``, bilinear (as
    Zhang et al. upsample theirs)."""
    return _resize(ab, size, antialias=False)
