"""What ``--resume`` accepts: the same experiment, continued, and nothing else.

A run remembers its resolved config (``config.yaml``) and its protocol fingerprint (the data,
split, sizes and metric versions, in ``environment.json``). Resuming with a config or data
that differ would mix two experiments under one table, so it is refused, naming the keys,
before any file is written. ``--allow-changes`` lets through changes confined to keys that
cannot alter a model's numbers (:data:`NEUTRAL`); the run then records the new config.
"""

from __future__ import annotations

import fnmatch
from typing import Any

import yaml

from harness.config import flatten
from harness.errors import ConfigError
from harness.rundir import RunDir

#: Config keys whose change leaves every trained model and score as it is.
NEUTRAL = ("name", "report.*", "threads.*", "data.workers", "data.cache_dir", "output_dir",
           "plugin_dir", "execution.*")


def config_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The dotted keys whose values differ between two configs (lists, such as ``models``,
    compare as a whole)."""
    a, b = flatten(old), flatten(new)
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def neutral(key: str) -> bool:
    return any(fnmatch.fnmatchcase(key, pattern) for pattern in NEUTRAL)


def check_config(run: RunDir, new: dict[str, Any], allow_changes: bool = False) -> None:
    """Refuse (exit 2) a resume whose resolved config differs from the run's."""
    try:
        old = yaml.safe_load(run.config_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{run.config_file}: unreadable ({exc}); the run cannot be resumed, "
                          f"start a new one") from None
    if not isinstance(old, dict):
        raise ConfigError(f"{run.config_file}: not a config mapping; the run cannot be resumed")
    changed = config_changes(old, new)
    if not changed or (allow_changes and all(map(neutral, changed))):
        return
    shown = ", ".join(f"{k} ({_values(old, new, k)})" for k in changed[:8])
    more = f" and {len(changed) - 8} more" if len(changed) > 8 else ""
    hard = [k for k in changed if not neutral(k)]
    hint = (f"; these can change results: {', '.join(hard)}. Start a new run instead"
            if hard else "; none of them changes results: pass --allow-changes to accept them")
    raise ConfigError(f"--resume {run.path}: the config differs from the run's: "
                      f"{shown}{more}{hint}. Nothing was written.")


def _values(old: dict[str, Any], new: dict[str, Any], key: str) -> str:
    a, b = flatten(old), flatten(new)
    if key == "models":
        return "the list of models or their options"
    return f"{a.get(key, '(unset)')} -> {b.get(key, '(unset)')}"


def check_protocol(run: RunDir, fingerprint: dict[str, Any]) -> None:
    """Refuse (exit 2) a resume whose data or split differ from the run's."""
    old = run.read("environment").get("protocol")
    if not old:
        raise ConfigError(f"{run.path / 'environment.json'}: no protocol fingerprint (missing "
                          f"or unreadable), so the run's data cannot be checked; start a new run")
    skip = {"id", "path"}
    differ = sorted(k for k in set(old) | set(fingerprint) if k not in skip and
                    old.get(k) != fingerprint.get(k))
    if differ:
        raise ConfigError(f"--resume {run.path}: the data differ from the run's (protocol "
                          f"fields {', '.join(differ)}): other images, split or test set. "
                          f"Start a new run. Nothing was written.")
