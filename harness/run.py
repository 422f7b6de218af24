"""One benchmark run: data, then per model fit -> save -> colorize -> score, then the table.

Layout of ``results/<name>-<timestamp>/`` (every file written atomically)::

    config.yaml          the resolved config         environment.json   versions, device, git
    data_report.json     counts, skipped files, split
    timings.json         wall-clock seconds of each phase (setup, data, each model's fit and
                         scoring, tables, report)
    test_lab.npy         the test images in Lab at the evaluation size (N, E, E, 3)
    models/<model>/      status.json (with ``compute``: FLOPs and rates of a learned model,
                         see :mod:`harness.train.flops`), log.txt, loss.csv, checkpoints/, weights/,
                         pred_ab.npy (test predictions), scores.npz (per-image metric rows)
    per_image.csv  summary.csv  table.md  samples.png

A hint-taking model (``takes_hints``) is fitted once into ``models/<model>/`` (log, curve,
weights) and scored once per count of the config's ``hints:`` list, each count a model row of
its own, ``models/<model>@<N>/`` with the files above (see :func:`run_hint_rows`).

``--resume`` reuses the directory: finished models (and finished ``<model>@<N>`` rows) are
skipped, unfinished ones continue from their last checkpoint.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import logging
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness import protocol
from harness.atomic import write_json, write_text, write_with
from harness.color import PriorAccumulator, zhang313
from harness.colorizer import Colorizer, FitContext
from harness.config import ModelConfig, RunConfig, dump_config
from harness.data.loader import Splits, load_splits
from harness.environment import environment, resolve_device
from harness.errors import ConfigError, ExitCode, PluginError, TrainingDiverged
from harness.hints import Hints, sample_hints
from harness.metrics import Metric, ScoringContext
from harness.metrics.engine import GROUND_TRUTH, compute_rows
from harness.metrics.truth import TruthStore
from harness.plugins import Entry, Registry
from harness.progress import Laps, LossLog, Progress
from harness.report.build import report_after_run
from harness.resize import resize_ab, resize_l
from harness.study.votes import compute as compute_study
from harness.study.votes import load_votes, merge_outputs
from harness.table import write_tables
from harness.train.flops import compute_status

log = logging.getLogger("harness")


@dataclass
class Model:
    """A configured model: its label, plugin entry and validated options."""

    config: ModelConfig
    entry: Entry
    options: object

    @property
    def label(self) -> str:
        return self.config.label

    def build(self) -> Colorizer:
        """A new colorizer with these options; imports the plugin's implementation."""
        return self.entry.load()(self.options)


def resolve_models(cfg: RunConfig, registry: Registry) -> list[Model]:
    """Look up every model's plugin and validate its options, naming the config key on error."""
    from pydantic import ValidationError

    from harness.config import describe_validation_error

    models = []
    for i, mc in enumerate(cfg.models):
        try:
            entry = registry.get("colorizer", mc.plugin)
        except PluginError as exc:
            raise ConfigError(f"models[{i}].plugin: {exc}") from None
        try:
            options = entry.options.model_validate(mc.options)
        except ValidationError as exc:
            message = describe_validation_error(exc, f"models[{i}] ({mc.plugin})",
                                                entry.options, ("models", i, "options"))
            raise ConfigError(message) from None
        models.append(Model(mc, entry, options))
    return models


def resolve_metrics(cfg: RunConfig, registry: Registry) -> list[Metric]:
    names = registry.names("metric") if cfg.metrics == "all" else cfg.metrics
    out = []
    for i, name in enumerate(names):
        try:
            out.append(registry.get("metric", name).load())
        except PluginError as exc:
            raise ConfigError(f"metrics[{i}]: {exc}") from None
    return out


def new_run_dir(cfg: RunConfig) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = cfg.output_dir / f"{cfg.name}-{stamp}"
    suffix = 1
    while path.exists():
        suffix += 1
        path = cfg.output_dir / f"{cfg.name}-{stamp}-{suffix}"
    path.mkdir(parents=True)
    return path


