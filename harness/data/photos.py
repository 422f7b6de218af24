"""The ``photos`` source: real colour photographs from Debian packages, shipped with the harness.

The collection lives in ``harness/data/photos/`` (package data): ``images/*.jpg``, their
``manifest.csv`` (one row per photo: file, category, split, package, version, path inside the
package, original size, rotation, licence, credit, sha256 of the original and of the shipped
file), ``ATTRIBUTION.md`` and ``LICENSES/``. ``scripts/build_photos.py`` rebuilds it, byte for
byte, from the packages. The manifest's ``split`` column is the fixed, published split (about
22% test, stratified by category); ``--set data.split=random`` draws seeded ones instead. The
category is each image's class label, so label-aware models (``iizuka``) train on it.

Every file is checked against its sha256 before a run: a missing or altered photo is an error
naming the file and its manifest line, never a silent drop.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.data.sources import ImageSource
from harness.digest import sha256_file
from harness.errors import DataError
from harness.hookspecs import hookimpl

#: The shipped collection; ``data.path`` may name another folder with the same layout.
COLLECTION = Path(__file__).with_name("photos")
MANIFEST = "manifest.csv"
COLUMNS = ("file", "category", "split", "package", "version", "source_path", "original_width",
           "original_height", "rotation", "licence", "credit", "sha256_original", "sha256")
SPLITS = frozenset({"train", "test"})
REBUILD = "reinstall colorization-harness or rebuild the collection with scripts/build_photos.py"


def read_manifest(root: Path) -> list[dict[str, str]]:
    """The manifest's rows, each checked for its columns, split and a unique file name.

    Raises :class:`DataError` naming the manifest line of the first bad row.
    """
    path = root / MANIFEST
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = [c for c in COLUMNS if c not in (reader.fieldnames or ())]
            if missing:
                raise DataError(f"{path}: missing column(s) {', '.join(missing)}; {REBUILD}")
            rows, seen = [], set()
            for line, row in enumerate(reader, start=2):
                if row["split"] not in SPLITS:
                    raise DataError(f"{path}:{line}: split {row['split']!r} is not train or test")
                if not row["file"] or row["file"] in seen or len(row["sha256"]) != 64:
                    raise DataError(f"{path}:{line}: file {row['file']!r} is empty, repeated or "
                                    f"has no sha256")
                seen.add(row["file"])
                rows.append({**row, "line": str(line)})
    except OSError as exc:
        raise DataError(f"{path}: cannot read the photo collection's manifest "
                        f"({exc.strerror or exc}); {REBUILD}") from None
    if not rows:
        raise DataError(f"{path}: the manifest lists no photos; {REBUILD}")
    return rows


def photos_source(options: Mapping[str, Any]) -> list[ImageSource]:
    """Every photo of the collection (``data.path``, default the shipped one), verified.

    Labels are the manifest's categories; ``split`` its fixed split.
    """
    root = Path(options.get("path") or COLLECTION).expanduser()
    items = []
    for row in read_manifest(root):
        path = root / row["file"]
        where = f"{root / MANIFEST}:{row['line']}"
        if not path.is_file():
            raise DataError(f"{path}: missing from the photo collection (listed at {where}); "
                            f"{REBUILD}")
        digest = sha256_file(path)
        if digest != row["sha256"]:
            raise DataError(f"{path}: altered: sha256 {digest[:16]}... differs from "
                            f"{row['sha256'][:16]}... at {where}; {REBUILD}")
        items.append(ImageSource(path, Path(row["file"]).stem, label=row["category"] or None,
                                 split=row["split"], sha256=digest))
    return items


@hookimpl
def harness_register_datasets(register):
    register("photos", photos_source,
             summary="About 330 real colour photos from Debian packages, fixed split (shipped)")
