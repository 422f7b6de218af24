"""Model jobs, and the backends that run them: inline, spawned processes, Ray tasks.

A *model job* fits, saves, predicts, scores and writes one model's rows into the run
directory: :func:`harness.run.produce_model` (or :func:`harness.run.produce_hint_rows` for a
hint-taking model's ``NAME@N`` rows) leaves each row ``predicted``, then
:func:`harness.run.score_rows` scores it. Outside ``inline`` a Keras model's job runs the two
in two workers, so that neither holds both frameworks (:func:`stages`); every other job runs
both in one. Outside ``inline`` a job needs nothing from the parent
process but its :class:`JobSpec`: it reads the config from the spec, the images from the shared
memory-mapped Lab cache (:func:`harness.data.loader.load_splits` finds the parent's cache and
reuses it) and the training prior of the scoring context from the spec, and it writes its
status, log and rows straight into ``models/<label>/``. The run directory is therefore on
storage every worker sees: this machine's disk for ``process``, a shared file system (NFS,
Lustre, what a Slurm cluster mounts on every node) for ``ray``. Results do not travel back
through Ray: checkpoints must outlive a worker for ``--resume`` to continue a killed job, and
weights and predictions (tens of MB a model) would otherwise pass through the driver's
object store only to be written by it.

Backends (``execution.backend``; the default comes from ``HARNESS_BACKEND``, else ``process``):

- ``inline``: every job in this process, one after another (the run before workers existed);
  for debugging, and the test suite.
- ``process``: each job in a fresh process started with ``spawn``, ``execution.workers`` at a
  time. A worker imports only the framework its model's plugin needs (and torch for scoring,
  in a worker of its own for a Keras model). On a GPU machine each worker
  sees one GPU (``CUDA_VISIBLE_DEVICES``); on a CPU the cores are split between the workers
  and each gives torch and TensorFlow its share of threads (``threads:`` overrides). A worker
  that dies (segfault, OOM kill, SIGKILL) fails only its model, its status naming the signal.
- ``ray``: each job (each of its stages) a Ray task in a fresh worker process, asking for its
  share of CPUs (and ``gpus_per_job`` GPUs on a GPU run), on
  ``ray.init(address=execution.address)``; Ray is imported only then.

Each backend reports its jobs' starts and ends to a :class:`harness.monitor.Monitor`, and the
``process`` and ``ray`` loops poll it with the running ones: log lines, or tqdm bars on a
terminal.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import ConfigError
from harness.monitor import Monitor
from harness.rundir import RunDir

log = logging.getLogger("harness")

#: The backend of a config that does not choose one.
BACKEND_VAR = "HARNESS_BACKEND"


def default_backend() -> str:
    """``HARNESS_BACKEND`` when set (``inline``, ``process`` or ``ray``), else ``process``."""
    value = os.environ.get(BACKEND_VAR, "process")
    if value not in ("inline", "process", "ray"):
        raise ConfigError(f"{BACKEND_VAR}={value!r}: expected inline, process or ray")
    return value


@dataclass(frozen=True)
class JobSpec:
    """Everything a model job needs from the parent; small and picklable."""

    run_dir: str
    config: str  #: the run's resolved config as YAML (:func:`harness.config.dump_config`)
    label: str
    plugin: str
    rows: tuple[str, ...]  #: the model rows it writes: the label, or ``label@N`` per count
    hinted: bool
    device: str  #: as the worker names it (``cuda`` is its one visible GPU)
    resume: bool
    #: the rows still to run, each with the status an earlier attempt left ({} if none)
    previous: dict[str, dict[str, Any]] = field(default_factory=dict)
    prior: np.ndarray | None = None  #: the scoring context's training prior
    threads: int | None = None  #: torch and TensorFlow intra-op threads; None: the defaults
    gpu: str | None = None  #: ``CUDA_VISIBLE_DEVICES`` for a process worker
    log_level: int = logging.INFO
    sys_path: tuple[str, ...] = ()  #: the parent's import path, for Ray workers
    tag: str = ""  #: what progress lines add to the job's name (a sweep: its seed)
    framework: str = "numpy"  #: the model's (its plugin's registration)
    #: ``all``: fit, predict and score; ``produce``: fit and predict; ``score``: score only
    stage: str = "all"

    @property
    def name(self) -> str:
        """The job in progress lines: its label, and its tag in brackets."""
        return self.named(self.label)

    def named(self, what: str) -> str:
        return f"{what} ({self.tag})" if self.tag else what


def stages(spec: JobSpec) -> tuple[str, ...]:
    """The processes a job takes outside ``inline``: a Keras model's job fits and predicts in
    a TensorFlow-only worker, then is scored (LPIPS is torch) in a second, torch-only one;
    any other model's job does both in one worker."""
    return ("produce", "score") if spec.framework == "keras" else ("all",)


