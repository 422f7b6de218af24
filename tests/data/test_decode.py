"""load_rgb, decode_l: every PIL mode, transparency over white, EXIF orientation, broken files."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest
from PIL import Image

import harness.data.decode as decode
from harness.color import rgb_to_lab
from harness.data.decode import UnreadableImage, decode_l, decode_rgb, load_rgb

RED, GREEN, BLUE, YELLOW, WHITE = (1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (1, 1, 1)


def close_to(pixel, colour, tol=0.1) -> bool:
    return bool(np.all(np.abs(np.asarray(pixel) - np.asarray(colour)) < tol))


def test_output_is_square_float_rgb_in_unit_range(tmp_path, helpers):
    path = tmp_path / "photo.png"
    Image.fromarray(helpers.colourful(40, 48)).save(path)
    rgb = load_rgb(path, 24)
    assert rgb.shape == (24, 24, 3)
    assert rgb.dtype == np.float32
    assert rgb.min() >= 0.0 and rgb.max() <= 1.0
    assert rgb.std() > 0.1  # colourful, not flattened


def test_resize_keeps_shorter_side_and_centre_crops(tmp_path):
    # 96 wide x 40 tall: red | green | blue thirds; the centre square is mostly green.
    arr = np.zeros((40, 96, 3), np.uint8)
    arr[:, :32], arr[:, 32:64], arr[:, 64:] = (255, 0, 0), (0, 255, 0), (0, 0, 255)
    path = tmp_path / "wide.png"
    Image.fromarray(arr).save(path)
    rgb = load_rgb(path, 20)
    # shorter side 40 -> 20, width 96 -> 48, crop columns 14..33 of the resized image
    assert close_to(rgb[10, 10], GREEN)
    assert close_to(rgb[10, 0], RED, tol=0.25) or rgb[10, 0, 0] > 0.6
    assert close_to(rgb[10, 19], BLUE, tol=0.25) or rgb[10, 19, 2] > 0.6


def test_exact_size_square_is_not_resampled(tmp_path, helpers):
    arr = helpers.colourful(16, 16, seed=3)
    path = tmp_path / "exact.png"
    Image.fromarray(arr).save(path)
    np.testing.assert_allclose(load_rgb(path, 16), arr / 255.0, atol=1e-6)


def test_rgba_transparent_pixels_come_out_white(tmp_path, helpers):
    arr = np.zeros((40, 48, 4), np.uint8)
    arr[..., :3] = (0, 0, 255)
    arr[..., 3] = 255
    arr[:, :24, 3] = 0  # left half fully transparent (its RGB is blue underneath)
    arr[:, :24, :3] = (0, 0, 0)
    path = tmp_path / "rgba.png"
    Image.fromarray(arr, "RGBA").save(path)
    rgb = load_rgb(path, 20)
    assert close_to(rgb[10, 1], WHITE, tol=0.02)
    assert close_to(rgb[10, 18], BLUE, tol=0.02)


def test_half_transparent_pixels_blend_with_white(tmp_path):
    arr = np.zeros((16, 16, 4), np.uint8)
    arr[..., 0], arr[..., 3] = 255, 128
    path = tmp_path / "half.png"
    Image.fromarray(arr, "RGBA").save(path)
    rgb = load_rgb(path, 16)
    np.testing.assert_allclose(rgb[8, 8], [1.0, 127 / 255, 127 / 255], atol=0.01)


def test_palette_png_without_transparency(tmp_path, helpers):
    src = Image.fromarray(helpers.quadrants())
    path = tmp_path / "palette.png"
    src.quantize(8).save(path)
    assert Image.open(path).mode == "P"
    rgb = load_rgb(path, 20)
    assert close_to(rgb[1, 1], RED) and close_to(rgb[18, 18], YELLOW)


def test_palette_png_with_transparency_is_white_there(tmp_path, helpers):
    colours = [*helpers.QUADRANTS.values(), (0, 0, 0)]  # entry 4 (black) is transparent
    idx = np.zeros((40, 48), np.uint8)
    for i, (r, c) in enumerate(helpers.QUADRANTS):
        idx[r * 20 : (r + 1) * 20, c * 24 : (c + 1) * 24] = i
    idx[:, :24] = 4  # left half -> the transparent entry
    out = Image.fromarray(idx, "P")
    out.putpalette([v for colour in colours for v in colour])
    path = tmp_path / "palette_trns.png"
    out.save(path, transparency=4)
    assert Image.open(path).mode == "P" and "transparency" in Image.open(path).info
    rgb = load_rgb(path, 20)
    assert close_to(rgb[1, 1], WHITE, tol=0.02)
    assert close_to(rgb[1, 18], GREEN) and close_to(rgb[18, 18], YELLOW)


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_colour_key_transparency_is_white(tmp_path, mode):
    # tRNS colour key (no alpha channel): pixels of exactly that value are transparent
    arr = np.zeros((16, 32, 3), np.uint8)
    arr[:, :16], arr[:, 16:] = (10, 10, 10), (200, 30, 30)
    img = Image.fromarray(arr).convert(mode)
    key = (10, 10, 10) if mode == "RGB" else 10
    path = tmp_path / f"key_{mode}.png"
    img.save(path, transparency=key)
    assert Image.open(path).mode == mode
    rgb = load_rgb(path, 16)
    assert close_to(rgb[8, 0], WHITE, tol=0.02)


def test_la_greyscale_alpha(tmp_path):
    la = np.zeros((40, 48, 2), np.uint8)
    la[..., 0], la[..., 1] = 60, 255
    la[:, :24, 1] = 0
    path = tmp_path / "la.png"
    Image.fromarray(la, "LA").save(path)
    assert Image.open(path).mode == "LA"
    rgb = load_rgb(path, 20)
    assert close_to(rgb[10, 1], WHITE, tol=0.02)
    assert close_to(rgb[10, 18], (60 / 255,) * 3, tol=0.02)
    np.testing.assert_allclose(rgb[..., 0], rgb[..., 2], atol=1e-6)  # still grey


def test_cmyk_jpeg_converts_to_rgb(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (48, 40), (0, 255, 255, 0)).save(path, quality=95)
    assert Image.open(path).mode == "CMYK"
    rgb = load_rgb(path, 16)
    assert close_to(rgb[8, 8], RED, tol=0.1)


def test_sixteen_bit_grey_png_uses_the_full_range(tmp_path):
    grey = np.full((40, 48), 32768, np.uint16)  # 0.5 in 16 bits; 8-bit reading would clip to 1
    grey[:, :24] = 6554  # 0.1
    path = tmp_path / "grey16.png"
    Image.fromarray(grey).save(path)
    assert Image.open(path).mode.startswith("I")
    rgb = load_rgb(path, 20)
    np.testing.assert_allclose(rgb[10, 18], [0.5] * 3, atol=0.01)
    np.testing.assert_allclose(rgb[10, 1], [0.1] * 3, atol=0.01)


def test_sixteen_bit_colour_png(tmp_path, helpers):
    # PIL cannot write 16-bit colour PNGs, so the file is written by hand; PIL reads it as RGB.
    arr = np.zeros((40, 48, 3), np.uint16)
    arr[..., 0], arr[..., 2] = 65535, 30000
    path = helpers.write_png_raw(tmp_path / "rgb16.png", arr, colour_type=2)
    rgb = load_rgb(path, 16)
    np.testing.assert_allclose(rgb[8, 8], [1.0, 0.0, 30000 / 65535], atol=0.01)


def test_sixteen_bit_rgba_png_over_white(tmp_path, helpers):
    arr = np.zeros((40, 48, 4), np.uint16)
    arr[..., 1], arr[..., 3] = 65535, 65535
    arr[:, :24, 3] = 0
    path = helpers.write_png_raw(tmp_path / "rgba16.png", arr, colour_type=6)
    rgb = load_rgb(path, 20)
    assert close_to(rgb[10, 1], WHITE, tol=0.02)
    assert close_to(rgb[10, 18], GREEN, tol=0.02)


def test_exif_orientation_6_is_applied(tmp_path, helpers, monkeypatch):
    """Orientation 6: the stored 48x40 card is shown rotated 90 degrees clockwise (40x48)."""
    card = Image.fromarray(helpers.quadrants(40, 48))
    plain = tmp_path / "plain.jpg"
    card.save(plain, quality=95)
    rotated = helpers.with_exif_orientation(card, tmp_path / "exif6.jpg", 6)

    shapes = []
    real = decode._resize_square

    def spy(rgb, size):
        shapes.append(rgb.shape)
        return real(rgb, size)

    monkeypatch.setattr(decode, "_resize_square", spy)
    a = load_rgb(plain, 16)
    b = load_rgb(rotated, 16)
    assert shapes == [(40, 48, 3), (48, 40, 3)]  # width and height swap
    # no rotation: TL red, TR green, BL blue, BR yellow
    assert close_to(a[1, 1], RED) and close_to(a[1, 14], GREEN)
    assert close_to(a[14, 1], BLUE) and close_to(a[14, 14], YELLOW)
    # rotated clockwise: the red top-left corner is now top-right, blue moved to top-left
    assert close_to(b[1, 14], RED) and close_to(b[1, 1], BLUE)
    assert close_to(b[14, 14], GREEN) and close_to(b[14, 1], YELLOW)


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("zero.jpg", b"", "empty"),
        ("text.png", b"this is a text file, not a picture\n", "not a recognised image"),
    ],
)
def test_unreadable_files_raise_with_reason(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UnreadableImage, match=reason):
        load_rgb(path, 16)


def test_truncated_jpeg_cannot_be_decoded(tmp_path, helpers):
    whole = tmp_path / "whole.jpg"
    Image.fromarray(helpers.colourful()).save(whole, quality=90)
    data = whole.read_bytes()
    path = tmp_path / "truncated.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UnreadableImage, match="cannot decode"):
        load_rgb(path, 16)


def test_decompression_bomb_header_is_unreadable_not_a_crash(tmp_path, helpers):
    path = helpers.write_bomb_png(tmp_path / "bomb.png")  # 400 MP: past Pillow's own refusal
    with pytest.raises(UnreadableImage, match=r"too large: 20000x20000 = 400,000,000 pixels, "
                                              r"over the limit of 40,000,000 \(data.max_pixels"):
        load_rgb(path, 16)


@pytest.fixture
def no_decoding(monkeypatch):
    """Make any pixel decoding fail the test: only headers may be read."""
    from PIL import ImageFile

    def refuse(self):
        raise AssertionError(f"decoded {self.size} pixels")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)


def test_huge_image_is_skipped_from_its_header_without_decoding(tmp_path, helpers, no_decoding):
    """The issue's case: a 12000 x 12000 PNG of 166 kB (144 MP; Pillow would only warn)."""
    path = helpers.write_flat_png(tmp_path / "huge.png", 12000, 12000, 128)
    assert path.stat().st_size < 1_000_000
    import warnings

    for read in (lambda p: load_rgb(p, 16), decode_rgb, decode_l):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # Pillow's DecompressionBombWarning would raise
            with pytest.raises(UnreadableImage, match=r"12000x12000 = 144,000,000 pixels, "
                                                      r"over the limit of 40,000,000"):
                read(path)


