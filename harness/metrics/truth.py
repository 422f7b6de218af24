"""What the metrics derive from the ground truth alone, computed once per run for every model.

Every model of a run is scored on the same test images, so the ground truth's sRGB, its nearest
ab bins and histograms, and its LPIPS features are the same for each of them. A
:class:`TruthStore` (one per :class:`~harness.metrics.ScoringContext`) keeps each such value
under a digest of the batch's ground truth (its L and ab bytes, shapes and dtypes) and a name,
so a batch with other contents can never read another batch's entry. Stored arrays are made
read-only, since every model shares them.

Memory: entries stay in RAM up to ``budget`` bytes. Beyond it they are written as ``.npy``
files under ``spill_dir`` and read back as memory maps (exact, and the page cache serves them
while there is memory to spare); without a ``spill_dir`` they are recomputed on every use, as if
there were no store. LPIPS-vgg's features dominate: 8.0 MB per 128 x 128 image in float32
(1,998,848 activations over its five layers; AlexNet's 0.6 MB), so 132 such images take 1.06
GB, and the budget's default (2 GiB) holds about 250 of them.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

DEFAULT_BUDGET = 2 << 30  # bytes of ground-truth entries held in RAM


def digest(*arrays: np.ndarray) -> str:
    """Content key of some arrays: sha256 over their shapes, dtypes and bytes.

    >>> a = np.zeros((2, 3), np.float32)
    >>> digest(a) == digest(a.copy()) != digest(a.astype(np.float64))
    True
    """
    h = hashlib.sha256()
    for arr in arrays:
        arr = np.ascontiguousarray(arr)
        h.update(f"{arr.shape}|{arr.dtype.str}|".encode())
        h.update(memoryview(arr).cast("B"))
    return h.hexdigest()


def _arrays(value: Any) -> list[np.ndarray]:
    return list(value) if isinstance(value, (tuple, list)) else [value]


def _read_only(arr: np.ndarray) -> np.ndarray:
    arr = np.asarray(arr)
    arr.flags.writeable = False
    return arr


class TruthStore:
    """Per-run cache of ground-truth derivatives: ``get(key, name, compute)`` computes once.

    A value is an array or a tuple of arrays. ``nbytes`` and ``spilled_bytes`` say what is held
    in RAM and on disk; :meth:`close` deletes the spilled files (also done when the store is
    garbage-collected or the interpreter exits).
    """

    def __init__(self, budget: int = DEFAULT_BUDGET, spill_dir: Path | None = None) -> None:
        self.budget = budget
        self.spill_dir = Path(spill_dir) if spill_dir is not None else None
        self.nbytes = 0
        self.spilled_bytes = 0
        self._entries: dict[tuple[str, str], Any] = {}
        self._spill: Path | None = None
        self._files = 0
        self._finalizer: weakref.finalize | None = None
        self._warned = False

    def get(self, key: str, name: str, compute: Callable[[], Any]) -> Any:
        """The value ``compute()`` gave for (``key``, ``name``), computed on the first call."""
        found = self._entries.get((key, name))
        if found is not None:
            return found
        value = compute()
        arrays = [_read_only(a) for a in _arrays(value)]
        size = sum(a.nbytes for a in arrays)
        if self.nbytes + size <= self.budget:
            self.nbytes += size
        elif self.spill_dir is not None:
            arrays = [self._write(a) for a in arrays]
            self.spilled_bytes += size
        else:
            if not self._warned:
                log.info("ground-truth store full (%.2f GB); recomputing %s and any entry "
                         "that does not fit", self.nbytes / 1e9, name)
                self._warned = True
            return value
        stored = tuple(arrays) if isinstance(value, (tuple, list)) else arrays[0]
        self._entries[(key, name)] = stored
        return stored

    def _write(self, arr: np.ndarray) -> np.ndarray:
        if self._spill is None:
            self.spill_dir.mkdir(parents=True, exist_ok=True)
            self._spill = Path(tempfile.mkdtemp(prefix=".truth-", dir=self.spill_dir))
            self._finalizer = weakref.finalize(self, shutil.rmtree, self._spill, True)
        path = self._spill / f"{self._files}.npy"
        self._files += 1
        np.save(path, arr)
        return np.load(path, mmap_mode="r")

    def close(self) -> None:
        """Forget every entry and delete the spilled files."""
        self._entries.clear()
        self.nbytes = self.spilled_bytes = 0
        if self._finalizer is not None:
            self._finalizer()
        self._spill = self._finalizer = None
