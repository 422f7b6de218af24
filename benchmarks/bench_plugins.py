"""Start-up of ``harness plugins``: lazy registration against importing every implementation.

Since registration records import paths, ``harness plugins`` imports no framework. The
eager arm is what the host did before: the same registry, then every colorizer's
implementation imported (``Entry.load``), which pulls in torch and TensorFlow exactly as
registering ``zhang`` and ``iizuka`` used to. Both arms are fresh interpreters, run
interleaved, round after round, so drift of the machine's speed hits both alike.

Printed: wall seconds per arm (min / median / max over rounds) and the ratio of medians, and
the ratio per round. Run: ``python benchmarks/bench_plugins.py [--rounds 7]``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

ARMS = {
    "lazy (harness plugins)": [sys.executable, "-m", "harness", "plugins"],
    "eager (import every colorizer)": [
        sys.executable, "-c",
        "from harness.cli import main; from harness.plugins import load_registry\n"
        "r = load_registry()\n"
        "[e.load() for e in r.entries['colorizer'].values()]\n"
        "main(['plugins'])"],
}


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    for command in ARMS.values():  # warm the page cache for both
        timed(command)
    seconds: dict[str, list[float]] = {name: [] for name in ARMS}
    for _ in range(args.rounds):
        for name, command in ARMS.items():
            seconds[name].append(timed(command))
    print(f"{'arm':<32} {'min':>7} {'median':>7} {'max':>7}  (seconds, {args.rounds} rounds)")
    for name, values in seconds.items():
        print(f"{name:<32} {min(values):7.2f} {statistics.median(values):7.2f} "
              f"{max(values):7.2f}")
    lazy, eager = seconds.values()
    ratios = [e / la for la, e in zip(lazy, eager)]
    print(f"eager / lazy: median ratio {statistics.median(ratios):.1f}x per round "
          f"(min {min(ratios):.1f}x, max {max(ratios):.1f}x); ratio of medians "
          f"{statistics.median(eager) / statistics.median(lazy):.1f}x")


if __name__ == "__main__":
    main()
