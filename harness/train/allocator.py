"""glibc heap settings for training loops, shared by both trainers (a no-op off glibc).

glibc serves an allocation above its mmap threshold with a fresh mapping and unmaps it on
free; the threshold starts at 128 KiB and only rises as such blocks are freed. A CPU training
step allocates and frees tens of megabytes of activations, so under the default setting every
step faults its pages in again: thousands of page faults per step, a tenth of a step's time on
a 2-core machine, and more for a loop that keeps more tensors alive between steps (the
harness's pending losses, loader buffers) than for a bare loop. :func:`steady_heap` fixes the
threshold at glibc's own 64-bit ceiling instead, so those blocks are reused from the heap.
"""

from __future__ import annotations

import ctypes
import platform
from collections.abc import Callable

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
#: The ceiling of glibc's dynamic mmap threshold on 64-bit systems; trimming starts at twice it.
MMAP_THRESHOLD_MAX = 32 << 20


def glibc_mallopt() -> Callable[[int, int], int] | None:
    """glibc's ``mallopt``, or None where the C library is not glibc."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    return ctypes.CDLL(None).mallopt


def steady_heap() -> None:
    """Serve allocations up to 32 MiB from the heap and keep up to 64 MiB of it on free.

    Process-wide and lasting (glibc cannot go back to its dynamic threshold): the cost is at
    most 64 MiB of freed memory held for reuse.
    """
    mallopt = glibc_mallopt()
    if mallopt is not None:
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)
        mallopt(M_TRIM_THRESHOLD, 2 * MMAP_THRESHOLD_MAX)
