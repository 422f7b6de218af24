"""Plugin host: built-ins through entry points, outside packages, failures, duplicates, env."""

from __future__ import annotations

import json
import os

import pytest

from harness.errors import PluginError
from harness.plugins import HOST_DISTRIBUTION, get_plugin_manager


def test_builtins_register_through_entry_points():
    registry = get_plugin_manager()
    for kind, name in [("colorizer", "gray"), ("colorizer", "mean-prior"), ("metric", "psnr"),
                       ("metric", "dcf"), ("dataset", "folder"), ("dataset", "demo")]:
        entry = registry.get(kind, name)
        assert entry.provider.distribution == HOST_DISTRIBUTION
        assert entry.provider.entry_point is not None
    assert registry.get("colorizer", "gray").framework == "numpy"


def test_unknown_name_lists_available():
    with pytest.raises(PluginError, match="unknown colorizer 'nope'; available: .*gray"):
        get_plugin_manager().get("colorizer", "nope")


def test_failing_plugin_is_reported_and_rest_load(plugin_module):
    plugin_module("broken_on_import", "raise RuntimeError('boom at import')\n")
    plugin_module("broken_on_register", """
        from harness import hookimpl

        @hookimpl
        def harness_register_metrics(register):
            raise ValueError("boom at registration")
    """)
    registry = get_plugin_manager(["broken_on_import", "broken_on_register"])
    errors = {f.provider.module: f.error for f in registry.failures}
    assert "RuntimeError: boom at import" in errors["broken_on_import"]
    assert "ValueError: boom at registration" in errors["broken_on_register"]
    assert "gray" in registry.names("colorizer")


def test_bad_registration_is_a_failure_not_a_crash(plugin_module):
    plugin_module("not_a_colorizer", """
        from harness import hookimpl

        @hookimpl
        def harness_register_colorizers(register):
            register("odd", object, framework="numpy")
    """)
    registry = get_plugin_manager(["not_a_colorizer"])
    errors = {f.provider.module: f.error for f in registry.failures}
    assert "subclass of harness.colorizer.Colorizer" in errors["not_a_colorizer"]
    assert "odd" not in registry.names("colorizer")


def test_duplicate_name_names_both_sources(plugin_module):
    plugin_module("second_gray", """
        from harness import hookimpl
        from baselines.gray import GrayColorizer

        @hookimpl
        def harness_register_colorizers(register):
            register("gray", GrayColorizer)
    """)
    with pytest.raises(PluginError) as err:
        get_plugin_manager(["second_gray"])
    assert "baselines.gray" in str(err.value) and "second_gray" in str(err.value)


def test_readme_plugin_installed_with_pip(installed_readme_plugin, cli):
    env = {"PYTHONPATH": str(installed_readme_plugin)}
    out = cli("plugins", "--json", env=env)
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    for key in ("name", "kind", "framework", "distribution", "version", "summary", "error"):
        assert key in rows["sepia"]
    assert rows["sepia"]["distribution"] == "harness-sepia"
    assert rows["mean-chroma"]["kind"] == "metric"

    disabled = cli("plugins", "--json",
                       env={**env, "HARNESS_DISABLE_PLUGIN_AUTOLOAD": "1"})
    names = {r["name"] for r in json.loads(disabled.stdout)}
    assert "sepia" not in names and "gray" in names

    only_other = cli("plugins", "--json", env={**env, "HARNESS_PLUGINS": "nothing-else"})
    assert "sepia" not in {r["name"] for r in json.loads(only_other.stdout)}
    only_it = cli("plugins", "--json", env={**env, "HARNESS_PLUGINS": "harness-sepia"})
    assert "sepia" in {r["name"] for r in json.loads(only_it.stdout)}


def test_readme_plugin_runs_in_a_config(installed_readme_plugin, tmp_path, cli):
    config = tmp_path / "sepia.yaml"
    config.write_text(f"""
name: sepia
device: cpu
data: {{source: demo, size: 16, eval_size: 16}}
models: [{{plugin: sepia, options: {{strength: 0.5}}}}, {{plugin: gray}}]
metrics: [psnr, mean-chroma]
report: {{bootstrap: 100}}
output_dir: {tmp_path / "results"}
""")
    out = cli("run", str(config), env={"PYTHONPATH": str(installed_readme_plugin)})
    assert out.returncode == 0, out.stderr
    assert "| sepia (ref) |" in out.stdout and "mean-chroma" in out.stdout


def test_trace_env_prints_loads(cli):
    out = cli("plugins", env={"HARNESS_TRACE_PLUGINS": "1"})
    assert "[harness plugins] registered colorizer 'gray'" in out.stderr
    assert os.environ.get("HARNESS_TRACE_PLUGINS") is None
