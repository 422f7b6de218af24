"""--resume continues the same experiment or refuses; the run directory is locked while written."""

from __future__ import annotations

import hashlib
import json

import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.config import load_config
from harness.errors import ConfigError, ExitCode
from harness.plugins import load_registry
from harness.run import execute
from harness.rundir import RunDir, RunLocked

CONFIG = """
name: r
device: cpu
seed: 0
data: {{source: demo, size: 16, eval_size: 16, split: random, test_fraction: 0.4}}
budget: {{steps: 2}}
models: [{{plugin: gray}}, {{plugin: mean-prior}}]
metrics: [psnr, colorfulness]
report: {{bootstrap: 100, samples: 1}}
output_dir: {out}
"""


def _tree(run_dir):
    """Digest of every file; ``.lock`` (which names the last process to hold it) excepted."""
    return {str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run_dir.rglob("*")) if p.is_file() and p.name != ".lock"}


@pytest.fixture
def finished(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(CONFIG.format(out=tmp_path / "results"))
    cfg = load_config(path)
    run_dir, code = execute(cfg, load_registry(cfg.plugins))
    assert code == ExitCode.OK
    return path, run_dir


def test_resume_with_another_seed_is_refused_and_touches_nothing(finished):
    path, run_dir = finished
    before = _tree(run_dir)
    result = CliRunner().invoke(main, ["run", str(path), "--set", "seed=1",
                                       "--resume", str(run_dir)])
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "seed (0 -> 1)" in result.output and "Nothing was written" in result.output
    assert _tree(run_dir) == before


def test_resume_with_other_data_is_refused(finished, tmp_path):
    path, run_dir = finished
    before = _tree(run_dir)
    cfg = load_config(path, ["data.size=8", "data.eval_size=16"])
    with pytest.raises(ConfigError, match=r"data\.size \(16 -> 8\)"):
        execute(cfg, load_registry(), run_dir)
    assert _tree(run_dir) == before


def test_report_changes_need_the_flag(finished):
    path, run_dir = finished
    refused = CliRunner().invoke(main, ["run", str(path), "--set", "report.samples=2",
                                        "--resume", str(run_dir)])
    assert refused.exit_code == ExitCode.USAGE and "--allow-changes" in refused.output
    allowed = CliRunner().invoke(main, ["run", str(path), "--set", "report.samples=2",
                                        "--resume", str(run_dir), "--allow-changes"])
    assert allowed.exit_code == ExitCode.OK, allowed.output
    assert "samples: 2" in (run_dir / "config.yaml").read_text()


def test_same_config_resumes(finished):
    path, run_dir = finished
    result = CliRunner().invoke(main, ["run", str(path), "--resume", str(run_dir)])
    assert result.exit_code == ExitCode.OK, result.output


def test_a_locked_run_is_refused_naming_the_holder(finished):
    path, run_dir = finished
    before = _tree(run_dir)
    with RunDir(run_dir).lock():
        cfg = load_config(path)
        with pytest.raises(RunLocked, match=r"PID \d+"):
            execute(cfg, load_registry(), run_dir)
    assert _tree(run_dir) == before
    cfg = load_config(path)
    assert execute(cfg, load_registry(), run_dir)[1] == ExitCode.OK  # released


def test_interrupted_run_names_its_directory(tmp_path, plugin_module):
    plugin_module("interrupting_plugin", """
        from harness import hookimpl
        from harness.colorizer import Colorizer

        class Interrupting(Colorizer):
            stateless = True

            def fit(self, train, val, budget, ctx):
                raise KeyboardInterrupt

            def predict(self, L):
                raise AssertionError("never reached")

        @hookimpl
        def harness_register_colorizers(register):
            register("interrupting", Interrupting, framework="numpy")
    """)
    path = tmp_path / "run.yaml"
    path.write_text(CONFIG.format(out=tmp_path / "results").replace(
        "models: [{plugin: gray}, {plugin: mean-prior}]",
        "models: [{plugin: gray}, {plugin: interrupting}]\nplugins: [interrupting_plugin]"))
    result = CliRunner().invoke(main, ["run", str(path), "--set", "report.samples=1"])
    assert result.exit_code == ExitCode.INTERRUPTED
    [run_dir] = (tmp_path / "results").iterdir()
    assert f"--set report.samples=1 --resume {run_dir}" in result.output


def test_corrupt_model_files_are_redone_on_resume(finished):
    path, run_dir = finished
    summary = (run_dir / "summary.csv").read_text()
    gray = run_dir / "models" / "gray"
    untouched = _tree(run_dir / "models" / "mean-prior")
    for name, damage in [("status.json", b"{not json"), ("pred_ab.npy", b""),
                         ("scores.npz", b"PK\x03\x04garbage")]:
        (gray / name).write_bytes(damage)
        result = CliRunner().invoke(main, ["run", str(path), "--resume", str(run_dir)])
        assert result.exit_code == ExitCode.OK, (name, result.output)
        assert "Traceback" not in result.output
        assert json.loads((gray / "status.json").read_text())["status"] == "done"
        assert (run_dir / "summary.csv").read_text() == summary, name  # the same numbers
        assert _tree(run_dir / "models" / "mean-prior") == untouched
