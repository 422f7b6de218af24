"""A whole rater session in headless Chromium: export, answer, download, import.

Needs ``pip install selenium`` and Chromium with its driver (Debian/Ubuntu:
``apt-get install chromium chromium-driver``); HARNESS_CHROMIUM / HARNESS_CHROMEDRIVER point
elsewhere. Without them the tests are skipped, saying what is missing.
"""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

import pytest

from harness.study.kit import export_kit
from harness.study.votes import import_votes, load_votes

KIT_COLUMNS = ["rater_id", "item_id", "answer", "design", "rater_slot", "trial", "response_ms",
               "left", "timestamp"]


@pytest.fixture
def run(fake_run) -> Path:
    """A finished run with two models and twelve 16x16 test images."""
    run = fake_run(n=12, size=16)
    (run / "table.md").write_text("# fake\n")
    return run


@pytest.fixture
def browser(chromium, tmp_path):
    """Headless Chromium that saves downloads in ``browser.downloads``; skipped if missing."""
    return chromium(download_dir=tmp_path / "downloads")


def answer_all(driver, count: int, press) -> list[str]:
    """Answer ``count`` trials with ``press(driver, k)``; returns the progress texts seen."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, 10)
    seen = []
    for k in range(count):
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#answers button").is_enabled())
        seen.append(driver.find_element(By.ID, "progress-text").text)
        press(driver, k)
    wait.until(lambda d: d.find_element(By.ID, "done").is_displayed())
    return seen


def downloaded(driver) -> Path:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        files = [p for p in driver.downloads.iterdir() if p.suffix == ".csv"]
        if files:
            return files[0]
        time.sleep(0.1)
    raise AssertionError(f"no CSV downloaded to {driver.downloads}")


def outside_requests(driver) -> list[str]:
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return [u for u in urls if u.split(":", 1)[0] in ("http", "https", "ws", "wss")]


def start(driver, kit: Path, slot: int, rater: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get((kit / "index.html").as_uri() + f"#rater={slot}")
    assert driver.find_element(By.ID, "rater-slot").get_attribute("value") == str(slot)
    driver.find_element(By.ID, "rater-id").send_keys(rater)
    driver.find_element(By.ID, "start-button").click()


def test_plausibility_session_downloads_votes_that_import(browser, run, tmp_path):
    from selenium.webdriver.common.by import By

    res = export_kit(run, tmp_path / "kit", raters=3, colorized=4, real=4, seed=5)
    start(browser, res.out, 2, "tester, 1")
    expected = []

    def press(driver, k):
        answer = "plausible" if k % 3 else "implausible"
        expected.append(answer)
        if k % 2:  # half by key, half by the big buttons
            key = {"plausible": "p", "implausible": "n"}[answer]
            driver.find_element(By.TAG_NAME, "body").send_keys(key)
        else:
            driver.find_element(By.CSS_SELECTOR, f"button[data-answer={answer}]").click()

    progress = answer_all(browser, 8, press)
    assert progress == [f"Image {k} of 8" for k in range(1, 9)]
    path = downloaded(browser)
    text = path.read_text(encoding="utf-8")
    assert text == browser.find_element(By.ID, "csv").get_attribute("value")
    assert browser.find_element(By.ID, "download").text == path.name
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == KIT_COLUMNS and len(rows) == 8
    manifest = json.loads(res.manifest.read_text())
    assert [r["item_id"] for r in rows] == manifest["kits"][-1]["raters"][1]
    assert [r["answer"] for r in rows] == expected
    assert {(r["rater_id"], r["rater_slot"], r["design"]) for r in rows} == {
        ("tester, 1", "2", "plausibility")}
    assert [r["trial"] for r in rows] == [str(k) for k in range(1, 9)]
    assert outside_requests(browser) == []

    messy = tmp_path / "messy.csv"
    messy.write_bytes(b"\xef\xbb\xbfrater_id,item_id,answer,note\n\n"
                      + f"other,{rows[0]['item_id']},plausible,x\n".encode()
                      + b"other,unknown-id,plausible,\n")
    report = import_votes(run, [path, messy])
    assert [f.kept for f in report.files] == [8, 1] and report.stored == 9
    assert [(p.line, "unknown item_id" in p.message) for p in report.files[1].rejected] == [
        (4, True)]
    table = (run / "table.md").read_text()
    assert "## Human study" in table and "| real images (control) |" in table


def test_2afc_session_maps_sides_to_images(browser, run, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    res = export_kit(run, tmp_path / "kit", design="2afc", raters=1, colorized=4, seed=2)
    start(browser, res.out, 1, "p2")
    chosen = ["left", "right", "left", "right"]

    def press(driver, k):
        if k == 0:
            driver.find_element(By.CSS_SELECTOR, "#stage figure:first-child img").click()
        else:
            key = {1: "2", 2: Keys.ARROW_LEFT, 3: Keys.ARROW_RIGHT}[k]
            driver.find_element(By.TAG_NAME, "body").send_keys(key)

    answer_all(browser, 4, press)
    rows = list(csv.DictReader(io.StringIO(downloaded(browser).read_text())))
    trials = json.loads((res.out / "items.js").read_text().split("=", 1)[1].rstrip(";\n"))[
        "raters"][0]
    for row, trial, side in zip(rows, trials, chosen, strict=True):
        other = "b" if trial["left"] == "a" else "a"
        assert (row["item_id"], row["left"]) == (trial["id"], trial["left"])
        assert row["answer"] == (trial["left"] if side == "left" else other)
    import_votes(run, [downloaded(browser)])
    manifest = json.loads(res.manifest.read_text())["items"]
    assert [v["chose_real"] == "true" for v in load_votes(run)] == [
        r["answer"] == manifest[r["item_id"]]["real"] for r in rows]
