"""SIGKILL during a model of the shipped all.yaml loses at most one checkpoint interval."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

from tests.conftest import ROOT

INTERVAL_MINUTES = 0.01  # 0.6 s, so the test measures several intervals in seconds
LEARNED = range(2, 8)  # all.yaml's regression-mse, zhang family and iizuka


def _overrides(out) -> list[str]:
    sets = ["data.max_images=40", "data.size=16", "data.eval_size=32", "budget.steps=20",
            "metrics=[psnr, colorfulness]", "report.samples=1", "report.bootstrap=100",
            "hints=[1]", f"output_dir={out}",
            # the first learned model trains long enough to be killed in the middle
            "models[2].budget={minutes: 0.15}"]
    sets += [f"models[{i}].options.checkpoint_minutes={INTERVAL_MINUTES}" for i in LEARNED]
    return [x for s in sets for x in ("--set", s)]


def _newest_checkpoint(folder) -> float | None:
    files = list(folder.glob("step-*.keras")) if folder.is_dir() else []
    return max((f.stat().st_mtime for f in files), default=None)


def test_kill_mid_model_loses_at_most_one_checkpoint_interval(tmp_path):
    command = [sys.executable, "-m", "harness", "run", str(ROOT / "configs" / "all.yaml"),
               *_overrides(tmp_path / "results")]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, cwd=tmp_path, env={**os.environ})
    deadline, first = time.monotonic() + 300, None
    while time.monotonic() < deadline and proc.poll() is None:
        found = list((tmp_path / "results").glob("*/models/regression-mse/checkpoints"))
        if found and _newest_checkpoint(found[0]) is not None:
            first = found[0]
            break
        time.sleep(0.1)
    assert first is not None, proc.communicate(timeout=5)[1][-3000:]
    time.sleep(3.0)  # several checkpoint intervals into training
    proc.send_signal(signal.SIGKILL)
    killed_at = time.time()
    proc.wait(timeout=30)
    run_dir = first.parents[2]
    status = json.loads((run_dir / "models" / "regression-mse" / "status.json").read_text())
    assert status["status"] == "running"  # killed mid-model
    lost = killed_at - _newest_checkpoint(first)
    assert lost <= 60 * INTERVAL_MINUTES + 1.0, f"{lost:.2f} s of training since the checkpoint"

    again = subprocess.run([*command, "--resume", str(run_dir)], capture_output=True,
                           text=True, cwd=tmp_path, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    log = (run_dir / "models" / "regression-mse" / "log.txt").read_text()
    resumed = re.search(r"resuming from step (\d+)", log)
    assert resumed and int(resumed.group(1)) > 0, log[-2000:]
    statuses = [json.loads(p.read_text())["status"]
                for p in (run_dir / "models").glob("*/status.json")]
    assert statuses and set(statuses) == {"done"}
