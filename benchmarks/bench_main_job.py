"""Where the main job's time goes: all.yaml (or another config) run once, its phases timed.

    python benchmarks/bench_main_job.py [CONFIG] [--set budget.steps=30 ...] [--warm-cache]

Runs the config in this process as ``harness run`` does and prints one table: start-up (the
harness's imports), config and plugin registry (which imports torch, TensorFlow and Keras
through the plugins), then the run's own phases from its ``timings.json`` (setup, data with
the decode cache, each model's fit and its saving, prediction and scoring, tables, report),
and for each learned model its training rate from ``status.json``. The decode cache and the
matmul probe's cache start empty (a fresh ``HARNESS_CACHE_DIR``), as on a new machine, unless
``--warm-cache``; results go to a temporary folder unless ``--set output_dir=...``.
"""

from __future__ import annotations

import time

STARTED = time.monotonic()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default=str(ROOT / "configs" / "all.yaml"))
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="config override, as for harness run")
    parser.add_argument("--warm-cache", action="store_true",
                        help="use the usual harness cache instead of an empty one")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-main-job-"))
    if not args.warm_cache:
        os.environ["HARNESS_CACHE_DIR"] = str(scratch / "cache")
    if not any(o.startswith("output_dir=") for o in args.overrides):
        args.overrides.append(f"output_dir={scratch / 'results'}")

    import logging

    from harness.config import load_config
    from harness.plugins import load_registry
    from harness.run import execute

    logging.basicConfig(level=logging.WARNING)
    phases = [("start-up (imports)", time.monotonic() - STARTED)]
    mark = time.monotonic()
    cfg = load_config(args.config, args.overrides)
    registry = load_registry(cfg.plugins)
    phases.append(("config and plugin registry", time.monotonic() - mark))
    run_dir, code = execute(cfg, registry)
    timings = json.loads((run_dir / "timings.json").read_text())
    phases += [(p["phase"], p["seconds"]) for p in timings["phases"]]
    total = time.monotonic() - STARTED

    print(f"\n{args.config} {' '.join(args.overrides)}\nrun {run_dir} (exit {code}); "
          f"load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}\n")
    width = max(len(name) for name, _ in phases) + 2
    print(f"| {'phase':<{width}} | seconds | share |")
    print(f"|{'-' * (width + 2)}|--------:|------:|")
    for name, seconds in phases:
        print(f"| {name:<{width}} | {seconds:7.1f} | {seconds / total:5.1%} |")
    print(f"| {'total':<{width}} | {total:7.1f} |       |")
    rows, probe = [], {}
    for model in cfg.models:
        status = json.loads((run_dir / "models" / model.label / "status.json").read_text())
        c = status.get("compute")
        if c:
            gflop = c["flops_per_step"] / 1e9 if c["flops_per_step"] is not None else None
            rows.append((model.label, gflop, c["steps"], c["train_seconds"], c["images_per_s"],
                         c["achieved_gflops"], c["percent_of_attainable"]))
            probe = c.get("probe") or probe
    if rows:
        print(f"\n| {'model':<20} | GFLOP/step | steps | train s | img/s | GFLOP/s | % attain. |")
        print(f"|{'-' * 22}|-----------:|------:|--------:|------:|--------:|----------:|")
        for label, gflop, steps, seconds, rate, achieved, share in rows:
            print(f"| {label:<20} | {_g(gflop):>10} | {steps:5d} | {seconds:7.1f} | "
                  f"{_g(rate):>5} | {_g(achieved):>7} | {_g(share):>9} |")
        print(f"\nattainable: {probe.get('gflops')} GFLOP/s ({probe.get('dtype')} "
              f"{probe.get('size')}-square torch.mm, {probe.get('threads')} threads)")


def _g(x: float | None) -> str:
    return "" if x is None else f"{x:.3g}"


if __name__ == "__main__":
    main()
