"""Fixtures for the shared data loader tests: tiny synthetic photos and broken files.

Everything is generated in ``tmp_path`` with PIL/numpy; images are about 48x40 pixels and the
loader runs at 16-32 pixels, so the whole directory stays fast.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.config import DataConfig
from harness.plugins import load_registry

#: Stored orientation of the quadrant test card: (row half, column half) -> colour.
QUADRANTS = {
    (0, 0): (255, 0, 0),  # top-left red
    (0, 1): (0, 255, 0),  # top-right green
    (1, 0): (0, 0, 255),  # bottom-left blue
    (1, 1): (255, 255, 0),  # bottom-right yellow
}


def colourful(h: int = 40, w: int = 48, seed: int = 0) -> np.ndarray:
    """A smooth, strongly coloured (h, w, 3) uint8 image; different seeds differ."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    chans = []
    for _ in range(3):
        fy, fx = rng.uniform(0.5, 2.0, size=2) / np.array([h, w])
        phase = rng.uniform(0, 2 * np.pi)
        chans.append(0.5 + 0.45 * np.sin(2 * np.pi * (fy * y + fx * x) + phase))
    return np.clip(np.stack(chans, axis=-1) * 255, 0, 255).round().astype(np.uint8)


def quadrants(h: int = 40, w: int = 48) -> np.ndarray:
    """The quadrant test card (see QUADRANTS) as (h, w, 3) uint8."""
    out = np.zeros((h, w, 3), np.uint8)
    for (r, c), colour in QUADRANTS.items():
        out[r * h // 2 : (r + 1) * h // 2, c * w // 2 : (c + 1) * w // 2] = colour
    return out


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data)
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _write_png(path: Path, w: int, h: int, depth: int, colour_type: int, rows: bytes,
               compressed: bytes | None = None) -> Path:
    header = struct.pack(">IIBBBBB", w, h, depth, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
                     + _chunk(b"IDAT", compressed or zlib.compress(rows)) + _chunk(b"IEND", b""))
    return path


def write_flat_png(path: Path, w: int, h: int, colour: int | tuple[int, int, int]) -> Path:
    """A valid 8-bit PNG of one grey level or RGB colour, compressed row by row: a few hundred
    kB at 12000 x 12000 pixels."""
    rgb = isinstance(colour, tuple)
    row = b"\0" + (bytes(colour) if rgb else bytes([colour])) * w
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row) for _ in range(h)) + packer.flush()
    return _write_png(path, w, h, 8, 2 if rgb else 0, b"", compressed=data)


def write_png_raw(path: Path, pixels: np.ndarray, colour_type: int) -> Path:
    """Write a 16-bit PNG by hand (PIL cannot write 16-bit colour): colour type 2 or 6."""
    h, w = pixels.shape[:2]
    rows = b"".join(b"\0" + pixels[y].astype(">u2").tobytes() for y in range(h))
    return _write_png(path, w, h, 16, colour_type, rows)


def write_bomb_png(path: Path, side: int = 20000) -> Path:
    """A tiny PNG whose header claims side x side pixels (PIL refuses it as a bomb)."""
    return _write_png(path, side, side, 8, 2, b"\0" * 64)


def with_exif_orientation(img: Image.Image, path: Path, orientation: int) -> Path:
    exif = Image.Exif()
    exif[0x0112] = orientation
    img.save(path, "JPEG", quality=95, exif=exif.tobytes())
    return path


