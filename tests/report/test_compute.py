"""The learned models' compute figures: in status.json and in the report's compute table."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="module")
def learned_run(plugin_run):
    """Two steps each of a tiny torch and a tiny Keras model, beside one without training."""
    return plugin_run("compute_test", "[{plugin: tinted}, "
                      "{plugin: zhang, options: {width: 0.0625, batch_size: 4}}, "
                      "{plugin: regression-mse, options: {width: 0.0625, batch_size: 4}}]")


def test_status_records_flops_and_rates(learned_run):
    for model in ("zhang", "regression-mse"):
        status = json.loads((learned_run / "models" / model / "status.json").read_text())
        c = status["compute"]
        assert c["flops_per_step"] > 0 and c["steps"] == 2 and c["parameters"] > 0, model
        assert c["achieved_gflops"] == pytest.approx(
            c["flops_per_step"] * c["steps"] / c["train_seconds"] / 1e9, rel=1e-2)
        assert c["percent_of_attainable"] == pytest.approx(
            100 * c["achieved_gflops"] / c["attainable_gflops"], rel=1e-2)
        assert c["probe"]["size"] > 0 and c["probe"]["threads"] > 0
    tinted = json.loads((learned_run / "models" / "tinted" / "status.json").read_text())
    assert "compute" not in tinted


def test_report_shows_the_compute_table(learned_run):
    html = (learned_run / "report.html").read_text()
    table = html[html.index('<table id="compute-table">'):]
    table = table[:table.index("</table>")]
    assert "GFLOP/step" in table and "% of attainable" in table
    assert "zhang" in table and "regression-mse" in table and "tinted" not in table
    assert 'href="#compute"' in html and "Attainable:" in html
    md = (learned_run / "report.md").read_text()
    section = md[md.index("## Compute"):md.index("## Run")]
    assert "| zhang |" in section and "| regression-mse |" in section
    assert "achieved GFLOP/s" in section and "tinted" not in section


def test_timings_record_every_phase(learned_run):
    timings = json.loads((learned_run / "timings.json").read_text())
    names = [p["phase"] for p in timings["phases"]]
    assert names == ["setup", "data", "fit tinted", "save, predict, score tinted",
                     "fit zhang", "save, predict, score zhang", "fit regression-mse",
                     "save, predict, score regression-mse", "tables", "report"]
    assert all(p["seconds"] >= 0 for p in timings["phases"])
    assert sum(p["seconds"] for p in timings["phases"]) <= timings["total_seconds"] + 0.1
