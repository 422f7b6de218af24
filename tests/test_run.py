"""End-to-end runs: outputs, failed models, divergence, kill and resume."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from harness.config import load_config
from harness.errors import ExitCode
from harness.plugins import load_registry
from harness.run import execute

FLAKY = """
import os, time
import numpy as np
from harness import hookimpl
from harness.colorizer import Colorizer, PluginOptions
from harness.errors import TrainingDiverged


class Options(PluginOptions):
    mode: str = "ok"
    seconds: float = 0.0


class Flaky(Colorizer):
    Options = Options
    stateless = True

    def fit(self, train, val, budget, ctx):
        if self.options.mode == "raise":
            raise RuntimeError("deliberate failure in fit")
        if self.options.mode == "nan":
            raise TrainingDiverged("loss became nan at step 3")
        with open(os.environ["FLAKY_LOG"], "a") as f:
            f.write("fit\\n")
        if not os.environ.get("FLAKY_FAST"):  # set on resume: the config must stay the same
            time.sleep(self.options.seconds)

    def predict(self, L):
        return np.full((*L.shape, 2), 10.0, dtype=np.float32)


@hookimpl
def harness_register_colorizers(register):
    register("flaky", Flaky, framework="numpy")
"""


def _config(tmp_path, models: str, extra: str = "") -> str:
    path = tmp_path / "run.yaml"
    path.write_text(f"""
