"""What the parent shows of its model jobs: log lines, or tqdm bars on a terminal.

Every backend of :mod:`harness.execution` reports to one :class:`Monitor`: a job started, the
running jobs at each poll (every :attr:`Monitor.interval` seconds in the ``process``
and ``ray`` loops; ``inline`` jobs are never polled, their trainers draw their own bars), a job
ended. A running job's step, loss and images/s are the last row of its ``loss.csv``
(:class:`harness.progress.LossLog`), of which a poll reads only the header and the tail.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from harness.progress import RunProgress
from harness.rundir import RunDir

if TYPE_CHECKING:
    from harness.execution import JobSpec

log = logging.getLogger("harness")

#: A running job's bar when its budget counts steps, and when it does not.
_STEPS_OF = "{desc}: {percentage:3.0f}%|{bar}| step {n_fmt}/{total_fmt}{postfix}"
_STEP = "{desc}: step {n_fmt}{postfix}"


class Monitor:
    """The parent's view of a run's ``total`` model jobs: each start, the step, loss and
    images/s of the running ones, and a line as each is done or failed.

    With ``bars`` (by default when ``stream``, stderr unless given, is a terminal) it draws on
    ``stream`` an overall tqdm bar (jobs finished, elapsed, an estimate) and a bar per running
    job, and sends the root logger's console output through tqdm meanwhile, so log lines (the
    done and failed ones among them) print above the bars; the start lines are then debug
    messages. Otherwise every event is a log line.
    """

    def __init__(self, total: int, stream: TextIO | None = None,
                 bars: bool | None = None) -> None:
        self.total, self.finished = total, 0
        self.started: dict[str, float] = {}
        self.overall = RunProgress(total)  # job k of n, elapsed, an estimate of the rest
        self._seen: dict[str, tuple[int, int]] = {}
        stream = sys.stderr if stream is None else stream
        if bars is None:
            bars = stream.isatty()
        self._bars = _Bars(total, stream) if bars and total else None
        #: seconds between polls: bars move every 2 s; log lines come at most every 10 s
        self.interval = 2.0 if self._bars is not None else 10.0

    def start(self, spec: JobSpec, where: str = "") -> None:
        self.started[spec.name] = time.monotonic()
        log.log(logging.INFO if self._bars is None else logging.DEBUG, "%s%s",
                self.overall.next(spec.name), f", {where}" if where else "")

    def poll(self, specs: list[JobSpec]) -> None:
        """Show the running jobs: a log line for each whose loss.csv changed since the last
        poll, or their bars brought up to date."""
        for spec in specs:
            row = self._new_row(spec)
            if self._bars is not None:
                self._bars.show(spec, row)
            elif row:
                log.info("running %s: step %s, loss %.4g, %.0f img/s", spec.name,
                         row["step"].split(".")[0], float(row["loss"]),
                         float(row["images_per_s"] or 0))
        if self._bars is not None:
            self._bars.refresh()

    def end(self, spec: JobSpec, statuses: dict[str, dict]) -> None:
        self.finished += 1
        seconds = time.monotonic() - self.started.pop(spec.name, time.monotonic())
        self.overall.finished(seconds)
        if self._bars is not None:
            self._bars.end(spec.name)
        failed = {k: s.get("error", "") for k, s in statuses.items() if s.get("status") != "done"}
        head = f"[{self.finished}/{self.total}]"
        if failed:
            for label, error in failed.items():
                log.warning("%s failed %s after %.1f s: %s", head, spec.named(label), seconds,
                            error)
        else:
            log.info("%s done %s in %.1f s", head, spec.named(", ".join(statuses) or spec.label),
                     seconds)
        if self.finished == self.total:
            self.close()

    def close(self) -> None:
        """Take the bars down and give console logging back (done by the last :meth:`end`)."""
        if self._bars is not None:
            self._bars.close()
            self._bars = None

    def _new_row(self, spec: JobSpec) -> dict[str, str] | None:
        """The last row of the job's loss.csv if the file changed since the last poll."""
        path = RunDir(spec.run_dir).model(spec.label).loss_file
        try:
            stat = path.stat()
        except OSError:
            return None
        seen = stat.st_mtime_ns, stat.st_size
        if self._seen.get(spec.name) == seen:
            return None
        self._seen[spec.name] = seen
        return last_loss_row(path)


class _Bars:
    """The overall bar and one per running job on ``stream``; console logging goes through
    tqdm until :meth:`close`."""

    def __init__(self, total: int, stream: TextIO) -> None:
        from tqdm import tqdm
        from tqdm.contrib.logging import logging_redirect_tqdm

        self.stream, self.jobs = stream, {}
        self._stack = contextlib.ExitStack()
        self._stack.enter_context(logging_redirect_tqdm())
        self.overall = self._stack.enter_context(
            tqdm(total=total, desc="jobs", unit="job", file=stream, dynamic_ncols=True))

    def show(self, spec: JobSpec, row: dict[str, str] | None) -> None:
        """The job's bar, opened at its first poll, at the step, loss and images/s of ``row``."""
        bar = self.jobs.get(spec.name)
        if bar is None:
            from tqdm import tqdm

            steps = budget_steps(spec)
            bar = self.jobs[spec.name] = tqdm(
                total=steps, desc=spec.name, file=self.stream, leave=False, dynamic_ncols=True,
                bar_format=_STEPS_OF if steps else _STEP)
        if row:
            bar.set_postfix_str(f"loss {float(row['loss']):.4g}, "
                                f"{float(row['images_per_s'] or 0):.0f} img/s", refresh=False)
            bar.update(int(float(row["step"])) - bar.n)

    def refresh(self) -> None:
        for bar in (self.overall, *self.jobs.values()):
            bar.refresh()

    def end(self, name: str) -> None:
        bar = self.jobs.pop(name, None)
        if bar is not None:
            bar.close()
        self.overall.update(1)

    def close(self) -> None:
        for bar in self.jobs.values():
            bar.close()
        self._stack.close()


def budget_steps(spec: JobSpec) -> int | None:
    """The step count of the job's training budget; None for one of epochs or minutes only."""
    import yaml

    from harness.config import RunConfig

    cfg = RunConfig.model_validate(yaml.safe_load(spec.config))
    return cfg.budget_for(next(m for m in cfg.models if m.label == spec.label)).steps


def last_loss_row(path: Path, tail: int = 4096) -> dict[str, str] | None:
    """The last complete row of a loss.csv that has a step and a loss, read from its header and
    its last ``tail`` bytes only; None when there is none (yet), or the file is unreadable.

    A line without its newline, which a writer may not have finished, is not a row yet.
    """
    try:
        with path.open("rb") as f:
            header = f.readline()
            if not header.endswith(b"\n"):
                return None
            start = max(len(header), f.seek(0, 2) - tail)
            f.seek(start - 1)  # a byte early: up to the first newline is a partial line, or none
            lines = [x for x in f.read().split(b"\n")[1:-1] if x.strip()]
        row = next(csv.DictReader([header.decode(), lines[-1].decode()]), {}) if lines else {}
    except (OSError, ValueError, csv.Error):
        return None
    return row if row.get("loss") and row.get("step") else None
