"""Model jobs on the inline, process and ray backends: same numbers, a killed worker, resume."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.config import load_config
from harness.errors import ExitCode
from harness.execution import describe_exit
from harness.plugins import load_registry
from harness.run import execute

SLEEPER = """
import os, sys, time
from pathlib import Path
import numpy as np
import pandas as pd
from harness import hookimpl
from harness.colorizer import Colorizer, PluginOptions


class Sleeper(Colorizer):
    Options = PluginOptions
    stateless = True

    def fit(self, train, val, budget, ctx):
        marks = Path(os.environ["SLEEPER_DIR"])
        (marks / f"fit-{os.getpid()}-{time.monotonic_ns()}").write_text("")
        if not os.environ.get("SLEEPER_FAST"):  # set on resume: the config must stay the same
            (marks / "pid").write_text(str(os.getpid()))
            time.sleep(60)  # the test kills this worker long before

    def predict(self, L):
        return np.full((*L.shape, 2), 5.0, dtype=np.float32)

    def extra_results(self, test):
        return {name: float(name in sys.modules) for name in ("torch", "tensorflow")}


class KerasProbe(Sleeper):
    # fits nothing, but loads Keras the way the Keras trainer does

    def fit(self, train, val, budget, ctx):
        from harness.keras_env import configure

        configure()
        import keras  # noqa: F401


@hookimpl
def harness_register_colorizers(register):
    register("sleeper", Sleeper, framework="numpy")
    register("keras-probe", KerasProbe, framework="keras")
"""

MODELS = """
  - plugin: mean-prior
  - plugin: zhang
    options: {width: 0.0625, batch_size: 4}
  - plugin: regression-mse
    options: {width: 0.0625, batch_size: 4}"""


def _config(folder, models: str = MODELS, extra: str = "") -> str:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "run.yaml"
    path.write_text(f"""
name: t
device: cpu
data: {{source: demo, size: 16, eval_size: 24, test_fraction: 0.3}}
budget: {{steps: 3}}
models: {models}
metrics: [psnr, ssim, colorfulness, dcf]
plugins: [sleeper_plugin]
report: {{bootstrap: 100, samples: 0}}
output_dir: {folder / "results"}
{extra}""")
    return str(path)


def _execute(path, *overrides, run_dir=None):
    cfg = load_config(path, list(overrides))
    return execute(cfg, load_registry(cfg.plugins, config_dir=cfg.plugin_dir), run_dir)


def _scores(run_dir, model):
    with np.load(run_dir / "models" / model / "scores.npz") as npz:
        return {k: npz[k] for k in npz.files}


@pytest.fixture
def sleeper(plugin_module, tmp_path, monkeypatch):
    monkeypatch.setenv("SLEEPER_DIR", str(tmp_path))
    return plugin_module("sleeper_plugin", SLEEPER)


@pytest.fixture(scope="module")
def inline_run(tmp_path_factory):
    """The reference: the models run inline."""
    run_dir, code = _execute(_config(tmp_path_factory.mktemp("inline")),
                             "execution.backend=inline")
    assert code == ExitCode.OK
    return run_dir


def _assert_same_numbers(run_dir, reference):
    for model in ("mean-prior", "zhang", "regression-mse"):
        ours, theirs = _scores(run_dir, model), _scores(reference, model)
        assert ours.keys() == theirs.keys()
        for name in ours:  # threads may differ (one per worker): summation order only
            np.testing.assert_allclose(ours[name], theirs[name], rtol=1e-4, atol=1e-5,
                                       err_msg=f"{model} {name}")
        assert (run_dir / "models" / model / "weights").is_dir()


def test_process_backend_gives_the_inline_numbers(tmp_path, inline_run):
    run_dir, code = _execute(_config(tmp_path), "execution.backend=process",
                             "execution.workers=2")
    assert code == ExitCode.OK
    _assert_same_numbers(run_dir, inline_run)
    assert "fitting zhang" in (run_dir / "models" / "zhang" / "log.txt").read_text()


@pytest.fixture
def local_ray():
    """A local Ray instance of 2 CPUs, started by the test, no network."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_backend_gives_the_inline_numbers(tmp_path, inline_run, local_ray):
    run_dir, code = _execute(_config(tmp_path), "execution.backend=ray", "execution.workers=2")
    assert code == ExitCode.OK
    _assert_same_numbers(run_dir, inline_run)


