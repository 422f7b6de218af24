import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from skimage import color

import harness
from harness.color import (
    denormalize_ab,
    denormalize_l,
    gray_to_rgb,
    grey8_to_l,
    in_srgb_gamut,
    lab_to_rgb,
    lab_to_srgb8,
    normalize_ab,
    normalize_l,
    rgb_to_l,
    rgb_to_lab,
    srgb8_to_l,
    to_uint8,
)

RNG = np.random.default_rng(0)
# Corners of the RGB cube, greys and near-black / near-white values around the sRGB knee.
EDGE_RGB = np.array(
    [[r, g, b] for r in (0, 1) for g in (0, 1) for b in (0, 1)]
    + [[v, v, v] for v in (1e-4, 0.04045, 0.0405, 0.5, 1 - 1e-4)]
    + [[1, 0.5, 0], [0, 0.2, 1], [0.04, 0.05, 0.03]],
    dtype=np.float32,
)


def _skimage_lab2rgb(lab):
    with warnings.catch_warnings():  # "Z < 0" / clipping notices for out-of-gamut input
        warnings.simplefilter("ignore")
        return color.lab2rgb(lab)


@pytest.mark.parametrize("rgb", [RNG.random((64, 48, 3), dtype=np.float32), EDGE_RGB])
def test_rgb_to_lab_matches_skimage(rgb):
    lab = rgb_to_lab(rgb)
    assert lab.dtype == np.float32 and lab.shape == rgb.shape
    np.testing.assert_allclose(lab, color.rgb2lab(rgb), atol=1e-3)


def test_lab_to_rgb_matches_skimage_in_and_out_of_gamut():
    n = 20_000
    lab = np.stack(
        [RNG.uniform(0, 100, n), RNG.uniform(-110, 110, n), RNG.uniform(-110, 110, n)], axis=-1
    )
    rgb = lab_to_rgb(lab)
    assert rgb.dtype == np.float32 and rgb.min() >= 0 and rgb.max() <= 1
    np.testing.assert_allclose(rgb, _skimage_lab2rgb(lab), atol=1e-3)
    lab_edges = color.rgb2lab(EDGE_RGB)
    np.testing.assert_allclose(lab_to_rgb(lab_edges), _skimage_lab2rgb(lab_edges), atol=1e-3)


def test_round_trip_and_unclipped_output():
    rgb = RNG.random((1000, 3), dtype=np.float32)
    np.testing.assert_allclose(lab_to_rgb(rgb_to_lab(rgb)), rgb, atol=1e-4)
    vivid = np.array([[50.0, 100.0, -100.0], [90.0, -100.0, 100.0]])
    raw = lab_to_rgb(vivid, clip=False)
    assert (raw < 0).any() and (raw > 1).any()
    np.testing.assert_allclose(np.clip(raw, 0, 1), lab_to_rgb(vivid), atol=1e-6)


def test_in_srgb_gamut_broadcasts_and_matches_conversion():
    rgb = RNG.random((500, 3))
    L, a, b = np.moveaxis(color.rgb2lab(rgb), -1, 0)
    assert in_srgb_gamut(L * 0.999 + 0.05, a * 0.999, b * 0.999).all()  # pulled inwards
    assert not in_srgb_gamut(50.0, 0.0, np.array([-120.0, 120.0])).any()
    # The grey axis; L = 100 misses by 1e-5 (the D65 white and the sRGB matrix disagree slightly).
    grey = in_srgb_gamut(np.arange(0.0, 101.0)[:, None, None], np.zeros((3, 1)), np.zeros(4))
    assert grey.shape == (101, 3, 4) and grey[:100].all() and not grey[100].any()


def test_integer_and_misshaped_input_is_refused():
    with pytest.raises(TypeError, match="uint8"):
        rgb_to_lab(np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
        lab_to_rgb(np.zeros((2, 2)))


def test_gray_to_rgb_and_to_uint8():
    L = np.array([0.0, 50.0, 100.0], np.float32)
    grey = gray_to_rgb(L)
    assert grey.shape == (3, 3)
    np.testing.assert_allclose(grey, np.repeat(grey[:, :1], 3, axis=1), atol=1e-4)
    np.testing.assert_allclose(grey[[0, 2], 0], [0.0, 1.0], atol=1e-4)
    np.testing.assert_array_equal(
        to_uint8(np.array([-0.1, 0.0, 0.5, 1.0, 1.2])), [0, 0, 128, 255, 255]
    )


def test_normalisation_round_trip():
    L = RNG.uniform(0, 100, 10).astype(np.float32)
    ab = RNG.uniform(-110, 110, (10, 2)).astype(np.float32)
    assert normalize_l(np.float32(50.0)) == 0 and normalize_ab(np.float32(-110.0)) == -1
    assert normalize_l(L).dtype == np.float32
    np.testing.assert_allclose(denormalize_l(normalize_l(L)), L, rtol=1e-6)
    np.testing.assert_allclose(denormalize_ab(normalize_ab(ab)), ab, rtol=1e-6)


def test_numpy_modules_do_not_import_torch_or_tensorflow():
    code = (
        "import sys, harness.color as c; c.zhang313().soft_encode([[0.0, 0.0]]);"
        "c.rgb_to_lab([[0.5, 0.5, 0.5]]);"
        "assert not {'torch', 'tensorflow'} & set(sys.modules), 'framework imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(harness.__file__).parents[1])


def test_l_only_paths_equal_rgb_to_labs_l_channel():
    rgb8 = np.concatenate([RNG.integers(0, 256, (70_000, 3), dtype=np.uint8),  # > one chunk
                           np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1),
                           np.rint(EDGE_RGB * 255).astype(np.uint8)])
    reference = rgb_to_lab(rgb8.astype(np.float32) / 255.0)[..., 0]
    np.testing.assert_allclose(srgb8_to_l(rgb8), reference, rtol=0, atol=1e-4)
    np.testing.assert_allclose(rgb_to_l(rgb8 / 255.0), reference, rtol=0, atol=1e-4)
    image = rgb8[:70_000].reshape(350, 200, 3)  # shapes are kept
    assert srgb8_to_l(image).shape == (350, 200) and srgb8_to_l(image).dtype == np.float32
    grey = RNG.integers(0, 256, (30, 20), dtype=np.uint8)
    np.testing.assert_allclose(grey8_to_l(grey), srgb8_to_l(np.stack([grey] * 3, axis=-1)),
                               rtol=0, atol=0)
    with pytest.raises(TypeError, match="uint8"):
        srgb8_to_l(rgb8 / 255.0)


def test_lab_to_srgb8_is_to_uint8_of_lab_to_rgb_within_one_level():
    n = 100_000  # in and far out of gamut, very dark yellows (f_z floored) included
    lab = np.stack([RNG.uniform(0, 100, n), RNG.normal(0, 50, n), RNG.normal(0, 50, n)], -1)
    lab = np.concatenate([lab, [[0, 0, 0], [100, 0, 0], [2, 0, 90], [50, 300, -300]]])
    lab = lab.astype(np.float32).reshape(-1, 4, 3)
    reference = to_uint8(lab_to_rgb(lab)).astype(int)
    fast = lab_to_srgb8(lab[..., 0], lab[..., 1], lab[..., 2])
    assert fast.shape == lab.shape and fast.dtype == np.uint8
    diff = np.abs(fast - reference)
    assert diff.max() <= 1
    assert (diff > 0).mean() < 0.01  # only values within a hair of a rounding boundary
    with pytest.raises(ValueError, match="one shape"):
        lab_to_srgb8(lab[..., 0], lab[..., 1], lab[:1, ..., 2])
