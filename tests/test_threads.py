"""Thread settings: the config's ``threads`` section, the environment and the defaults."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from harness import threads
from harness.config import load_config
from harness.errors import ConfigError


def python(code: str, **env: str) -> list[str]:
    """Run ``code`` in a fresh interpreter (no framework loaded yet); its printed words."""
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    done = subprocess.run([sys.executable, "-c", code], env={**base, **env}, check=True,
                          capture_output=True, text=True)
    return done.stdout.split()


def test_config_section_is_validated(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("models: [{plugin: gray}]\n")
    assert load_config(path).threads.model_dump() == {
        "torch": None, "tensorflow": None, "omp_wait_policy": None}
    cfg = load_config(path, ["threads.torch=1", "threads.omp_wait_policy=passive"])
    assert (cfg.threads.torch, cfg.threads.omp_wait_policy) == (1, "passive")
    for bad, match in [("threads.torch=0", "threads.torch"),
                       ("threads.omp_wait_policy=sleepy", "threads.omp_wait_policy"),
                       ("threads.jax=2", "unknown key 'threads.jax'")]:
        with pytest.raises(ConfigError, match=match):
            load_config(path, [bad])


def test_wait_policy_default_environment_and_config():
    show = "import os; from harness import threads; threads.choose({}); " \
           "print(os.environ.get('OMP_WAIT_POLICY', 'unset'))"
    assert python(show.format("")) == [threads.OMP_WAIT_POLICY or "unset"]
    assert python(show.format(""), OMP_WAIT_POLICY="active") == ["active"]  # the user's
    assert python(show.format("omp_wait_policy='active'"), OMP_WAIT_POLICY="passive") == \
        ["ACTIVE"]  # the config's wins


def test_configured_counts_reach_both_frameworks():
    words = python(
        "from harness import threads; threads.choose(torch=1, tensorflow=1); "
        "from harness import keras_env; keras_env.configure(); "
        "import torch, tensorflow as tf; "
        "print(torch.get_num_threads(), tf.config.threading.get_intra_op_parallelism_threads())")
    assert words == ["1", "1"]


def test_torch_follows_omp_num_threads_unless_configured():
    count = "from harness import threads; threads.choose({}); import torch; " \
            "threads.configure_torch(); print(torch.get_num_threads())"
    assert python(count.format(""), OMP_NUM_THREADS="1") == ["1"]
    if threads.available_cores() > 1:
        assert python(count.format("torch=2"), OMP_NUM_THREADS="1") == ["2"]