def _kill_the_sleeper(tmp_path, backend: str) -> tuple[Path, str, dict, dict]:
    """Run sleeper and gray on two workers of ``backend``, SIGKILL the sleeper's worker once it
    fits; the run's path and config, and the two statuses it left."""
    path = _config(tmp_path, "[{plugin: sleeper}, {plugin: gray}]",
                   f"execution: {{backend: {backend}, workers: 2}}")
    result = []
    runner = threading.Thread(target=lambda: result.append(_execute(path)))
    runner.start()
    pid_file = tmp_path / "pid"
    deadline = time.monotonic() + 120
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(int(pid_file.read_text()), signal.SIGKILL)
    runner.join(120)
    run_dir, code = result[0]
    assert code == ExitCode.MODEL_FAILED
    killed, gray = (json.loads((run_dir / "models" / m / "status.json").read_text())
                    for m in ("sleeper", "gray"))
    assert killed["status"] == "failed" and gray["status"] == "done"
    return run_dir, path, killed, gray


def test_killed_ray_worker_fails_only_its_model(tmp_path, sleeper, local_ray):
    _, _, killed, _ = _kill_the_sleeper(tmp_path, "ray")
    assert "Ray worker died" in killed["error"]


def test_killed_worker_fails_only_its_model_and_resume_redoes_it(tmp_path, sleeper,
                                                                 monkeypatch):
    run_dir, path, killed, gray = _kill_the_sleeper(tmp_path, "process")
    assert "worker killed by SIGKILL" in killed["error"]

    monkeypatch.setenv("SLEEPER_FAST", "1")
    _, code = _execute(path, run_dir=run_dir)
    assert code == ExitCode.OK
    resumed = json.loads((run_dir / "models" / "sleeper" / "status.json").read_text())
    assert resumed["status"] == "done" and resumed["resumed"]
    assert resumed["started"] == killed["started"]
    # a worker imports no framework its model does not use; torch is the host's own (the
    # protocol's resizing and LPIPS), TensorFlow only a Keras model's
    assert resumed["extra"]["tensorflow"] == 0.0
    assert json.loads((run_dir / "models" / "gray" / "status.json").read_text()) == gray
    assert len(list(tmp_path.glob("fit-*"))) == 2


def test_killed_worker_of_a_learned_model_resumes_from_its_checkpoint(tmp_path):
    """SIGKILL of a training worker (a real model, checkpointing): only it fails, naming the
    signal, and --resume continues it from its newest checkpoint, not from step 0."""
    import multiprocessing as mp

    models = ("[{plugin: zhang, budget: {minutes: 0.3}, options: {width: 0.0625, batch_size: 4,"
              " checkpoint_minutes: 0.005}}, {plugin: mean-prior}]")
    path = _config(tmp_path, models, "execution: {backend: process, workers: 2}")
    result = []
    runner = threading.Thread(target=lambda: result.append(_execute(path)))
    runner.start()
    deadline, worker = time.monotonic() + 120, None
    while worker is None and time.monotonic() < deadline:
        found = list((tmp_path / "results").glob("t-*/models/zhang/checkpoints/last.pt"))
        if found:
            worker = next((p for p in mp.active_children() if "zhang" in p.name), None)
        time.sleep(0.05)
    assert worker is not None, "zhang never wrote a checkpoint"
    time.sleep(1.0)  # a few more checkpoints
    os.kill(worker.pid, signal.SIGKILL)
    runner.join(120)
    run_dir, code = result[0]
    assert code == ExitCode.MODEL_FAILED
    killed = json.loads((run_dir / "models" / "zhang" / "status.json").read_text())
    assert killed["status"] == "failed" and "worker killed by SIGKILL" in killed["error"]
    kept = json.loads((run_dir / "models" / "mean-prior" / "status.json").read_text())
    assert kept["status"] == "done"

    _, code = _execute(path, run_dir=run_dir)
    assert code == ExitCode.OK
    resumed = re.search(r"resuming from step (\d+)",
                        (run_dir / "models" / "zhang" / "log.txt").read_text())
    assert resumed and int(resumed.group(1)) > 0
    assert json.loads((run_dir / "models" / "zhang" / "status.json").read_text())["resumed"]
    assert json.loads((run_dir / "models" / "mean-prior" / "status.json").read_text()) == kept


