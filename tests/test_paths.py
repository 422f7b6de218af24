"""One cache root for every cache: HARNESS_CACHE_DIR, else the XDG cache folder."""

from __future__ import annotations

from pathlib import Path

from harness.metrics.lpips_weights import cache_dir
from harness.paths import cache_root


def test_cache_root_order(monkeypatch, tmp_path):
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "mine"))
    assert cache_root() == tmp_path / "mine" and cache_dir() == tmp_path / "mine" / "lpips"
    monkeypatch.delenv("HARNESS_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "colorization-harness"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")  # the spec: absolute paths only
    assert cache_root() == Path.home() / ".cache" / "colorization-harness"
