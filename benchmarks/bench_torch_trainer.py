"""Training throughput of ``zhang`` through the shared trainer against a bare torch loop.

Both train the same network with the same loss, optimizer, batch size and in-memory images at
64 x 64; the harness adds its loader (random crops and flips), seeding, deterministic kernels,
its LR schedule, the loss log and progress, all at their defaults. On a shared machine the
speed of a core drifts by 20% within seconds, more than the gap being measured, so the two
loops run interleaved in one process: at each of the harness's loss-log rows (every
``log_every`` steps) the bare loop trains the same number of steps. Each harness block is timed
from the end of the bare block before it to its own log row, and compared with the bare block
that follows; the figure is the median of those paired ratios. Sharing the process, the bare
loop also gets the trainer's heap setting (:mod:`harness.train.allocator`), without which
both run slower.
Width, batch size and image size default to zhang's in configs/all.yaml.
Run: ``python benchmarks/bench_torch_trainer.py [--help]``.
"""

from __future__ import annotations

import argparse
import logging
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.main_job import main_job_options  # noqa: E402
from harness.color import rgb_to_lab  # noqa: E402
from harness.colorizer import Budget, FitContext  # noqa: E402
from harness.data.dataset import LabSet  # noqa: E402
from harness.progress import LossLog  # noqa: E402
from harness_plugins.zhang_model import ZhangColorizer, zhang_network  # noqa: E402


def synthetic_lab(n: int, size: int) -> np.ndarray:
    """n smooth two-colour gradients, (n, size, size, 3) Lab float32."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:size, 0:size] / size
    angle = rng.uniform(0, 2 * np.pi, n)[:, None, None]
    t = (0.5 + 0.5 * np.sin(2 * np.pi * (np.cos(angle) * x + np.sin(angle) * y)))[..., None]
    a, b = rng.uniform(0.1, 0.9, (2, n, 1, 1, 3))
    return rgb_to_lab((t * a + (1 - t) * b).astype(np.float32))


class BareLoop:
    """Zhang's network, loss and Adam over in-memory tensors: nothing but the training step."""

    def __init__(self, options, lab: np.ndarray) -> None:
        torch.manual_seed(1)
        self.model = ZhangColorizer(options)
        self.net = zhang_network(self.model.bins.q, options.width)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=options.lr,
                                          betas=options.betas, weight_decay=options.weight_decay)
        self.L = torch.from_numpy(lab[..., :1]).permute(0, 3, 1, 2).contiguous()
        self.ab = torch.from_numpy(lab[..., 1:]).permute(0, 3, 1, 2).contiguous()
        self.order = torch.randperm(len(lab))
        self.batch_size, self.step = options.batch_size, 0

    def train(self, steps: int) -> float:
        """Train ``steps`` steps; return the seconds they took."""
        start = time.perf_counter()
        for _ in range(steps):
            idx = self.order[(self.step * self.batch_size) % len(self.L):][:self.batch_size]
            loss = self.model.loss(self.net(self.L[idx]), {"L": self.L[idx], "ab": self.ab[idx]})
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.step += 1
        loss.item()
        return time.perf_counter() - start


class _InterleavedLog(LossLog):
    """A loss log that times each harness block, then runs a bare block of the same length."""

    def __init__(self, path: Path, bare: BareLoop, block: int, warmup: int) -> None:
        super().__init__(path)
        self.bare, self.block, self.warmup = bare, block, warmup
        self.pairs: list[tuple[float, float]] = []
        self.resumed = time.perf_counter()

    def append(self, step, *args) -> None:
        now = time.perf_counter()
        super().append(step, *args)
        bare = self.bare.train(self.block)
        if step > self.warmup:
            self.pairs.append((now - self.resumed, bare))
        self.resumed = time.perf_counter()


def measure(options, lab: np.ndarray, blocks: int, warmup: int) -> np.ndarray:
    """(harness seconds, bare seconds) for each ``log_every``-step block after ``warmup``."""
    n, size = len(lab), lab.shape[1]
    train = LabSet(lab, range(n), [str(i) for i in range(n)], np.full(n, -1), [], crop=size)
    block = options.log_every
    with tempfile.TemporaryDirectory() as tmp:
        log = _InterleavedLog(Path(tmp) / "loss.csv", BareLoop(options, lab), block, warmup)
        ctx = FitContext(device="cpu", seed=0, model_dir=Path(tmp), loss_log=log)
        ZhangColorizer(options).fit(train, None, Budget(steps=warmup + block * blocks), ctx)
    return np.array(log.pairs)


def main() -> None:
    main_job = main_job_options("zhang")  # the defaults: zhang as configs/all.yaml trains it
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=float, default=main_job.get("width", 1.0))
    parser.add_argument("--batch-size", type=int, default=main_job.get("batch_size", 16))
    parser.add_argument("--size", type=int, default=main_job["data_size"])
    parser.add_argument("--blocks", type=int, default=40, help="timed blocks of log_every steps")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="torch threads; 1 is steadier on a machine others are using")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.disable(logging.INFO)
    options = ZhangColorizer.Options(width=args.width, batch_size=args.batch_size)
    lab = synthetic_lab(4 * args.batch_size, args.size)
    pairs = measure(options, lab, args.blocks, warmup=2 * options.log_every)
    with torch.device("meta"):
        full = sum(p.numel() for p in zhang_network(313, 1.0).parameters())
    small = sum(p.numel() for p in zhang_network(313, args.width).parameters())

    images = args.batch_size * options.log_every
    print(f"\nzhang, width {args.width} ({small:,} parameters), {args.size}x{args.size}, "
          f"batch {args.batch_size}, {len(pairs)} interleaved blocks of {options.log_every} "
          f"steps, {torch.get_num_threads()} threads\n")
    print(f"| {'loop':<15} | {'median step ms':>14} | {'img/s':>6} | {'fastest 10% img/s':>17} |")
    print(f"|{'-' * 17}|{'-' * 15}:|{'-' * 7}:|{'-' * 18}:|")
    for name, seconds in (("harness trainer", pairs[:, 0]), ("bare loop", pairs[:, 1])):
        median = float(np.median(seconds))
        print(f"| {name:<15} | {1000 * median / options.log_every:>14.1f} | "
              f"{images / median:>6.1f} | {images / np.quantile(seconds, 0.1):>17.1f} |")
    ratios = pairs[:, 1] / pairs[:, 0]
    low, high = np.quantile(ratios, [0.25, 0.75])
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nharness / bare images/s, median of paired blocks: {np.median(ratios):.1%} "
          f"(interquartile {low:.1%} to {high:.1%})")
    print(f"peak RSS {peak_mib:.0f} MiB; zhang at width 1.0: {full:,} parameters")


if __name__ == "__main__":
    main()
