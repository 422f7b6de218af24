"""Shared fixtures: an isolated cache, throwaway plugins, the README's example plugin, Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """One decode cache per test session, never the user's."""
    old = os.environ.get("HARNESS_CACHE_DIR")
    os.environ["HARNESS_CACHE_DIR"] = str(tmp_path_factory.mktemp("harness-cache"))
    os.environ.setdefault("MPLBACKEND", "Agg")
    # Configs that name no backend run inline (and fast) here; tests of the others say so.
    os.environ.setdefault("HARNESS_BACKEND", "inline")
    yield
    if old is None:
        os.environ.pop("HARNESS_CACHE_DIR", None)
    else:
        os.environ["HARNESS_CACHE_DIR"] = old


@pytest.fixture
def plugin_module(tmp_path, monkeypatch):
    """Write a throwaway plugin module importable by name; returns a writer(name, code)."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(name: str, code: str) -> str:
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(code))
        sys.modules.pop(name, None)
        return name

    yield write


def readme_plugin_files() -> dict[str, str]:
    """The files of the README's "Write a plugin" example, keyed by file name."""
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"<!-- plugin-example: (\S+) -->\n```\w+\n(.*?)```", text, re.S)
    return dict(blocks)


@pytest.fixture(scope="session")
def installed_readme_plugin(tmp_path_factory) -> Path:
    """The README's example package, built and installed with pip into a private target dir.

    Returns the directory to put on PYTHONPATH; the test environment itself is not modified.
    """
    src = tmp_path_factory.mktemp("harness-sepia")
    for name, body in readme_plugin_files().items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text(body)
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--target", str(target), str(src)],
                   check=True, capture_output=True, text=True)
    return target


@pytest.fixture
def readme_plugin_on_path(installed_readme_plugin, monkeypatch) -> Path:
    """The installed README example on ``sys.path`` for one test, in this process.

    importlib.metadata reads ``sys.path`` when asked, so its entry point is found; the modules
    imported from it are dropped again at teardown.
    """
    monkeypatch.syspath_prepend(str(installed_readme_plugin))
    yield installed_readme_plugin
    for name, module in list(sys.modules.items()):
        if str(installed_readme_plugin) in str(getattr(module, "__file__", None) or ""):
            del sys.modules[name]


@pytest.fixture
def harness_cli():
    """Run ``harness ARGS...`` in this process with click's CliRunner; returns its Result.

    ``env`` is set for the call only (a value of None unsets the variable). For listings and
    filters; end-to-end behaviour (exit codes of a real run, tracebacks) uses :func:`cli`.
    """
    from click.testing import CliRunner

    from harness.cli import main

    def run(*args: str, env: dict[str, str | None] | None = None):
        return CliRunner().invoke(main, list(args), env=env, prog_name="harness",
                                  catch_exceptions=False)

    return run


@pytest.fixture
def cli():
    """Run ``harness ARGS...`` in a subprocess as a user would; returns CompletedProcess."""

    def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: int = 600) -> subprocess.CompletedProcess:
        full_env = {**os.environ, **(env or {})}
        return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True,
                              text=True, env=full_env, cwd=cwd, timeout=timeout)

    return run


CHROMIUM_INSTALL = "apt-get install -y chromium chromium-driver && pip install selenium"


def _find_executable(env: str, *candidates: str) -> str | None:
    """``$env`` if set (and it exists), else the first candidate found; None if none."""
    if os.environ.get(env):
        return os.environ[env] if Path(os.environ[env]).exists() else None
    for name in candidates:
        found = name if Path(name).is_absolute() and Path(name).exists() else shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture
def chromium(tmp_path):
    """Start headless Chromium driven by selenium: ``chromium(download_dir=None, window_size=)``.

    With ``download_dir`` (created here) downloads are saved there, and the driver's
    ``downloads`` attribute names it. HARNESS_CHROMIUM / HARNESS_CHROMEDRIVER point at other
    binaries. Skips, saying what is missing, without selenium, Chromium or chromedriver.
    Every driver started is quit at teardown.
    """
    drivers = []

    def start(download_dir: Path | None = None, window_size: tuple[int, int] = (1200, 900)):
        try:
            from selenium import webdriver
            from selenium.common.exceptions import WebDriverException
            from selenium.webdriver.chrome.service import Service
        except ImportError:
            pytest.skip(f"selenium is not installed; to run the browser test: {CHROMIUM_INSTALL}")
        binary = _find_executable("HARNESS_CHROMIUM", "/usr/bin/chromium", "chromium",
                                  "chromium-browser", "google-chrome")
        if binary is None:
            pytest.skip(f"no Chromium browser found (or set HARNESS_CHROMIUM); {CHROMIUM_INSTALL}")
        driver_path = _find_executable("HARNESS_CHROMEDRIVER", "/usr/bin/chromedriver",
                                       "chromedriver")
        if driver_path is None:
            pytest.skip(f"no chromedriver found (or set HARNESS_CHROMEDRIVER); {CHROMIUM_INSTALL}")
        options = webdriver.ChromeOptions()
        options.binary_location = binary
        width, height = window_size
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                    f"--user-data-dir={tmp_path / f'profile-{len(drivers)}'}",
                    f"--window-size={width},{height}"):
            options.add_argument(arg)
        if download_dir is not None:
            download_dir.mkdir(parents=True, exist_ok=True)
            options.add_experimental_option("prefs", {
                "download.default_directory": str(download_dir),
                "download.prompt_for_download": False,
                "profile.default_content_setting_values.automatic_downloads": 1})
        options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
        try:
            driver = webdriver.Chrome(service=Service(executable_path=driver_path),
                                      options=options)
        except WebDriverException as exc:
            pytest.skip(f"Chromium would not start: {exc.msg}")
        driver.downloads = download_dir
        drivers.append(driver)
        return driver

    yield start
    for driver in drivers:
        driver.quit()