def _status(model_dir: Path) -> dict:
    path = model_dir / "status.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _scoring_context(splits: Splits, device: str, run_dir: Path) -> ScoringContext:
    """The context every model is scored with; ground truth beyond its RAM budget spills into
    a hidden folder of the run directory, deleted when scoring is over."""
    bins = zhang313()
    acc = PriorAccumulator(bins)
    for _, ab, _ in splits.train_full.iter_batches(16):
        acc.add(ab)
    return ScoringContext(bins=bins, prior=acc.prior(), device=device,
                          truth=TruthStore(spill_dir=run_dir))


def colorize(model: Colorizer, L_eval: np.ndarray, size: int, batch_size: int = 16,
             hints: Hints | None = None, ab_true: np.ndarray | None = None) -> np.ndarray:
    """The fair protocol: L resized to the model's input size, ab upsampled back to L's size.

    ``hints`` (for a hint-taking model, which is given ``size`` = L's own size) and ``ab_true``
    (for an oracle) go to ``predict`` batch by batch, as keywords of those names.
    """
    out = np.empty((*L_eval.shape, 2), dtype=np.float32)
    for start in range(0, len(L_eval), batch_size):
        chunk = L_eval[start : start + batch_size]
        given = {name: value[start : start + len(chunk)]
                 for name, value in (("hints", hints), ("ab_true", ab_true)) if value is not None}
        ab = np.asarray(model.predict(resize_l(chunk, size), **given), dtype=np.float32)
        if ab.shape != (len(chunk), size, size, 2):
            raise ValueError(f"predict returned ab of shape {ab.shape}; expected "
                             f"{(len(chunk), size, size, 2)}")
        out[start : start + len(chunk)] = resize_ab(ab, L_eval.shape[1])
    return out


class _ModelLog:
    """Send the harness logger to the model's log.txt while it runs."""

    def __init__(self, path: Path) -> None:
        self.handler = logging.FileHandler(path, encoding="utf-8")
        self.handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))

    def __enter__(self) -> None:
        log.addHandler(self.handler)

    def __exit__(self, *exc: object) -> None:
        log.removeHandler(self.handler)
        self.handler.close()


def _fit(model: Model, cfg: RunConfig, splits: Splits, model_dir: Path, device: str,
         resume: bool) -> tuple[Colorizer, dict]:
    """Build, fit and save ``model`` in ``model_dir``; return it and its status figures
    (``fit_seconds``; ``compute`` for a learned model: FLOPs and rates)."""
    t0 = time.monotonic()
    colorizer = model.build()
    budget = cfg.budget_for(model.config)
    ctx = FitContext(device=device, seed=cfg.seed, model_dir=model_dir,
                     loss_log=LossLog(model_dir / "loss.csv"), resume=resume,
                     train_full=splits.train_full)
    log.info("fitting %s (%s) on %d images, budget %s, device %s", model.label,
             model.config.plugin, len(splits.train), budget.describe(), device)
    colorizer.fit(splits.train, splits.val, budget, ctx)
    figures: dict = {"fit_seconds": round(time.monotonic() - t0, 2)}
    if colorizer.compute is not None:
        figures["compute"] = compute_status(colorizer.compute, device)
    weights = model_dir / "weights"
    weights.mkdir(exist_ok=True)
    colorizer.save(weights)
    return colorizer, figures


def _score(colorizer: Colorizer, ab_pred: np.ndarray, splits: Splits, context: ScoringContext,
           metrics: list[Metric], model_dir: Path) -> None:
    """Save a row's predictions, per-image scores and the colorizer's extra files."""
    L, ab_true = splits.test.arrays()
    write_with(model_dir / "pred_ab.npy", lambda p: np.save(p, ab_pred))
    with Progress(len(L), f"scoring {model_dir.name}", unit="img") as bar:
        rows = compute_rows(metrics, L, ab_pred, ab_true, context, progress=bar.update)
    _save_rows(model_dir, rows)
    colorizer.write_extras(model_dir, splits.test)


