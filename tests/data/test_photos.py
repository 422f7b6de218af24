"""The photos source: manifest checks, the fixed split, random stratified splits."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.data.dataset import split_groups
from harness.data.loader import load_splits
from harness.data.photos import COLLECTION, COLUMNS, photos_source, read_manifest
from harness.errors import DataError

CATEGORIES = ("animals", "landscape", "objects")


def write_collection(root: Path, helpers, per_category: int = 5) -> list[dict[str, str]]:
    """A tiny collection in the shipped layout: 3 categories, the last image of each test."""
    (root / "images").mkdir(parents=True)
    rows = []
    for k, category in enumerate(CATEGORIES):
        for i in range(per_category):
            name = f"images/{category}-{i}.jpg"
            Image.fromarray(helpers.colourful(seed=10 * k + i)).save(root / name, quality=95)
            digest = hashlib.sha256((root / name).read_bytes()).hexdigest()
            rows.append({"file": name, "category": category,
                         "split": "test" if i == per_category - 1 else "train",
                         "package": "pkg", "version": "1", "source_path": f"usr/{name}",
                         "original_width": "48", "original_height": "40", "rotation": "0",
                         "licence": "CC0-1.0", "credit": "someone", "sha256_original": digest,
                         "sha256": digest})
    with open(root / "manifest.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return rows


def test_registered_as_a_data_source(registry):
    assert registry.get("dataset", "photos").load() is photos_source


def test_sources_carry_category_split_and_verified_hash(tmp_path, helpers):
    rows = write_collection(tmp_path / "c", helpers)
    items = photos_source({"path": tmp_path / "c"})
    assert [s.name for s in items] == [Path(r["file"]).stem for r in rows]
    assert [s.label for s in items] == [r["category"] for r in rows]
    assert [s.split for s in items] == [r["split"] for r in rows]
    assert [s.digest() for s in items] == [r["sha256"] for r in rows]


def test_altered_or_missing_photo_is_an_error_naming_it(tmp_path, helpers):
    root = tmp_path / "c"
    write_collection(root, helpers)
    target = root / "images" / "landscape-2.jpg"
    target.write_bytes(target.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(DataError, match=r"landscape-2\.jpg: altered.*manifest\.csv:9"):
        photos_source({"path": root})
    target.unlink()
    with pytest.raises(DataError, match=r"landscape-2\.jpg: missing.*manifest\.csv:9"):
        photos_source({"path": root})


@pytest.mark.parametrize("edit, message", [
    (lambda rows: rows[3].update(split="val"), r"manifest\.csv:5: split 'val'"),
    (lambda rows: rows[4].update(file=rows[3]["file"]), r"manifest\.csv:6: file .* repeated"),
])
def test_bad_manifest_rows_are_named_by_line(tmp_path, helpers, edit, message):
    root = tmp_path / "c"
    rows = write_collection(root, helpers)
    edit(rows)
    with open(root / "manifest.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(DataError, match=message):
        read_manifest(root)


def test_missing_manifest_or_column_is_an_error(tmp_path, helpers):
    with pytest.raises(DataError, match="cannot read the photo collection's manifest"):
        photos_source({"path": tmp_path})
    root = tmp_path / "c"
    write_collection(root, helpers)
    text = (root / "manifest.csv").read_text().replace("sha256_original,", "", 1)
    (root / "manifest.csv").write_text(text)
    with pytest.raises(DataError, match="missing column"):
        read_manifest(root)


def test_fixed_split_is_the_manifests_and_random_is_stratified(tmp_path, helpers, registry,
                                                                make_cfg):
    root = tmp_path / "c"
    write_collection(root, helpers)
    fixed = load_splits(make_cfg(root, source="photos"), registry, seed=0)
    assert sorted(fixed.test.names) == [f"{c}-4" for c in CATEGORIES]
    assert fixed.report["split"] == "fixed"
    assert fixed.test.has_labels and fixed.test.class_names == list(CATEGORIES)
    assert load_splits(make_cfg(root, source="photos"), registry, seed=5).test.names \
        == fixed.test.names  # the seed does not move a fixed split

    tests = set()
    for seed in range(4):
        rnd = load_splits(make_cfg(root, source="photos", split="random", test_fraction=0.4),
                          registry, seed=seed)
        assert rnd.report["split"] == "random"
        by_class = [name.rsplit("-", 1)[0] for name in rnd.test.names]
        assert sorted(by_class) == sorted(CATEGORIES * 2)  # 2 of 5 per category
        tests.add(tuple(sorted(rnd.test.names)))
    assert len(tests) > 1


def test_stratified_split_groups_keep_every_class_on_both_sides():
    groups = [f"g{i}" for i in range(30)]
    labels = ["a"] * 20 + ["b"] * 8 + ["c"] * 2
    held = split_groups(groups, 0.25, seed=1, labels=labels)
    per_class = {c: sum(g in held for g, lab in zip(groups, labels) if lab == c) for c in "abc"}
    assert per_class == {"a": 5, "b": 2, "c": 1}
    assert split_groups(groups, 0.25, seed=1, labels=labels) == held


@pytest.mark.skipif(not (COLLECTION / "manifest.csv").is_file(),
                    reason="the photo collection is not built in this checkout")
def test_shipped_collection_is_intact_and_split():
    items = photos_source({})
    assert len(items) >= 300
    test = [s for s in items if s.split == "test"]
    assert 0.18 <= len(test) / len(items) <= 0.27
    categories = {s.label for s in items}
    assert categories == {s.label for s in test}  # every category is tested
    sizes = {Image.open(s.path).size for s in items[:: max(1, len(items) // 20)]}
    assert all(min(size) == 256 for size in sizes)
    assert np.unique([s.name for s in items]).size == len(items)
