"""The main job under ``inline`` and under ``process`` with 2 workers: wall time and numbers.

    python benchmarks/bench_execution.py [CONFIG] [--repeats 3] [--workers 2]
                                         [--set budget.steps=2500 ...]

Each repeat runs ``harness run`` once per backend, in a fresh process each and in alternating
order (inline first on even repeats, process first on odd ones), so drift in the machine's
load falls on both alike. The decode cache is warmed first, outside the timing. Prints each
backend's min / median / max seconds, the ratio of the medians (process / inline), and the
largest difference between the two backends' summary.csv values, model by model. The
default overrides reduce all.yaml (fewer steps, the levin and welsh rows kept) so a repeat
takes minutes; pass ``--set budget.steps=2500`` for the real main job.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REDUCED = ["budget.steps=300"]


def _run(config: str, overrides: list[str], backend: str, out: Path, workers: int
         ) -> tuple[float, Path]:
    sets = [*overrides, f"execution.backend={backend}", f"output_dir={out}", "report.samples=0"]
    if backend == "process":
        sets.append(f"execution.workers={workers}")
    cmd = [sys.executable, "-m", "harness", "run", config,
           *(x for s in sets for x in ("--set", s))]
    t0 = time.monotonic()
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    seconds = time.monotonic() - t0
    return seconds, max(out.iterdir(), key=lambda p: p.stat().st_mtime)


def _largest_difference(a: Path, b: Path) -> dict[str, tuple[str, float, float]]:
    """Per model, the metric whose value differs most between the runs relative to the width of
    its 95% interval: ``(metric, |difference|, |difference| / interval width)``."""
    import pandas as pd

    x, y = (pd.read_csv(p / "summary.csv") for p in (a, b))
    merged = x.merge(y, on=["model", "metric"], suffixes=("_a", "_b"))
    merged["diff"] = (merged["value_a"] - merged["value_b"]).abs()
    width = (merged["ci_high_a"] - merged["ci_low_a"]).abs()
    merged["share"] = (merged["diff"] / width.where(width > 0)).fillna(0.0)
    top = merged.sort_values(["share", "diff"]).groupby("model").tail(1)
    return {r.model: (r.metric, r.diff, r.share) for r in top.itertuples()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default=str(ROOT / "configs" / "all.yaml"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="process workers (default 2; "
                        "1 gives every job all cores, as inline does: the same numbers)")
    parser.add_argument("--set", dest="overrides", action="append", default=None,
                        metavar="KEY=VALUE", help=f"config override (default: {REDUCED})")
    args = parser.parse_args()
    overrides = REDUCED if args.overrides is None else args.overrides
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    sys.path.insert(0, str(ROOT))
    from harness.config import load_config
    from harness.data.loader import load_splits
    from harness.plugins import load_registry

    cfg = load_config(args.config, overrides)
    load_splits(cfg.data, load_registry(cfg.plugins, config_dir=cfg.plugin_dir), cfg.seed)
    times: dict[str, list[float]] = {"inline": [], "process": []}
    diffs: dict[str, tuple[str, float, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-execution-") as scratch:
        for i in range(args.repeats):
            order = ("inline", "process") if i % 2 == 0 else ("process", "inline")
            dirs = {}
            for backend in order:
                out = Path(scratch) / f"{backend}-{i}"
                out.mkdir()
                seconds, dirs[backend] = _run(args.config, overrides, backend, out,
                                              args.workers)
                times[backend].append(seconds)
                print(f"repeat {i + 1}/{args.repeats} {backend}: {seconds:.1f} s", flush=True)
            for model, d in _largest_difference(dirs["inline"], dirs["process"]).items():
                diffs[model] = max(diffs.get(model, d), d, key=lambda t: (t[2], t[1]))
    print(f"\n{'backend':<22} {'min':>8} {'median':>8} {'max':>8}")
    for backend, values in times.items():
        label = backend + (f" ({args.workers} workers)" if backend == "process" else "")
        print(f"{label:<22} {min(values):8.1f} {statistics.median(values):8.1f} "
              f"{max(values):8.1f}")
    ratio = statistics.median(times["process"]) / statistics.median(times["inline"])
    print(f"\nprocess / inline (medians): {ratio:.2f}")
    print("largest |inline - process| of a summary.csv value, per model, relative to the "
          "width of its 95% interval:")
    for model, (metric, d, share) in sorted(diffs.items()):
        print(f"  {model:<24} {metric:<22} {d:10.3g}  {100 * share:5.1f}% of the interval")


if __name__ == "__main__":
    main()