def perform(spec: JobSpec, model, cfg, splits, context, metrics, run: RunDir
            ) -> dict[str, dict]:
    """Run the job's stage with these objects (``model`` is unused when scoring, ``context``
    and ``metrics`` when producing); the statuses of its rows by label."""
    from harness.run import produce_hint_rows, produce_model, score_rows

    if spec.stage != "score" and spec.hinted:
        produce_hint_rows(model, cfg, splits, run, spec.device, spec.resume, spec.previous)
    elif spec.stage != "score":
        produce_model(model, cfg, splits, run, spec.device, resume=spec.resume,
                      previous=spec.previous.get(spec.label) or None)
    pending = [label for label in spec.rows if label in spec.previous]
    if spec.stage == "produce":
        return {label: run.model(label).status() for label in pending}
    return score_rows(run, pending, splits, context, metrics)


def run_job(spec: JobSpec, capture: bool = True) -> dict[str, dict]:
    """The job in a worker: set devices and threads, rebuild its inputs, run it.

    ``capture`` sends the process's stdout and stderr (a crash's last words included) to the
    model's ``log.txt``, after what the harness logs there.
    """
    if spec.gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = spec.gpu
    sys.path[:0] = [p for p in spec.sys_path if p not in sys.path]
    run = RunDir(spec.run_dir)
    if capture:
        _capture_output(run.model(spec.label).log_file)
    logging.getLogger("harness").setLevel(min(spec.log_level, logging.INFO))  # log.txt: all
    import yaml

    from harness.color import zhang313
    from harness.config import RunConfig
    from harness.data.loader import load_splits
    from harness.metrics import ScoringContext
    from harness.metrics.truth import TruthStore
    from harness.plugins import load_registry
    from harness.run import resolve_metrics, resolve_models

    cfg = RunConfig.model_validate(yaml.safe_load(spec.config))
    cfg.threads.model_copy(update={
        "torch": cfg.threads.torch or spec.threads,
        "tensorflow": cfg.threads.tensorflow or spec.threads}).apply()
    registry = load_registry(cfg.plugins, config_dir=cfg.plugin_dir)
    splits = load_splits(cfg.data, registry, cfg.seed)
    model = (None if spec.stage == "score" else
             next(m for m in resolve_models(cfg, registry) if m.label == spec.label))
    if spec.stage == "produce":  # the model's framework only: no metric, no scoring context
        from harness import keras_env

        os.environ[keras_env.ISOLATED_VAR] = "1"  # read when the model's class is imported
        return perform(spec, model, cfg, splits, None, [], run)
    metrics = resolve_metrics(cfg, registry)
    context = ScoringContext(bins=zhang313(), prior=spec.prior, device=spec.device,
                             truth=TruthStore(spill_dir=run.path))
    try:
        return perform(spec, model, cfg, splits, context, metrics, run)
    finally:
        context.truth.close()