def write_messy_folder(root: Path) -> dict[str, object]:
    """Good photos in every mode mixed with grey and broken files; returns what to expect.

    Keys: ``used`` (names decoded and kept), ``grey`` (decoded, excluded as grey),
    ``skipped`` (name -> substring of the reason), ``ignored`` (not image files at all).
    """
    root.mkdir(parents=True, exist_ok=True)
    used, grey, skipped = set(), set(), {}

    def photo(seed: int) -> Image.Image:
        return Image.fromarray(colourful(seed=seed))

    photo(1).save(root / "plain.jpg", quality=90)
    photo(2).save(root / "plain.png")
    photo(3).save(root / "upper.JPG", quality=90)
    used |= {"plain.jpg", "plain.png", "upper.JPG"}

    rgba = np.dstack([colourful(seed=4), np.full((40, 48), 255, np.uint8)])
    rgba[:, :16, 3] = 0
    Image.fromarray(rgba, "RGBA").save(root / "rgba.png")
    photo(5).quantize(32).save(root / "palette.png")
    pal = photo(6).quantize(32)  # then make every pixel of the top rows transparent
    pal_arr = np.asarray(pal).copy()
    clear = int(pal_arr[0, 0])
    pal_arr[:10] = clear
    pal = Image.fromarray(pal_arr, "P")
    pal.putpalette(photo(6).quantize(32).getpalette())
    pal.save(root / "palette_trns.png", transparency=clear)
    Image.fromarray(colourful(seed=7)).convert("CMYK").save(root / "cmyk.jpg", quality=90)
    with_exif_orientation(Image.fromarray(quadrants()), root / "exif6.jpg", 6)
    rgb16 = colourful(seed=8).astype(np.uint16) * 257
    write_png_raw(root / "rgb16.png", rgb16, colour_type=2)
    used |= {"rgba.png", "palette.png", "palette_trns.png", "cmyk.jpg", "exif6.jpg", "rgb16.png"}

    grey_photo = colourful(seed=9).mean(axis=2, keepdims=True).repeat(3, axis=2)
    Image.fromarray(grey_photo.astype(np.uint8), "RGB").save(root / "grey_colour.jpg")
    grey16 = (np.linspace(0, 65535, 40 * 48).reshape(40, 48)).astype(np.uint16)
    Image.fromarray(grey16).save(root / "grey16.png")
    la = np.dstack([colourful(seed=10)[..., 0], np.full((40, 48), 255, np.uint8)])
    la[:, :8, 1] = 0
    Image.fromarray(la, "LA").save(root / "grey_alpha.png")
    grey |= {"grey_colour.jpg", "grey16.png", "grey_alpha.png"}

    photo(11).save(root / "whole.jpg", quality=90)
    data = (root / "whole.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (root / "whole.jpg").unlink()
    (root / "zero.jpg").write_bytes(b"")
    (root / "text.png").write_text("this is not an image\n")
    write_bomb_png(root / "bomb.png")
    skipped |= {"truncated.jpg": "cannot decode", "zero.jpg": "empty",
                "text.png": "not a recognised image", "bomb.png": "too large"}

    (root / "notes.txt").write_text("ignored: not an image suffix\n")
    return {"used": used, "grey": grey, "skipped": skipped, "ignored": {"notes.txt"}}


@pytest.fixture(scope="session")
def registry():
    """The real plugin registry (built-in data sources come from entry points); built once."""
    return load_registry()


@pytest.fixture
def make_cfg(tmp_path: Path) -> Callable[..., DataConfig]:
    """DataConfig for the folder source with its cache in tmp_path and tiny images."""

    def make(path: Path | None, **overrides) -> DataConfig:
        values = {"source": "folder", "path": path, "size": 16, "train_scale": 1.0,
                  "cache_dir": tmp_path / "cache", "workers": 2, **overrides}
        return DataConfig(**values)

    return make


@pytest.fixture
def photo_folder(tmp_path: Path) -> Callable[..., Path]:
    """Write ``n`` colourful JPEGs (or PNGs) into a folder under tmp_path; returns the folder."""

    def make(n: int = 8, name: str = "photos", ext: str = "png", h: int = 40,
             w: int = 48) -> Path:
        root = tmp_path / name
        root.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(colourful(h, w, seed=100 + i)).save(root / f"img{i:02d}.{ext}")
        return root

    return make


@pytest.fixture
def messy_folder(tmp_path: Path) -> tuple[Path, dict[str, object]]:
    root = tmp_path / "messy"
    return root, write_messy_folder(root)


@pytest.fixture
def helpers():
    """Module-level helpers of this conftest, for test files (importlib mode cannot import it)."""

    class _Helpers:
        QUADRANTS = QUADRANTS
        colourful = staticmethod(colourful)
        quadrants = staticmethod(quadrants)
        write_png_raw = staticmethod(write_png_raw)
        write_bomb_png = staticmethod(write_bomb_png)
        write_flat_png = staticmethod(write_flat_png)
        with_exif_orientation = staticmethod(with_exif_orientation)

    return _Helpers
