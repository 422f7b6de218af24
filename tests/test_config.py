"""Config loading: validation messages, typo suggestions, --set overrides."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness import limits
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


def test_binary_config_names_the_file(tmp_path):
    path = tmp_path / "photo.yaml"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    with pytest.raises(ConfigError, match=rf"{path}: not a text file \(byte \d+ is 0x[0-9a-f]+"):
        load_config(path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs")
def test_fifo_folder_or_huge_config_is_refused_without_reading_it(tmp_path):
    os.mkfifo(tmp_path / "pipe.yaml")  # opening it for reading would block
    for path in (tmp_path / "pipe.yaml", tmp_path):
        with pytest.raises(ConfigError, match=f"{path}: not a regular file"):
            load_config(path)
    big = tmp_path / "big.yaml"
    big.write_text("models: [{plugin: gray}]\n" + "# padding\n" * (limits.MAX_CONFIG_BYTES // 10))
    with pytest.raises(ConfigError, match="larger than 1 MiB"):
        load_config(big)


@pytest.mark.parametrize("seed", [-1, 2**32])
def test_seed_out_of_range_names_key_and_range(tmp_path, seed):
    path = write(tmp_path, f"models: [{{plugin: gray}}]\nseed: {seed}\n")
    with pytest.raises(ConfigError, match=rf"'seed' = {seed} is invalid: expected an integer "
                                          rf"from 0 to 4294967295"):
        load_config(path)
    assert load_config(path, [f"seed={limits.MAX_SEED}"]).seed == limits.MAX_SEED


#: A value far beyond any machine, for every numeric key; each must be refused with its bound
#: and reason, unless listed in UNBOUNDED with why a huge value cannot fail later.
HUGE = 10**12
UNBOUNDED = {
    "budget.epochs": "a long budget is a long run, stopped by any other limit; nothing fails",
    "budget.steps": "likewise",
    "budget.minutes": "likewise",
    "data.max_images": "a cap on the images used; larger than the source is no cap",
    "data.max_pixels": "the user's explicit allowance for large images",
    "report.samples": "capped at the test set's size",
}
#: Reason words each bounded key's message must contain.
BOUNDED = {
    "seed": "32-bit", "data.size": "12 bytes a pixel", "data.eval_size": "12 bytes a pixel",
    "data.train_scale": "size x train_scale", "data.workers": "decode thread",
    "data.grey_chroma": "exclude every image", "data.test_fraction": "less than 1",
    "data.val_fraction": "less than 1", "report.bootstrap": "vectorised bootstrap",
    "report.alpha": "less than 1", "threads.torch": "OpenMP", "threads.tensorflow": "OpenMP",
    "hints.patch": "exceeds the evaluation size",
    "execution.workers": "whole framework", "execution.gpus_per_job": "waiting forever",
}
#: Overrides that set a key's huge value where a bare number would not do.
HUGE_SETTINGS = {"hints.patch": ["hints.counts=[1]", f"hints.patch=[1, {HUGE}]"]}


def _numeric_keys(model, prefix=""):
    from harness.config import _submodel

    for name, field in model.model_fields.items():
        sub = _submodel(field.annotation)
        if sub is not None and name != "models":
            yield from _numeric_keys(sub, f"{prefix}{name}.")
        elif any(t in (int, float) for t in (field.annotation, *getattr(field.annotation,
                                                                       "__args__", ()))):
            yield prefix + name


def test_every_numeric_config_value_is_bounded_or_cannot_fail_later(tmp_path):
    """The class of `data.size: 100000`: a value that validates but runs out of memory later."""
    from harness.config import RunConfig

    keys = set(_numeric_keys(RunConfig))
    assert keys == set(UNBOUNDED) | set(BOUNDED), "decide a bound for each new numeric key"
    path = write(tmp_path, "models: [{plugin: gray}]\n")
    for key in sorted(keys):
        if key in UNBOUNDED:
            load_config(path, [f"{key}={HUGE}"])
            continue
        with pytest.raises(ConfigError) as err:
            load_config(path, HUGE_SETTINGS.get(key, [f"{key}={HUGE}"]))
        msg = str(err.value)
        assert key.split(".")[-1] in msg and BOUNDED[key] in msg, msg


@pytest.mark.parametrize("key,bound", [("data.size", limits.MAX_SIDE),
                                       ("data.eval_size", limits.MAX_SIDE),
                                       ("data.workers", limits.MAX_WORKERS),
                                       ("report.bootstrap", limits.MAX_BOOTSTRAP),
                                       ("threads.torch", limits.MAX_THREADS)])
def test_bounds_are_inclusive(tmp_path, key, bound):
    path = write(tmp_path, "models: [{plugin: gray}]\ndata: {size: 8}\n")
    load_config(path, [f"{key}={bound}"])
    with pytest.raises(ConfigError, match=rf"must be <= {bound}: "):
        load_config(path, [f"{key}={bound + 8}"])


def test_training_options_bound_batch_and_loader_workers(tmp_path):
    """The shared trainers' size-like options, checked with the model's other options."""
    from harness.train.options import TrainOptions

    TrainOptions(batch_size=limits.MAX_BATCH, num_workers=limits.MAX_LOADER_WORKERS)
    for key, reason in (("batch_size", "stacked in memory"), ("num_workers", "process")):
        with pytest.raises(ValueError, match=rf"must be <= \d+: .*{reason}"):
            TrainOptions(**{key: HUGE})
    path = write(tmp_path, "models: [{plugin: zhang, options: {batch_size: 100000}}]\n")
    cfg = load_config(path)
    with pytest.raises(ConfigError, match=r"models\[0\]\.options\.batch_size' = 100000 .*<= 4096"):
        resolve_models(cfg, load_registry(cfg.plugins))


def test_unknown_reference_model_is_refused(tmp_path):
    path = write(tmp_path, "models: [{plugin: gray}, {plugin: mean-prior}]\n"
                           "report: {reference: zhang}\n")
    with pytest.raises(ConfigError, match=r"report.reference = 'zhang' is not a model of this "
                                          r"config \(models: gray, mean-prior\)"):
        load_config(path)


def test_max_srgb_chroma_is_the_gamut_maximum():
    """grey_chroma's bound: no colour on the sRGB cube's surface (where chroma peaks) beats it."""
    import numpy as np

    from harness.color import rgb_to_lab
    from harness.config import _max_srgb_chroma

    g = np.linspace(0, 1, 64, dtype=np.float32)
    a, b = np.meshgrid(g, g)
    faces = []
    for axis in range(3):
        for v in (0.0, 1.0):
            planes = [a, b]
            planes.insert(axis, np.full_like(a, v))
            faces.append(np.stack(planes, -1))
    lab = rgb_to_lab(np.concatenate(faces))
    assert np.hypot(lab[..., 1], lab[..., 2]).max() <= _max_srgb_chroma() + 1e-3


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
