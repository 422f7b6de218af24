"""One benchmark run: prepare (checks, data, scoring context), then per model a job (fit ->
save -> predict, then score), then the tables and report.

A run is :func:`prepare`, :func:`dispatch` (the jobs of one run, or of a sweep's runs, on the
configured backend of :mod:`harness.execution`) and :func:`finish`. The files it writes, and
their layout, belong to :mod:`harness.rundir`. A hint-taking model (``takes_hints``) is fitted
once into ``models/<model>/`` (log, curve, weights) and scored once per count of the config's
``hints:`` list, each count a model row of its own, ``models/<model>@<N>/`` (see
:func:`produce_hint_rows`). ``--resume`` reuses the directory: finished models (and finished
``<model>@<N>`` rows) are skipped, unfinished ones continue from their last checkpoint.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import logging
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from harness import protocol
from harness import resume as resume_checks
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
from harness.report.summary import write_tables
from harness.resize import resize_ab, resize_l
from harness.rundir import ModelDir, RunDir
from harness.study.votes import compute as compute_study
from harness.study.votes import load_votes, merge_outputs
from harness.threads import available_cores
from harness.train.flops import compute_status, with_attainable

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


def _scoring_context(splits: Splits, device: str, run_dir: Path) -> ScoringContext:
    """The context every model is scored with; ground truth beyond its RAM budget spills into
    a hidden folder of the run directory, deleted when scoring is over."""
    bins = zhang313()
    acc = PriorAccumulator(bins)
    for _, ab, _ in splits.train_full.iter_batches(16):
        acc.add(ab)
    return ScoringContext(bins=bins, prior=acc.prior(), device=device,
                          truth=TruthStore(spill_dir=run_dir))


def predict(model: Colorizer, L_in: np.ndarray, batch_size: int = 16,
            hints: Hints | None = None, ab_true: np.ndarray | None = None) -> np.ndarray:
    """ab (N, S, S, 2) for L (N, S, S) already at the model's input size, batch by batch.

    The fair protocol resizes L once for every model (the parent writes it into the run
    directory, :meth:`RunDir.write_test_input`) and upsamples the ab to the evaluation size when
    scoring (:func:`score_rows`), so a model's own worker needs no resizing (nor the torch that
    does it). ``hints`` (for a hint-taking model, given L at the evaluation size) and ``ab_true``
    (for an oracle) go to ``predict`` batch by batch, as keywords of those names.
    """
    out = np.empty((*L_in.shape, 2), dtype=np.float32)
    for start in range(0, len(L_in), batch_size):
        chunk = np.array(L_in[start : start + batch_size], dtype=np.float32)  # writable
        given = {name: value[start : start + len(chunk)]
                 for name, value in (("hints", hints), ("ab_true", ab_true)) if value is not None}
        ab = np.asarray(model.predict(chunk, **given), dtype=np.float32)
        if ab.shape != (*chunk.shape, 2):
            raise ValueError(f"predict returned ab of shape {ab.shape}; expected "
                             f"{(*chunk.shape, 2)}")
        out[start : start + len(chunk)] = ab
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


def _fit(model: Model, cfg: RunConfig, splits: Splits, out: ModelDir, device: str,
         resume: bool) -> tuple[Colorizer, dict]:
    """Build, fit and save ``model`` in ``out``; return it and its status figures
    (``fit_seconds``; ``compute`` for a learned model: FLOPs and rates)."""
    t0 = time.monotonic()
    colorizer = model.build()
    budget = cfg.budget_for(model.config)
    ctx = FitContext(device=device, seed=cfg.seed, model_dir=out.path,
                     loss_log=LossLog(out.loss_file), resume=resume,
                     train_full=splits.train_full)
    log.info("fitting %s (%s) on %d images, budget %s, device %s", model.label,
             model.config.plugin, len(splits.train), budget.describe(), device)
    colorizer.fit(splits.train, splits.val, budget, ctx)
    figures: dict = {"fit_seconds": round(time.monotonic() - t0, 2)}
    if colorizer.compute is not None:
        figures["compute"] = compute_status(colorizer.compute)  # the rest when scored
    out.weights_dir.mkdir(exist_ok=True)
    colorizer.save(out.weights_dir)
    return colorizer, figures


def _predicted(colorizer: Colorizer, ab: np.ndarray, splits: Splits, out: ModelDir,
               status: dict, t0: float) -> None:
    """Record a row's predictions (at the input size) and the colorizer's extras; the row then
    waits, as status ``predicted``, for :func:`score_rows`."""
    out.write_raw_predictions(ab)
    colorizer.write_extras(out.path, splits.test)
    status.update(status="predicted", seconds=round(time.monotonic() - t0, 2),
                  extra=colorizer.extra_results(splits.test))


def score_rows(run: RunDir, labels: tuple[str, ...] | list[str], splits: Splits,
               context: ScoringContext, metrics: list[Metric]) -> dict[str, dict]:
    """Score each row of ``labels`` whose status is ``predicted``: upsample its predictions to
    the evaluation size (bilinear, :func:`harness.resize.resize_ab`), save them, compute the
    per-image rows. The statuses of all ``labels``; a failure fails its row only."""
    L, ab_true = splits.test.arrays()
    statuses = {}
    for label in labels:
        out = run.model(label)
        status = out.status()
        if status.get("status") == "predicted":
            t0 = time.monotonic()
            with _ModelLog(out.log_file):
                try:
                    ab_pred = resize_ab(out.raw_predictions(), L.shape[1:])
                    out.write_predictions(ab_pred)
                    with Progress(len(L), f"scoring {label}", unit="img") as bar:
                        rows = compute_rows(metrics, L, ab_pred, ab_true, context,
                                            progress=bar.update)
                    out.write_rows(rows)
                    out.raw_predictions_file.unlink()
                    if "compute" in status:  # the torch probe, here in a torch process
                        status["compute"] = with_attainable(status["compute"], context.device)
                    status.update(status="done",
                                  seconds=round(status["seconds"] + time.monotonic() - t0, 2))
                except Exception as exc:
                    status.update(status="failed", error=f"{type(exc).__name__}: {exc}")
                    log.error("%s: scoring failed:\n%s", label, traceback.format_exc())
            out.write_status(status)
        statuses[label] = status
    return statuses


def produce_model(model: Model, cfg: RunConfig, splits: Splits, run: RunDir, device: str,
                  resume: bool, previous: dict | None = None) -> dict:
    """Fit, save and predict one model, leaving its row ``predicted`` (see :func:`score_rows`);
    failures become a status, never an exception.

    An oracle (``uses_ground_truth``) is given the test ground truth and marked in its status.
    ``previous`` is the status an interrupted earlier attempt left: its start time is kept and
    the resume times are listed.
    """
    out = run.model(model.label)
    out.path.mkdir(parents=True, exist_ok=True)
    status = _start_status(model.label, model.config.plugin, resume, previous)
    out.write_status(status)
    t0 = time.monotonic()
    with _ModelLog(out.log_file):
        try:
            colorizer, figures = _fit(model, cfg, splits, out, device, resume)
            status.update(figures)
            oracle = bool(colorizer.uses_ground_truth)
            if oracle:
                status["uses_ground_truth"] = True
            ab_true = splits.test.arrays()[1] if oracle else None
            ab = predict(colorizer, run.test_input(), ab_true=ab_true)
            _predicted(colorizer, ab, splits, out, status, t0)
        except TrainingDiverged as exc:
            status.update(status="failed", error=f"training diverged: {exc}")
            log.error("%s: %s", model.label, status["error"])
        except Exception as exc:  # one model's bug must not sink the others
            status.update(status="failed", error=f"{type(exc).__name__}: {exc}")
            log.error("%s failed:\n%s", model.label, traceback.format_exc())
    out.write_status(status)
    return status


def _start_status(label: str, plugin: str, resume: bool, previous: dict | None) -> dict:
    """A row's status as it starts; a resumed one keeps its first start and lists resumes."""
    now = dt.datetime.now().isoformat(timespec="seconds")
    previous = previous or {}
    status = {"model": label, "plugin": plugin, "status": "running",
              "started": previous.get("started", now)}
    if resume and previous:
        status["resumed"] = [*previous.get("resumed", []), now]
    return status


