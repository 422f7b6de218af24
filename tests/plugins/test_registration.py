"""Each built-in model registers its framework, options and import path without importing it."""

from __future__ import annotations

import pytest

from harness.plugins import load_registry

MODELS = [("harness_plugins.zhang", "zhang", "torch"),
          ("harness_plugins.zhang_rebalanced", "zhang-rebalanced", "torch"),
          ("harness_plugins.regression_mse", "regression-mse", "keras"),
          ("harness_plugins.iizuka", "iizuka", "keras")]


@pytest.mark.parametrize(("module", "name", "framework"), MODELS)
def test_registers_lazily(module, name, framework):
    registry = load_registry([module], entry_points=False)
    assert not registry.failures
    entry = registry.get("colorizer", name)
    assert entry.framework == framework and entry.summary
    assert isinstance(entry.target, str) and entry.target.endswith("_model:" + entry.target
                                                                   .split(":")[1])
    cls = entry.load()
    assert cls.framework == framework and cls.Options is entry.options
