"""Read finished run directories into frames: summaries, statuses, curves, arrays; merge runs.

A run directory is what ``harness run`` leaves (see :mod:`harness.run`). Only ``config.yaml`` and
``summary.csv`` are required; every other file (test images, predictions, loss curves, data and
environment reports, study rows inside ``summary.csv``) is optional and its section of the report
says so when it is missing. Runs are merged by (run, model); runs of the same config that differ
only in the seed (or device, output folder) form one *group*, and a model's values are
aggregated across the runs of its group with mean, standard deviation and the number of runs.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from harness import assistance, protocol
from harness.config import flatten
from harness.errors import HarnessError
from harness.rundir import RunDir

log = logging.getLogger("harness")

#: Config keys that do not change what a model learns or scores (nor does anything under
#: ``report``): runs that differ only in these repeat one experiment and are aggregated together.
REPEAT_KEYS = ("seed", "device", "output_dir", "data.workers", "data.cache_dir")

#: Prefix of the human-study metrics ``harness study import`` adds to ``summary.csv``.
HUMAN_PREFIX = "human-"

AGGREGATE_COLUMNS = ["group", "model", "metric", "mean", "std", "min", "max", "n_runs",
                     "n_failed", "runs", "direction", "unit", "granularity", "error"]


class ReportError(HarnessError):
    """A report cannot be made from the given directories."""


@dataclass
class RunData:
    """One finished (or partly finished) run directory, read lazily."""

    path: Path
    label: str
    config: dict[str, Any]
    summary: pd.DataFrame
    group: str = ""
    statuses: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.config.get("name", self.path.name))

    @property
    def seed(self) -> Any:
        return self.config.get("seed")

    @property
    def alpha(self) -> float:
        return float((self.config.get("report") or {}).get("alpha", 0.05))

    @property
    def models(self) -> list[str]:
        """Model labels in config order (a hint-taking model's ``NAME@N`` rows in its place),
        then any other model named in the summary."""
        named = [str(m) for m in dict.fromkeys(self.summary["model"].dropna())]
        labels = []
        for m in self.config.get("models") or []:
            label = str(m.get("name") or m.get("plugin") or "")
            rows = [n for n in named if re.fullmatch(re.escape(label) + r"@\d+", n)]
            labels += rows or [label]
        return [m for m in labels + [n for n in named if n not in labels] if m]

    def assisted(self, model: str) -> str:
        """``model``'s assistance (:mod:`harness.assistance`): from its status, else the
        summary's ``assisted`` column; "" for an automatic model."""
        found = assistance.of_status(self.statuses.get(model))
        if found:
            return found
        column = self.summary.loc[self.summary["model"] == model, "assisted"]
        return next((a for a in column if a), "")

    @property
    def trained(self) -> list[str]:
        """Models whose status is done, in config order."""
        return [m for m in self.models if self.statuses.get(m, {}).get("status") == "done"]

    @property
    def reference(self) -> str | None:
        """The model the others were tested against (``report.reference`` or the first
        automatic model done)."""
        ref = (self.config.get("report") or {}).get("reference")
        return ref or next((m for m in self.trained if not self.assisted(m)), None)

    @cached_property
    def config_text(self) -> str:
        try:
            return RunDir(self.path).config_file.read_text(encoding="utf-8")
        except OSError:
            return ""

    @cached_property
    def environment(self) -> dict[str, Any]:
        return RunDir(self.path).read("environment")

    @cached_property
    def data_report(self) -> dict[str, Any]:
        return RunDir(self.path).read("data_report")

    @property
    def image_names(self) -> list[str]:
        """A name per test image (from data_report.json; ``#i`` where it has none)."""
        names = [str(x) for x in self.data_report.get("test_images") or []]
        lab = self.test_lab()
        return [names[i] if i < len(names) else f"#{i}" for i in range(0 if lab is None
                                                                       else len(lab))]

    def test_lab(self) -> np.ndarray | None:
        """(N, E, E, 3) Lab test images, memory-mapped, or None when the run has none."""
        return RunDir(self.path).test_lab()

    def pred_ab(self, model: str) -> np.ndarray | None:
        """(N, E, E, 2) ab predictions of ``model`` on the test images, or None."""
        return RunDir(self.path).model(model).predictions()

    def predictions(self) -> dict[str, np.ndarray]:
        """Predictions of every trained model that match the test images' shape."""
        lab = self.test_lab()
        out = {}
        for model in self.trained:
            ab = self.pred_ab(model)
            if ab is not None and lab is not None and ab.shape == (*lab.shape[:3], 2):
                out[model] = ab
            elif lab is not None:
                log.warning("%s: %s; %s is left out of the report's figures",
                            RunDir(self.path).model(model).predictions_file,
                            "unreadable" if ab is None else f"shape {ab.shape}", model)
        return out

    def loss(self, model: str) -> pd.DataFrame | None:
        """The training curve (step, epoch, loss, ...) of ``model``, or None without one."""
        path = RunDir(self.path).model(model).loss_file
        if not path.exists():
            return None
        try:
            frame = pd.read_csv(path)
        except (OSError, ValueError, pd.errors.EmptyDataError):
            return None
        if not {"step", "loss"} <= set(frame.columns) or frame.empty:
            return None
        return frame

    def human(self) -> pd.DataFrame:
        """The human-study rows of the summary (metrics named ``human-*``)."""
        metric = self.summary["metric"].fillna("").astype(str)
        return self.summary[metric.str.startswith(HUMAN_PREFIX)]


def _is_run(path: Path) -> bool:
    return RunDir(path).finished


def _why_not_a_run(path: Path) -> str:
    if path.is_symlink() and not path.exists():
        return "a dangling symlink"
    if not path.is_dir():
        return "not a folder"
    if RunDir(path).started:
        return ("unfinished: no summary.csv yet (continue it with `harness run CONFIG "
                f"--resume {path}`)")
    return "not a run directory (no config.yaml and summary.csv)"


def find_runs(paths: Iterable[Path], skipped: list[tuple[Path, str]] | None = None
              ) -> list[Path]:
    """Run directories named by ``paths``; a folder of runs (e.g. ``results/``) stands for each.

    A named path that is neither raises :class:`ReportError`; what a folder of runs holds
    besides runs (unfinished runs, other folders, stray files) is appended to ``skipped`` as
    ``(path, reason)``.
    """
    found: list[Path] = []
    for path in map(Path, paths):
        if _is_run(path):
            found.append(path)
            continue
        if not path.is_dir():
            raise ReportError(f"{path}: no such directory")
        if RunDir(path).started:
            raise ReportError(f"{path}: the run has no summary.csv yet (unfinished? continue it "
                              f"with `harness run CONFIG --resume {path}`)")
        entries = sorted(p for p in path.iterdir() if not p.name.startswith("."))
        inner = [p for p in entries if p.is_dir() and _is_run(p)]
        if not inner:
            raise ReportError(f"{path}: not a run directory (no config.yaml and summary.csv) "
                              f"and holds none")
        found.extend(inner)
        if skipped is not None:
            skipped.extend((p, _why_not_a_run(p)) for p in entries if p not in inner)
    return list(dict.fromkeys(p.resolve() for p in found))


def _experiment_key(config: dict[str, Any]) -> dict[str, Any]:
    flat = flatten(config)
    return {k: v for k, v in flat.items()
            if k not in REPEAT_KEYS and not k.startswith("report.")}


def _labels(paths: Sequence[Path]) -> list[str]:
    """Short unique labels: the folder name, with parents added where names collide."""
    depth = 1
    while True:
        labels = ["/".join(p.parts[-depth:]) for p in paths]
        if len(set(labels)) == len(labels) or depth >= max(len(p.parts) for p in paths):
            return labels
        depth += 1


def _groups(configs: Sequence[dict[str, Any]],
            protocols: Sequence[dict[str, Any]] | None = None) -> list[str]:
    """Group label per run: the config name, plus what tells same-named runs apart.

    Runs of one name are one group when their configs agree on every key that can change
    results and their protocol fingerprints (:mod:`harness.protocol`) agree; otherwise the label
    names the differing config keys and ``protocol: <fields>``.
    """
    protocols = protocols or [{} for _ in configs]
    keys = [_experiment_key(c) for c in configs]
    for key, fp in zip(keys, protocols):
        key["(protocol)"] = json.dumps(protocol.comparable(fp), sort_keys=True, default=str) \
            if fp else "unrecorded"
    names = [str(c.get("name", "run")) for c in configs]
    out = []
    for i, name in enumerate(names):
        same = [j for j in range(len(names)) if names[j] == name]
        if len({json.dumps(keys[j], sort_keys=True) for j in same}) == 1:
            out.append(name)
            continue
        differ = sorted({k for j in same for k in set(keys[j]) | set(keys[i])
                         if keys[j].get(k) != keys[i].get(k) and k != "(protocol)"})
        shown = [f"{k}={json.loads(keys[i][k]) if k in keys[i] else '-'}" for k in differ[:3]]
        fields = sorted({f for j in same if keys[j]["(protocol)"] != keys[i]["(protocol)"]
                         for f in protocol.differences(protocols[i], protocols[j])})
        if fields or any(keys[j]["(protocol)"] != keys[i]["(protocol)"] for j in same):
            fid = protocol.fingerprint_id(protocols[i]) if protocols[i] else "unrecorded"
            shown.append(f"protocol {fid}: differs in "
                         f"{', '.join(fields) if fields else 'whether it was recorded'}")
        out.append(f"{name} [{'; '.join(shown)}{', ...' if len(differ) > 3 else ''}]")
    return out


def normalise_summary(summary: pd.DataFrame) -> pd.DataFrame:
    """A summary frame (read from CSV or fresh) with every column, text as str, numbers float."""
    summary = summary.copy()
    for column in ("model", "metric", "status", "note", "direction", "unit", "granularity",
                   "assisted"):
        if column not in summary.columns:
            summary[column] = ""
        summary[column] = summary[column].astype(object).fillna("").astype(str)
    for column in ("value", "ci_low", "ci_high", "n", "p_vs_ref"):
        if column not in summary.columns:
            summary[column] = np.nan
        summary[column] = pd.to_numeric(summary[column], errors="coerce").astype(float)
    if "significant" not in summary.columns:
        summary["significant"] = False
    summary["significant"] = summary["significant"].astype(str).str.lower().eq("true")
    return summary


def load_run(path: Path, label: str | None = None) -> RunData:
    """Read one run directory; :class:`ReportError` if it lacks config.yaml or summary.csv."""
    path = Path(path)
    if not _is_run(path):
        raise ReportError(f"{path}: not a finished run directory (needs config.yaml and "
                          f"summary.csv)")
    try:
        config = yaml.safe_load(RunDir(path).config_file.read_text(encoding="utf-8")) or {}
        summary = pd.read_csv(RunDir(path).summary_file, keep_default_na=True)
    except (OSError, ValueError, yaml.YAMLError, pd.errors.ParserError) as exc:
        raise ReportError(f"{path}: cannot read the run ({type(exc).__name__}: {exc})") from None
    if not isinstance(config, dict) or "model" not in summary.columns:
        bad = "config.yaml is not a config" if not isinstance(config, dict) else \
            "summary.csv has no model column"
        raise ReportError(f"{path}: cannot read the run ({bad})")
    run = RunData(path=path, label=label or path.name, config=config,
                  summary=normalise_summary(summary))
    summary = run.summary
    for model in run.models:
        status = RunDir(path).model(model).status()
        if not status:  # e.g. a run directory copied without its models/ folder
            failed = summary[(summary["model"] == model) & (summary["status"] == "failed")]
            done = (summary["model"] == model) & (summary["status"] == "ok")
            if len(failed):
                status = {"status": "failed", "error": failed["note"].iloc[0]}
            elif done.any() and not model.startswith("("):  # not ground truth, study rows
                status = {"status": "done"}
        if status:
            run.statuses[model] = status
    return run


def load_runs(paths: Iterable[Path]) -> list[RunData]:
    """Every run named by ``paths`` (folders of runs expanded), with unique labels and groups.

    A run that cannot be read, or a folder's entry that is not a run, is skipped and logged
    with the reason; only when no run is left is it an error.
    """
    skipped: list[tuple[Path, str]] = []
    found = find_runs(paths, skipped)
    if not found:
        raise ReportError("no run directories given")
    runs = []
    for path, label in zip(found, _labels(found)):
        try:
            runs.append(load_run(path, label))
        except ReportError as exc:
            skipped.append((path, str(exc).removeprefix(f"{path}: ")))
    for path, reason in skipped:
        log.warning("skipped %s: %s", path, reason)
    if not runs:
        raise ReportError("no readable run: " + "; ".join(f"{p}: {r}" for p, r in skipped))
    protocols = [r.environment.get("protocol") or {} for r in runs]
    for run, group in zip(runs, _groups([r.config for r in runs], protocols)):
        run.group = group
    return runs


def merged_summary(runs: Sequence[RunData]) -> pd.DataFrame:
    """Every run's summary.csv stacked, with ``run``, ``group`` and ``seed`` columns in front."""
    frames = []
    for run in runs:
        frame = run.summary.copy()
        frame.insert(0, "seed", run.seed)
        frame.insert(0, "group", run.group)
        frame.insert(0, "run", run.label)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def aggregate(runs: Sequence[RunData]) -> pd.DataFrame:
    """Per (group, model, metric): mean, std (ddof 1), min, max and number of runs of the value.

    A failed model counts in ``n_failed``; unavailable metrics are left out. With one run
    ``std`` is NaN: a spread needs at least two runs.
    """
    merged = merged_summary(runs)
    records = []
    failed = merged[merged["status"] == "failed"]
    ok = merged[(merged["status"] == "ok") & merged["value"].notna()]
    for (group, model, metric), rows in ok.groupby(["group", "model", "metric"], sort=False):
        values = rows["value"].to_numpy(dtype=float)
        n_failed = int(((failed["group"] == group) & (failed["model"] == model)).sum())
        records.append({
            "group": group, "model": model, "metric": metric,
            "mean": float(values.mean()),
            "std": float(values.std(ddof=1)) if len(values) > 1 else math.nan,
            "min": float(values.min()), "max": float(values.max()),
            "n_runs": len(values), "n_failed": n_failed, "runs": " ".join(rows["run"]),
            "direction": rows["direction"].iloc[0], "unit": rows["unit"].iloc[0],
            "granularity": rows["granularity"].iloc[0]})
    for (group, model), rows in failed.groupby(["group", "model"], sort=False):
        if not ((ok["group"] == group) & (ok["model"] == model)).any():
            records.append({"group": group, "model": model, "metric": "", "n_runs": 0,
                            "n_failed": len(rows), "runs": " ".join(rows["run"]),
                            "error": rows["note"].iloc[0]})
    return pd.DataFrame.from_records(records, columns=AGGREGATE_COLUMNS)