def _needs_running(out: ModelDir, resume: bool, n_images: int, eval_shape: tuple[int, int],
                   metrics: list[str]) -> tuple[bool, dict]:
    """Whether a model row must (re)run on this (re)start, and the status it left.

    On resume a finished row is kept unless a file it left is unreadable or the wrong shape,
    in which case it is redone (from its last checkpoint), saying which file.
    """
    previous = out.status()
    if not resume:
        return True, previous
    if previous.get("status") == "done":
        problem = out.problem(n_images, eval_shape, metrics)
        if problem is None:
            return False, previous
        log.warning("%s: redoing %s from its last checkpoint", problem, out.name)
    elif out.status_file.exists() and not previous:
        log.warning("%s: unreadable; continuing %s from its last checkpoint", out.status_file,
                    out.name)
    return True, previous


class _FitFailed(Exception):
    """The shared fit of a hint-taking model failed; its rows fail with the fit's error."""


def produce_hint_rows(model: Model, cfg: RunConfig, splits: Splits, run: RunDir, device: str,
                      resume: bool, pending: dict[str, dict]) -> dict[str, dict]:
    """A hint-taking model: one fit, then a row ``NAME@N`` per count N of ``cfg.hints``, each
    left ``predicted`` for :func:`score_rows`.

    The fit's log, curve and weights go to ``models/NAME/``; each row gets a directory
    ``models/NAME@N/`` like any model's (status.json with ``hints: N``, log.txt, pred_ab.npy,
    scores.npz), so tables, reports, ``compare``, ``study`` and ``--resume`` treat it as a model.
    The host draws the hints from each test image's ground truth at the evaluation size with
    :func:`harness.hints.sample_hints`, seeded by ``cfg.seed`` and the image's test position:
    the same for every hint-taking model. The model gets L and hints at the evaluation size
    (resizing a hint mask would lose hints). ``pending`` maps the rows to run to the status an
    earlier attempt left (see :func:`_needs_running`); the others finished and are kept. A failed
    fit fails every row it was to serve. Returns the statuses of the rows it ran.
    """
    labels = {n: f"{model.label}@{n}" for n in cfg.hints.counts if f"{model.label}@{n}" in pending}
    L, ab_true = splits.test.arrays()
    statuses: dict[str, dict] = {}
    fit = run.model(model.label)
    resumed = resume and fit.path.is_dir()
    fit.path.mkdir(parents=True, exist_ok=True)
    error, figures = "", {}
    with _ModelLog(fit.log_file):
        try:
            colorizer, figures = _fit(model, cfg, splits, fit, device, resumed)
        except TrainingDiverged as exc:
            error = f"training diverged: {exc}"
            log.error("%s: %s", model.label, error)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            log.error("%s failed:\n%s", model.label, traceback.format_exc())
    for n in labels:
        row = run.model(labels[n])
        row.path.mkdir(parents=True, exist_ok=True)
        status = {**_start_status(labels[n], model.config.plugin, resume, pending[labels[n]]),
                  "hints": n, **figures}
        row.write_status(status)
        t0 = time.monotonic()
        with _ModelLog(row.log_file):
            try:
                if error:
                    raise _FitFailed(error)
                hints = sample_hints(ab_true, n, cfg.seed, np.arange(len(L)),
                                     sampler=cfg.hints.sampler, patch=cfg.hints.patch)
                log.info("%s: %d hints per test image (%s, patches %d-%d px)", labels[n], n,
                         cfg.hints.sampler, *cfg.hints.patch)
                _predicted(colorizer, predict(colorizer, L, hints=hints), splits, row, status,
                           t0)
            except _FitFailed:
                status.update(status="failed", error=error)
                log.error("%s: not scored, the fit failed (see %s)", labels[n], fit.log_file)
            except Exception as exc:
                status.update(status="failed", error=f"{type(exc).__name__}: {exc}")
                log.error("%s failed:\n%s", labels[n], traceback.format_exc())
        row.write_status(status)
        statuses[labels[n]] = status
    return statuses


