"""levin and welsh register like every built-in: a hook in the module, an entry point."""

from __future__ import annotations

from harness.plugins import HOST_DISTRIBUTION, load_registry
from harness_baselines.levin import LevinColorizer
from harness_baselines.welsh import WelshColorizer


def test_registered_through_entry_points():
    registry = load_registry()
    for name, cls in (("levin", LevinColorizer), ("welsh", WelshColorizer)):
        entry = registry.get("colorizer", name)
        assert entry.provider.distribution == HOST_DISTRIBUTION and entry.provider.entry_point
        assert entry.load() is cls and entry.framework == "numpy"
    assert LevinColorizer.takes_hints and not WelshColorizer.takes_hints
