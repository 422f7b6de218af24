"""Progress bars (plain lines when not on a terminal), the per-model loss log, phase timings."""

from __future__ import annotations

import csv
import io
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from harness.atomic import write_json, write_text


class Progress:
    """A tqdm bar on a terminal; otherwise a plain line every 10% (or 30 s)."""

    def __init__(self, total: int | None, desc: str, unit: str = "it") -> None:
        self.total, self.desc, self.unit = total, desc, unit
        self.count, self._postfix = 0, ""
        self._start = self._last_line = time.monotonic()
        self._next_pct = 10
        self._bar = tqdm(total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True) \
            if sys.stderr.isatty() else None

    def update(self, n: int = 1, **postfix: float | str) -> None:
        self.count += n
        if postfix:
            self._postfix = " ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in postfix.items()
            )
        if self._bar is not None:
            if postfix:
                self._bar.set_postfix_str(self._postfix, refresh=False)
            self._bar.update(n)
            return
        now = time.monotonic()
        pct = 100 * self.count / self.total if self.total else 0
        if pct >= self._next_pct or now - self._last_line > 30 or self.count == self.total:
            self._next_pct = (math.floor(pct / 10) + 1) * 10
            self._last_line = now
            of = f"/{self.total}" if self.total else ""
            print(f"{self.desc}: {self.count}{of} {self.unit} {self._postfix}".rstrip(),
                  file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class LossLog:
    """Training curve of one model: rows of step, epoch, loss, images/s, elapsed seconds and
    validation loss (``None``, an empty cell, where none was computed).

    Written to ``loss.csv`` atomically at each checkpoint, and truncated to the checkpoint's
    step on resume so the curve never holds steps that were redone.
    """

    path: Path
    rows: list[dict[str, float | None]] = field(default_factory=list)
    FIELDS = ("step", "epoch", "loss", "images_per_s", "seconds", "val_loss")

    def append(self, step: int, epoch: int, loss: float, images_per_s: float,
               seconds: float, val_loss: float | None = None) -> None:
        self.rows.append({"step": step, "epoch": epoch, "loss": loss,
                          "images_per_s": images_per_s, "seconds": seconds,
                          "val_loss": val_loss})

    def set_val_loss(self, step: int, val_loss: float) -> None:
        """Record ``val_loss`` on the row of ``step``, which must be the last one."""
        if not self.rows or self.rows[-1]["step"] != step:
            raise ValueError(f"{self.path}: no loss row at step {step} to add val_loss to")
        self.rows[-1]["val_loss"] = val_loss

    def flush(self) -> None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self.FIELDS)
        writer.writeheader()
        writer.writerows(self.rows)
        write_text(self.path, buf.getvalue())

    def resume_at(self, step: int) -> None:
        """Load the curve written so far, keeping rows up to ``step``."""
        if not self.path.exists():
            return
        try:
            with self.path.open(newline="", encoding="utf-8") as f:  # any older layout too
                self.rows = [{k: float(row[k]) if row.get(k) else None for k in self.FIELDS}
                             for row in csv.DictReader(f) if float(row["step"]) <= step]
        except (KeyError, ValueError, TypeError, csv.Error) as exc:  # damaged: a new curve
            logging.getLogger("harness").warning(
                "%s: unreadable (%s); the curve restarts at step %d", self.path,
                type(exc).__name__, step)
            self.rows = []


def _duration(seconds: float) -> str:
    """``95`` -> ``1m35s``; ``4000`` -> ``1h06m``.

    >>> _duration(95), _duration(4000), _duration(7)
    ('1m35s', '1h06m', '7s')
    """
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class RunProgress:
    """Where a run is: model k of n, time elapsed, and an estimate of the time left (the mean
    time of the models run so far, times the number left; none before the first)."""

    def __init__(self, total: int) -> None:
        self.total, self.index = total, 0
        self.start = time.monotonic()
        self.seconds: list[float] = []

    def next(self, label: str) -> str:
        """The line announcing the next model."""
        self.index += 1
        elapsed = time.monotonic() - self.start
        left = self.total - self.index + 1
        estimate = (f"; about {_duration(left * sum(self.seconds) / len(self.seconds))} left"
                    if self.seconds else "")
        return (f"model {self.index}/{self.total}: {label} ({_duration(elapsed)} elapsed"
                f"{estimate})")

    def finished(self, seconds: float) -> None:
        self.seconds.append(seconds)


class Laps:
    """Wall-clock seconds of a run's phases, in order: each :meth:`lap` ends the phase that
    began at the previous one (or at creation). Written as ``timings.json``."""

    def __init__(self) -> None:
        self.phases: list[dict[str, float | str]] = []
        self._start = self._last = time.monotonic()

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.phases.append({"phase": name, "seconds": round(now - self._last, 3)})
        self._last = now

    def model(self, label: str, status: dict) -> None:
        """End a model's phase, split into its fit and the rest (saving, predicting, scoring)
        where its status has ``fit_seconds``."""
        fit = status.get("fit_seconds")
        if fit is None:
            self.lap(f"{label} ({status.get('status', 'unknown')})")
            return
        self.phases.append({"phase": f"fit {label}", "seconds": fit})
        self._last += fit
        self.lap(f"save, predict, score {label}")

    def write(self, path: Path) -> None:
        write_json(path, {"phases": self.phases,
                          "total_seconds": round(time.monotonic() - self._start, 3)})
