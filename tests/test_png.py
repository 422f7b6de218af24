"""harness.png: the PNG files it writes decode, in Pillow, to exactly the pixels given."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from harness import png


def _chunks_with_valid_crc(data: bytes) -> list[bytes]:
    assert data[:8] == png.SIGNATURE
    kinds, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        body = data[pos + 4 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(body), body[:4]
        kinds.append(body[:4])
        pos += 12 + length
    return kinds


@pytest.mark.parametrize("shape", [(1, 1), (3, 2), (37, 53), (300, 200)])
def test_pixels_round_trip_exactly(shape, monkeypatch):
    monkeypatch.setattr(png, "_BLOCK_BYTES", 4096)  # several row blocks and IDAT chunks
    rng = np.random.default_rng(sum(shape))
    rgb8 = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    rgb8[: shape[0] // 2] //= 16  # some long runs too
    buf = io.BytesIO()
    png.write_png(buf, rgb8)
    kinds = _chunks_with_valid_crc(buf.getvalue())
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and set(kinds[1:-1]) == {b"IDAT"}
    with Image.open(io.BytesIO(buf.getvalue())) as img:
        img.load()
        assert img.format == "PNG" and img.mode == "RGB" and img.size == shape[::-1]
        np.testing.assert_array_equal(np.asarray(img), rgb8)


def test_non_image_arrays_are_refused():
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        png.write_png(io.BytesIO(), np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        png.write_png(io.BytesIO(), np.zeros((0, 4, 3), np.uint8))