def run_model(model: Model, cfg: RunConfig, splits: Splits, context: ScoringContext,
              metrics: list[Metric], run_dir: Path, device: str, resume: bool) -> dict:
    """Fit, save, colorize and score one model; failures become a status, never an exception.

    An oracle (``uses_ground_truth``) is given the test ground truth and marked in its status.
    """
    model_dir = run_dir / "models" / model.label
    model_dir.mkdir(parents=True, exist_ok=True)
    status = {"model": model.label, "plugin": model.config.plugin, "status": "running",
              "started": dt.datetime.now().isoformat(timespec="seconds")}
    write_json(model_dir / "status.json", status)
    t0 = time.monotonic()
    with _ModelLog(model_dir / "log.txt"):
        try:
            colorizer, figures = _fit(model, cfg, splits, model_dir, device, resume)
            status.update(figures)
            L, ab_true = splits.test.arrays()
            oracle = bool(colorizer.uses_ground_truth)
            if oracle:
                status["uses_ground_truth"] = True
            ab_pred = colorize(colorizer, L, cfg.data.size, ab_true=ab_true if oracle else None)
            _score(colorizer, ab_pred, splits, context, metrics, model_dir)
            status.update(status="done", seconds=round(time.monotonic() - t0, 2),
                          extra=colorizer.extra_results(splits.test))
        except TrainingDiverged as exc:
            status.update(status="failed", error=f"training diverged: {exc}")
            log.error("%s: %s", model.label, status["error"])
        except Exception as exc:  # one model's bug must not sink the others
            status.update(status="failed", error=f"{type(exc).__name__}: {exc}")
            log.error("%s failed:\n%s", model.label, traceback.format_exc())
    write_json(model_dir / "status.json", status)
    return status


class _FitFailed(Exception):
    """The shared fit of a hint-taking model failed; its rows fail with the fit's error."""


def run_hint_rows(model: Model, cfg: RunConfig, splits: Splits, context: ScoringContext,
                  metrics: list[Metric], run_dir: Path, device: str,
                  resume: bool) -> dict[str, dict]:
    """A hint-taking model: one fit, then a row ``NAME@N`` per count N of ``cfg.hints``.

    The fit's log, curve and weights go to ``models/NAME/``; each row gets a directory
    ``models/NAME@N/`` like any model's (status.json with ``hints: N``, log.txt, pred_ab.npy,
    scores.npz), so tables, reports, ``compare``, ``study`` and ``--resume`` treat it as a model.
    The host draws the hints from each test image's ground truth at the evaluation size with
    :func:`harness.hints.sample_hints`, seeded by ``cfg.seed`` and the image's test position:
    the same for every hint-taking model. The model gets L and hints at the evaluation size
    (resizing a hint mask would lose hints). Finished rows are kept on resume; a failed fit
    fails every row it was to serve. Returns the rows' statuses in the config's count order.
    """
    labels = {n: f"{model.label}@{n}" for n in cfg.hints.counts}
    statuses = {}
    for label in labels.values():
        previous = _status(run_dir / "models" / label)
        if resume and previous.get("status") == "done":
            log.info("%s: finished in the earlier run, skipped", label)
            statuses[label] = previous
    pending = [n for n in labels if labels[n] not in statuses]
    if not pending:
        return statuses
    fit_dir = run_dir / "models" / model.label
    resumed = resume and fit_dir.is_dir()
    fit_dir.mkdir(parents=True, exist_ok=True)
    error, figures = "", {}
    with _ModelLog(fit_dir / "log.txt"):
        try:
            colorizer, figures = _fit(model, cfg, splits, fit_dir, device, resumed)
        except TrainingDiverged as exc:
            error = f"training diverged: {exc}"
            log.error("%s: %s", model.label, error)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            log.error("%s failed:\n%s", model.label, traceback.format_exc())
    L, ab_true = splits.test.arrays()
    for n in pending:
        row_dir = run_dir / "models" / labels[n]
        row_dir.mkdir(parents=True, exist_ok=True)
        status = {"model": labels[n], "plugin": model.config.plugin, "hints": n,
                  "status": "running", "started": dt.datetime.now().isoformat(timespec="seconds"),
                  **figures}
        write_json(row_dir / "status.json", status)
        t0 = time.monotonic()
        with _ModelLog(row_dir / "log.txt"):
            try:
                if error:
                    raise _FitFailed(error)
                hints = sample_hints(ab_true, n, cfg.seed, np.arange(len(L)),
                                     sampler=cfg.hints.sampler, patch=cfg.hints.patch)
                log.info("%s: %d hints per test image (%s, patches %d-%d px)", labels[n], n,
                         cfg.hints.sampler, *cfg.hints.patch)
                ab_pred = colorize(colorizer, L, L.shape[1], hints=hints)
                _score(colorizer, ab_pred, splits, context, metrics, row_dir)
                status.update(status="done", seconds=round(time.monotonic() - t0, 2),
                              extra=colorizer.extra_results(splits.test))
            except _FitFailed:
                status.update(status="failed", error=error)
                log.error("%s: not scored, the fit failed (see %s)", labels[n],
                          fit_dir / "log.txt")
            except Exception as exc:
                status.update(status="failed", error=f"{type(exc).__name__}: {exc}")
                log.error("%s failed:\n%s", labels[n], traceback.format_exc())
        write_json(row_dir / "status.json", status)
        statuses[labels[n]] = status
    return {labels[n]: statuses[labels[n]] for n in labels}


