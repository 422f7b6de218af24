"""Reports over finished runs: files, self-containment, figures, several seeds, LaTeX, errors."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.errors import ExitCode
from harness.report.build import build_report

ROOT = Path(__file__).resolve().parents[2]

FIGURES = ("colorfulness", "ab-histogram", "auc", "loss")


@pytest.fixture(scope="session")
def rich_run(plugin_run) -> Path:
    """A finished run with a training curve, a failed model and six test images."""
    return plugin_run("rich_test", "[{plugin: gray}, {plugin: mean-prior}, "
                      "{plugin: tinted, name: tinted_v2}, "
                      "{plugin: tinted, name: broken, options: {fail: true}}]")


@pytest.fixture(scope="session")
def smoke_runs(tmp_path_factory, execute_config) -> list[Path]:
    """configs/smoke.yaml run twice, with seeds 0 and 1."""
    out = tmp_path_factory.mktemp("smoke-results")
    return [execute_config(ROOT / "configs" / "smoke.yaml", f"seed={seed}", f"output_dir={out}")
            for seed in (0, 1)]


def _external_references(html: str) -> list[str]:
    """src/href/url() values that point at another host (anything but data: and fragments)."""
    refs = re.findall(r"""(?:src|href)\s*=\s*["']?([^"'\s>]+)""", html)
    refs += re.findall(r"url\(\s*['\"]?([^'\")]+)", html)
    return [r for r in refs if not r.startswith(("data:", "#"))]


def test_harness_run_leaves_a_complete_report(rich_run):
    for name in ("report.html", "report.md", "table.md", "table.tex"):
        assert (rich_run / name).stat().st_size > 0, name
    html = (rich_run / "report.html").read_text()
    assert _external_references(html) == []
    assert not re.search(r"https?://", html)
    for key in FIGURES:
        assert f'id="fig-1-{key}"' in html, key
        assert (rich_run / "figures" / f"{key}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # six test images -> two pages of four in the sample grid, both embedded
    assert html.count('class="page page-') == 2 and 'for="pg-1-2"' in html
    assert (rich_run / "figures" / "samples-2.png").exists()
    assert 'data-model="broken"' in html and "failed: RuntimeError: deliberate failure" in html
    assert "harness study export" in html  # no votes yet: how to run a study
    assert "No curve for gray, mean-prior" in html  # baselines have no loss.csv
    data_report = html[html.index("<h3>Data</h3>"):]
    assert "files found / decoded / used" in data_report and "9 / 9 / 9" in data_report
    assert "git revision" in html and "numpy" in html
    md = (rich_run / "report.md").read_text()
    for key in FIGURES:
        assert f"(figures/{key}.png)" in md
    assert "| tinted_v2 |" in (rich_run / "table.md").read_text()


def test_human_study_rows_become_columns_and_a_plot(rich_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(rich_run, run)
    rows = pd.DataFrame([
        ("gray", "human-plausible", 0.2, 0.1, 0.35, 30, 0.001, True),
        ("mean-prior", "human-plausible", 0.45, 0.3, 0.61, 30, 0.02, True),
        ("tinted_v2", "human-plausible", 0.62, 0.45, 0.77, 30, 0.3, False),
        ("(ground truth)", "human-plausible", 0.9, 0.8, 0.95, 60, np.nan, False),
    ], columns=["model", "metric", "value", "ci_low", "ci_high", "n", "p_vs_ref", "significant"])
    rows = rows.assign(direction="higher", unit="", granularity="vote", status="ok", note="")
    summary = pd.concat([pd.read_csv(run / "summary.csv"), rows], ignore_index=True)
    summary.to_csv(run / "summary.csv", index=False)
    marker = "<!-- human-study: written by `harness study import`; replaced on each import -->"
    with (run / "table.md").open("a") as f:
        f.write(f"\n{marker}\n## Human study\n\nthe study's own section\n")

    build_report([run], formats=("html", "md"))
    html = (run / "report.html").read_text()
    assert "human-plausible" in html and 'id="fig-1-human"' in html
    assert "0.62" in html and "[0.45, 0.77]" in html
    assert "harness study export" not in html
    assert (run / "figures" / "human.png").exists()
    table = (run / "table.md").read_text()
    assert "human-plausible ↑" in table and "the study's own section" in table


def test_unavailable_metric_shows_its_reason(rich_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(rich_run, run)
    summary = pd.read_csv(run / "summary.csv")
    extra = pd.DataFrame([{"model": "gray", "metric": "lpips-vgg", "status": "unavailable",
                           "note": "no VGG weights on this machine", "direction": "lower"}])
    pd.concat([summary, extra], ignore_index=True).to_csv(run / "summary.csv", index=False)
    build_report([run], formats=("html", "md", "latex"))
    for name in ("report.html", "table.md", "table.tex"):
        assert "no VGG weights on this machine" in (run / name).read_text(), name


def test_two_seeds_give_mean_and_spread(smoke_runs, tmp_path):
    out = tmp_path / "merged"
    result = CliRunner().invoke(main, ["report", *map(str, smoke_runs), "--out", str(out),
                                       "--format", "md", "--format", "csv", "--format", "html"])
    assert result.exit_code == 0, result.output
    agg = pd.read_csv(out / "report_aggregate.csv")
    psnr = [pd.read_csv(r / "summary.csv").query("model == 'mean-prior' and metric == 'psnr'")
            ["value"].iloc[0] for r in smoke_runs]
    row = agg.query("model == 'mean-prior' and metric == 'psnr'").iloc[0]
    assert row["n_runs"] == 2 and row["group"] == "smoke"
    assert row["mean"] == pytest.approx(np.mean(psnr))
    assert row["std"] == pytest.approx(np.std(psnr, ddof=1))
    table = (out / "table.md").read_text()
    assert "## Across runs" in table
    across = table.split("## Across runs")[1]
    line = next(x for x in across.splitlines() if x.startswith("| mean-prior |"))
    cell = line.split(" | ")[1].replace("**", "")  # psnr; bold where it is the best mean
    assert cell == f"{row['mean']:.4g} ± {row['std']:.4g} (n=2)"
    for run in smoke_runs:  # one row per (run, seed, model)
        assert f"| {run.name} |" in table
    merged = pd.read_csv(out / "report_summary.csv")
    assert set(merged["seed"]) == {0, 1} and list(merged.columns[:3]) == ["run", "group", "seed"]
    html = (out / "report.html").read_text()
    assert 'id="aggregate-table"' in html and 'id="run-2"' in html
    assert _external_references(html) == []


def test_a_folder_of_runs_stands_for_each(smoke_runs, tmp_path):
    written = build_report([smoke_runs[0].parent], tmp_path / "out", formats=("csv",))
    merged = pd.read_csv(tmp_path / "out" / "report_summary.csv")
    assert set(merged["run"]) == {r.name for r in smoke_runs}
    assert tmp_path / "out" / "report_aggregate.csv" in written


def test_latex_table_is_booktabs_and_escaped(rich_run, smoke_runs, tmp_path):
    tex = (rich_run / "table.tex").read_text()
    for rule in ("\\toprule", "\\midrule", "\\bottomrule", "\\caption{", "\\label{tab:"):
        assert rule in tex
    assert "tinted\\_v2" in tex and "rich\\_test" in tex and "tinted_v2" not in tex
    assert re.search(r"\\textbf\{[\d.]+\}\\,\[[\d.]+, [\d.]+\]", tex)
    assert "failed: RuntimeError: deliberate failure in fit" in tex
    assert "$\\uparrow$" in tex and "95\\%" in tex
    build_report(smoke_runs, tmp_path, formats=("latex",))
    merged = (tmp_path / "table.tex").read_text()
    assert merged.count("\\begin{tabular}") == 2 and "$\\pm$" in merged


def test_not_a_run_is_one_line_error(tmp_path):
    result = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert result.exit_code == ExitCode.USAGE
    assert "not a run directory" in result.output and "Traceback" not in result.output


def test_runs_with_different_protocols_are_not_averaged(smoke_runs, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(smoke_runs[1], other)
    env = json.loads((other / "environment.json").read_text())
    assert env["protocol"]["id"] == json.loads(
        (smoke_runs[0] / "environment.json").read_text())["protocol"]["id"]  # seeds repeat
    env["protocol"]["metrics"]["psnr"] = "someone-elses-psnr 2.0"
    (other / "environment.json").write_text(json.dumps(env))
    build_report([smoke_runs[0], other], tmp_path / "out", formats=("csv", "md"))
    agg = pd.read_csv(tmp_path / "out" / "report_aggregate.csv")
    groups = set(agg["group"])
    assert len(groups) == 2 and (agg["n_runs"] == 1).all()
    assert any("differs in metrics.psnr" in g for g in groups)
    assert "protocol " in (tmp_path / "out" / "report.md").read_text()


def test_report_of_several_runs_is_not_written_into_one_of_them(smoke_runs):
    table = (smoke_runs[0] / "table.md").read_text()
    result = CliRunner().invoke(main, ["report", *map(str, smoke_runs), "--out",
                                       str(smoke_runs[0]), "--format", "md"])
    assert result.exit_code == 2 and "inside the run" in result.output
    assert (smoke_runs[0] / "table.md").read_text() == table


def test_a_folder_report_skips_bad_entries_and_says_why(smoke_runs, tmp_path, caplog):
    folder = tmp_path / "results"
    good = shutil.copytree(smoke_runs[0], folder / "good")
    broken = shutil.copytree(smoke_runs[1], folder / "broken")
    (broken / "config.yaml").write_bytes(b"\x00\xff\xfe not yaml")
    (folder / "stub").mkdir()
    (folder / "stub" / "config.yaml").write_text("name: stub\n")
    (folder / "notes.txt").write_text("stray")
    caplog.set_level("WARNING", logger="harness")
    result = CliRunner().invoke(main, ["report", str(folder), "--out", str(tmp_path / "out"),
                                       "--format", "md"])
    assert result.exit_code == 0, result.output
    text = caplog.text
    assert f"skipped {broken}: cannot read the run" in text
    assert f"skipped {folder / 'stub'}: unfinished" in text
    assert f"skipped {folder / 'notes.txt'}: not a folder" in text
    assert (tmp_path / "out" / "table.md").read_text().startswith("# smoke")  # the good run
    assert good.is_dir()