def test_a_keras_job_never_imports_torch(tmp_path, sleeper):
    """A Keras model fits and predicts in a TensorFlow-only worker and is scored (LPIPS: torch)
    in a second one; a numpy model's worker has no TensorFlow."""
    path = _config(tmp_path, "[{plugin: keras-probe}, {plugin: sleeper}]",
                   "execution: {backend: process, workers: 2}")
    os.environ["SLEEPER_FAST"] = "1"
    try:
        run_dir, code = _execute(path)
    finally:
        del os.environ["SLEEPER_FAST"]
    assert code == ExitCode.OK
    probe = json.loads((run_dir / "models" / "keras-probe" / "status.json").read_text())
    assert probe["status"] == "done"
    assert probe["extra"] == {"torch": 0.0, "tensorflow": 1.0}
    assert set(_scores(run_dir, "keras-probe")) >= {"psnr", "ssim"}
    assert not (run_dir / "models" / "keras-probe" / "pred_ab_input.npy").exists()
    sleeper_status = json.loads((run_dir / "models" / "sleeper" / "status.json").read_text())
    assert sleeper_status["extra"]["tensorflow"] == 0.0


def test_a_worker_ends_when_its_parent_is_killed(tmp_path, sleeper):
    """No orphan keeps writing into a run after SIGKILL of ``harness run`` itself."""
    import subprocess
    import sys

    path = _config(tmp_path, "[{plugin: sleeper}]", "execution: {backend: process}")
    parent = subprocess.Popen([sys.executable, "-m", "harness", "run", path],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    pid_file = tmp_path / "pid"
    deadline = time.monotonic() + 120
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    worker = int(pid_file.read_text())
    parent.send_signal(signal.SIGKILL)
    parent.wait(30)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(worker, signal.SIGKILL)
    raise AssertionError("the worker outlived its killed parent")


def test_exit_codes_are_described():
    assert describe_exit(-signal.SIGSEGV) == "worker killed by SIGSEGV"
    assert describe_exit(3) == "worker exited with code 3"


def test_sweep_runs_each_seed_and_reports_them_together(tmp_path, sleeper, monkeypatch,
                                                        caplog):
    from harness.report.build import build_report
    from harness.sweep import parse_seeds, sweep

    monkeypatch.setenv("SLEEPER_FAST", "1")
    assert parse_seeds("0-2,7") == [0, 1, 2, 7]
    with pytest.raises(Exception, match="counts down"):
        parse_seeds("3-1")
    path = _config(tmp_path, "[{plugin: gray}, {plugin: sleeper}]")
    with caplog.at_level(logging.INFO, logger="harness"):
        sweep_dir, code = sweep(path, [0, 1], ["execution.backend=inline"])
    assert code == ExitCode.OK
    # one dispatch of the (model x seed) jobs, each named with its seed
    assert "[4/4] done" in caplog.text and "sleeper (seed 1)" in caplog.text
    manifest = json.loads((sweep_dir / "sweep.json").read_text())
    runs = [Path(manifest["runs"][s]) for s in ("0", "1")]
    assert [load_config(r / "config.yaml").seed for r in runs] == [0, 1]
    assert all(r.parent == sweep_dir for r in runs)
    _, code = sweep(path, [0, 1], ["execution.backend=inline"], sweep_dir)  # all kept
    assert code == ExitCode.OK and len(list(tmp_path.glob("fit-*"))) == 2
    build_report([sweep_dir], tmp_path / "report", formats=("csv",), max_samples=0)
    agg = pd.read_csv(tmp_path / "report" / "report_aggregate.csv")
    assert set(agg["n_runs"]) == {2} and {"gray", "sleeper"} <= set(agg["model"])
