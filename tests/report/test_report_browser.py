"""The HTML report in a real, offline, headless Chromium: the table and every figure render."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.report.collect import load_run
from harness.report.tables import run_table


@pytest.fixture(scope="module")
def run_dir(plugin_run) -> Path:
    """A finished run whose ``curved`` model (the tests' tinted plugin) logs a training curve."""
    return plugin_run("browser", "[{plugin: gray}, {plugin: mean-prior}, "
                      "{plugin: tinted, name: curved}]")


def test_report_renders_offline_in_chromium(chromium, run_dir, tmp_path):
    driver = chromium(window_size=(1400, 1000))
    driver.get((run_dir / "report.html").as_uri())
    rows = driver.find_elements("css selector", "#comparison-table tbody tr")
    expected = [r.model for r in run_table([load_run(run_dir)]).rows]
    assert [r.get_attribute("data-model") for r in rows] == expected
    assert {"gray", "mean-prior", "curved"} <= set(expected)
    assert all(r.find_elements("css selector", "td") for r in rows)

    images = driver.execute_script(
        "return [...document.images].map(i => [i.alt, i.complete, i.naturalWidth]);")
    alts = [alt for alt, _, _ in images]
    for title in ("Colorfulness against ground truth", "ab histograms",
                  "Accuracy against threshold (AuC)", "Training loss",
                  "sample colorizations, page 1", "sample colorizations, page 2"):
        assert title in alts, title
    broken = [alt for alt, complete, width in images if not complete or width <= 0]
    assert broken == []

    page2 = driver.find_element("css selector", ".page-2 img")
    assert not page2.is_displayed()  # paging: one page at a time, no script needed
    driver.find_element("css selector", 'label[for="pg-1-2"]').click()
    assert page2.is_displayed()
    driver.find_element("css selector", 'label[for="pg-1-1"]').click()

    requests = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name);")
    assert [r for r in requests if not r.startswith("data:")] == []

    height = driver.execute_script("return document.body.scrollHeight")
    driver.set_window_size(1400, min(height + 50, 8000))
    shot = tmp_path / "report.png"
    assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
