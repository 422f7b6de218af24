"""The HTML report in a real, offline, headless Chromium: the table and every figure render."""

from __future__ import annotations

import shutil
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from harness.config import load_config
from harness.plugins import get_plugin_manager
from harness.report.collect import load_run
from harness.report.tables import run_table
from harness.run import execute

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

PLUGIN = """
import numpy as np
from harness import hookimpl
from harness.colorizer import Colorizer


class Curved(Colorizer):
    def fit(self, train, val, budget, ctx):
        for step in range(1, 21):
            ctx.loss_log.append(step, 0, 2.0 / step, 100.0, 0.01 * step)
        ctx.loss_log.flush()

    def predict(self, L):
        ab = np.zeros((*L.shape, 2), dtype=np.float32)
        ab[..., 1] = 40.0 - 0.5 * L
        return ab

    def save(self, directory):
        pass

    def load(self, directory):
        pass


@hookimpl
def harness_register_colorizers(register):
    register("curved", Curved, framework="numpy")
"""


def _browser():
    """A headless Chromium driven by selenium, or a skip saying what is missing."""
    try:
        from selenium import webdriver
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (pip install selenium)")
    chromium = CHROMIUM if CHROMIUM.exists() else shutil.which("chromium")
    if not chromium or not CHROMEDRIVER.exists():
        pytest.skip("no browser: needs /usr/bin/chromium and /usr/bin/chromedriver "
                    "(apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium)
    profile = tempfile.mkdtemp(prefix="report-browser-")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                "--window-size=1400,1000"):
        options.add_argument(arg)
    try:
        driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)),
                                  options=options)
    except WebDriverException as exc:
        shutil.rmtree(profile, ignore_errors=True)
        pytest.skip(f"Chromium would not start: {exc.msg}")
    return driver, profile


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("browser-run")
    (base / "browser_test_plugin.py").write_text(textwrap.dedent(PLUGIN))
    (base / "run.yaml").write_text(f"""
name: browser
device: cpu
data: {{source: demo, size: 16, eval_size: 24, test_fraction: 0.7}}
budget: {{steps: 2}}
models: [{{plugin: gray}}, {{plugin: mean-prior}}, {{plugin: curved}}]
metrics: [psnr, colorfulness, dcf, auc]
plugins: [browser_test_plugin]
report: {{bootstrap: 100, samples: 2}}
output_dir: {base / "results"}
""")
    sys.path.insert(0, str(base))
    try:
        cfg = load_config(base / "run.yaml")
        run_dir, _ = execute(cfg, get_plugin_manager(cfg.plugins))
    finally:
        sys.path.remove(str(base))
        sys.modules.pop("browser_test_plugin", None)
    return run_dir


def test_report_renders_offline_in_chromium(run_dir, tmp_path):
    driver, profile = _browser()
    try:
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
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
