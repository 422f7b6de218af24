"""Built-in data sources: an image folder and the demo photos bundled with installed packages."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.digest import sha256_file
from harness.errors import DataError
from harness.hookspecs import hookimpl

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
)
#: Intel Image Classification layout: these top-level folders fix the split. Kaggle's archive
#: nests them (``seg_train/seg_train/<class>``) and adds an unlabelled ``seg_pred/``, left out.
SPLIT_FOLDERS = {"seg_train": "train", "seg_test": "test"}
UNLABELLED_FOLDERS = frozenset({"seg_pred"})


@dataclass(frozen=True)
class ImageSource:
    """One image a source offers.

    ``name`` identifies it in reports; ``group`` keeps related files (a stereo pair) on one
    side of the split; ``split`` is "train" or "test" when the source fixes it, else None;
    ``sha256`` is the file's hash when the source has verified it (else computed on demand);
    ``problem``, when set, is why the entry cannot be used (it is listed as skipped with it).
    """

    path: Path
    name: str
    label: str | None = None
    group: str | None = None
    split: str | None = None
    sha256: str | None = None
    problem: str | None = None

    def digest(self) -> str:
        """The file's sha256: the verified one, else computed from its bytes."""
        return self.sha256 or sha256_file(self.path)



def _walk(root: Path) -> tuple[list[Path], dict[Path, str]]:
    """Every entry under ``root`` that is not a folder, and the folders that cannot be searched.

    Symlinked folders are followed, each real folder once (real folders before links at each
    level). A link to a folder that holds it (a loop such as ``ln -s . loop`` or ``..``) and a
    second way into a folder already searched are returned with the reason instead.
    """
    entries: list[Path] = []
    problems: dict[Path, str] = {}
    st = root.stat()
    seen = {(st.st_dev, st.st_ino): root}

    def unreadable(exc: OSError) -> None:
        problems[Path(exc.filename)] = f"cannot list this folder: {exc.strerror or exc}"

    for top, dirs, files in os.walk(root, onerror=unreadable, followlinks=True):
        keep = []
        for name in sorted(dirs, key=lambda n: (os.path.islink(os.path.join(top, n)), n)):
            path = Path(top, name)
            try:
                real, st = path.resolve(strict=True), path.stat()
            except OSError as exc:  # removed or replaced while listing
                problems[path] = f"cannot list this folder: {exc.strerror or exc}"
                continue
            if path.is_symlink() and Path(top).resolve().is_relative_to(real):
                problems[path] = f"symlink loop: leads back to {real}, which holds it; not searched"
                continue
            first = seen.setdefault((st.st_dev, st.st_ino), path)
            if first != path:
                problems[path] = f"the same folder as {first}, already searched; not again"
            else:
                keep.append(name)
        dirs[:] = keep
        entries.extend(Path(top, name) for name in files)
    return entries, problems


def folder_source(options: Mapping[str, Any]) -> list[ImageSource]:
    """Every image file under ``path``, recursively; class sub-folders become labels.

    The first folder level below ``path`` (or below ``seg_train``/``seg_test``) is the class
    label when images sit in sub-folders. Regular files are listed by suffix; whether they
    decode is the loader's business, so broken files are reported, not silently dropped here.
    So are, whatever their name, entries that are not regular files (dangling or looping
    symlinks, FIFOs, sockets, devices), folders that cannot be listed, and symlinked folders
    that lead back to one already searched: each is listed and then skipped with its reason.
    """
    raw = options.get("path")
    if not raw:
        raise DataError("data.path: the 'folder' source needs a path to a folder of images")
    root = Path(raw).expanduser()
    if not root.is_dir():
        raise DataError(f"data.path: {root} does not exist or is not a folder")
    entries, problems = _walk(root)
    if root in problems:
        raise DataError(f"data.path: {root}: {problems[root]}")
    listed = [p for p in entries
              if not p.is_file() or p.suffix.lower() in IMAGE_SUFFIXES] + list(problems)
    items = []
    for path in sorted(listed):
        parts = path.relative_to(root).parts
        if len(parts) > 1 and parts[0] in UNLABELLED_FOLDERS:
            continue
        split = SPLIT_FOLDERS.get(parts[0]) if len(parts) > 1 else None
        folders = parts[1:-1] if split else parts[:-1]
        if split and folders and folders[0] == parts[0]:  # seg_train/seg_train/<class>
            folders = folders[1:]
        label = folders[0] if folders else None
        items.append(ImageSource(path, "/".join(parts), label=label, split=split,
                                 problem=problems.get(path)))
    if not items:
        raise DataError(f"data.path: no image files found under {root}")
    return items


def _package_file(package: str, *parts: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations)), *parts)
    return path if path.is_file() else None


#: (name, group, package, path inside the package): only these bundled files, never a download.
DEMO_FILES = (
    ("astronaut", "astronaut", "skimage", ("data", "astronaut.png")),
    ("chelsea", "chelsea", "skimage", ("data", "chelsea.png")),
    ("coffee", "coffee", "skimage", ("data", "coffee.png")),
    ("rocket", "rocket", "skimage", ("data", "rocket.jpg")),
    ("motorcycle_left", "stereo_motorcycle", "skimage", ("data", "motorcycle_left.png")),
    ("motorcycle_right", "stereo_motorcycle", "skimage", ("data", "motorcycle_right.png")),
    ("china", "china", "sklearn", ("datasets", "images", "china.jpg")),
    ("flower", "flower", "sklearn", ("datasets", "images", "flower.jpg")),
    ("grace_hopper", "grace_hopper", "matplotlib", ("mpl-data", "sample_data", "grace_hopper.jpg")),
)


def demo_source(options: Mapping[str, Any]) -> list[ImageSource]:
    """The colour photos bundled in scikit-image, scikit-learn and matplotlib (offline).

    The stereo motorcycle pair is one group, so its two views never straddle the split.
    """
    items = []
    for name, group, package, parts in DEMO_FILES:
        path = _package_file(package, *parts)
        if path is not None:
            items.append(ImageSource(path, name, group=group))
    if not items:
        raise DataError("data.source=demo: none of the bundled demo photos are installed")
    return items


@hookimpl
def harness_register_datasets(register):
    register("folder", folder_source, summary="Images under data.path; sub-folders are labels")
    register("demo", demo_source, summary="Nine bundled photos (scikit-image, sklearn, mpl)")
