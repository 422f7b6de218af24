"""Decode a source once into a memory-mapped Lab cache keyed by fingerprint, size and policy.

An entry is ``lab-<size>-<key>/`` holding ``lab.npy`` and ``index.json``, built in a hidden
temporary folder ``.lab-<size>-tmp-<pid>-<host>-<random>`` and renamed into place. Reading an
entry checks both files against each other; a corrupt one is logged as
``path: what is wrong: rebuilding`` and built again. Each build first removes the temporary
folders of builds that died (a SIGKILL cannot clean up): on this host, those whose process is
gone; from another host, or from before temporary names held the process id, those untouched
for :data:`STALE_AFTER` seconds, since their process cannot be asked.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.color import rgb_to_lab
from harness.data.decode import UnreadableImage, load_rgb
from harness.data.sources import ImageSource
from harness.errors import DataError
from harness.limits import DEFAULT_MAX_PIXELS

log = logging.getLogger(__name__)

#: Bump when decoding or resizing changes, so stale caches are never read.
POLICY = "shorter-side-lanczos-centre-crop-v1"


#: Seconds after which a temporary build folder whose process cannot be checked (another host's,
#: or an old-style name without a process id) counts as abandoned: a week, far longer than any
#: build; its folder's time stamp is its creation, as files are written only at the end.
STALE_AFTER = 7 * 24 * 3600
_TMP = re.compile(r"^\.lab-\d+-tmp-(\d+)-([A-Za-z0-9]*)-[A-Za-z0-9_]+$")
_NPY_MAGIC = b"\x93NUMPY"
_OLD_TMP = re.compile(r"^\.lab-\d+-[A-Za-z0-9_]{8}$")


def fingerprint(sources: Sequence[ImageSource], size: int,
                max_pixels: int = DEFAULT_MAX_PIXELS) -> str:
    """Key from every file's name, byte size and modification time, plus size, pixel limit and
    policy (what is skipped depends on all of them)."""
    h = hashlib.sha256(f"{POLICY}|{size}|{max_pixels}".encode())
    for src in sources:
        st = src.path.stat() if src.path.exists() else None
        stamp = f"{st.st_size}:{st.st_mtime_ns}" if st else "missing"
        h.update(f"|{src.name}|{src.label}|{src.split}|{src.path}|{stamp}|{src.problem}".encode())
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
    #: Why an entry found on disk was corrupt and built again, else None.
    rebuilt: str | None = None


class CorruptCache(Exception):
    """A cache entry on disk that does not hold what its index says; the message says why."""


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:40]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but belongs to someone else, or cannot be asked: keep its folder
        return True
    return True


def remove_stale_temporaries(root: Path) -> list[Path]:
    """Remove the temporary folders of dead builds under ``root``; return what was removed.

    A live build's folder is kept: on this host its process id is checked, otherwise only
    folders untouched for :data:`STALE_AFTER` seconds go.
    """
    removed = []
    host, now = _host(), time.time()
    for path in root.glob(".lab-*"):
        match = _TMP.match(path.name)
        if match and match.group(2) == host:
            stale = not _alive(int(match.group(1)))
        elif match or _OLD_TMP.match(path.name):
            try:
                stale = now - path.stat().st_mtime > STALE_AFTER
            except OSError:
                continue
        else:
            continue
        if stale and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _decode(src: ImageSource, size: int, max_pixels: int) -> tuple[np.ndarray | None, str | None]:
    if src.problem:
        return None, src.problem
    try:
        return rgb_to_lab(load_rgb(src.path, size, max_pixels=max_pixels)), None
    except UnreadableImage as exc:
        return None, str(exc)


def read_entry(directory: Path, sources: Sequence[ImageSource], size: int) -> LabCache:
    """The cache entry in ``directory``, checked; :class:`CorruptCache` naming the bad file.

    ``index.json`` must parse and list, for this policy and size, images the source offers
    with one chroma each; ``lab.npy`` must be float32 of shape (images, size, size, 3) and
    exactly as long as its header says.
    """
    index_path, lab_path = directory / "index.json", directory / "lab.npy"
    by_name = {s.name: s for s in sources}
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CorruptCache(f"{index_path}: missing") from None
    except (OSError, ValueError) as exc:
        raise CorruptCache(f"{index_path}: unreadable ({exc})") from None
    names = index.get("names") if isinstance(index, dict) else None
    chroma = index.get("max_chroma") if isinstance(index, dict) else None
    skipped = index.get("skipped") if isinstance(index, dict) else None
    if (not isinstance(names, list) or not isinstance(chroma, list)
            or not isinstance(skipped, list) or len(chroma) != len(names)
            or not all(isinstance(c, (int, float)) for c in chroma)
            or not all(isinstance(x, dict) and {"file", "name", "reason"} <= set(x)
                       for x in skipped)):
        raise CorruptCache(f"{index_path}: not a cache index (needs names, one max_chroma "
                           f"each, and skipped entries with file, name and reason)")
    if index.get("policy") != POLICY or index.get("size") != size:
        raise CorruptCache(f"{index_path}: written for policy {index.get('policy')!r} at size "
                           f"{index.get('size')!r}, not {POLICY!r} at {size}")
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise CorruptCache(f"{index_path}: lists {unknown[0]!r}, which the source does not "
                           f"offer ({len(unknown)} such name(s))")
    try:
        with open(lab_path, "rb") as f:
            magic = f.read(len(_NPY_MAGIC))
        if magic != _NPY_MAGIC:
            raise CorruptCache(f"{lab_path}: not a NumPy .npy file (no NPY header)")
        lab = np.load(lab_path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise CorruptCache(f"{lab_path}: missing") from None
    except (OSError, ValueError, EOFError) as exc:
        raise CorruptCache(f"{lab_path}: unreadable ({exc})") from None
    expected = (len(names), size, size, 3)
    if lab.dtype != np.float32 or lab.shape != expected:
        raise CorruptCache(f"{lab_path}: {lab.dtype} {lab.shape}, but the index needs float32 "
                           f"{expected}")
    length = lab_path.stat().st_size
    if isinstance(lab, np.memmap) and length != lab.offset + lab.nbytes:
        raise CorruptCache(f"{lab_path}: {length} bytes, but its header and shape need "
                           f"{lab.offset + lab.nbytes}")
    return LabCache(lab, [by_name[n] for n in names], np.asarray(chroma, dtype=np.float64),
                    skipped, directory, reused=True)


def build_cache(
    sources: Sequence[ImageSource],
    size: int,
    root: Path,
    progress: Callable[[int], None] | None = None,
    workers: int = 2,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> LabCache:
    """Return the cache for ``sources`` at ``size``, decoding only if it is not on disk yet.

    Unreadable files (and images over ``max_pixels``, judged from the header) are recorded
    with their reason and left out; the cache directory is written to a temporary name and
    renamed, so a killed build never leaves a corrupt cache. An entry found corrupt on disk is
    logged and built again.
    """
    key = fingerprint(sources, size, max_pixels)
    directory = root / f"lab-{size}-{key}"
    rebuilt = None
    if directory.exists():
        try:
            return read_entry(directory, sources, size)
        except CorruptCache as exc:
            rebuilt = str(exc)
            log.warning("%s: rebuilding", rebuilt)
            shutil.rmtree(directory, ignore_errors=True)

    try:
        root.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(root)
        tmp = Path(tempfile.mkdtemp(prefix=f".lab-{size}-tmp-{os.getpid()}-{_host()}-",
                                    dir=root))
    except OSError as exc:
        raise DataError(f"{root}: cannot write the image cache there ({exc.strerror or exc}); "
                        f"set data.cache_dir or HARNESS_CACHE_DIR to a writable folder") from None
    try:
        kept, chroma, skipped, arrays = [], [], [], []
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            decoded = pool.map(lambda s: _decode(s, size, max_pixels), sources)
            for src, (lab, reason) in zip(sources, decoded):
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
    try:
        cache = read_entry(directory, sources, size)
    except CorruptCache as exc:
        raise DataError(f"{exc}, just after it was built; is another process writing "
                        f"{root}?") from None
    cache.reused, cache.rebuilt = False, rebuilt
    return cache
