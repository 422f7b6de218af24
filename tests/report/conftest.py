"""Report fixtures: finished runs made with the tests' own ``tinted`` colorizer plugin."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from harness.config import load_config
from harness.plugins import load_registry
from harness.run import execute

#: A throwaway colorizer that logs a training curve (the baselines have none) and one that fails.
PLUGIN = """
import numpy as np
from harness import hookimpl
from harness.colorizer import Colorizer, PluginOptions


class Options(PluginOptions):
    fail: bool = False


class Tinted(Colorizer):
    Options = Options

    def fit(self, train, val, budget, ctx):
        if self.options.fail:
            raise RuntimeError("deliberate failure in fit")
        for step in range(1, 31):
            ctx.loss_log.append(step, 0, 4.0 / step, 100.0, 0.01 * step)
        ctx.loss_log.flush()

    def predict(self, L):
        ab = np.empty((*L.shape, 2), dtype=np.float32)
        ab[..., 0] = (L - 50.0) * 0.4
        ab[..., 1] = 30.0 - 0.3 * L
        return ab

    def save(self, directory):
        pass

    def load(self, directory):
        pass


@hookimpl
def harness_register_colorizers(register):
    register("tinted", Tinted, framework="numpy", summary="tint by luminance (tests)")
"""


@pytest.fixture(scope="session")
def execute_config():
    """Run a config file as ``harness run`` would: ``execute_config(path, *overrides)``."""

    def run(path: Path | str, *overrides: str) -> Path:
        cfg = load_config(path, list(overrides))
        run_dir, _ = execute(cfg, load_registry(cfg.plugins, config_dir=cfg.plugin_dir))
        return run_dir

    return run


@pytest.fixture(scope="session")
def plugin_run(tmp_path_factory, execute_config):
    """Run a small demo config with the ``tinted`` plugin: ``plugin_run(name, models)``.

    ``models`` is the YAML list of models; the run uses six test images, psnr, colorfulness,
    dcf and auc, and a report with 100 bootstrap samples. Returns the run directory.
    """

    def run(name: str, models: str) -> Path:
        base = tmp_path_factory.mktemp(name)
        (base / "report_test_plugin.py").write_text(textwrap.dedent(PLUGIN))
        (base / "run.yaml").write_text(f"""
name: {name}
device: cpu
data: {{source: demo, size: 16, eval_size: 24, test_fraction: 0.7}}
budget: {{steps: 2}}
models: {models}
metrics: [psnr, colorfulness, dcf, auc]
plugins: [report_test_plugin]
report: {{bootstrap: 100, samples: 2}}
output_dir: {base / "results"}
""")
        try:  # the plugin module is found in the config's folder
            return execute_config(base / "run.yaml")
        finally:
            sys.modules.pop("report_test_plugin", None)

    return run
