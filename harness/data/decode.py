"""Decode any image file to float sRGB or its CIE L, with EXIF orientation and every PIL mode."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from harness.color import grey8_to_l, rgb_to_l, srgb8_to_l


class UnreadableImage(Exception):
    """The file is not an image we can decode; the message says why."""


def _high_depth(img: Image.Image) -> bool:
    return img.mode.startswith("I") or img.mode == "F"


def _to_8bit(img: Image.Image) -> Image.Image:
    """An 8-bit mode other than I/F -> "L" or "RGB"; transparency is composited over white."""
    if img.mode in ("P", "L", "RGB") and "transparency" in img.info:  # tRNS colour key too
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    return img if img.mode == "L" else img.convert("RGB")


def _to_float_rgb(img: Image.Image) -> np.ndarray:
    """(H, W, 3) float32 in [0, 1] from any PIL mode; transparency is composited over white."""
    if _high_depth(img):
        arr = np.asarray(img, dtype=np.float32)
        if img.mode.startswith("I;16"):
            top = 65535.0
        elif img.mode == "F":
            top = max(1.0, float(arr.max(initial=1.0)))
        else:  # 32-bit integer: 16-bit PNGs decode to this mode in some Pillow versions
            top = 65535.0 if arr.max(initial=0) > 255 else 255.0
        grey = np.clip(arr / top, 0.0, 1.0)
        return np.repeat(grey[..., None], 3, axis=2)
    arr = np.asarray(_to_8bit(img).convert("RGB"), dtype=np.float32)
    return arr / 255.0


def _to_l(img: Image.Image) -> np.ndarray:
    """(H, W) float32 CIE L: ``rgb_to_lab(_to_float_rgb(img))[..., 0]`` to float rounding."""
    if _high_depth(img):
        return rgb_to_l(_to_float_rgb(img))
    img = _to_8bit(img)
    return grey8_to_l(np.asarray(img)) if img.mode == "L" else srgb8_to_l(np.asarray(img))


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


@contextmanager
def _opened(path: Path) -> Iterator[Image.Image]:
    """``path`` decoded (EXIF orientation applied); decoding errors become UnreadableImage."""
    try:
        if path.stat().st_size == 0:
            raise UnreadableImage("empty file (0 bytes)")
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img)
            img.load()
            yield img
    except UnreadableImage:
        raise
    except UnidentifiedImageError:
        raise UnreadableImage("not a recognised image format") from None
    except Image.DecompressionBombError as exc:  # also what a corrupt size field looks like
        raise UnreadableImage(f"too large: {exc}") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise UnreadableImage(f"cannot decode: {exc}") from None


def decode_rgb(path: Path) -> np.ndarray:
    """Decode ``path`` at full resolution to (H, W, 3) float32 sRGB, or raise UnreadableImage.

    Values in [0, 1], EXIF orientation applied, every PIL mode converted (see `_to_float_rgb`).
    """
    with _opened(path) as img:
        return _to_float_rgb(img)


def decode_l(path: Path) -> np.ndarray:
    """Decode ``path`` at full resolution to its (H, W) float32 CIE L, or raise UnreadableImage.

    ``rgb_to_lab(decode_rgb(path))[..., 0]`` to float rounding, without a float RGB image:
    8-bit images go through per-level tables.
    """
    with _opened(path) as img:
        return _to_l(img)
