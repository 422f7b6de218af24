"""The host lists plugins, validates configs and reports without importing a framework."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.conftest import ROOT

FRAMEWORKS = ("torch", "tensorflow", "keras")

CHECK = """
import json, sys
from click.testing import CliRunner
from harness.cli import main

def framework_free(what, *args):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    loaded = [m for m in {frameworks!r} if m in sys.modules]
    print(json.dumps({{"what": what, "code": result.exit_code, "loaded": loaded,
                      "output": result.output[-400:]}}))

framework_free("plugins", "plugins")
framework_free("plugins --json", "plugins", "--json")

from harness.config import load_config
from harness.plugins import load_registry
from harness.run import resolve_metrics, resolve_models
cfg = load_config({all_yaml!r})
registry = load_registry(cfg.plugins, config_dir=cfg.plugin_dir)
models = resolve_models(cfg, registry)
resolve_metrics(cfg, registry)
print(json.dumps({{"what": "validate all.yaml", "code": len(models),
                  "loaded": [m for m in {frameworks!r} if m in sys.modules], "output": ""}}))

framework_free("report", "report", {run!r}, "--format", "md", "--out", {out!r})
framework_free("study export", "study", "export", {run!r}, "--out", {kit!r}, "--raters", "2",
               "--colorized", "2", "--real", "1")
"""


def test_no_framework_for_plugins_config_report_or_study(plugin_run, tmp_path):
    run = plugin_run("frameworkfree", "[{plugin: tinted}, {plugin: gray}]")
    script = CHECK.format(frameworks=FRAMEWORKS, all_yaml=str(ROOT / "configs" / "all.yaml"),
                          run=str(run), out=str(tmp_path / "report"), kit=str(tmp_path / "kit"))
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    results = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert [r["what"] for r in results] == ["plugins", "plugins --json", "validate all.yaml",
                                            "report", "study export"]
    for r in results:
        assert r["loaded"] == [], f"{r['what']} imported {r['loaded']}"
    codes = {r["what"]: r["code"] for r in results}
    assert codes["validate all.yaml"] == 11  # all eleven models validated
    assert codes["plugins"] == codes["report"] == codes["study export"] == 0, results
