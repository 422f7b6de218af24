"""Training throughput: the shared Keras trainer against a bare ``model.fit``, and the Keras
``regression-mse`` against a torch twin of the same network.

    python benchmarks/bench_keras_trainer.py [--width W] [--size S] [--batch B]

Width, image size and batch default to regression-mse's in configs/all.yaml.

All three train the same network (the regression-mse encoder-decoder), batch and optimizer
(AdamW, mean squared error on normalize_ab) on the CPU or the device given. Rates are steady
state: the first ``--warmup`` steps (graph tracing) are left out. The trainer reads random
crops through the shared loader and runs its per-step callback (loss log, progress, NaN
check); the bare fit and the torch loop read the same number of crops from arrays already in
memory. Each rate is given per wall-clock second and per CPU-second of the process (all its
threads): the second is what each image costs, and stays put when other processes compete for
the cores. Runs alternate and the median of ``--repeats`` is reported.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.main_job import main_job_options  # noqa: E402
from harness.colorizer import Budget, FitContext  # noqa: E402
from harness.data.dataset import LabSet  # noqa: E402
from harness.progress import LossLog  # noqa: E402
from harness.train.keras_trainer import ABLoss, keras  # noqa: E402
from harness_plugins.regression_mse_model import (  # noqa: E402
    DECODER,
    ENCODER,
    RegressionColorizer,
    RegressionOptions,
    build_regression_net,
    channels,
)


def lab_set(n: int, size: int) -> LabSet:
    """``n`` smooth random Lab images of side ``size + 16``, cropped to ``size`` for training."""
    rng = np.random.default_rng(0)
    side = size + 16
    y, x = np.mgrid[0:side, 0:side] / side
    f = rng.uniform(0.5, 2.0, (n, 2, 1, 1))
    L = 50 + 40 * np.sin(2 * np.pi * (f[:, 0] * x + f[:, 1] * y))
    lab = np.stack([L, 0.8 * (L - 50), 40 - 0.8 * L], -1).astype(np.float32)
    return LabSet(lab, range(n), [f"img{i}" for i in range(n)], np.full(n, -1), [], crop=size)


class ClockedLog(LossLog):
    """A loss log that also notes the wall clock and the process's CPU time at each row."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.clock: list[tuple[float, float]] = []

    def append(self, step, *args) -> None:
        super().append(step, *args)
        self.clock.append((time.perf_counter(), time.process_time()))


def trainer_rate(args, data: LabSet, device: str) -> tuple[float, float]:
    """Steady-state images per second and per CPU-second of ``RegressionColorizer.fit``."""
    folder = Path(tempfile.mkdtemp())
    ctx = FitContext(device=device, seed=0, model_dir=folder / "trainer",
                     loss_log=ClockedLog(folder / "loss.csv"))
    options = RegressionOptions(width=args.width, batch_size=args.batch, log_every=args.warmup,
                                checkpoint_every=10**6, jit_compile=False)
    RegressionColorizer(options).fit(data, None, Budget(steps=args.warmup + args.steps), ctx)
    log = ctx.loss_log
    images = (log.rows[-1]["step"] - log.rows[0]["step"]) * args.batch
    (wall0, cpu0), (wall1, cpu1) = log.clock[0], log.clock[-1]
    return images / (wall1 - wall0), images / (cpu1 - cpu0)


