"""Throughput of the metric suite on synthetic colorizations: seconds per 100 images per metric.

    python benchmarks/bench_metrics.py [--images 500] [--size 256] [--batch 50] [--no-lpips]

Scores synthetic 256x256 test images (smooth random colour fields; predictions are desaturated,
shifted and noisy versions) in engine-sized batches with every metric: the histogram, AuC and
LPIPS plugins, plus the basic ones (PSNR, SSIM, colorfulness, dCF) when
``harness/metrics/basic.py`` exists. Work shared between metrics through the batch's lazy
caches (sRGB conversion, nearest-bin lookup) is timed once on its own line, so each metric's
figure is its own cost. Dataset-level metrics also report one aggregate over all images and
1000 bootstrap aggregates (rows resampled with replacement, as the engine does).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.color import PriorAccumulator, zhang313  # noqa: E402
from harness.metrics import (  # noqa: E402
    ImageBatch,
    MetricUnavailable,
    ScoringContext,
    auc,
    histogram,
)
from harness.metrics.histogram import bin_index  # noqa: E402


def smooth_fields(rng, n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """L (n, size, size) and ab (n, size, size, 2) float32: bicubic-upsampled 6x6 noise."""
    coarse = rng.normal(size=(n, 6, 6, 3))
    field = ndimage.zoom(coarse, (1, size / 6, size / 6, 1), order=3)[:, :size, :size]
    L = np.clip(55.0 + 18.0 * field[..., 0], 5.0, 95.0)
    chroma = rng.gamma(2.0, 8.0, (n, 1, 1, 1))  # most images muted, a few vivid
    ab = chroma * field[..., 1:] + rng.normal(0.0, 10.0, (n, 1, 1, 2))
    return L.astype(np.float32), ab.astype(np.float32)


def predictions(rng, ab_true: np.ndarray) -> np.ndarray:
    """A plausible colorizer's output: desaturated, a little shifted, noisy."""
    shift = rng.normal(0.0, 5.0, (len(ab_true), 1, 1, 2))
    return (0.6 * ab_true + shift + rng.normal(0.0, 4.0, ab_true.shape)).astype(np.float32)


def suite(with_lpips: bool) -> tuple[list, str]:
    metrics = list(histogram.METRICS) + list(auc.METRICS)
    note = ""
    if (Path(__file__).resolve().parents[1] / "harness" / "metrics" / "basic.py").exists():
        from harness.metrics import basic

        got: list = []
        basic.harness_register_metrics(register=got.append)
        metrics = got + metrics
    else:
        note = "harness/metrics/basic.py not found: PSNR, SSIM, colorfulness, dCF skipped"
    if with_lpips:
        from harness.metrics import lpips

        metrics += list(lpips.METRICS)
    return metrics, note


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-lpips", action="store_true")
    args = ap.parse_args(argv)

    rng = np.random.default_rng(0)
    bins = zhang313()
    acc = PriorAccumulator(bins)
    for _ in range(2):  # the "training split" whose prior the rebalanced AuC uses
        acc.add(smooth_fields(rng, 50, args.size)[1])
    context = ScoringContext(bins=bins, prior=acc.prior(), device=args.device)
    metrics, note = suite(not args.no_lpips)

    setup = {}  # one-off costs, kept out of the per-image figures
    for metric in metrics:
        if metric.name.startswith("lpips-"):
            from harness.metrics.lpips import lpips_model

            t = time.perf_counter()
            with contextlib.suppress(MetricUnavailable):  # reported by the scoring loop
                lpips_model(metric.name.removeprefix("lpips-"), context)
                grey = np.full((1, args.size, args.size), 50.0, np.float32)
                ab = np.zeros((1, args.size, args.size, 2), np.float32)
                metric.compute(ImageBatch(grey, ab, ab, context))  # first pass allocates
            setup[f"{metric.name} model load + warm-up"] = time.perf_counter() - t

    shared = {"sRGB conversion (pred + true)": 0.0, "nearest-bin lookup (pred + true)": 0.0}
    seconds = {m.name: 0.0 for m in metrics}
    rows: dict[str, list[np.ndarray]] = {m.name: [] for m in metrics}
    unavailable: dict[str, str] = {}
    for start in range(0, args.images, args.batch):
        n = min(args.batch, args.images - start)
        L, ab_true = smooth_fields(rng, n, args.size)
        batch = ImageBatch(L, predictions(rng, ab_true), ab_true, context)
        t = time.perf_counter()
        batch.rgb_pred, batch.rgb_true  # noqa: B018 (fill the lazy caches)
        shared["sRGB conversion (pred + true)"] += time.perf_counter() - t
        t = time.perf_counter()
        bin_index(batch, "pred"), bin_index(batch, "true")
        shared["nearest-bin lookup (pred + true)"] += time.perf_counter() - t
        for metric in metrics:
            if metric.name in unavailable:
                continue
            t = time.perf_counter()
            try:
                out = metric.compute(batch)
            except MetricUnavailable as exc:
                unavailable[metric.name] = str(exc)
                continue
            seconds[metric.name] += time.perf_counter() - t
            rows[metric.name].append(np.asarray(out, dtype=np.float64))
        print(f"  scored {start + n}/{args.images}", file=sys.stderr, flush=True)

    per100 = 100.0 / args.images
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"\n{args.images} images of {args.size}x{args.size}, batches of {args.batch}, "
        f"{os.cpu_count()} CPU cores, device {args.device}, load average {load:.1f}"
    )
    if note:
        print(note)
    head = f"{'metric':<34}{'kind':<9}{'s / 100 img':>12}{'aggregate s':>13}"
    head += f"{f'{args.bootstrap} boot s':>14}  value"
    print(head)
    print("-" * len(head))
    for name, s in shared.items():
        print(f"{name:<34}{'shared':<9}{s * per100:>12.3f}")
    total = sum(shared.values())
    boot = np.random.default_rng(1)
    for metric in metrics:
        if metric.name in unavailable:
            print(f"{metric.name:<34}{'-':<9}  unavailable: {unavailable[metric.name]}")
            continue
        data = np.concatenate(rows[metric.name])
        total += seconds[metric.name]
        line = f"{metric.name:<34}{metric.granularity:<9}{seconds[metric.name] * per100:>12.3f}"
        t = time.perf_counter()
        value = metric.value(data)
        once = time.perf_counter() - t
        if metric.aggregate is None:
            line += f"{'':>13}{'':>14}"
        else:
            t = time.perf_counter()
            for _ in range(args.bootstrap):
                metric.value(data[boot.integers(0, len(data), len(data))])
            line += f"{once:>13.4f}{time.perf_counter() - t:>14.2f}"
        print(f"{line}  {value:.4g}")
    print(f"{'whole suite (compute only)':<34}{'':<9}{total * per100:>12.3f}")
    for name, s in setup.items():
        print(f"one-off, not in the figures above: {name} {s:.2f} s")


if __name__ == "__main__":
    main()