def _hint_taking(cfg: RunConfig, models: list[Model]) -> set[str]:
    """Labels of the models that take hints; a :class:`ConfigError` when ``hints:`` is unset
    for one, or when ``report.reference`` names a user-assisted or oracle model."""
    found = set()
    for i, model in enumerate(models):
        takes = model.entry.takes_hints  # from the registration: nothing is imported
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
            except Exception:  # its own job reports why it cannot be built
                assisted = False
        if assisted:
            raise ConfigError(f"report.reference: {ref} is user-assisted or an oracle; the "
                              f"reference must be an automatic model")
    return found


@dataclass
class PreparedRun:
    """A run ready for its model jobs: checked, locked, data and scoring context built.

    :func:`prepare` makes one, :func:`dispatch` runs the jobs of one or several (a sweep's
    seeds) together on the backend, and :func:`finish` writes each one's tables and report.
    """

    cfg: RunConfig
    models: list[Model]
    metrics: list[Metric]
    hinted: set[str]
    run: RunDir
    splits: Splits
    context: ScoringContext
    device: str
    resume: bool
    laps: Laps
    tag: str = ""  #: added to each job's name in progress lines (a sweep's seed)

    def model_rows(self, model: Model) -> tuple[str, ...]:
        """The row labels of one model: its label, or ``NAME@N`` per hint count."""
        if model.label in self.hinted:
            return tuple(f"{model.label}@{n}" for n in self.cfg.hints.counts)
        return (model.label,)

    def rows(self) -> list[str]:
        """Every model row label, in the config's order."""
        return [label for m in self.models for label in self.model_rows(m)]

    def specs(self) -> list:
        """A :class:`~harness.execution.JobSpec` per model with rows still to run; the rows
        finished in an earlier attempt are logged as skipped."""
        from harness.execution import JobSpec

        L = self.splits.test.arrays()[0]
        names = [m.name for m in self.metrics]
        config = dump_config(self.cfg)
        specs = []
        for model in self.models:
            hint = model.label in self.hinted
            rows = self.model_rows(model)
            left = {}
            for label in rows:
                again, previous = _needs_running(self.run.model(label), self.resume, len(L),
                                                 L.shape[1:], names)
                if again:
                    left[label] = previous
                else:
                    log.info("%s: finished in the earlier run, skipped", label)
            if not left:
                continue
            resume = self.resume and (hint or self.run.model(model.label).path.exists())
            specs.append(JobSpec(
                run_dir=str(self.run.path), config=config, label=model.label,
                plugin=model.config.plugin, rows=rows, hinted=hint, device=self.device,
                resume=resume, previous=left, prior=self.context.prior,
                log_level=log.getEffectiveLevel(), framework=model.entry.framework,
                tag=self.tag))
        return specs

    def inline_inputs(self, label: str) -> tuple:
        """What :func:`harness.execution.perform` takes after the spec, for model ``label``."""
        model = next(m for m in self.models if m.label == label)
        return model, self.cfg, self.splits, self.context, self.metrics, self.run


