"""``harness colorize``: apply a run's trained model to your own photos at their full resolution.

The protocol is the benchmark's (see :func:`harness.run.colorize`), at the photo's own size: the
photo is decoded as the data loader decodes (EXIF orientation, every PIL mode; colour photos
contribute only their luminance), its CIE L is resized (antialiased, aspect not kept) to the
model's input size ``data.size`` of the run, the predicted ab are upsampled bilinearly to the
full resolution and recombined with the original full-resolution L.

Only what the protocol needs is computed, in float32: the input's L (never its a and b), then
the recombination straight to 8-bit sRGB. Photos are decoded, recombined and encoded in a pool
of threads (numpy and Pillow release the GIL), several at a time; the network sees them in
groups of ``group`` photos per ``predict`` call, and at most three groups are held in memory.

Outputs are 8-bit sRGB, PNG by default (lossless, so the output's L is the input's up to
rounding, whatever the input format; written by :mod:`harness.png`) or JPEG at quality 95 with
4:4:4 chroma: ``photo.jpg`` becomes ``photo.png`` (or ``photo.jpg``). A folder is searched
recursively for image files (the data loader's suffixes) and its structure is kept under the
output folder; a file named directly lands at the top of it. When two inputs would get the
same output name, the later one keeps its extension in the name (``photo-tif.png``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.atomic import write_with
from harness.color import lab_to_srgb8
from harness.colorizer import Colorizer
from harness.data.decode import DEFAULT_MAX_PIXELS, UnreadableImage, decode_l
from harness.data.sources import IMAGE_SUFFIXES
from harness.errors import HarnessError
from harness.png import save_png


def _save_jpeg(rgb8: np.ndarray, path: Path) -> None:
    """Quality 95 without chroma subsampling (4:4:4): the colour keeps full resolution."""
    from PIL import Image

    Image.fromarray(rgb8).save(path, format="JPEG", quality=95, subsampling=0)


@dataclass(frozen=True)
class OutputFormat:
    """How outputs are written: the file suffix and a writer of (H, W, 3) uint8 to a path."""

    suffix: str
    save: Callable[[np.ndarray, Path], None]


FORMATS = {"png": OutputFormat(".png", save_png), "jpeg": OutputFormat(".jpg", _save_jpeg)}


@dataclass
class Job:
    """One input file and where its colorization goes (relative to the output folder)."""

    source: Path
    target: Path
    error: str = ""  # why it was not written


def find_inputs(inputs: Iterable[Path], out: Path | None = None,
                suffix: str = ".png") -> list[Job]:
    """Jobs for files and folders (recursive, image suffixes only); outputs ``<stem><suffix>``.

    Paths that do not exist become jobs with an error; files already under ``out`` are left
    out of folder walks so a rerun never colorizes its own outputs.
    """
    out = out.resolve() if out is not None else None
    jobs: list[Job] = []
    for path in map(Path, inputs):
        if path.is_dir():
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                if file.suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                if out is not None and out in file.resolve().parents:
                    continue
                jobs.append(Job(file, file.relative_to(path).with_suffix(suffix)))
        elif path.exists():
            jobs.append(Job(path, Path(path.name).with_suffix(suffix)))
        else:
            jobs.append(Job(path, Path(path.name), error="no such file or folder"))
    seen: set[Path] = set()  # a file named twice (directly and in a folder) is done once
    jobs = [j for j in jobs if j.error or not (j.source.resolve() in seen
                                                or seen.add(j.source.resolve()))]
    taken: set[Path] = set()
    for job in jobs:
        if job.error:
            continue
        if job.target in taken:
            ext = job.source.suffix.lstrip(".").lower() or "noext"
            base = job.target.with_name(f"{job.target.stem}-{ext}")
            job.target, k = base.with_suffix(suffix), 2
            while job.target in taken:
                job.target, k = base.with_name(f"{base.name}-{k}").with_suffix(suffix), k + 1
        taken.add(job.target)
    return jobs


def refuse_overwrites(jobs: Sequence[Job], out: Path) -> None:
    """Raise HarnessError when an output would replace one of the input files."""
    sources = {j.source.resolve() for j in jobs if not j.error}
    clash = next((j for j in jobs if not j.error and (out / j.target).resolve() in sources), None)
    if clash is not None:
        raise HarnessError(f"--out {out}: writing {out / clash.target} would overwrite an input "
                           f"photo; choose another output folder")


def read_l(path: Path, size: int, max_pixels: int = DEFAULT_MAX_PIXELS
           ) -> tuple[np.ndarray, np.ndarray]:
    """The photo's full-resolution L (H, W) and its resize to the model's (size, size)."""
    from harness.resize import resize_l

    L = decode_l(path, max_pixels)
    return L, resize_l(L[None], size)[0]


def predict_ab(colorizer: Colorizer, small: np.ndarray) -> np.ndarray:
    """ab (N, size, size, 2) float32 for L (N, size, size); one ``predict`` call."""
    ab = np.asarray(colorizer.predict(small), dtype=np.float32)
    if ab.shape != (*small.shape, 2):
        raise ValueError(f"predict returned ab of shape {ab.shape}; expected {(*small.shape, 2)}")
    return ab


def recombine(L: np.ndarray, ab: np.ndarray) -> np.ndarray:
    """Full-resolution L (H, W) with the model's ab (h, w, 2) upsampled -> sRGB (H, W, 3) uint8."""
    from harness.resize import resize_ab

    full = resize_ab(ab[None], L.shape)[0]  # H x W x 2, planar underneath: a, b contiguous
    return lab_to_srgb8(L, full[..., 0], full[..., 1])


