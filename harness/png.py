"""A fast writer of 8-bit RGB PNG files (ISO/IEC 15948): one fixed filter, zlib level 1.

Pillow chooses a filter per row by trying all five, which on photos costs as much time as the
compression itself. Here every row gets the Up filter (each byte minus the byte above it),
one vectorised subtraction, and the rows are deflated at zlib level 1. On colorized photos
(``benchmarks/bench_colorize.py``) that writes about twice as fast as Pillow at level 1 and
eight times as fast as at its default level 6, for files about 16% larger than level 6's.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_UP = 2  # PNG filter type 2
_BLOCK_BYTES = 1 << 22  # raw bytes deflated per call (zlib releases the GIL meanwhile)


def _chunk(out: BinaryIO, kind: bytes, data: bytes) -> None:
    out.write(struct.pack(">I", len(data)) + kind + data
              + struct.pack(">I", zlib.crc32(kind + data)))


def _up_filtered(rows: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """(h, n) uint8 rows, ``prior`` the (n,) row above them -> (h, 1 + n): the filter byte,
    then each byte minus the one above it, mod 256."""
    out = np.empty((len(rows), rows.shape[1] + 1), dtype=np.uint8)
    out[:, 0] = _UP
    np.subtract(rows[0], prior, out=out[0, 1:])
    np.subtract(rows[1:], rows[:-1], out=out[1:, 1:])
    return out


def write_png(out: BinaryIO, rgb8: np.ndarray) -> None:
    """Write (H, W, 3) uint8 sRGB to the binary file ``out`` as a PNG, streaming row blocks."""
    rgb8 = np.asarray(rgb8)
    if rgb8.dtype != np.uint8 or rgb8.ndim != 3 or rgb8.shape[2] != 3 or 0 in rgb8.shape:
        raise ValueError(f"expected (H, W, 3) uint8, got {rgb8.dtype} {rgb8.shape}")
    h, w, _ = rgb8.shape
    out.write(SIGNATURE)
    _chunk(out, b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))  # 8-bit RGB
    rows = rgb8.reshape(h, 3 * w)
    deflate = zlib.compressobj(1)
    step = max(1, _BLOCK_BYTES // (3 * w + 1))
    prior = np.zeros(3 * w, dtype=np.uint8)  # above the first row: zeros, as the filter defines
    for top in range(0, h, step):
        data = deflate.compress(_up_filtered(rows[top : top + step], prior))
        prior = rows[min(top + step, h) - 1]
        if data:
            _chunk(out, b"IDAT", data)
    _chunk(out, b"IDAT", deflate.flush())
    _chunk(out, b"IEND", b"")


def save_png(rgb8: np.ndarray, path: Path) -> None:
    """Write (H, W, 3) uint8 sRGB to ``path`` as a PNG (not atomically; see harness.atomic)."""
    with open(path, "wb") as out:
        write_png(out, rgb8)