def test_pixel_limit_is_configurable_and_inclusive(tmp_path, helpers):
    path = helpers.write_flat_png(tmp_path / "flat.png", 100, 50, (200, 30, 40))
    assert load_rgb(path, 16, max_pixels=5000).shape == (16, 16, 3)
    with pytest.raises(UnreadableImage, match=r"100x50 = 5,000 pixels, over the limit of 4,999"):
        load_rgb(path, 16, max_pixels=4999)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs and symlinks")
def test_entries_that_are_not_regular_files_are_refused_without_opening(tmp_path):
    os.mkfifo(tmp_path / "pipe.png")  # opening it would block until a writer comes
    os.symlink(tmp_path / "gone.png", tmp_path / "dangling.png")
    os.symlink(tmp_path / "loop_b.png", tmp_path / "loop_a.png")
    os.symlink(tmp_path / "loop_a.png", tmp_path / "loop_b.png")
    (tmp_path / "folder.png").mkdir()
    expected = {"pipe.png": "a FIFO (named pipe), not a regular file",
                "dangling.png": f"dangling symlink (its target {tmp_path / 'gone.png'} does not",
                "loop_a.png": "symlink loop", "folder.png": "a folder, not a regular file"}
    for name, reason in expected.items():
        with pytest.raises(UnreadableImage, match=re.escape(reason)):
            load_rgb(tmp_path / name, 16)


