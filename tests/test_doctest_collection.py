"""The repository conftest collects docstring examples without importing the frameworks."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).parents[1]


def _hook():
    spec = importlib.util.spec_from_file_location("root_conftest", ROOT / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.pytest_ignore_collect


def test_modules_with_examples_are_collected_the_rest_not_imported():
    ignore = _hook()
    assert ignore(ROOT / "harness/study/stats.py", None) is None
    assert ignore(ROOT / "harness/metrics/histogram.py", None) is None
    for heavy in ("train/torch_trainer.py", "train/keras_trainer.py", "color/torch_ops.py",
                  "metrics/lpips_weights.py", "__main__.py"):
        assert ignore(ROOT / "harness" / heavy, None) is True, heavy


def test_files_outside_the_package_are_left_to_pytest():
    ignore = _hook()
    assert ignore(ROOT / "tests/test_cli.py", None) is None
    assert ignore(ROOT / "harness/report/templates", None) is None
