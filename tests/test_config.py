"""Config loading: validation messages, typo suggestions, --set overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.config import load_config
from harness.errors import ConfigError
from harness.plugins import load_registry
from harness.run import resolve_metrics, resolve_models

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def write(tmp_path, text):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


def test_valid_config_fills_defaults(tmp_path):
    cfg = load_config(write(tmp_path, "models: [{plugin: gray}]\n"))
    assert cfg.data.source == "demo" and cfg.data.cache_size == cfg.data.size
    assert cfg.budget_for(cfg.models[0]).epochs == 1
    assert cfg.models[0].label == "gray"


def test_typo_names_key_and_nearest_spelling(tmp_path):
    path = write(tmp_path, "models: [{plugin: gray}]\ndata: {source: demo, szie: 32}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert str(path) in msg and "data.szie" in msg and "Did you mean 'size'" in msg
    assert "\n" not in msg


def test_bad_value_names_path_value_and_expectation(tmp_path):
    path = write(tmp_path, "models: [{plugin: gray}]\ndata: {size: 30}\n")
    with pytest.raises(ConfigError, match=r"'data.size' = 30 is invalid: .*multiple of 8"):
        load_config(path)


def test_nested_list_typo_is_located(tmp_path):
    path = write(tmp_path, "models: [{plugin: gray}, {plugn: zhang}]\n")
    with pytest.raises(ConfigError, match=r"models\[1\]\.plugn.*Did you mean 'plugin'"):
        load_config(path)


@pytest.mark.parametrize("device,ok", [("auto", True), ("cuda:1", True), ("mps", True),
                                       ("gpu", False), ("cuda:x", False)])
def test_device_values(tmp_path, device, ok):
    path = write(tmp_path, f"models: [{{plugin: gray}}]\ndevice: '{device}'\n")
    if ok:
        assert load_config(path).device == device
    else:
        with pytest.raises(ConfigError, match="device"):
            load_config(path)


def test_overrides_reach_any_key(tmp_path):
    path = write(tmp_path, "models: [{plugin: gray}, {plugin: mean-prior}]\n")
    cfg = load_config(path, ["data.size=32", "budget.steps=5", "models.1.options.bands=4",
                             "models[0].budget={minutes: 0.5}"])
    assert cfg.data.size == 32 and cfg.budget.steps == 5
    assert cfg.models[1].options == {"bands": 4}
    assert cfg.budget_for(cfg.models[0]).minutes == 0.5


@pytest.mark.parametrize("override,match", [("nokey", "KEY=VALUE"),
                                            ("models.5.plugin=x", "not an index"),
                                            ("name.sub=1", "not a mapping")])
def test_bad_overrides(tmp_path, override, match):
    path = write(tmp_path, "name: x\nmodels: [{plugin: gray}]\n")
    with pytest.raises(ConfigError, match=match):
        load_config(path, [override])


def test_yaml_syntax_error_has_line(tmp_path):
    path = write(tmp_path, "models: [{plugin: gray}\nname: [\n")
    with pytest.raises(ConfigError, match=r"line \d+"):
        load_config(path)


def test_duplicate_model_names_rejected(tmp_path):
    path = write(tmp_path, "models: [{plugin: gray}, {plugin: gray}]\n")
    with pytest.raises(ConfigError, match="unique"):
        load_config(path)


def test_missing_models_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="'models' is required"):
        load_config(write(tmp_path, "name: x\n"))
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_validate_with_their_plugins(path):
    """Every config in configs/ names installed plugins, valid options and known metrics."""
    cfg = load_config(path)
    registry = load_registry(cfg.plugins)
    assert len(resolve_models(cfg, registry)) == len(cfg.models)
    assert resolve_metrics(cfg, registry)


def test_hints_list_or_mapping_and_clear_errors(tmp_path):
    base = "models: [{plugin: levin}]\ndata: {size: 16, eval_size: 24}\n"
    cfg = load_config(write(tmp_path, base + "hints: [0, 10]\n"))
    assert (cfg.hints.counts, cfg.hints.sampler, cfg.hints.patch) == ([0, 10], "uniform", (1, 5))
    cfg = load_config(write(tmp_path, base + "hints: {counts: [2], sampler: gaussian, "
                                             "patch: [1, 9]}\n"))
    assert (cfg.hints.sampler, cfg.hints.patch) == ("gaussian", (1, 9))
    assert load_config(write(tmp_path, base)).hints is None
    for text, message in [("[1, -1]", r"'hints.counts' = \[1, -1\] is invalid: .*>= 0"),
                          ("[3, 3]", r"hints.counts.*3 repeated"),
                          ("[true]", r"'hints.counts\[0\]' = True"),
                          ("{counts: [1], sampler: gauss}", r"'hints.sampler' = 'gauss'.*gaussian"),
                          ("{counts: [1], patch: [4, 2]}", r"'hints.patch'.*smallest <= largest"),
                          ("{counts: [1], patch: [1, 30]}", r"hints.patch: largest side 30 "
                                                            r"exceeds the evaluation size 24"),
                          ("{count: [1]}", r"unknown key 'hints.count'.*Did you mean 'counts'")]:
        with pytest.raises(ConfigError, match=message):
            load_config(write(tmp_path, base + f"hints: {text}\n"))
    with pytest.raises(ConfigError, match="'@' is reserved for hint rows"):
        load_config(write(tmp_path, "models: [{plugin: gray, name: gray@1}]\n"))