def test_tiny_image_is_unreadable(tmp_path):
    path = tmp_path / "tiny.png"
    Image.new("RGB", (5, 30), (255, 0, 0)).save(path)
    with pytest.raises(UnreadableImage, match="too small"):
        load_rgb(path, 16)


def _mode_files(tmp_path, helpers) -> list:
    """One small file per decoding path: 8-bit colour and grey, alpha, palette, CMYK, 16 bits."""
    colour = helpers.colourful(40, 48, seed=3)
    rgba = np.dstack([colour, np.tile(np.linspace(0, 255, 48, dtype=np.uint8), (40, 1))])
    images = {"rgb.jpg": Image.fromarray(colour),
              "grey.png": Image.fromarray(colour).convert("L"),
              "rgba.png": Image.fromarray(rgba, "RGBA"),
              "la.png": Image.fromarray(rgba).convert("LA"),
              "p.png": Image.fromarray(colour).convert("P"),
              "cmyk.jpg": Image.fromarray(colour).convert("CMYK"),
              "grey16.png": Image.fromarray(colour[..., 0].astype(np.uint16) * 257)}
    paths = []
    for name, img in images.items():
        img.save(tmp_path / name)
        paths.append(tmp_path / name)
    paths.append(helpers.write_png_raw(tmp_path / "rgb16.png", colour.astype(np.uint16) * 250,
                                       colour_type=2))
    paths.append(helpers.with_exif_orientation(Image.fromarray(colour), tmp_path / "exif.jpg", 6))
    return paths


def test_decode_l_is_the_l_of_decode_rgb_in_every_mode(tmp_path, helpers):
    for path in _mode_files(tmp_path, helpers):
        reference = rgb_to_lab(decode_rgb(path))[..., 0]
        L = decode_l(path)
        assert L.dtype == np.float32 and L.shape == reference.shape, path.name
        np.testing.assert_allclose(L, reference, rtol=0, atol=1e-4, err_msg=path.name)


def test_decode_l_raises_like_decode_rgb(tmp_path):
    path = tmp_path / "text.png"
    path.write_bytes(b"this is a text file, not a picture\n")
    with pytest.raises(UnreadableImage, match="not a recognised image"):
        decode_l(path)
