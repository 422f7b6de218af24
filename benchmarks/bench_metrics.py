"""Throughput of the metric suite on synthetic colorizations: seconds per 100 images per metric.

    python benchmarks/bench_metrics.py [--images 132] [--size 128] [--batch 50] [--no-lpips]
                                       [--shared-rounds 3] [--lpips-sweep]

Scores synthetic test images (smooth random colour fields; predictions are desaturated,
shifted and noisy versions; the defaults are all.yaml's test set, 132 images at 128 px) in
engine-sized batches with every metric: the histogram, AuC and LPIPS plugins, plus the basic
ones (PSNR, SSIM, colorfulness, dCF) when ``harness/metrics/basic.py`` exists. Work shared
between metrics through the batch's lazy caches (sRGB conversion, nearest-bin lookup) is timed
once on its own line, so each metric's figure is its own cost; the table is for the first model
of a run, which computes the ground truth's share too. Dataset-level metrics also report one
aggregate over all images and 1000 bootstrap aggregates (rows resampled with replacement, as
the engine does).

Then, unless ``--shared-rounds 0``: seconds to score one model with ``compute_rows``, the
ground truth's work (sRGB, bins, histograms, LPIPS features) redone for every model as before
the run-wide store ("per model") against shared by all models of a run ("shared": the first
model computes it, each later one reads it), interleaved in rounds in one process, with the
ratio for a run of 8 models.

``--lpips-sweep``: LPIPS forward passes (the prediction's features and the distance) at batch
sizes 4, 8, 16, 32 and all images, on 1 and 2 torch threads, interleaved; times as ratios to
the configured batch size at the process's thread count. OpenMP's wait policy is fixed when a
process starts: run it once as it is and once with ``OMP_WAIT_POLICY=PASSIVE``.
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
from harness.metrics.engine import compute_rows  # noqa: E402
from harness.metrics.histogram import bin_index  # noqa: E402
from harness.metrics.truth import TruthStore  # noqa: E402


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
    ap.add_argument("--images", type=int, default=132)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-lpips", action="store_true")
    ap.add_argument("--shared-rounds", type=int, default=3)
    ap.add_argument("--lpips-sweep", action="store_true")
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
    if args.shared_rounds > 0:
        shared_against_per_model(rng, context, metrics, args)
    if args.lpips_sweep and not args.no_lpips:
        lpips_sweep(rng, args)


def _spread(times) -> str:
    return f"{min(times):8.2f}{np.median(times):8.2f}{max(times):8.2f}"


def shared_against_per_model(rng, context: ScoringContext, metrics, args, models: int = 8):
    """Seconds per model of `compute_rows`, the ground truth's work per model vs per run."""
    L, ab_true = smooth_fields(rng, args.images, args.size)
    preds = [predictions(rng, ab_true) for _ in range(2 * args.shared_rounds + 1)]

    def score(ctx, ab_pred) -> float:
        t = time.perf_counter()
        compute_rows(metrics, L, ab_pred, ab_true, ctx, batch_size=args.batch)
        return time.perf_counter() - t

    def fresh(budget):
        return ScoringContext(bins=context.bins, prior=context.prior, device=context.device,
                              cache=context.cache, truth=TruthStore(budget=budget))

    per_model = fresh(0)  # a store that holds nothing: every model recomputes the truth's part
    shared = fresh(TruthStore().budget)
    first = score(shared, preds[0])
    old, new = [], []
    for r in range(args.shared_rounds):  # interleaved: per model, shared, per model, ...
        old.append(score(per_model, preds[1 + 2 * r]))
        new.append(score(shared, preds[2 + 2 * r]))
    run_old = models * np.median(old)
    run_new = first + (models - 1) * np.median(new)
    print(f"\nscoring one model, {args.images} images of {args.size} px, all metrics "
          f"({args.shared_rounds} interleaved rounds)")
    print(f"{'':<44}{'min':>8}{'median':>8}{'max':>8}")
    print(f"{'truth recomputed for every model (s)':<44}{_spread(old)}")
    print(f"{'truth shared, a later model (s)':<44}{_spread(new)}")
    print(f"{'truth shared, the first model (s)':<44}{first:8.2f}")
    print(f"per-model / shared, a later model: {np.median(old) / np.median(new):.2f}x; "
          f"a run of {models} models: {run_old:.1f} s -> {run_new:.1f} s "
          f"({run_old / run_new:.2f}x)")
    print(f"ground-truth store: {shared.truth.nbytes / 1e6:.0f} MB in RAM "
          f"({shared.truth.nbytes / 1e6 / args.images:.2f} MB per image), "
          f"{shared.truth.spilled_bytes / 1e6:.0f} MB on disk")


def lpips_sweep(rng, args, rounds: int = 3, images: int = 32):
    """Interleaved LPIPS timings over batch sizes and torch thread counts."""
    import torch

    from harness.metrics import lpips
    from harness.metrics import lpips_weights as W

    L, ab_true = smooth_fields(rng, images, args.size)
    batch = ImageBatch(L, predictions(rng, ab_true), ab_true)
    pred, truth = batch.rgb_pred, batch.rgb_true
    default_threads = torch.get_num_threads()
    configured = lpips.BATCH_SIZE["cpu"]
    sizes = sorted({4, 8, 16, 32, images})
    print(f"\nLPIPS on {images} images of {args.size} px, the prediction's side (features + "
          f"distance to stored truth features), {rounds} interleaved rounds; "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}, "
          f"load average {os.getloadavg()[0]:.1f}")
    for net in lpips.NETS:
        model = W.load_lpips(net)
        feats = W.lpips_features(model, truth, batch_size=configured)
        grid = [(threads, size) for threads in (1, 2) for size in sizes]
        times = {key: [] for key in grid}
        for _ in range(rounds):
            for threads, size in grid:
                torch.set_num_threads(threads)
                t = time.perf_counter()
                W.lpips_to_features(model, pred, feats, batch_size=size)
                times[threads, size].append(time.perf_counter() - t)
        torch.set_num_threads(default_threads)
        base = np.median(times[default_threads, configured])
        print(f"{net}: s per 100 images (min median max) and median / ({default_threads} "
              f"threads, batch {configured})")
        for (threads, size), ts in times.items():
            per100 = [t * 100 / images for t in ts]
            print(f"  threads {threads}  batch {size:>3}  {_spread(per100)}"
                  f"  {np.median(ts) / base:6.2f}")


if __name__ == "__main__":
    main()
