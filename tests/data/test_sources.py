"""Folder and demo sources: listing, labels, the Intel layout, errors, offline demo photos."""

from __future__ import annotations

import importlib.util
import os
import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.data.loader import load_splits
from harness.data.sources import ImageSource, demo_source, folder_source
from harness.errors import DataError

DEMO_NAMES = {"astronaut", "chelsea", "coffee", "rocket", "motorcycle_left", "motorcycle_right",
              "china", "flower", "grace_hopper"}


def _save(path: Path, helpers, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(helpers.colourful(seed=seed)).save(path)


def test_registry_offers_folder_and_demo(registry):
    assert registry.get("dataset", "folder").load() is folder_source
    assert registry.get("dataset", "demo").load() is demo_source


def test_folder_is_listed_recursively_by_suffix(tmp_path, helpers):
    _save(tmp_path / "a.png", helpers, 1)
    _save(tmp_path / "B.JPG", helpers, 2)
    _save(tmp_path / "deep" / "er" / "c.png", helpers, 3)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "broken.jpg").write_bytes(b"")  # listed: decoding is the loader's business
    items = folder_source({"path": str(tmp_path)})
    assert all(isinstance(s, ImageSource) for s in items)
    assert [s.name for s in items] == ["B.JPG", "a.png", "broken.jpg", "deep/er/c.png"]
    assert all(s.path.is_file() and s.split is None for s in items)
    by_name = {s.name: s for s in items}
    assert by_name["a.png"].label is None
    assert by_name["deep/er/c.png"].label == "deep"  # first folder level is the class


def test_class_sub_folders_become_labels(tmp_path, helpers, registry, make_cfg):
    for k, cls in enumerate(("cat", "dog", "owl")):
        for i in range(3):
            _save(tmp_path / "data" / cls / f"{i}.png", helpers, 10 * k + i)
    items = folder_source({"path": tmp_path / "data"})
    assert {s.label for s in items} == {"cat", "dog", "owl"}
    assert all(s.name.startswith(f"{s.label}/") for s in items)

    splits = load_splits(make_cfg(tmp_path / "data"), registry, seed=0)
    assert splits.report["classes"] == ["cat", "dog", "owl"]
    for part in (splits.train, splits.test, splits.train_full):
        assert part.has_labels
        assert part.class_names == ["cat", "dog", "owl"]
        for name, label in zip(part.names, part.labels):
            assert part.class_names[label] == name.split("/")[0]


def test_intel_layout_fixes_split_and_labels(tmp_path, helpers, registry, make_cfg):
    root = tmp_path / "intel"
    layout = {"seg_train": {"forest": 3, "sea": 2}, "seg_test": {"forest": 1, "sea": 2}}
    seed = 0
    for top, classes in layout.items():
        for cls, n in classes.items():
            for i in range(n):
                seed += 1
                _save(root / top / cls / f"{i}.jpg", helpers, seed)
    items = folder_source({"path": root})
    assert {(s.split, s.label) for s in items} == {
        ("train", "forest"), ("train", "sea"), ("test", "forest"), ("test", "sea")}

    for run_seed in (0, 1):  # the folders fix the split whatever the seed
        splits = load_splits(make_cfg(root, test_fraction=0.5), registry, seed=run_seed)
        assert sorted(splits.test.names) == sorted(s.name for s in items if s.split == "test")
        assert all(n.startswith("seg_train/") for n in splits.train.names)
        assert splits.report["splits"] == {"train": 5, "val": 0, "test": 3}
        assert splits.report["classes"] == ["forest", "sea"]
        assert splits.train.has_labels and splits.test.has_labels
        names = splits.test.class_names
        assert [names[i] for i in splits.test.labels] == [n.split("/")[1]
                                                          for n in splits.test.names]


def test_intel_kaggle_archive_nesting(tmp_path, helpers):
    """Kaggle's archive nests seg_train/seg_train/<class>; seg_pred holds unlabelled images."""
    root = tmp_path / "intel"
    _save(root / "seg_train" / "seg_train" / "glacier" / "1.jpg", helpers, 1)
    _save(root / "seg_test" / "seg_test" / "street" / "2.jpg", helpers, 2)
    _save(root / "seg_pred" / "seg_pred" / "3.jpg", helpers, 3)
    items = folder_source({"path": root})
    assert {(s.split, s.label) for s in items} == {("train", "glacier"), ("test", "street")}


def test_fixed_split_needs_both_sides(tmp_path, helpers, registry, make_cfg):
    for i in range(3):
        _save(tmp_path / "intel" / "seg_train" / "sea" / f"{i}.jpg", helpers, i)
    with pytest.raises(DataError, match="seg_test"):
        load_splits(make_cfg(tmp_path / "intel"), registry, seed=0)