name: t
device: cpu
data: {{source: demo, size: 16, eval_size: 24, test_fraction: 0.3}}
budget: {{steps: 2}}
models: {models}
metrics: [psnr, ssim, colorfulness, dcf]
plugins: [flaky_plugin]
report: {{bootstrap: 100, samples: 2}}
output_dir: {tmp_path / "results"}
{extra}""")
    return str(path)


@pytest.fixture
def flaky(plugin_module, tmp_path, monkeypatch):
    monkeypatch.setenv("FLAKY_LOG", str(tmp_path / "fits.log"))
    return plugin_module("flaky_plugin", FLAKY)


def _execute(path, *overrides):
    cfg = load_config(path, list(overrides))
    return execute(cfg, load_registry(cfg.plugins))


def test_smoke_run_writes_every_output(tmp_path, flaky):
    run_dir, code = _execute(_config(tmp_path, "[{plugin: gray}, {plugin: mean-prior}]"))
    assert code == ExitCode.OK
    for name in ("config.yaml", "environment.json", "data_report.json", "per_image.csv",
                 "summary.csv", "table.md", "samples.png"):
        assert (run_dir / name).stat().st_size > 0, name
    env = json.loads((run_dir / "environment.json").read_text())
    assert env["packages"]["torch"] and env["device"] == "cpu"
    assert any(d["name"] == "colorization-harness" for d in env["plugin_distributions"])
    summary = pd.read_csv(run_dir / "summary.csv")
    for col in ("model", "metric", "value", "ci_low", "ci_high", "n", "p_vs_ref"):
        assert col in summary.columns
    psnr = summary[(summary.metric == "psnr") & (summary.model == "gray")].iloc[0]
    assert psnr.ci_low <= psnr.value <= psnr.ci_high and psnr.n == 2
    per_image = pd.read_csv(run_dir / "per_image.csv")
    assert set(per_image.columns) == {"model", "image", "metric", "value"}
    table = (run_dir / "table.md").read_text()
    assert "psnr ↑ (dB)" in table and "dcf ↓" in table and "**" in table
    assert "(ground truth)" in table  # colorfulness is descriptive: truth shown beside models
    report = json.loads((run_dir / "data_report.json").read_text())
    assert report["splits"]["test"] == 2 and report["used"] == 9


def test_failures_get_rows_and_nonzero_exit(tmp_path, flaky):
    models = ("[{plugin: flaky, name: broken, options: {mode: raise}},"
              " {plugin: flaky, name: nan, options: {mode: nan}}, {plugin: gray}]")
    run_dir, code = _execute(_config(tmp_path, models))
    assert code == ExitCode.MODEL_FAILED
    status = json.loads((run_dir / "models" / "broken" / "status.json").read_text())
    assert status["status"] == "failed" and "deliberate failure" in status["error"]
    assert "diverged" in json.loads((run_dir / "models" / "nan" / "status.json").read_text())[
        "error"]
    assert "Traceback" in (run_dir / "models" / "broken" / "log.txt").read_text()
    table = (run_dir / "table.md").read_text()
    assert "| broken | failed: RuntimeError: deliberate failure in fit |" in table
    assert "| gray (ref) |" in table


def test_bad_plugin_options_name_the_key(tmp_path, flaky, cli):
    out = cli("run", _config(tmp_path, "[{plugin: flaky, options: {mdoe: raise}}]"),
              env={"PYTHONPATH": str(tmp_path)})
    assert out.returncode == ExitCode.USAGE
    assert "models[0].options.mdoe" in out.stderr and "Did you mean 'mode'" in out.stderr
    assert "Traceback" not in out.stderr


def test_killed_run_resumes_without_redoing_finished_models(tmp_path, flaky, monkeypatch):
    path = _config(tmp_path, "[{plugin: flaky, name: first}, "
                             "{plugin: flaky, name: slow, options: {seconds: 60}}]")
    env_path = str(tmp_path.parent)
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run", path],
                            env={**__import__("os").environ,
                                 "PYTHONPATH": f"{tmp_path}:{env_path}"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    results = tmp_path / "results"
    deadline = time.monotonic() + 120
    slow_status = None
    while time.monotonic() < deadline:
        slow_status = next(results.glob("*/models/slow/status.json"), None)
        if slow_status is not None:
            break
        time.sleep(0.2)
    assert slow_status is not None, proc.communicate(timeout=5)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    run_dir = slow_status.parents[2]
    first_status = (run_dir / "models" / "first" / "status.json").read_text()
    assert json.loads(first_status)["status"] == "done"
    assert (tmp_path / "fits.log").read_text().count("fit") == 2

    monkeypatch.setenv("FLAKY_FAST", "1")
    cfg = load_config(path)
    _, code = execute(cfg, load_registry(cfg.plugins), run_dir)
    assert code == ExitCode.OK
    assert (run_dir / "models" / "first" / "status.json").read_text() == first_status
    assert (tmp_path / "fits.log").read_text().count("fit") == 3  # only `slow` was redone
    for path in run_dir.rglob("*.json"):
        json.loads(path.read_text())  # nothing half-written
    assert not list(run_dir.rglob(".*.tmp")) and "| slow |" in (run_dir / "table.md").read_text()


def test_learned_state_without_save_fails_the_model_clearly(tmp_path, plugin_module):
    plugin_module("forgetful_plugin", """
        import numpy as np
        from harness import hookimpl
        from harness.colorizer import Colorizer

        class Forgetful(Colorizer):
            def fit(self, train, val, budget, ctx):
                self.tint = 12.0

            def predict(self, L):
                return np.full((*L.shape, 2), self.tint, dtype=np.float32)

        @hookimpl
        def harness_register_colorizers(register):
            register("forgetful", Forgetful, framework="numpy")
    """)
    config = tmp_path / "c.yaml"
    config.write_text(f"""
device: cpu
data: {{source: demo, size: 16, eval_size: 16}}
models: [{{plugin: gray}}, {{plugin: forgetful}}]
metrics: [psnr]
plugins: [forgetful_plugin]
report: {{bootstrap: 100}}
output_dir: {tmp_path / "results"}
""")
    cfg = load_config(config)
    run_dir, code = execute(cfg, load_registry(cfg.plugins, config_dir=cfg.plugin_dir))
    status = json.loads((run_dir / "models" / "forgetful" / "status.json").read_text())
    assert code == 1 and status["status"] == "failed"
    assert "stateless = True" in status["error"] and "save()" in status["error"]
    gray = json.loads((run_dir / "models" / "gray" / "status.json").read_text())
    assert gray["status"] == "done"