def timed(run, images: int) -> tuple[float, float]:
    """Images per second and per CPU-second of ``run()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return images / (time.perf_counter() - wall), images / (time.process_time() - cpu)


def bare_fit_rate(args, data: LabSet, device: str) -> tuple[float, float]:
    """The same for ``model.fit`` on arrays in memory: same network, loss and optimizer."""
    L, ab = data.batch(np.arange(args.batch * args.steps) % len(data))
    with keras.device("cpu:0" if device == "cpu" else "gpu:0"):
        keras.utils.set_random_seed(0)
        model = build_regression_net(args.width)
        model.compile(keras.optimizers.AdamW(1e-3, beta_1=0.9, beta_2=0.99, weight_decay=1e-3),
                      loss=ABLoss(), jit_compile=False)
        n_warm = args.batch * args.warmup
        model.fit(L[:n_warm, ..., None], ab[:n_warm], batch_size=args.batch, verbose=0)
        return timed(lambda: model.fit(L[..., None], ab, batch_size=args.batch, verbose=0),
                     len(L))


def torch_twin(width: float):
    """The regression-mse network in torch: same layers, channels and output scaling."""
    import torch
    from torch import nn

    from harness.color import denormalize_ab, normalize_l

    def block(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, stride, padding=1, bias=False), nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True)]

    body, cin = [], 1
    for n, stride in ENCODER:
        body += block(cin, channels(n, width), stride)
        cin = channels(n, width)
    for n in DECODER:
        body += [nn.Upsample(scale_factor=2, mode="bilinear"), *block(cin, channels(n, width))]
        cin = channels(n, width)
    body.append(nn.Conv2d(cin, 2, 1))

    class Twin(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(*body)

        def forward(self, L: torch.Tensor) -> torch.Tensor:  # B x 1 x H x W -> B x 2 x H x W
            return denormalize_ab(torch.tanh(self.body(normalize_l(L))))

    return Twin()


def torch_rate(args, data: LabSet, device: str) -> tuple[float, float]:
    """The same for a plain torch loop training the twin on the same crops in memory."""
    import torch
    import torch.nn.functional as F

    from harness.color import normalize_ab

    dev = torch.device("cuda" if device != "cpu" else "cpu")
    torch.manual_seed(0)
    net = torch_twin(args.width).to(dev).train()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, betas=(0.9, 0.99), weight_decay=1e-3)
    L, ab = data.batch(np.arange(args.batch * (args.warmup + args.steps)) % len(data))
    L = torch.from_numpy(L[:, None]).to(dev)
    ab = torch.from_numpy(ab.transpose(0, 3, 1, 2).copy()).to(dev)

    def step(i: int) -> None:
        s = slice(i * args.batch, (i + 1) * args.batch)
        loss = F.mse_loss(normalize_ab(net(L[s])), normalize_ab(ab[s]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def steps(first: int, last: int) -> None:
        for i in range(first, last):
            step(i)
        if dev.type == "cuda":
            torch.cuda.synchronize()

    steps(0, args.warmup)
    return timed(lambda: steps(args.warmup, args.warmup + args.steps), args.steps * args.batch)


def main() -> None:
    main_job = main_job_options("regression-mse")  # the defaults: as configs/all.yaml trains it
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=float, default=main_job.get("width", 1.0))
    parser.add_argument("--size", type=int, default=main_job["data_size"])
    parser.add_argument("--batch", type=int, default=main_job.get("batch_size", 16))
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--steps", type=int, default=60, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--torch-threads", type=int, help="torch.set_num_threads for the twin")
    args = parser.parse_args()
    if args.torch_threads:
        import torch

        torch.set_num_threads(args.torch_threads)

    data = lab_set(args.images, args.size)
    runs = {"keras: shared trainer (regression-mse)": trainer_rate,
            "keras: bare model.fit, arrays in memory": bare_fit_rate,
            "torch: twin network, plain loop": torch_rate}
    rates: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():
            rates[name].append(run(args, data, args.device))

    def medians(name: str) -> tuple[float, float]:
        return tuple(statistics.median(r[k] for r in rates[name]) for k in (0, 1))

    bare = medians("keras: bare model.fit, arrays in memory")
    keras_model = build_regression_net(args.width)
    trainable = sum(int(np.prod(w.shape)) for w in keras_model.trainable_weights)
    twin = sum(p.numel() for p in torch_twin(args.width).parameters())
    print(f"\nregression-mse width {args.width}, {args.size}x{args.size}, batch {args.batch}, "
          f"{args.steps} timed steps, median of {args.repeats}, device {args.device}; "
          f"trainable parameters keras {trainable:,} / torch {twin:,}; load average "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}\n")
    print(f"| {'run':<40} | img/s | vs bare | img/CPU-s | vs bare | img/s, all runs |")
    print(f"|{'-' * 42}|------:|--------:|----------:|--------:|-----------------|")
    for name in runs:
        wall, cpu = medians(name)
        every = ", ".join(f"{r[0]:.0f}" for r in rates[name])
        print(f"| {name:<40} | {wall:5.0f} | {wall / bare[0]:7.0%} | {cpu:9.0f} | "
              f"{cpu / bare[1]:7.0%} | {every} |")


if __name__ == "__main__":
    main()