def _capture_output(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def _exit_with_parent(parent: int) -> None:
    """End this worker when the parent that holds the run directory's lock is gone (even by
    SIGKILL, which runs no clean-up), so no orphan keeps writing into a run that a
    ``--resume`` may meanwhile have taken over. The worker is then reparented; it polls."""
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(128 + signal.SIGTERM)

    threading.Thread(target=watch, name="harness-parent-watch", daemon=True).start()


def _process_main(spec: JobSpec, parent: int) -> None:
    """A process worker's entry point: its exit code tells the parent how it ended."""
    _exit_with_parent(parent)
    run_job(spec)


def worker_failure(spec: JobSpec, reason: str) -> dict[str, dict]:
    """Mark the job's unfinished rows failed with ``reason``; the statuses of all its rows.

    A row the job finished before it died stays done.
    """
    run = RunDir(spec.run_dir)
    statuses = {}
    for label in spec.rows:
        out = run.model(label)
        status = out.status()
        if status.get("status") != "done":
            out.path.mkdir(parents=True, exist_ok=True)
            status = {"model": label, "plugin": spec.plugin, **status, "status": "failed",
                      "error": f"{reason} (see {run.model(spec.label).log_file})"}
            out.write_status(status)
        statuses[label] = status
    return statuses


def describe_exit(code: int) -> str:
    """``worker killed by SIGKILL`` for a negative exit code, else ``worker exited with N``."""
    if code < 0:
        try:
            return f"worker killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"worker killed by signal {-code}"
    return f"worker exited with code {code}"


def gpu_ids(device: str) -> list[str]:
    """The GPUs the jobs of a run on ``device`` share out: every visible one for ``cuda``, the
    one named for ``cuda:N``; none on other devices."""
    if not device.startswith("cuda"):
        return []
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [x.strip() for x in visible.split(",") if x.strip()] if visible else None
    if ":" in device:
        index = int(device.partition(":")[2])
        return [ids[index] if ids and index < len(ids) else str(index)]
    if ids is None:
        import torch

        ids = [str(i) for i in range(torch.cuda.device_count())]
    return ids


def run_processes(specs: list[JobSpec], workers: int, cores: int, gpus: list[str],
                  monitor: Monitor) -> None:
    """Each job in a fresh spawned process, ``workers`` at a time."""
    import multiprocessing as mp
    from multiprocessing.connection import wait

    ctx = mp.get_context("spawn")
    share = None if workers == 1 else max(1, cores // workers)
    pending = [dataclasses.replace(s, stage=stages(s)[0]) for s in specs]
    running, free = {}, list(gpus)
    try:
        while pending or running:
            while pending and len(running) < workers:
                spec = pending.pop(0)
                gpu = free.pop(0) if free else None
                spec = dataclasses.replace(spec, threads=share, gpu=gpu,
                                           device="cuda" if gpu is not None else spec.device)
                proc = ctx.Process(target=_process_main, args=(spec, os.getpid()),
                                   name=f"harness-job-{spec.label}-{spec.stage}")
                proc.start()
                running[proc.sentinel] = (proc, spec)
                where = f"pid {proc.pid}" + (f", GPU {gpu}" if gpu else "")
                if spec.stage == "score":
                    log.debug("scoring %s in a torch worker, %s", spec.name, where)
                else:
                    monitor.start(spec, where)
            for sentinel in wait(list(running), timeout=monitor.interval):
                proc, spec = running.pop(sentinel)
                proc.join()
                if spec.gpu is not None:
                    free.append(spec.gpu)
                _stage_ended(spec, _finished_rows(spec, proc.exitcode), pending, monitor)
            monitor.poll([spec for _, spec in running.values()])
    finally:  # interrupted: stop the workers; their models resume from their checkpoints
        for proc, _ in running.values():
            proc.terminate()
        for proc, _ in running.values():
            proc.join()


def _finished_rows(spec: JobSpec, exitcode: int) -> dict[str, dict]:
    """The statuses a job's stage left, or its rows failed when the worker did not end well."""
    run = RunDir(spec.run_dir)
    rows = {label: run.model(label).status() for label in spec.rows if label in spec.previous}
    ended = ("predicted", "failed") if spec.stage == "produce" else ("done", "failed")
    if exitcode == 0 and all(s.get("status") in ended for s in rows.values()):
        return rows
    return worker_failure(spec, describe_exit(exitcode))


def _stage_ended(spec: JobSpec, rows: dict[str, dict], pending: list[JobSpec],
                 monitor: Monitor) -> None:
    """After a stage: queue the job's scoring stage first when rows wait for it, else the job
    has ended and ``monitor`` hears of it."""
    if spec.stage == "produce" and any(s.get("status") == "predicted" for s in rows.values()):
        pending.insert(0, dataclasses.replace(spec, stage="score"))
    else:
        monitor.end(spec, rows)


def run_ray(specs: list[JobSpec], workers: int | None, address: str | None,
            gpus_per_job: float, monitor: Monitor) -> None:
    """Each job a Ray task (no retries: a failure is the model's)."""
    try:
        import ray
    except ImportError:
        raise ConfigError("execution.backend: ray needs Ray: pip install "
                          "'colorization-harness[ray]'") from None
    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False)
    gpu = any(s.device.startswith("cuda") for s in specs)
    cluster = ray.cluster_resources()
    if workers is None:
        workers = max(1, int(cluster.get("GPU", 0) / gpus_per_job)) if gpu else 1
    cpus = max(1, int(cluster.get("CPU", 1)) // workers)
    # max_calls=1: a fresh worker process per task, as with ``process`` (Ray reuses workers
    # otherwise, and one would then hold TensorFlow and torch together).
    task = ray.remote(max_calls=1)(run_job).options(
        num_cpus=cpus, num_gpus=gpus_per_job if gpu else 0, max_retries=0,
        name="harness-model-job")
    pending = [dataclasses.replace(s, stage=stages(s)[0], threads=cpus,
                                   device="cuda" if gpu else "cpu", sys_path=tuple(sys.path))
               for s in specs]
    running = {}
    try:
        while pending or running:
            while pending and len(running) < workers:
                spec = pending.pop(0)
                running[task.remote(spec)] = spec
                if spec.stage != "score":
                    monitor.start(spec, f"Ray task, {cpus} CPU" + (f", {gpus_per_job} GPU"
                                                                     if gpu else ""))
            done, _ = ray.wait(list(running), num_returns=1, timeout=monitor.interval)
            for ref in done:
                spec = running.pop(ref)
                try:
                    ray.get(ref)
                    rows = _finished_rows(spec, 0)
                except Exception as exc:  # the worker died or the task could not run
                    rows = worker_failure(spec, describe_ray_failure(ray, exc))
                _stage_ended(spec, rows, pending, monitor)
            monitor.poll(list(running.values()))
    finally:
        for ref in running:
            ray.cancel(ref, force=True)


def describe_ray_failure(ray, exc: BaseException) -> str:
    """What a Ray task's failure says in the model's status: how its worker ended, when Ray
    knows (it does not pass on the signal of a killed worker: its raylet log names it)."""
    errors = ray.exceptions
    first = str(exc).splitlines()[0] if str(exc) else ""
    if isinstance(exc, errors.OutOfMemoryError):
        return f"Ray killed the worker: the node ran out of memory ({first})"
    if isinstance(exc, errors.WorkerCrashedError):
        return ("Ray worker died (a signal such as SIGKILL or SIGSEGV, or an out-of-memory "
                "kill; the node's raylet log names it)")
    if isinstance(exc, errors.NodeDiedError):
        return f"the Ray node running the job died ({first})"
    return f"Ray task failed: {type(exc).__name__}: {first}"


def run_inline(specs: list[JobSpec], inputs: Callable[[JobSpec], tuple], monitor: Monitor,
               after: Callable[[JobSpec, dict[str, dict]], None]) -> None:
    """Each job in this process with the parent's objects (``inputs(spec)``: model, cfg,
    splits, context, metrics, run), one after another; ``after(spec, rows)`` follows each."""
    for spec in specs:
        given = inputs(spec)
        monitor.start(spec)
        rows = perform(spec, *given)
        monitor.end(spec, rows)
        after(spec, rows)
