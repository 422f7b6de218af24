"""Decode a source once into a memory-mapped Lab cache keyed by fingerprint, size and policy."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.color import rgb_to_lab
from harness.data.decode import UnreadableImage, load_rgb
from harness.data.sources import ImageSource

#: Bump when decoding or resizing changes, so stale caches are never read.
POLICY = "shorter-side-lanczos-centre-crop-v1"


def default_cache_root() -> Path:
    """``$HARNESS_CACHE_DIR`` or ``~/.cache/colorization-harness``."""
    env = os.environ.get("HARNESS_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "colorization-harness"


def fingerprint(sources: Sequence[ImageSource], size: int) -> str:
    """Key from every file's name, byte size and modification time, plus size and policy."""
    h = hashlib.sha256(f"{POLICY}|{size}".encode())
    for src in sources:
        st = src.path.stat() if src.path.exists() else None
        stamp = f"{st.st_size}:{st.st_mtime_ns}" if st else "missing"
        h.update(f"|{src.name}|{src.label}|{src.split}|{src.path}|{stamp}".encode())
    return h.hexdigest()[:24]


@dataclass
class LabCache:
    """Decoded images: ``lab`` (N, S, S, 3) float32 memmap and per-image metadata."""

    lab: np.ndarray
    sources: list[ImageSource]
    max_chroma: np.ndarray
    skipped: list[dict[str, str]]
    directory: Path
    reused: bool


def _decode(src: ImageSource, size: int) -> tuple[np.ndarray | None, str | None]:
    try:
        return rgb_to_lab(load_rgb(src.path, size)), None
    except UnreadableImage as exc:
        return None, str(exc)


def build_cache(
    sources: Sequence[ImageSource],
    size: int,
    root: Path,
    progress: Callable[[int], None] | None = None,
    workers: int = 2,
) -> LabCache:
    """Return the cache for ``sources`` at ``size``, decoding only if it is not on disk yet.

    Unreadable files are recorded with their reason and left out; the cache directory is
    written to a temporary name and renamed, so a killed build never leaves a corrupt cache.
    """
    key = fingerprint(sources, size)
    directory = root / f"lab-{size}-{key}"
    index_path = directory / "index.json"
    by_name = {s.name: s for s in sources}
    if index_path.exists():
        index = json.loads(index_path.read_text())
        lab = np.load(directory / "lab.npy", mmap_mode="r")
        kept = [by_name[n] for n in index["names"]]
        return LabCache(lab, kept, np.asarray(index["max_chroma"]), index["skipped"],
                        directory, reused=True)

    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".lab-{size}-", dir=root))
    try:
        kept, chroma, skipped, arrays = [], [], [], []
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            for src, (lab, reason) in zip(sources, pool.map(lambda s: _decode(s, size), sources)):
                if progress:
                    progress(1)
                if lab is None:
                    skipped.append({"file": str(src.path), "name": src.name, "reason": reason})
                    continue
                kept.append(src)
                arrays.append(lab)
                chroma.append(float(np.hypot(lab[..., 1], lab[..., 2]).max()))
        shape = (len(arrays), size, size, 3)
        out = np.lib.format.open_memmap(tmp / "lab.npy", mode="w+", dtype=np.float32, shape=shape)
        for i, lab in enumerate(arrays):
            out[i] = lab
        out.flush()
        del out
        index = {"policy": POLICY, "size": size, "names": [s.name for s in kept],
                 "max_chroma": chroma, "skipped": skipped}
        (tmp / "index.json").write_text(json.dumps(index))
        try:
            os.replace(tmp, directory)
        except OSError:  # another process built the same cache first: use theirs
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    lab = np.load(directory / "lab.npy", mmap_mode="r")
    return LabCache(lab, kept, np.asarray(chroma), skipped, directory, reused=False)