def dispatch(runs: list[PreparedRun]) -> None:
    """Every model job of ``runs`` together on their backend (:mod:`harness.execution`; the
    runs of one dispatch share one ``execution:`` config). Each job writes its rows' status
    into its run directory, which :func:`finish` then reads."""
    from harness import execution

    specs = [spec for prepared in runs for spec in prepared.specs()]
    if not specs:
        return
    monitor = execution.Monitor(len(specs))
    with contextlib.closing(monitor):  # an interrupted run's bars come down too
        _dispatch(runs, specs, monitor)
    if runs[0].cfg.execution.backend != "inline":  # inline laps each model itself
        for prepared in runs:
            prepared.laps.lap("models")


def _dispatch(runs: list[PreparedRun], specs: list, monitor) -> None:
    """:func:`dispatch`'s choice of backend."""
    from harness import execution

    by_dir = {str(p.run.path): p for p in runs}
    chosen = runs[0].cfg.execution
    if chosen.backend == "inline":

        def inputs(spec):
            return by_dir[spec.run_dir].inline_inputs(spec.label)

        def after(spec, rows):
            # A fitted model (Keras's above all) lingers in reference cycles; left to the
            # cyclic collector, the last one is freed by a full collection in the middle of
            # the report, which then took several times what `harness report` takes.
            gc.collect()
            laps = by_dir[spec.run_dir].laps
            if spec.hinted:
                laps.lap(f"{spec.label} ({', '.join(rows)})")
            else:
                laps.model(spec.label, rows[spec.label])

        execution.run_inline(specs, inputs, monitor, after)
    elif chosen.backend == "process":
        gpus = execution.gpu_ids(runs[0].device)
        workers = chosen.workers or max(1, len(gpus))
        log.info("%d job(s) in %d worker process(es)%s", len(specs), workers,
                 f" on GPUs {', '.join(gpus)}" if gpus else "")
        execution.run_processes(specs, workers, available_cores(), gpus, monitor)
    else:
        execution.run_ray(specs, chosen.workers, chosen.address, chosen.gpus_per_job, monitor)


def load_trained(run_dir: Path, model: str, registry: Registry | None = None) -> Colorizer:
    """The colorizer ``model`` of a finished run, rebuilt from its config and saved weights."""
    from harness.config import load_config
    from harness.errors import HarnessError
    from harness.plugins import load_registry

    run = RunDir(run_dir)
    cfg = load_config(run.config_file)
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
    trained = run.model(model)
    if not trained.done:
        raise HarnessError(f"--model {model}: did not finish in {run_dir} (see its status.json)")
    try:
        colorizer.load(trained.weights_dir)
    except Exception as exc:  # damaged or missing weights: say which, and how to redo them
        error = HarnessError(
            f"{trained.weights_dir}: cannot load the trained {model} ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'no detail'}); `harness run "
            f"{run.config_file} --resume {run_dir}` redoes a model whose weights are damaged")
        error.exit_code = ExitCode.MODEL_FAILED
        raise error from None
    return colorizer