def save_rgb8(rgb8: np.ndarray, path: Path, fmt: OutputFormat) -> None:
    """Encode (H, W, 3) uint8 sRGB to ``path`` atomically."""
    write_with(path, lambda p: fmt.save(rgb8, p))


@contextmanager
def _torch_single_threaded() -> Iterator[None]:
    """One torch intra-op thread while photos run in parallel: resizes, upsampling and a small
    network gain little from more, and spinning OpenMP threads fight the pool's (and other
    processes') for the cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _worker_count() -> int:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(8, cpus or 1))


def colorize_files(colorizer: Colorizer, size: int, jobs: Sequence[Job], out: Path,
                   progress: Callable[[int], None] | None = None, fmt: str = "png",
                   workers: int | None = None, group: int = 4,
                   max_pixels: int = DEFAULT_MAX_PIXELS) -> list[Job]:
    """Colorize every job into ``out`` in format ``fmt``; unreadable files get ``error`` set.

    Decoding and the conversion to L (then recombination and encoding) run in ``workers``
    threads (default: the usable CPUs, at most 8) while the network predicts ``group`` photos
    per call; group k + 1 is read while group k is predicted and group k - 1 written. torch
    runs on one intra-op thread meanwhile (restored afterwards). Photos of more than
    ``max_pixels`` pixels are refused from their header, before decoding.
    """
    output = FORMATS[fmt]

    def read(job: Job) -> tuple[np.ndarray, np.ndarray] | None:
        try:
            return read_l(job.source, size, max_pixels)
        except UnreadableImage as exc:
            job.error = str(exc)
        except MemoryError:
            job.error = "too large to colorize in memory"
        return None

    def write(job: Job, L: np.ndarray, ab: np.ndarray) -> None:
        try:
            save_rgb8(recombine(L, ab), out / job.target, output)
        except MemoryError:
            job.error = "too large to colorize in memory"

    def tick(n: int) -> None:
        if progress and n:
            progress(n)

    tick(sum(1 for j in jobs if j.error))
    todo = [j for j in jobs if not j.error]
    groups = [todo[i : i + group] for i in range(0, len(todo), group)]
    with (_torch_single_threaded(),
          ThreadPoolExecutor(workers or _worker_count(), thread_name_prefix="colorize") as pool):
        reads = [pool.submit(read, j) for j in groups[0]] if groups else []
        writes: list[Future] = []
        for k, jobs_k in enumerate(groups):
            current, reads = reads, ([pool.submit(read, j) for j in groups[k + 1]]
                                     if k + 1 < len(groups) else [])
            ready = [(j, r) for j, r in zip(jobs_k, (f.result() for f in current)) if r is not None]
            tick(len(jobs_k) - len(ready))  # unreadable
            ab = predict_ab(colorizer, np.stack([r[1] for _, r in ready])) if ready else []
            for f in writes:  # group k - 1 written before group k is queued: bounded memory
                f.result()
            tick(len(writes))
            writes = [pool.submit(write, j, L, a) for (j, (L, _)), a in zip(ready, ab)]
        for f in writes:
            f.result()
        tick(len(writes))
    return jobs
