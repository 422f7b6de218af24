"""Training throughput of ``zhang`` through the shared trainer against a bare torch loop.

Both train the same network with the same loss, optimizer, batch size and in-memory images at
64 x 64; the harness adds its loader (random crops and flips), seeding, deterministic kernels,
the loss log (a row every step here, more than the default) and progress. Every step is timed
(the harness's from its loss-log rows), rounds alternate which loop goes first, and the
comparison uses the median step over all rounds, which bursts of load from other processes
on a shared machine barely move. Run: ``python benchmarks/bench_torch_trainer.py [--help]``.
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

from harness.color import rgb_to_lab  # noqa: E402
from harness.colorizer import Budget, FitContext  # noqa: E402
from harness.data.dataset import LabSet  # noqa: E402
from harness.progress import LossLog  # noqa: E402
from plugins.zhang import ZhangColorizer, zhang_network  # noqa: E402


def synthetic_lab(n: int, size: int) -> np.ndarray:
    """n smooth two-colour gradients, (n, size, size, 3) Lab float32."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:size, 0:size] / size
    angle = rng.uniform(0, 2 * np.pi, n)[:, None, None]
    t = (0.5 + 0.5 * np.sin(2 * np.pi * (np.cos(angle) * x + np.sin(angle) * y)))[..., None]
    a, b = rng.uniform(0.1, 0.9, (2, n, 1, 1, 3))
    return rgb_to_lab((t * a + (1 - t) * b).astype(np.float32))


class _ClockedLog(LossLog):
    """A loss log that notes the time each row arrives."""

    def append(self, step, *args) -> None:
        super().append(step, *args)
        self.clock = getattr(self, "clock", {})
        self.clock[step] = time.perf_counter()


def harness_steps(options, lab: np.ndarray, warmup: int, steps: int) -> np.ndarray:
    """Seconds of each step after ``warmup`` of ``ZhangColorizer.fit``."""
    n, size = len(lab), lab.shape[1]
    train = LabSet(lab, range(n), [str(i) for i in range(n)], np.full(n, -1), [], crop=size)
    with tempfile.TemporaryDirectory() as tmp:
        ctx = FitContext(device="cpu", seed=0, model_dir=Path(tmp),
                         loss_log=_ClockedLog(Path(tmp) / "loss.csv"))
        ZhangColorizer(options).fit(train, None, Budget(steps=warmup + steps), ctx)
    return np.diff([ctx.loss_log.clock[s] for s in range(warmup, warmup + steps + 1)])


def bare_steps(options, lab: np.ndarray, warmup: int, steps: int) -> np.ndarray:
    """Seconds of each step after ``warmup`` of a plain loop over in-memory tensors."""
    torch.manual_seed(0)
    model = ZhangColorizer(options)
    net = zhang_network(model.bins.q, options.width)
    optimizer = torch.optim.Adam(net.parameters(), lr=options.lr, betas=options.betas,
                                 weight_decay=options.weight_decay)
    L = torch.from_numpy(lab[..., :1]).permute(0, 3, 1, 2).contiguous()
    ab = torch.from_numpy(lab[..., 1:]).permute(0, 3, 1, 2).contiguous()
    order = torch.randperm(len(lab))
    bs = options.batch_size
    clock = []
    for step in range(warmup + steps):
        if step >= warmup:
            clock.append(time.perf_counter())
        idx = order[(step * bs) % len(lab):][:bs]
        loss = model.loss(net(L[idx]), {"L": L[idx], "ab": ab[idx]})
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    loss.item()
    return np.diff([*clock, time.perf_counter()])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=float, default=0.125)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=30, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="torch threads; 1 is steadier on a machine others are using")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.disable(logging.INFO)
    warmup = 5
    options = ZhangColorizer.Options(width=args.width, batch_size=args.batch_size,
                                     log_every=1, checkpoint_every=10**9)
    lab = synthetic_lab(4 * args.batch_size, args.size)
    loops = {"harness trainer": harness_steps, "bare loop": bare_steps}
    for run in loops.values():  # one-time imports and allocator warm-up
        run(options, lab, warmup, 5)
    seconds: dict[str, list[np.ndarray]] = {name: [] for name in loops}
    for i in range(args.rounds):  # alternate which goes first
        for name in sorted(loops, reverse=bool(i % 2)):
            seconds[name].append(loops[name](options, lab, warmup, args.steps))
    with torch.device("meta"):
        full = sum(p.numel() for p in zhang_network(313, 1.0).parameters())
    small = sum(p.numel() for p in zhang_network(313, args.width).parameters())

    print(f"\nzhang, width {args.width} ({small:,} parameters), {args.size}x{args.size}, "
          f"batch {args.batch_size}, {args.rounds} rounds x {args.steps} steps, "
          f"{torch.get_num_threads()} threads\n")
    print(f"| {'loop':<15} | {'median step ms':>14} | {'img/s':>6} | {'fastest 10% img/s':>17} |")
    print(f"|{'-' * 17}|{'-' * 15}:|{'-' * 7}:|{'-' * 18}:|")
    medians = {}
    for name, rounds in seconds.items():
        steps = np.concatenate(rounds)
        medians[name] = float(np.median(steps))
        fast = args.batch_size / np.quantile(steps, 0.1)
        print(f"| {name:<15} | {1000 * medians[name]:>14.1f} | "
              f"{args.batch_size / medians[name]:>6.1f} | {fast:>17.1f} |")
    ratio = medians["bare loop"] / medians["harness trainer"]
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nharness / bare images/s: {ratio:.1%}")
    print(f"peak RSS {peak_mib:.0f} MiB; zhang at width 1.0: {full:,} parameters")


if __name__ == "__main__":
    main()