def _hint_taking(cfg: RunConfig, models: list[Model]) -> set[str]:
    """Labels of the models that take hints; a :class:`ConfigError` when ``hints:`` is unset
    for one, or when ``report.reference`` names a user-assisted or oracle model."""
    found = set()
    for i, model in enumerate(models):
        try:
            takes = model.entry.load().takes_hints
        except PluginError:
            continue  # run_model records the import error as the model's failure
        if takes and cfg.hints is None:
            raise ConfigError(f"models[{i}] ({model.label}): {model.config.plugin} takes hints; "
                              f"set the top-level hints: list, e.g. hints: [1, 10, 100]")
        if takes:
            found.add(model.label)
    ref = cfg.report.reference
    if ref is not None:
        base = ref.rpartition("@")[0] or ref
        chosen = next((m for m in models if m.label == base), None)
        assisted = base in found
        if chosen is not None and not assisted:
            try:
                assisted = bool(chosen.build().uses_ground_truth)
            except Exception:  # its own run_model reports why it cannot be built
                assisted = False
        if assisted:
            raise ConfigError(f"report.reference: {ref} is user-assisted or an oracle; the "
                              f"reference must be an automatic model")
    return found


def _save_rows(model_dir: Path, rows: dict[str, np.ndarray | str]) -> None:
    arrays = {k: v for k, v in rows.items() if isinstance(v, np.ndarray)}
    write_with(model_dir / "scores.npz", lambda p: np.savez(p, **arrays))
    write_json(model_dir / "unavailable.json",
               {k: v for k, v in rows.items() if isinstance(v, str)})


def load_rows(model_dir: Path) -> dict[str, np.ndarray | str]:
    """The per-image metric rows a finished model left in its directory."""
    with np.load(model_dir / "scores.npz", allow_pickle=False) as npz:
        rows: dict[str, np.ndarray | str] = {k: npz[k] for k in npz.files}
    rows.update(json.loads((model_dir / "unavailable.json").read_text()))
    return rows


