"""Decode any image file into float sRGB, applying EXIF orientation and every PIL mode."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError


class UnreadableImage(Exception):
    """The file is not an image we can decode; the message says why."""


def _to_float_rgb(img: Image.Image) -> np.ndarray:
    """(H, W, 3) float32 in [0, 1] from any PIL mode; transparency is composited over white."""
    if img.mode.startswith("I") or img.mode == "F":
        arr = np.asarray(img, dtype=np.float32)
        if img.mode.startswith("I;16"):
            top = 65535.0
        elif img.mode == "F":
            top = max(1.0, float(arr.max(initial=1.0)))
        else:  # 32-bit integer: 16-bit PNGs decode to this mode in some Pillow versions
            top = 65535.0 if arr.max(initial=0) > 255 else 255.0
        grey = np.clip(arr / top, 0.0, 1.0)
        return np.repeat(grey[..., None], 3, axis=2)
    if img.mode in ("P", "L", "RGB") and "transparency" in img.info:  # tRNS colour key too
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    arr = np.asarray(img.convert("RGB"), dtype=np.float32)
    return arr / 255.0


def _resize_square(rgb: np.ndarray, size: int) -> np.ndarray:
    """Resize the shorter side to ``size`` (antialiased) and centre-crop a square."""
    h, w = rgb.shape[:2]
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    channels = [
        np.asarray(
            Image.fromarray(rgb[..., c], mode="F").resize((nw, nh), Image.Resampling.LANCZOS)
        )
        for c in range(3)
    ]
    out = np.stack(channels, axis=-1)
    top, left = (nh - size) // 2, (nw - size) // 2
    return np.clip(out[top : top + size, left : left + size], 0.0, 1.0)


def load_rgb(path: Path, size: int) -> np.ndarray:
    """Decode ``path`` to a (size, size, 3) float32 sRGB square, or raise UnreadableImage."""
    rgb = decode_rgb(path)
    if min(rgb.shape[:2]) < 8:
        raise UnreadableImage(f"too small ({rgb.shape[1]}x{rgb.shape[0]} pixels)")
    return _resize_square(rgb, size)


def decode_rgb(path: Path) -> np.ndarray:
    """Decode ``path`` at full resolution to (H, W, 3) float32 sRGB, or raise UnreadableImage.

    Values in [0, 1], EXIF orientation applied, every PIL mode converted (see `_to_float_rgb`).
    """
    try:
        if path.stat().st_size == 0:
            raise UnreadableImage("empty file (0 bytes)")
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img)
            img.load()
            rgb = _to_float_rgb(img)
    except UnreadableImage:
        raise
    except UnidentifiedImageError:
        raise UnreadableImage("not a recognised image format") from None
    except Image.DecompressionBombError as exc:  # also what a corrupt size field looks like
        raise UnreadableImage(f"too large: {exc}") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise UnreadableImage(f"cannot decode: {exc}") from None
    return rgb