def execute(cfg: RunConfig, registry: Registry, run_dir: Path | None = None,
            allow_changes: bool = False) -> tuple[Path, int]:
    """Run (or resume, when ``run_dir`` is given) the whole benchmark; return dir and exit code.

    Nothing is written before every check has passed: the config and, once the data are
    listed, the protocol fingerprint must match a resumed run's (:mod:`harness.resume`). The
    run directory is locked while it is written.
    """
    with contextlib.ExitStack() as stack:
        try:
            prepared = prepare(cfg, registry, run_dir, allow_changes, stack)
            dispatch([prepared])
            return prepared.run.path, finish(prepared)
        except KeyboardInterrupt as exc:  # say where the run is, so it can be resumed
            exc.run_dir = getattr(stack, "run_dir", run_dir)
            raise


def prepare(cfg: RunConfig, registry: Registry, run_dir: Path | None, allow_changes: bool,
            stack: contextlib.ExitStack, tag: str = "") -> PreparedRun:
    """Check, create (or reopen and lock, to resume ``run_dir``) the run directory, and write
    what every job reads: config, environment, data report, test Lab, the scoring context.

    The run's lock is held until ``stack`` closes; ``stack.run_dir`` names the directory as
    soon as it exists (for the message of an interrupted run).
    """
    laps = Laps()  # -> timings.json
    models = resolve_models(cfg, registry)
    metrics = resolve_metrics(cfg, registry)
    hinted = _hint_taking(cfg, models)
    resume = run_dir is not None
    device = resolve_device(cfg.device)  # a missing cuda:N fails before any file is written
    config = yaml.safe_load(dump_config(cfg))  # as the run recorded it
    if resume:
        run = RunDir(run_dir)
        stack.enter_context(run.lock())
        resume_checks.check_config(run, config, allow_changes)
    laps.lap("setup")
    splits = load_splits(cfg.data, registry, cfg.seed)
    versions = {m.name: f"{e.provider.distribution} {e.provider.version}"
                for m in metrics for e in [registry.get("metric", m.name)]}
    fingerprint = protocol.describe(cfg, splits.sources, splits.report["test_images"],
                                    splits.report["split"], metrics, versions)
    if resume:
        resume_checks.check_protocol(run, fingerprint)
    else:
        run = RunDir.create(cfg.output_dir, cfg.name)
        stack.enter_context(run.lock())
    stack.run_dir = run.path
    run.write_config(dump_config(cfg))
    run.write("environment", {**environment(registry, device), "protocol": fingerprint})
    run.write("data_report", splits.report)
    L, ab_true = splits.test.arrays()
    run.write_test_lab(L, ab_true)
    run.write_test_input(resize_l(L, cfg.data.size))
    log.info("data: %(used)d images used of %(found)d found", splits.report)
    context = _scoring_context(splits, device, run.path)
    laps.lap("data")
    return PreparedRun(cfg, models, metrics, hinted, run, splits, context, device, resume,
                       laps, tag)


def finish(prepared: PreparedRun) -> int:
    """Tables, imported votes and the report of a run whose jobs have ended; its exit code."""
    p, run = prepared, prepared.run
    statuses = {label: run.model(label).status() or _no_status(run.model(label), p)
                for label in p.rows()}
    rows = {label: run.model(label).rows() for label, status in statuses.items()
            if status["status"] == "done"}
    L, ab_true = p.splits.test.arrays()
    descriptive = [m for m in p.metrics if m.higher_is_better is None]
    if descriptive:
        rows[GROUND_TRUTH] = compute_rows(descriptive, L, ab_true, ab_true, p.context)
    p.context.truth.close()
    write_tables(run, p.cfg, p.metrics, rows, statuses, p.splits)
    votes = load_votes(run.path)
    if votes:  # a resumed run keeps the human-study results imported into it
        merge_outputs(run.path, compute_study(votes))
    p.laps.lap("tables")
    report_after_run(run.path)
    p.laps.lap("report")
    p.laps.write(run.path / "timings.json")
    failed = [name for name, s in statuses.items() if s["status"] != "done"]
    return ExitCode.MODEL_FAILED if failed else ExitCode.OK


def _no_status(out: ModelDir, prepared: PreparedRun) -> dict:
    """The status of a row whose job left none readable: failed, saying so."""
    base = out.name.rpartition("@")[0] if "@" in out.name else out.name
    plugin = next((m.config.plugin for m in prepared.models if m.label == base), "")
    return {"model": out.name, "plugin": plugin, "status": "failed",
            "error": f"{out.status_file}: missing or unreadable after its job ended"}
