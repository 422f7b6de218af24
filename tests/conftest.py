"""Shared fixtures: an isolated cache, throwaway plugins, the README's example plugin."""

from __future__ import annotations

import os
import re
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
        (src / name).write_text(body)
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--target", str(target), str(src)],
                   check=True, capture_output=True, text=True)
    return target


@pytest.fixture
def cli():
    """Run ``harness ARGS...`` in a subprocess as a user would; returns CompletedProcess."""

    def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: int = 600) -> subprocess.CompletedProcess:
        full_env = {**os.environ, **(env or {})}
        return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True,
                              text=True, env=full_env, cwd=cwd, timeout=timeout)

    return run
