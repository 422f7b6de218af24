"""Every file of a finished run, damaged in a copy: resume, report and colorize stay clean.

For each file (truncated, emptied or overwritten with garbage, in turn) none of the three
commands may end in a traceback, the numbers a resume reports must be the undamaged run's,
and a resume must not rewrite the files of models it had no reason to redo.
"""

from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from harness.cli import main
from harness.config import load_config
from harness.errors import ExitCode
from harness.plugins import load_registry
from harness.run import execute

CONFIG = """
name: faults
device: cpu
data: {{source: demo, size: 16, eval_size: 16}}
budget: {{steps: 3}}
models:
  - plugin: gray
  - plugin: mean-prior
  - plugin: zhang
    options: {{width: 0.03125, batch_size: 4, checkpoint_every: 1}}
  - plugin: regression-mse
    options: {{width: 0.0625, batch_size: 4, checkpoint_every: 1}}
metrics: [psnr, colorfulness]
report: {{bootstrap: 100, samples: 1}}
output_dir: {out}
"""
MODES = ("truncated", "empty", "garbage")
#: What a resume rewrites by design (outputs derived afresh from the data and the rows).
REGENERATED = {"config.yaml", "environment.json", "data_report.json", "test_lab.npy",
               "timings.json", "per_image.csv", "summary.csv", "table.md", "samples.png",
               "report.html", "report.md", "table.tex"}
NUMBERS = ["value", "ci_low", "ci_high"]


def _damage(path, mode: str) -> None:
    data = path.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 2], "empty": b"",
                      "garbage": bytes(range(256)) * 4}[mode])


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    base = tmp_path_factory.mktemp("faults")
    config = base / "run.yaml"
    config.write_text(CONFIG.format(out=base / "results"))
    cfg = load_config(config)
    run_dir, code = execute(cfg, load_registry(cfg.plugins))
    assert code == ExitCode.OK
    photo = base / "photo.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(photo)
    files = sorted(p.relative_to(run_dir) for p in run_dir.rglob("*")
                   if p.is_file() and p.name != ".lock")
    return config, run_dir, photo, files


def _clean(result) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        f"uncaught {type(result.exception).__name__}: {result.exception}"
    assert "Traceback" not in result.output, result.output[-2000:]


def test_every_file_damaged_in_turn(finished, tmp_path):
    config, run_dir, photo, files = finished
    summary = pd.read_csv(run_dir / "summary.csv")
    models = [p.name for p in (run_dir / "models").iterdir()]
    assert len(files) > 30  # the walk covers checkpoints, weights, rows and reports
    for i, rel in enumerate(files):
        mode = MODES[i % len(MODES)]
        copy = tmp_path / f"copy{i}"
        shutil.copytree(run_dir, copy)
        _damage(copy / rel, mode)
        owner = rel.parts[1] if rel.parts[0] == "models" else None
        kept = {p: _digest(p) for m in models if m != owner
                for p in (copy / "models" / m).rglob("*")
                if p.is_file() and p.name not in {"log.txt", "status.json"}}
        where = f"{rel} ({mode})"

        resumed = CliRunner().invoke(main, ["run", str(config), "--resume", str(copy)])
        _clean(resumed)
        assert resumed.exit_code in (ExitCode.OK, ExitCode.USAGE), (where, resumed.output)
        if resumed.exit_code == ExitCode.OK:
            again = pd.read_csv(copy / "summary.csv")
            pd.testing.assert_frame_equal(again[["model", "metric"]], summary[["model", "metric"]])
            np.testing.assert_allclose(again[NUMBERS], summary[NUMBERS], rtol=1e-6, err_msg=where)
            changed = [p for p, d in kept.items() if _digest(p) != d]
            assert not changed, (where, changed)
        elif rel.name not in ("config.yaml", "environment.json"):
            raise AssertionError(f"{where}: resume refused: {resumed.output}")

        report = CliRunner().invoke(main, ["report", str(copy), "--out",
                                           str(tmp_path / f"report{i}"), "--format", "md"])
        _clean(report)
        assert report.exit_code in (ExitCode.OK, ExitCode.USAGE), (where, report.output)

        model = ("zhang", "regression-mse", "mean-prior")[i % 3]
        colorized = CliRunner().invoke(main, ["colorize", "--run", str(copy), "--model", model,
                                              str(photo), "--out", str(tmp_path / f"col{i}")])
        _clean(colorized)
        assert colorized.exit_code in (ExitCode.OK, ExitCode.MODEL_FAILED, ExitCode.USAGE), \
            (where, colorized.output)
        shutil.rmtree(copy)
