"""harness compare: paired differences between two models of the same runs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.metrics import Metric
from harness.metrics.basic import METRICS
from harness.report.compare import paired_difference

DCF = next(m for m in METRICS if m.name == "dcf")
PSNR = next(m for m in METRICS if m.name == "psnr")


def test_per_image_difference_interval_covers_the_shift():
    rng = np.random.default_rng(0)
    b = rng.normal(20, 2, 60)
    got = paired_difference(PSNR, b + 1.0 + rng.normal(0, 0.1, 60), b)
    assert got["ci_low"] < 1.0 < got["ci_high"] and got["ci_high"] - got["ci_low"] < 0.2
    assert got["p"] < 1e-6 and got["better"] == "a" and got["test"] == "wilcoxon"


def test_dataset_level_difference_uses_the_aggregate_on_joint_resamples():
    rng = np.random.default_rng(1)
    truth = rng.normal(60, 5, 40)
    near = np.stack([truth + rng.normal(0, 1, 40), truth], axis=1)
    far = np.stack([truth - 20 + rng.normal(0, 1, 40), truth], axis=1)
    got = paired_difference(DCF, near, far)
    assert got["diff"] == pytest.approx(DCF.value(near) - DCF.value(far))
    assert got["diff"] < -15 and got["ci_high"] < 0 and got["better"] == "a"
    assert got["test"] == "paired bootstrap" and got["p"] < 0.01


def test_descriptive_metric_has_no_winner():
    metric = Metric("cf", lambda batch: None, higher_is_better=None)
    assert paired_difference(metric, np.arange(5.0), np.arange(5.0) + 1)["better"] == ""


def test_cli_compares_two_models_of_a_run(plugin_run, tmp_path):
    run = plugin_run("compare_test", "[{plugin: gray}, {plugin: tinted}]")
    out = tmp_path / "rows.csv"
    result = CliRunner().invoke(main, ["compare", str(run), "--a", "tinted", "--b", "gray",
                                       "--csv", str(out)])
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out)
    assert set(frame["metric"]) == {"psnr", "colorfulness", "dcf", "auc"}
    assert "| colorfulness |" in result.output
    result = CliRunner().invoke(main, ["compare", str(run), "--a", "tinted", "--b", "nope"])
    assert result.exit_code == 2 and "model 'nope' did not finish" in result.output
