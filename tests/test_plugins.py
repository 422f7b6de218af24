"""Plugin host: built-ins through entry points, outside packages, failures, duplicates, env."""

from __future__ import annotations

import json
import os

import pytest

from harness.errors import PluginError
from harness.plugins import HOST_DISTRIBUTION, load_registry


def test_builtins_register_through_entry_points():
    registry = load_registry()
    for kind, name in [("colorizer", "gray"), ("colorizer", "mean-prior"), ("metric", "psnr"),
                       ("metric", "dcf"), ("dataset", "folder"), ("dataset", "demo")]:
        entry = registry.get(kind, name)
        assert entry.provider.distribution == HOST_DISTRIBUTION
        assert entry.provider.entry_point is not None
    assert registry.get("colorizer", "gray").framework == "numpy"


def test_unknown_name_lists_available():
    with pytest.raises(PluginError, match="unknown colorizer 'nope'; available: .*gray"):
        load_registry().get("colorizer", "nope")


def test_failing_plugin_is_reported_and_rest_load(plugin_module):
    plugin_module("broken_on_import", "raise RuntimeError('boom at import')\n")
    plugin_module("broken_on_register", """
        from harness import hookimpl

        @hookimpl
        def harness_register_metrics(register):
            raise ValueError("boom at registration")
    """)
    registry = load_registry(["broken_on_import", "broken_on_register"])
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
    registry = load_registry(["not_a_colorizer"])
    errors = {f.provider.module: f.error for f in registry.failures}
    assert "subclass of harness.colorizer.Colorizer" in errors["not_a_colorizer"]
    assert "odd" not in registry.names("colorizer")


def test_outside_plugin_taking_a_builtin_name_fails_alone(plugin_module):
    plugin_module("second_gray", """
        from harness import hookimpl
        from harness_baselines.gray import GrayColorizer

        @hookimpl
        def harness_register_colorizers(register):
            register("gray", GrayColorizer)
            register("also-mine", GrayColorizer)
    """)
    registry = load_registry(["second_gray"])
    errors = {f.provider.module: f.error for f in registry.failures}
    assert "harness_baselines.gray" in errors["second_gray"]
    assert "second_gray" in errors["second_gray"]
    assert registry.get("colorizer", "gray").provider.module == "harness_baselines.gray"
    assert "also-mine" not in registry.names("colorizer")  # the whole plugin is dropped
    assert "zhang" in registry.names("colorizer")


def test_hook_order_follows_pluggy(plugin_module):
    """Load order, with tryfirst ahead and trylast (the baselines) after an outside plugin."""
    plugin_module("outside", """
        from harness import hookimpl
        from harness_baselines.gray import GrayColorizer

        @hookimpl
        def harness_register_colorizers(register):
            register("outside", GrayColorizer)
    """)
    plugin_module("eager", """
        from harness import hookimpl
        from harness_baselines.gray import GrayColorizer

        @hookimpl(tryfirst=True)
        def harness_register_colorizers(register):
            register("eager", GrayColorizer)
    """)
    names = load_registry(["outside", "eager"]).names("colorizer")
    assert names[0] == "eager"
    assert names.index("zhang") < names.index("outside") < names.index("gray")
    assert names.index("outside") < names.index("mean-prior")


def test_registry_from_chosen_modules_in_process(plugin_module):
    plugin_module("just_one", """
        from harness import hookimpl

        @hookimpl
        def harness_register_colorizers(register):
            register("lazy", "harness_baselines.gray:GrayColorizer", framework="numpy")
    """)
    registry = load_registry(["just_one"], entry_points=False)
    assert registry.names("colorizer") == ["lazy"] and registry.names("metric") == []
    from harness_baselines.gray import GrayColorizer

    assert registry.get("colorizer", "lazy").load() is GrayColorizer


def test_lazy_target_is_imported_only_on_load(plugin_module):
    plugin_module("lazy_missing", """
        from harness import hookimpl

        @hookimpl
        def harness_register_colorizers(register):
            register("ghost", "no_such_module_here:Ghost", framework="torch",
                     summary="registered, never importable")
    """)
    registry = load_registry(["lazy_missing"], entry_points=False)
    entry = registry.get("colorizer", "ghost")
    assert entry.summary == "registered, never importable" and not registry.failures
    with pytest.raises(PluginError, match="cannot import 'no_such_module_here:Ghost'"):
        entry.load()


def test_lazy_hint_taking_colorizer_must_say_so_when_registered(plugin_module):
    plugin_module("lazy_levin", """
        from harness import hookimpl

        from harness_baselines.levin import LevinOptions

        @hookimpl
        def harness_register_colorizers(register):
            register("quiet-levin", "harness_baselines.levin:LevinColorizer", framework="numpy",
                     options=LevinOptions)
            register("levin-2", "harness_baselines.levin:LevinColorizer", framework="numpy",
                     options=LevinOptions, takes_hints=True)
    """)
    registry = load_registry(["lazy_levin"], entry_points=False)
    assert not registry.get("colorizer", "quiet-levin").takes_hints  # planned from this
    with pytest.raises(PluginError, match="register it with takes_hints=True"):
        registry.get("colorizer", "quiet-levin").load()
    entry = registry.get("colorizer", "levin-2")
    assert entry.takes_hints and entry.load().takes_hints


def test_hook_asks_only_for_the_arguments_it_names(plugin_module):
    plugin_module("no_args", """
        from harness import hookimpl

        @hookimpl
        def harness_register_metrics():
            pass
    """)
    registry = load_registry(["no_args"], entry_points=False)
    assert not registry.failures


def test_readme_plugin_installed_with_pip(readme_plugin_on_path, harness_cli):
    out = harness_cli("plugins", "--json")
    assert out.exit_code == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    for key in ("name", "kind", "framework", "distribution", "version", "summary", "error"):
        assert key in rows["sepia"]
    assert rows["sepia"]["distribution"] == "harness-sepia"
    assert rows["mean-chroma"]["kind"] == "metric"

    def names(**env: str | None) -> set[str]:
        out = harness_cli("plugins", "--json", env={"HARNESS_DISABLE_PLUGIN_AUTOLOAD": None,
                                                    "HARNESS_PLUGINS": None, **env})
        return {r["name"] for r in json.loads(out.stdout)}

    assert {"sepia", "gray"} <= names()
    disabled = names(HARNESS_DISABLE_PLUGIN_AUTOLOAD="1")
    assert "sepia" not in disabled and "gray" in disabled
    assert "sepia" not in names(HARNESS_PLUGINS="nothing-else")
    only_it = names(HARNESS_PLUGINS="harness-sepia")
    assert "sepia" in only_it and "gray" not in only_it  # the host's plugins obey it too
    assert {"sepia", "gray"} <= names(HARNESS_PLUGINS="harness-sepia,colorization-harness")


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
    assert "sepia (ref) " in out.stdout and "mean-chroma" in out.stdout


def test_trace_env_prints_loads(harness_cli):
    out = harness_cli("plugins", env={"HARNESS_TRACE_PLUGINS": "1"})
    assert "[harness plugins] registered colorizer 'gray'" in out.stderr
    assert "harness_register_colorizers" in out.stderr  # pluggy's own trace of the hook call
    assert os.environ.get("HARNESS_TRACE_PLUGINS") is None
