"""Thread settings for training: 1 vs 2 intra-op threads, OMP_WAIT_POLICY unset vs PASSIVE.

    python benchmarks/bench_threads.py [--repeats 3] [--steps 20] [--load 1]

Times a torch step (``zhang`` at width 0.125) and a Keras step (``regression-mse`` at
all.yaml's width) through the shared trainers, 64 px crops in batches of 16. Each setting
runs in a fresh subprocess (OpenMP reads its environment when it starts), the settings
interleaved A B C D A B C D ..., first on the machine as it is, then while this script keeps
``--load`` extra processes busy-looping (unpinned) to stand for other work on the cores; the
load is stopped at the end. Rates are steady-state images per second (the first ``--warmup``
steps left out), reported as min / median / max over the repeats. The harness's defaults
(:mod:`harness.threads`) were chosen from this table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = {"torch": ("zhang", 0.125), "keras": ("regression-mse", 0.5)}
#: (threads, OpenMP setting): OMP_WAIT_POLICY's value, or VAR=VALUE (libgomp's spin count: how
#: long an idle thread spins before it sleeps; PASSIVE is 0, the default 300,000 iterations).
SETTINGS = [(1, None), (1, "PASSIVE"), (2, None), (2, "PASSIVE"), (2, "GOMP_SPINCOUNT=10000"),
            (2, "GOMP_SPINCOUNT=1000")]


def worker(framework: str, threads: int, steps: int, warmup: int, size: int) -> None:
    """Train one model in this process with ``threads`` intra-op threads; print img/s (JSON)."""
    import torch  # first: OpenMP starts with the policy this process was given

    sys.path.insert(0, str(ROOT))
    import numpy as np

    from harness import threads as harness_threads
    from harness.colorizer import Budget, FitContext
    from harness.data.dataset import LabSet
    from harness.progress import LossLog

    harness_threads.choose(torch=threads, tensorflow=threads)  # what the config's section does
    assert torch.get_num_threads() == threads
    from harness_plugins.regression_mse_model import (
        RegressionColorizer,  # starts TensorFlow (keras_env)
    )
    from harness_plugins.zhang_model import ZhangColorizer

    if framework == "keras":
        import tensorflow as tf

        assert tf.config.threading.get_intra_op_parallelism_threads() == threads

    rng = np.random.default_rng(0)
    n, side = 64, size + size // 4
    y, x = np.mgrid[0:side, 0:side] / side
    f = rng.uniform(0.5, 2.0, (n, 2, 1, 1))
    L = 50 + 40 * np.sin(2 * np.pi * (f[:, 0] * x + f[:, 1] * y))
    lab = np.stack([L, 0.8 * (L - 50), 40 - 0.8 * L], -1).astype(np.float32)
    data = LabSet(lab, range(n), [f"img{i}" for i in range(n)], np.full(n, -1), [], crop=size)

    name, width = MODELS[framework]
    cls = ZhangColorizer if framework == "torch" else RegressionColorizer
    options = cls.Options(width=width, batch_size=16, log_every=warmup, checkpoint_every=10**6)
    folder = Path(tempfile.mkdtemp())
    log = LossLog(folder / "loss.csv")
    ctx = FitContext(device="cpu", seed=0, model_dir=folder / name, loss_log=log)
    cls(options).fit(data, None, Budget(steps=warmup + steps), ctx)
    rows = [r for r in log.rows if r["step"] > warmup]  # rows after the warm-up's
    seconds = rows[-1]["seconds"] - log.rows[0]["seconds"]
    print(json.dumps({"images_per_s": (rows[-1]["step"] - warmup) * 16 / seconds}))


def measure(framework: str, threads: int, policy: str | None, args) -> float:
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "GOMP_SPINCOUNT")}
    if policy:
        key, _, value = policy.rpartition("=")
        env[key or "OMP_WAIT_POLICY"] = value
    done = subprocess.run(
        [sys.executable, __file__, "--worker", framework, "--threads", str(threads),
         "--steps", str(args.steps), "--warmup", str(args.warmup), "--size", str(args.size)],
        env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])["images_per_s"]


def busy_loops(n: int) -> list[subprocess.Popen]:
    """``n`` processes spinning until terminated: ``n`` cores' worth of competing work."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def sweep(args, label: str) -> list[tuple[str, str, int, str, list[float]]]:
    frameworks = args.frameworks or list(MODELS)
    rates = {(fw, s): [] for fw in frameworks for s in SETTINGS}
    for _ in range(args.repeats):
        for framework in frameworks:
            for setting in SETTINGS:
                rate = measure(framework, *setting, args)
                rates[framework, setting].append(rate)
                print(f"{label}: {framework} threads={setting[0]} "
                      f"OMP_WAIT_POLICY={setting[1] or 'unset'}: {rate:.1f} img/s",
                      file=sys.stderr, flush=True)
    return [(fw, label, threads, policy or "unset", rates[fw, (threads, policy)])
            for fw in frameworks for threads, policy in SETTINGS]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--load", type=int, default=1, help="busy-looping processes (0: none)")
    parser.add_argument("--frameworks", nargs="+", choices=sorted(MODELS),
                        help="measure only these (default: both)")
    parser.add_argument("--worker", choices=sorted(MODELS), help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.threads, args.steps, args.warmup, args.size)
        return

    started = time.monotonic()
    load_before = os.getloadavg()[0]
    results = sweep(args, "as is")
    if args.load:
        spinners = busy_loops(args.load)
        try:
            results += sweep(args, f"+{args.load} busy")
        finally:
            for p in spinners:
                p.terminate()
            for p in spinners:
                p.wait()
    print(f"\n{os.cpu_count()} CPUs, load average {load_before:.1f} at the start; "
          f"{args.repeats} runs per setting, {args.steps} timed steps each, batch 16, "
          f"{args.size} px; {time.monotonic() - started:.0f} s in all\n")
    print("| framework | machine | threads | OMP_WAIT_POLICY | img/s min | median | max |")
    print("|---|---|--:|---|--:|--:|--:|")
    for framework, label, threads, policy, r in results:
        model, width = MODELS[framework]
        print(f"| {framework} ({model} {width}) | {label} | {threads} | {policy} | "
              f"{min(r):.1f} | {statistics.median(r):.1f} | {max(r):.1f} |")


if __name__ == "__main__":
    main()