@pytest.mark.parametrize("case", ["missing", "empty", "no_images", "only_broken"])
def test_unusable_folder_is_a_data_error_naming_the_path(tmp_path, registry, make_cfg, case):
    path = tmp_path / case
    if case != "missing":
        path.mkdir()
    if case == "no_images":
        (path / "readme.txt").write_text("nothing here")
    if case == "only_broken":
        (path / "zero.jpg").write_bytes(b"")
        (path / "text.png").write_text("not an image")
        (path / "sub").mkdir()
        (path / "sub" / "half.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 20)
    with pytest.raises(DataError) as info:
        load_splits(make_cfg(path), registry, seed=0)
    assert str(path) in str(info.value)


def test_folder_source_needs_a_path(registry, make_cfg):
    with pytest.raises(DataError, match="path"):
        load_splits(make_cfg(None), registry, seed=0)


def test_demo_lists_the_nine_bundled_photos_offline(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("the demo source must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    items = demo_source({})
    assert {s.name for s in items} == DEMO_NAMES
    assert len(items) == 9
    roots = []
    for package in ("skimage", "sklearn", "matplotlib"):
        spec = importlib.util.find_spec(package)
        roots += [Path(p).resolve() for p in spec.submodule_search_locations]
    for s in items:
        assert s.path.is_file() and s.path.stat().st_size > 1000
        assert any(root in s.path.resolve().parents for root in roots), s.path
        assert s.label is None and s.split is None
    groups = {s.name: s.group for s in items}
    assert groups["motorcycle_left"] == groups["motorcycle_right"]
    assert len(set(groups.values())) == 8


def test_demo_keeps_the_stereo_pair_on_one_side(tmp_path, registry):
    from harness.config import DataConfig

    cfg = DataConfig(source="demo", size=16, cache_dir=tmp_path / "cache", val_fraction=0.2)
    held_out = 0
    for seed in range(16):
        splits = load_splits(cfg, registry, seed=seed)
        sides = []
        for name in ("motorcycle_left", "motorcycle_right"):
            side = [part for part, labset in (("train", splits.train), ("val", splits.val),
                                              ("test", splits.test))
                    if labset is not None and name in labset.names]
            sides.append(side)
        assert sides[0] == sides[1] and len(sides[0]) == 1, (seed, sides)
        held_out += sides[0] != ["train"]
        assert splits.report["used"] == 9
    assert held_out > 0  # the pair did land outside train for some seeds


def test_demo_images_decode_to_colour(tmp_path, registry):
    from harness.config import DataConfig

    splits = load_splits(DataConfig(source="demo", size=16, cache_dir=tmp_path / "c"),
                         registry, seed=0)
    assert splits.report["skipped"] == [] and splits.report["grey_excluded"] == []
    L, ab = splits.test.arrays()
    assert L.shape[1:] == (16, 16) and np.abs(ab).max() > 10


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs and symlinks")
def test_special_entries_are_listed_as_skipped_with_their_reason(tmp_path, helpers, registry,
                                                                 make_cfg):
    """Dangling and looping symlinks, FIFOs and folder loops were silently ignored."""
    root = tmp_path / "data"
    for i in range(4):
        _save(root / f"img{i}.png", helpers, i)
    for i in range(2):
        _save(tmp_path / "outside" / f"far{i}.png", helpers, 10 + i)
    os.symlink(tmp_path / "outside", root / "linked")  # followed: its images are used
    os.symlink(tmp_path / "outside", root / "linked_again")
    os.symlink(root / "gone.png", root / "dangling.png")
    os.symlink(root / "loop_b.png", root / "loop_a.png")
    os.symlink(root / "loop_a.png", root / "loop_b.png")
    os.symlink(".", root / "loop")
    (root / "sub").mkdir()
    os.symlink("..", root / "sub" / "up")
    os.symlink("../..", root / "sub" / "top")  # above the data folder: its siblings stay out
    os.mkfifo(root / "pipe.jpg")
    os.mkfifo(root / "pipe")  # no image suffix: listed all the same, it is not a file
    (root / "notes.txt").write_text("a regular file without an image suffix: ignored")

    report = load_splits(make_cfg(root), registry, seed=0).report
    skipped = {s["name"]: s["reason"] for s in report["skipped"]}
    assert skipped == {
        "dangling.png": f"dangling symlink (its target {root / 'gone.png'} does not exist)",
        "loop_a.png": "symlink loop (the link leads back to itself)",
        "loop_b.png": "symlink loop (the link leads back to itself)",
        "loop": f"symlink loop: leads back to {root.resolve()}, which holds it; not searched",
        "sub/up": f"symlink loop: leads back to {root.resolve()}, which holds it; not searched",
        "sub/top": f"symlink loop: leads back to {tmp_path.resolve()}, which holds it; "
                   f"not searched",
        "linked_again": f"the same folder as {root / 'linked'}, already searched; not again",
        "pipe.jpg": "a FIFO (named pipe), not a regular file",
        "pipe": "a FIFO (named pipe), not a regular file",
    }
    assert all(s["file"].startswith(str(root)) for s in report["skipped"])
    assert report["found"] == 6 + len(skipped) and report["used"] == 6
    names = {s.name for s in folder_source({"path": root})} - set(skipped)
    assert names == {f"img{i}.png" for i in range(4)} | {"linked/far0.png", "linked/far1.png"}


def test_unreadable_sub_folder_is_listed_as_skipped(tmp_path, helpers, monkeypatch):
    _save(tmp_path / "a.png", helpers, 1)
    _save(tmp_path / "locked" / "b.png", helpers, 2)
    real = os.scandir

    def scandir(path):  # what a folder without read permission does (root reads any)
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    items = {s.name: s for s in folder_source({"path": tmp_path})}
    assert set(items) == {"a.png", "locked"}
    assert items["locked"].problem == "cannot list this folder: Permission denied"
    assert items["a.png"].problem is None
