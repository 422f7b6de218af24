"""Hint-taking and oracle models in a run: NAME@N rows, shared hints, marks, ranking, resume."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import harness.run
from harness.config import load_config
from harness.data.dataset import LabSet
from harness.errors import ConfigError, ExitCode, HarnessError
from harness.hints import sample_hints
from harness.plugins import load_registry
from harness.report.build import build_report
from harness.report.collect import load_run
from harness.run import execute, load_trained

#: Two hint-taking colorizers that record every L and Hints they are given and return the hinted
#: ab (grey elsewhere), so more hints score better than grey.
RECORDERS = """
import os
from pathlib import Path

import numpy as np
from harness import hookimpl
from harness.colorizer import Colorizer


class Recorder(Colorizer):
    takes_hints = True
    stateless = True

    def fit(self, train, val, budget, ctx):
        with open(Path(os.environ["HINTS_LOG"]) / "fits.log", "a") as f:
            f.write(type(self).__name__ + "\\n")

    def predict(self, L, hints=None):
        folder = Path(os.environ["HINTS_LOG"])
        k = len(list(folder.glob(f"{type(self).__name__}-*.npz")))
        np.savez(folder / f"{type(self).__name__}-{k}.npz", L=L, mask=hints.mask, ab=hints.ab)
        return np.array(hints.ab)


class Second(Recorder):
    pass


@hookimpl
def harness_register_colorizers(register):
    register("recorder", Recorder, framework="numpy")
    register("second", Second, framework="numpy")
"""

COUNTS = [0, 3, 300]  # 300 patches of up to 5 x 5 px cover most of a 24 px image


@pytest.fixture
def recorders(plugin_module, tmp_path, monkeypatch):
    log = tmp_path / "hints-log"
    log.mkdir()
    monkeypatch.setenv("HINTS_LOG", str(log))
    plugin_module("recorders_plugin", RECORDERS)
    return log


def _config(tmp_path, models: str, extra: str = "") -> str:
    path = tmp_path / "run.yaml"
    path.write_text(f"""
name: h
device: cpu
data: {{source: demo, size: 16, eval_size: 24, test_fraction: 0.3}}
budget: {{steps: 1}}
models: {models}
metrics: [psnr, colorfulness]
plugins: [recorders_plugin]
report: {{bootstrap: 100, samples: 2}}
output_dir: {tmp_path / "results"}
{extra}""")
    return str(path)


def _execute(path, *overrides, run_dir=None):
    cfg = load_config(path, list(overrides))
    return execute(cfg, load_registry(cfg.plugins), run_dir)


HINTED = ("[{plugin: recorder}, {plugin: gray}, {plugin: mean-prior}, {plugin: second}]",
          f"hints: {COUNTS}")


def test_hint_rows_share_hints_and_are_marked_never_ranked(tmp_path, recorders):
    run_dir, code = _execute(_config(tmp_path, *HINTED))
    assert code == ExitCode.OK
    lab = np.load(run_dir / "test_lab.npy")
    # Each count: the same hints for both methods, drawn from the truth at the evaluation size
    # (24 px, not the models' 16 px), with L at that size too.
    for k, n in enumerate(COUNTS):
        first = np.load(recorders / f"Recorder-{k}.npz")
        second = np.load(recorders / f"Second-{k}.npz")
        expected = sample_hints(lab[..., 1:], n, 0, np.arange(len(lab)))
        for got in (first, second):
            np.testing.assert_array_equal(got["mask"], expected.mask)
            np.testing.assert_array_equal(got["ab"], expected.ab)
            np.testing.assert_array_equal(got["L"], lab[..., 0])
        assert int(first["mask"].sum()) == 0 if n == 0 else first["mask"].any()
    assert (recorders / "fits.log").read_text().split() == ["Recorder", "Second"]  # one fit each
    for n in COUNTS:
        status = json.loads((run_dir / "models" / f"recorder@{n}" / "status.json").read_text())
        assert status["status"] == "done" and status["hints"] == n
        assert (run_dir / "models" / f"second@{n}" / "pred_ab.npy").exists()
    assert not (run_dir / "models" / "recorder" / "status.json").exists()  # the fit is no row

    summary = pd.read_csv(run_dir / "summary.csv", keep_default_na=False)
    psnr = summary[summary.metric == "psnr"].set_index("model")
    assert list(psnr.index) == ["recorder@0", "recorder@3", "recorder@300", "gray",
                                "mean-prior", "second@0", "second@3", "second@300"]
    assert psnr.loc["recorder@3", "assisted"] == "hints=3" and psnr.loc["gray", "assisted"] == ""
    row = psnr.loc["recorder@300"]
    assert row.ci_low <= row.value <= row.ci_high and row.ci_low < row.ci_high
    assert row.value > psnr.loc[["gray", "mean-prior"], "value"].max()  # best, yet not bold

    table = (run_dir / "table.md").read_text()
    lines = {line.split(" |")[0].strip("| "): line for line in table.splitlines()
             if line.startswith("| ")}
    assert "recorder@300 †" in lines and "second@3 †" in lines
    assert "**" not in lines["recorder@300 †"]
    assert "**" in lines["gray (ref)"] + lines["mean-prior"]  # the automatic rows are ranked
    assert "user-assisted: N hints per test image from its ground truth" in table

    run = load_run(run_dir)
    assert run.reference == "gray" and "recorder@300" in run.predictions()  # in the sample grid
    html = (run_dir / "report.html").read_text()
    assert 'title="user-assisted: 300 hints from the ground truth">†' in html
    assert "\\dag{}" in (run_dir / "table.tex").read_text()


def test_resume_skips_finished_hint_rows(tmp_path, recorders):
    path = _config(tmp_path, "[{plugin: recorder}]", f"hints: {COUNTS}")
    run_dir, _ = _execute(path)
    kept = (run_dir / "models" / "recorder@0" / "status.json").read_text()
    status_path = run_dir / "models" / "recorder@300" / "status.json"
    status_path.write_text(json.dumps({**json.loads(status_path.read_text()),
                                       "status": "running"}))  # killed while scoring
    for old in recorders.glob("Recorder-*.npz"):
        old.unlink()
    _, code = _execute(path, run_dir=run_dir)
    assert code == ExitCode.OK
    assert sorted(p.name for p in recorders.glob("Recorder-*.npz")) == ["Recorder-0.npz"]
    assert json.loads(status_path.read_text())["status"] == "done"
    assert (run_dir / "models" / "recorder@0" / "status.json").read_text() == kept
    assert "recorder@300 †" in (run_dir / "table.md").read_text()
    with pytest.raises(HarnessError, match="recorder needs user hints or the ground truth"):
        load_trained(run_dir, "recorder@3")  # `harness colorize` has no hints to give


def test_hints_config_required_and_reference_must_be_automatic(tmp_path, recorders):
    with pytest.raises(ConfigError, match=r"models\[0\] \(recorder\).*takes hints.*hints:"):
        _execute(_config(tmp_path, "[{plugin: recorder}, {plugin: gray}]"))
    for ref in ("recorder@3", "oracle"):
        models = ("[{plugin: recorder}, {plugin: gray}, "
                  "{plugin: welsh, name: oracle, options: {reference: oracle}}]")
        with pytest.raises(ConfigError, match=f"report.reference: {ref} is user-assisted"):
            _execute(_config(tmp_path, models, "hints: [3]"), f"report.reference={ref}")


WELSH = ("[{plugin: gray}, {plugin: welsh}, "
         "{plugin: welsh, name: welsh-oracle, options: {reference: oracle}}]")


def _recoloured(load_splits):
    """``load_splits`` with every test image's ab negated and rolled (its L unchanged)."""

    def load(*args, **kwargs):
        splits = load_splits(*args, **kwargs)
        L, ab = splits.test.arrays()
        lab = np.concatenate([L[..., None], -np.roll(ab, 7, axis=2)], axis=-1)
        splits.test = LabSet(lab, np.arange(len(L)), splits.test.names, splits.test.labels,
                             splits.test.class_names)
        return splits

    return load


