"""Cached epoch throughput of the shared data loader against a naive per-epoch decode loop.

Writes synthetic JPEGs (about 320x240) to a temporary folder, then for each size measures
images per second over full epochs of:

* naive: PIL decode + resize to a centred square + ``skimage.color.rgb2lab``, every epoch;
* loader: ``load_splits`` once (decode, resize, Lab, memory-mapped cache), then
  ``LabSet.iter_batches`` over the training split with a fresh epoch's random crops and flips;
* torch: the same training split through the ``torch.utils.data.DataLoader`` adapter
  (with torch's default intra-op threads, then with one thread).

As in a default run (no ``eval_size``), the cache holds size x size images and the crops are
size x size, so every variant returns the same amount of Lab data per image. The one-off cache
build is timed separately. Run: ``python benchmarks/bench_loader.py [--images 200]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from skimage.color import rgb2lab


def write_jpegs(folder: Path, n: int, width: int = 320, height: int = 240) -> None:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    for i in range(n):
        chans = []
        for _ in range(3):
            fy, fx = rng.uniform(0.5, 4.0, 2) / np.array([height, width])
            chans.append(0.5 + 0.4 * np.sin(2 * np.pi * (fy * y + fx * x) + rng.uniform(0, 6)))
        img = np.stack(chans, -1) + rng.normal(0, 0.04, (height, width, 3))  # some texture
        arr = (np.clip(img, 0, 1) * 255).astype(np.uint8)
        Image.fromarray(arr).save(folder / f"photo_{i:04d}.jpg", quality=90)


def naive_epoch(paths: list[Path], size: int, batch: int) -> int:
    """Decode, resize and convert every image, batch by batch, as a loader without a cache."""
    done = 0
    for start in range(0, len(paths), batch):
        labs = []
        for path in paths[start : start + batch]:
            with Image.open(path) as img:
                rgb = img.convert("RGB")
            w, h = rgb.size
            scale = size / min(w, h)
            rgb = rgb.resize((max(size, round(w * scale)), max(size, round(h * scale))),
                             Image.Resampling.LANCZOS)
            left, top = (rgb.width - size) // 2, (rgb.height - size) // 2
            rgb = rgb.crop((left, top, left + size, top + size))
            labs.append(rgb2lab(np.asarray(rgb, dtype=np.float32) / 255.0).astype(np.float32))
        L = np.stack([lab[..., 0] for lab in labs])  # the same batches the loader yields
        ab = np.stack([lab[..., 1:] for lab in labs])
        done += min(len(L), len(ab))
    return done


def loader_epoch(labset, epoch: int, batch: int) -> int:
    return sum(len(L) for L, _ab, _labels in labset.iter_batches(batch, epoch, shuffle=True))


def torch_epoch(loader, epoch: int) -> int:
    loader.dataset.set_epoch(epoch)
    return sum(len(b["L"]) for b in loader)


def rate(fn, epochs: int) -> float:
    """Median images/s over ``epochs`` full epochs (epoch index passed to ``fn``)."""
    rates = []
    for epoch in range(epochs):
        start = time.perf_counter()
        n = fn(epoch)
        rates.append(n / (time.perf_counter() - start))
    return statistics.median(rates)


def bench_size(folder: Path, cache_dir: Path, size: int, args, registry) -> tuple:
    """(size, images, cache build s, naive, iter_batches, torch DataLoader, same 1 thread)."""
    import torch

    from harness.config import DataConfig
    from harness.data.loader import load_splits

    cfg = DataConfig(source="folder", path=folder, size=size, test_fraction=0.25,
                     cache_dir=cache_dir, workers=2)
    start = time.perf_counter()
    train = load_splits(cfg, registry, seed=0).train
    build = time.perf_counter() - start
    # the naive loop reads the same training images, so the epochs are alike
    paths = [folder / name for name in train.names]
    naive = rate(lambda e: naive_epoch(paths, size, args.batch), args.naive_epochs)
    loader_epoch(train, 0, args.batch)  # warm the page cache like any later epoch
    cached = rate(lambda e: loader_epoch(train, e + 1, args.batch), args.epochs)
    dl = train.torch_loader(args.batch, shuffle=True)
    via_torch = rate(lambda e: torch_epoch(dl, e + 1), args.epochs)
    # default_collate's torch.stack runs on torch's intra-op threads; on a small busy machine
    # one thread can be much faster, so both are shown
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        one_thread = rate(lambda e: torch_epoch(dl, e + 1), args.epochs)
    finally:
        torch.set_num_threads(threads)
    return size, len(train), build, naive, cached, via_torch, one_thread


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs (median)")
    parser.add_argument("--naive-epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()

    import torch

    from harness.plugins import load_registry

    registry = load_registry()
    with tempfile.TemporaryDirectory(prefix="bench-loader-") as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        write_jpegs(folder, args.images)
        rows = [bench_size(folder, Path(tmp) / "cache", size, args, registry)
                for size in args.sizes]

    print(f"\n{args.images} synthetic 320x240 JPEGs; training split epochs; "
          f"batch {args.batch}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} torch threads")
    header = (f"{'size':>9} {'train':>6} {'build s':>8} {'naive img/s':>12} "
              f"{'iter_batches':>13} {'ratio':>7} {'torch DL':>10} {'ratio':>7} "
              f"{'DL 1 thread':>12} {'ratio':>7}")
    print(header)
    print("-" * len(header))
    for size, n, build, naive, cached, via_torch, one in rows:
        print(f"{size:>4}x{size:<4} {n:>6} {build:>8.2f} {naive:>12.0f} {cached:>13.0f} "
              f"{cached / naive:>6.1f}x {via_torch:>10.0f} {via_torch / naive:>6.1f}x "
              f"{one:>12.0f} {one / naive:>6.1f}x")
    print("img/s: median over full epochs of the training split; ratio: against naive")

if __name__ == "__main__":
    main()