def load_trained(run_dir: Path, model: str, registry: Registry | None = None) -> Colorizer:
    """The colorizer ``model`` of a finished run, rebuilt from its config and saved weights."""
    from harness.config import load_config
    from harness.errors import HarnessError
    from harness.plugins import load_registry

    cfg = load_config(run_dir / "config.yaml")
    registry = registry or load_registry(cfg.plugins, config_dir=cfg.plugin_dir)
    chosen = next((m for m in resolve_models(cfg, registry)
                   if m.label in (model, model.rpartition("@")[0])), None)
    if chosen is None:
        names = ", ".join(m.label for m in cfg.models)
        raise HarnessError(f"--model {model}: not in {run_dir}; models there: {names}")
    colorizer = chosen.build()
    if chosen.entry.load().takes_hints or colorizer.uses_ground_truth:
        raise HarnessError(f"--model {model}: {chosen.label} needs user hints or the ground "
                           f"truth, which photos to colorize do not have; choose an automatic "
                           f"model")
    if _status(run_dir / "models" / model).get("status") != "done":
        raise HarnessError(f"--model {model}: did not finish in {run_dir} (see its status.json)")
    colorizer.load(run_dir / "models" / model / "weights")
    return colorizer


def execute(cfg: RunConfig, registry: Registry, run_dir: Path | None = None) -> tuple[Path, int]:
    """Run (or resume, when ``run_dir`` is given) the whole benchmark; return dir and exit code."""
    laps = Laps()  # -> timings.json
    models = resolve_models(cfg, registry)
    metrics = resolve_metrics(cfg, registry)
    hinted = _hint_taking(cfg, models)
    resume = run_dir is not None
    run_dir = run_dir or new_run_dir(cfg)
    device = resolve_device(cfg.device)
    write_text(run_dir / "config.yaml", dump_config(cfg))
    laps.lap("setup")
    splits = load_splits(cfg.data, registry, cfg.seed)
    versions = {m.name: f"{e.provider.distribution} {e.provider.version}"
                for m in metrics for e in [registry.get("metric", m.name)]}
    fingerprint = protocol.describe(cfg, splits.sources, splits.report["test_images"],
                                    splits.report["split"], metrics, versions)
    write_json(run_dir / "environment.json",
               {**environment(registry, device), "protocol": fingerprint})
    write_json(run_dir / "data_report.json", splits.report)
    L, ab_true = splits.test.arrays()
    write_with(run_dir / "test_lab.npy",
               lambda p: np.save(p, np.concatenate([L[..., None], ab_true], axis=-1)))
    log.info("data: %(used)d images used of %(found)d found", splits.report)
    context = _scoring_context(splits, device, run_dir)
    laps.lap("data")

    statuses = {}
    for model in models:
        if model.label in hinted:
            rows = run_hint_rows(model, cfg, splits, context, metrics, run_dir, device, resume)
            statuses.update(rows)
            gc.collect()
            laps.lap(f"{model.label} ({', '.join(rows)})")
            continue
        model_dir = run_dir / "models" / model.label
        previous = _status(model_dir)
        if resume and previous.get("status") == "done":
            log.info("%s: finished in the earlier run, skipped", model.label)
            statuses[model.label] = previous
            continue
        statuses[model.label] = run_model(model, cfg, splits, context, metrics, run_dir,
                                          device, resume=resume and bool(previous))
        # A fitted model (Keras's above all) lingers in reference cycles; left to the cyclic
        # collector, the last one is freed by a full collection in the middle of the report,
        # which then took several times what `harness report` takes.
        gc.collect()
        laps.model(model.label, statuses[model.label])
    rows = {label: load_rows(run_dir / "models" / label) for label, status in statuses.items()
            if status["status"] == "done"}
    descriptive = [m for m in metrics if m.higher_is_better is None]
    if descriptive:
        rows[GROUND_TRUTH] = compute_rows(descriptive, L, ab_true, ab_true, context)
    context.truth.close()
    write_tables(run_dir, cfg, metrics, rows, statuses, splits)
    votes = load_votes(run_dir)
    if votes:  # a resumed run keeps the human-study results imported into it
        merge_outputs(run_dir, compute_study(votes))
    laps.lap("tables")
    report_after_run(run_dir)
    laps.lap("report")
    laps.write(run_dir / "timings.json")
    failed = [name for name, s in statuses.items() if s["status"] != "done"]
    return run_dir, ExitCode.MODEL_FAILED if failed else ExitCode.OK
