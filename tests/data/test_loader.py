"""load_splits over a folder of photos mixed with broken and grey files: the data report."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import harness.data.loader as loader_mod
from harness.data.cache import build_cache
from harness.data.loader import list_sources, load_splits
from harness.data.sources import folder_source
from harness.errors import DataError


def _all_names(splits) -> list[str]:
    parts = [splits.train, splits.test] + ([splits.val] if splits.val is not None else [])
    return sorted(n for part in parts for n in part.names)


def test_messy_folder_skips_broken_and_excludes_grey(messy_folder, registry, make_cfg):
    root, expected = messy_folder
    splits = load_splits(make_cfg(root), registry, seed=0)
    report = splits.report

    skipped = {entry["name"]: entry for entry in report["skipped"]}
    assert set(skipped) == set(expected["skipped"])
    for name, reason in expected["skipped"].items():
        assert reason in skipped[name]["reason"], (name, skipped[name]["reason"])
        assert Path(skipped[name]["file"]) == root / name
    assert set(report["grey_excluded"]) == expected["grey"]
    assert _all_names(splits) == sorted(expected["used"])

    n_used, n_grey, n_skipped = (len(expected[k]) for k in ("used", "grey", "skipped"))
    assert report["found"] == n_used + n_grey + n_skipped  # notes.txt is not even listed
    assert report["decoded"] == n_used + n_grey
    assert report["used"] == n_used
    assert sum(report["splits"].values()) == n_used
    assert report["source"] == "folder" and report["path"] == str(root)
    assert report["grey_chroma"] == 5.0
    json.dumps(report)


def test_decoded_modes_look_right_in_the_cache(messy_folder, registry, make_cfg):
    """Transparent areas are white (L near 100, no chroma); EXIF rotation reaches the cache."""
    root, _ = messy_folder
    splits = load_splits(make_cfg(root, size=16, test_fraction=0.1), registry, seed=0)
    assert splits.val is None
    lab = {}
    for part in (splits.train_full, splits.test):
        for i, name in enumerate(part.names):
            L, ab = part.sample(i)
            lab[name] = np.dstack([L, ab])
    # rgba.png: columns 0..15 of 48 transparent -> left edge of the 16px square is white
    assert lab["rgba.png"][8, 0, 0] > 97 and np.abs(lab["rgba.png"][8, 0, 1:]).max() < 2
    # palette_trns.png: the top 10 of 40 rows are transparent
    assert lab["palette_trns.png"][0, 8, 0] > 97
    assert np.abs(lab["palette_trns.png"][0, 8, 1:]).max() < 2
    # exif6.jpg: quadrant card rotated clockwise -> top-left blue (b < 0), top-right red (a > 0)
    assert lab["exif6.jpg"][1, 1, 2] < -50 and lab["exif6.jpg"][1, 14, 1] > 50
    # cmyk.jpg and rgb16.png decode to colour, not noise or a flat field
    for name in ("cmyk.jpg", "rgb16.png"):
        assert np.hypot(lab[name][..., 1], lab[name][..., 2]).max() > 20
        assert lab[name][..., 0].std() > 2


def test_include_grey_keeps_grey_images(messy_folder, registry, make_cfg):
    root, expected = messy_folder
    splits = load_splits(make_cfg(root, include_grey=True), registry, seed=0)
    assert splits.report["grey_excluded"] == []
    assert _all_names(splits) == sorted(expected["used"] | expected["grey"])


def test_grey_threshold_is_configurable(photo_folder, registry, make_cfg):
    folder = photo_folder(4)
    with pytest.raises(DataError, match="0 usable"):
        load_splits(make_cfg(folder, grey_chroma=130.0), registry, seed=0)


def test_nearly_grey_photo_is_excluded_and_counted(photo_folder, registry, make_cfg):
    folder = photo_folder(3)
    tinted = np.full((40, 48, 3), 120, np.uint8)
    tinted[..., 0] += 2  # chroma of about 1.5 Lab units: below the default 5
    Image.fromarray(tinted).save(folder / "tinted.png")
    splits = load_splits(make_cfg(folder), registry, seed=0)
    assert splits.report["grey_excluded"] == ["tinted.png"]
    assert splits.report["used"] == 3 and splits.report["decoded"] == 4


def test_one_usable_image_is_not_enough(tmp_path, registry, make_cfg, helpers):
    folder = tmp_path / "one"
    folder.mkdir()
    Image.fromarray(helpers.colourful()).save(folder / "only.png")
    (folder / "zero.png").write_bytes(b"")
    with pytest.raises(DataError) as info:
        load_splits(make_cfg(folder), registry, seed=0)
    assert str(folder) in str(info.value) and "1 usable" in str(info.value)


def test_list_sources_passes_options_and_caps(photo_folder, registry, make_cfg):
    folder = photo_folder(6)
    assert len(list_sources(make_cfg(folder), registry, seed=0)) == 6
    capped = list_sources(make_cfg(folder, max_images=3), registry, seed=0)
    assert len(capped) == 3
    assert capped == list_sources(make_cfg(folder, max_images=3), registry, seed=0)
    assert [s.name for s in capped] == sorted(s.name for s in capped)  # listing order kept


def test_training_crops_come_at_train_scale(photo_folder, registry, make_cfg):
    """size 16 at train_scale 1.5: 16-pixel crops of the images cached at 24; tested at 32."""
    root = photo_folder(6)
    cfg = make_cfg(root, eval_size=32, train_scale=1.5)
    splits = load_splits(cfg, registry, seed=0)
    train_cache = build_cache(folder_source({"path": root}), 24, cfg.cache_dir)
    assert splits.report["cache"]["train_directory"] == str(train_cache.directory)
    assert splits.test.arrays()[0].shape[1:] == (32, 32)
    L, ab = splits.train.sample(0, epoch=3)
    assert L.shape == (16, 16) and ab.shape == (16, 16, 2)
    name = splits.train.names[0]
    whole = train_cache.lab[[s.name for s in train_cache.sources].index(name)]
    windows = np.lib.stride_tricks.sliding_window_view(whole[..., 0], (16, 16))
    found = np.abs(windows - L).max(axis=(2, 3)) < 1e-6
    flipped = np.abs(windows - L[:, ::-1]).max(axis=(2, 3)) < 1e-6
    assert found.any() or flipped.any()


def test_train_scale_at_the_eval_size_uses_one_cache(photo_folder, registry, make_cfg):
    cfg = make_cfg(photo_folder(4), eval_size=32, train_scale=2.0)
    splits = load_splits(cfg, registry, seed=0)
    assert "train_directory" not in splits.report["cache"]
    assert len(list(cfg.cache_dir.iterdir())) == 1


def test_a_file_lost_between_the_two_decodes_is_named(photo_folder, registry, make_cfg,
                                                        monkeypatch):
    cfg = make_cfg(photo_folder(4), eval_size=32, train_scale=1.5)
    real = loader_mod.build_cache

    def second_decode_loses_one(sources, size, *args, **kwargs):
        cache = real(sources, size, *args, **kwargs)
        if size != 24:
            return cache
        return replace(cache, sources=[s for s in cache.sources if s.name != lost])

    lost = load_splits(cfg, registry, seed=0).train.names[0]
    monkeypatch.setattr(loader_mod, "build_cache", second_decode_loses_one)
    with pytest.raises(DataError, match=f"{lost}: could not be decoded again at 24 px"):
        load_splits(cfg, registry, seed=0)
