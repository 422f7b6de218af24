"""Decode any image file to float sRGB or its CIE L, with EXIF orientation and every PIL mode.

Before anything is decoded the file must be a regular file (not a FIFO, a folder, a dangling
or looping symlink) and its header's pixel count at most ``max_pixels``; otherwise the file is
:class:`UnreadableImage` with the reason, read from the header alone.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from harness.color import grey8_to_l, rgb_to_l, srgb8_to_l
from harness.limits import DEFAULT_MAX_PIXELS

# Every decode here checks the header's pixel count against its own ``max_pixels`` first, so
# Pillow's process-wide decompression-bomb limit is switched off: it would warn at 89 MP and
# refuse at 179 MP whatever ``data.max_pixels`` says, and name neither the limit nor the key.
Image.MAX_IMAGE_PIXELS = None


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


def load_rgb(path: Path, size: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode ``path`` to a (size, size, 3) float32 sRGB square, or raise UnreadableImage."""
    rgb = decode_rgb(path, max_pixels)
    if min(rgb.shape[:2]) < 8:
        raise UnreadableImage(f"too small ({rgb.shape[1]}x{rgb.shape[0]} pixels)")
    return _resize_square(rgb, size)


_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"))


def file_problem(path: Path) -> str | None:
    """Why ``path`` is not a non-empty regular file (following symlinks), or None if it is.

    Told from ``stat`` alone, so a FIFO is never opened (which would block).
    """
    try:
        st = os.stat(path)
    except OSError as exc:
        if os.path.islink(path):
            if exc.errno == errno.ELOOP:
                return "symlink loop (the link leads back to itself)"
            if exc.errno == errno.ENOENT:
                return f"dangling symlink (its target {os.readlink(path)} does not exist)"
        return f"cannot read: {exc.strerror or exc}"
    for test, kind in _KINDS:
        if test(st.st_mode):
            return f"{kind}, not a regular file"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if st.st_size == 0:
        return "empty file (0 bytes)"
    return None


def _check_pixels(img: Image.Image, max_pixels: int) -> None:
    w, h = img.size
    if w * h > max_pixels:
        raise UnreadableImage(f"too large: {w}x{h} = {w * h:,} pixels, over the limit of "
                              f"{max_pixels:,} (data.max_pixels); not decoded")


@contextmanager
def _opened(path: Path, max_pixels: int) -> Iterator[Image.Image]:
    """``path`` decoded (EXIF orientation applied); decoding errors become UnreadableImage.

    The pixel limit is checked on the header Pillow reads when opening, before decoding.
    """
    try:
        problem = file_problem(path)
        if problem:
            raise UnreadableImage(problem)
        with Image.open(path) as img:
            _check_pixels(img, max_pixels)
            img = ImageOps.exif_transpose(img)
            img.load()
            yield img
    except UnreadableImage:
        raise
    except UnidentifiedImageError:
        raise UnreadableImage("not a recognised image format") from None
    except Image.DecompressionBombError as exc:  # a plugin set Pillow's limit again
        raise UnreadableImage(f"too large: {exc}") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise UnreadableImage(f"cannot decode: {exc}") from None


def decode_rgb(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode ``path`` at full resolution to (H, W, 3) float32 sRGB, or raise UnreadableImage.

    Values in [0, 1], EXIF orientation applied, every PIL mode converted (see `_to_float_rgb`);
    images of more than ``max_pixels`` are refused from their header.
    """
    with _opened(path, max_pixels) as img:
        return _to_float_rgb(img)


def decode_l(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode ``path`` at full resolution to its (H, W) float32 CIE L, or raise UnreadableImage.

    ``rgb_to_lab(decode_rgb(path))[..., 0]`` to float rounding, without a float RGB image:
    8-bit images go through per-level tables. The pixel limit is :func:`decode_rgb`'s.
    """
    with _opened(path, max_pixels) as img:
        return _to_l(img)