def test_welsh_reference_choice_reads_test_colour_only_as_the_oracle(tmp_path, monkeypatch,
                                                                    recorders):
    path = _config(tmp_path, WELSH)
    first, code = _execute(path)
    assert code == ExitCode.OK
    monkeypatch.setattr(harness.run, "load_splits", _recoloured(harness.run.load_splits))
    second, _ = _execute(path)

    def references(run_dir, model):
        return pd.read_csv(run_dir / "models" / model / "references.csv")

    names = json.loads((first / "data_report.json").read_text())["test_images"]
    auto = references(first, "welsh")
    assert list(auto["image"]) == names and set(auto["choice"]) == {"auto"}
    assert not set(auto["reference"]) & set(names)  # references come from the training split
    # Same L, other colours: the automatic choice and output are unchanged ...
    pd.testing.assert_frame_equal(references(second, "welsh"), auto)
    np.testing.assert_array_equal(np.load(second / "models" / "welsh" / "pred_ab.npy"),
                                  np.load(first / "models" / "welsh" / "pred_ab.npy"))
    # ... while the oracle, which reads the truth, chooses differently.
    oracle = references(first, "welsh-oracle")
    assert set(oracle["choice"]) == {"oracle"}
    assert not references(second, "welsh-oracle")["reference"].equals(oracle["reference"])

    status = json.loads((first / "models" / "welsh-oracle" / "status.json").read_text())
    assert status["uses_ground_truth"] is True
    summary = pd.read_csv(first / "summary.csv", keep_default_na=False)
    assert set(summary[summary.model == "welsh-oracle"]["assisted"]) == {"oracle"}
    assert set(summary[summary.model == "welsh"]["assisted"]) == {""}
    table = (first / "table.md").read_text()
    assert "| welsh-oracle ‡ |" in table and "‡ oracle (uses ground truth)" in table
    assert "| welsh |" in table
    build_report([first], tmp_path / "rebuilt", formats=("md",))  # from the files alone
    assert "| welsh-oracle ‡ |" in (tmp_path / "rebuilt" / "table.md").read_text()
