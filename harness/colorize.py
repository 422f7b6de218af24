"""``harness colorize``: apply a run's trained model to your own photos at their full resolution.

The protocol is the benchmark's (see :func:`harness.run.colorize`), at the photo's own size: the
photo is decoded as the data loader decodes (EXIF orientation, every PIL mode; colour photos
contribute only their luminance), its CIE L is resized (antialiased, aspect not kept) to the
model's input size ``data.size`` of the run, the predicted ab are upsampled bilinearly to the
full resolution and recombined with the original full-resolution L.

Outputs are always 8-bit sRGB PNG (lossless, so the output's L is the input's up to rounding,
whatever the input format): ``photo.jpg`` becomes ``photo.png``. A folder is searched
recursively for image files (the data loader's suffixes) and its structure is kept under the
output folder; a file named directly lands at the top of it. When two inputs would get the same
output name, the later one keeps its extension in the name (``photo-tif.png``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.color import lab_to_rgb, rgb_to_lab, to_uint8
from harness.colorizer import Colorizer
from harness.data.decode import UnreadableImage, decode_rgb
from harness.data.sources import IMAGE_SUFFIXES


@dataclass
class Job:
    """One input file and where its colorization goes (relative to the output folder)."""

    source: Path
    target: Path
    error: str = ""  # why it was not written


def find_inputs(inputs: Iterable[Path], out: Path | None = None) -> list[Job]:
    """Jobs for files and folders (recursive, image suffixes only); outputs as ``<stem>.png``.

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
                jobs.append(Job(file, file.relative_to(path).with_suffix(".png")))
        elif path.exists():
            jobs.append(Job(path, Path(path.name).with_suffix(".png")))
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
            job.target, k = base.with_suffix(".png"), 2
            while job.target in taken:
                job.target, k = base.with_name(f"{base.name}-{k}").with_suffix(".png"), k + 1
        taken.add(job.target)
    return jobs


def upsample_ab(ab: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """ab (N, h, w, 2) -> (N, H, W, 2), bilinear like :func:`harness.resize.resize_ab`."""
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(ab, dtype=np.float32)).permute(0, 3, 1, 2)
    out = F.interpolate(t, size=shape, mode="bilinear", align_corners=False)
    return out.permute(0, 2, 3, 1).numpy()


def colorize_rgb(colorizer: Colorizer, rgb: np.ndarray, size: int) -> np.ndarray:
    """(H, W, 3) sRGB in [0, 1] -> (H, W, 3) colorized sRGB in [0, 1] with the same L."""
    from harness.resize import resize_l

    L = rgb_to_lab(np.asarray(rgb, dtype=np.float32))[..., 0]  # H x W, the luminance only
    small = resize_l(L[None], size)  # 1 x size x size
    ab = np.asarray(colorizer.predict(small), dtype=np.float32)
    if ab.shape != (1, size, size, 2):
        raise ValueError(f"predict returned ab of shape {ab.shape}; expected {(1, size, size, 2)}")
    full = upsample_ab(ab, L.shape)[0]  # H x W x 2
    return lab_to_rgb(np.concatenate([L[..., None], full], axis=-1))


def colorize_files(colorizer: Colorizer, size: int, jobs: Sequence[Job], out: Path,
                   progress: Callable[[int], None] | None = None) -> list[Job]:
    """Colorize every job into ``out``; unreadable files get ``error`` set, others a PNG."""
    from PIL import Image

    from harness.atomic import write_with

    for job in jobs:
        if not job.error:
            try:
                rgb = colorize_rgb(colorizer, decode_rgb(job.source), size)
                image = Image.fromarray(to_uint8(rgb))
                write_with(out / job.target, lambda p, im=image: im.save(p, format="PNG"))
            except UnreadableImage as exc:
                job.error = str(exc)
            except MemoryError:
                job.error = "too large to colorize in memory"
        if progress:
            progress(1)
    return jobs
