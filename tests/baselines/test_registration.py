"""levin and welsh register like every built-in: a hook in the module, an entry point."""

from __future__ import annotations

from pathlib import Path

from baselines.levin import LevinColorizer
from baselines.welsh import WelshColorizer
from harness.plugins import get_plugin_manager

ROOT = Path(__file__).resolve().parents[2]


def test_declared_as_entry_points_and_registered_by_their_hooks():
    pyproject = (ROOT / "pyproject.toml").read_text()
    section = pyproject.split("[project.entry-points.harness]")[1].split("\n[")[0]
    assert 'levin = "baselines.levin"' in section and 'welsh = "baselines.welsh"' in section
    registry = get_plugin_manager(modules=["baselines.levin", "baselines.welsh"])
    for name, cls in (("levin", LevinColorizer), ("welsh", WelshColorizer)):
        entry = registry.get("colorizer", name)
        assert entry.obj is cls and entry.framework == "numpy"
    assert LevinColorizer.takes_hints and not getattr(WelshColorizer, "takes_hints", False)
