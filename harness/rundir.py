"""The run directory: the one owner of its layout and of every read and write of its files.

Layout of ``results/<name>-<timestamp>/`` (every file written atomically)::

    config.yaml          the resolved config         environment.json   versions, device, git
    data_report.json     counts, skipped files, split
    timings.json         wall-clock seconds of each phase (setup, data, each model's fit and
                         scoring, tables, report)
    test_lab.npy         the test images in Lab at the evaluation size (N, E, E, 3)
    test_input.npy       their L at the models' input size (N, S, S), resized once
    models/<model>/      status.json (with ``compute``: FLOPs and rates of a learned model,
                         see :mod:`harness.train.flops`), log.txt, loss.csv, checkpoints/,
                         weights/, pred_ab.npy (test predictions), scores.npz and
                         unavailable.json (per-image metric rows); while a row waits to be
                         scored, pred_ab_input.npy (its predictions at the input size)
    per_image.csv  summary.csv  table.md  samples.png
    study/               the human-study kit's items and the imported votes

``table.md`` holds the comparison table and, after ``harness study import``, a human-study
section; :func:`write_table` is its only writer and keeps whichever part it is not given.
``harness run`` writes a run directory, ``--resume`` continues it; ``harness report``,
``harness compare``, ``harness study`` and ``harness colorize`` read it through this module.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import socket
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from harness.atomic import write_json, write_text, write_with
from harness.errors import HarnessError


class RunLocked(HarnessError):
    """Another process is writing the run directory."""

#: Columns of summary.csv, one row per (model, metric).
SUMMARY_COLUMNS = ["model", "metric", "value", "ci_low", "ci_high", "n", "p_vs_ref",
                   "significant", "direction", "unit", "granularity", "status", "note",
                   "assisted"]

#: The line that opens the human-study section of table.md.
STUDY_MARKER = "<!-- human-study: written by `harness study import`; replaced on each import -->"


def write_table(folder: Path, table: str | None = None, study: str | None = None) -> Path:
    """Write ``folder/table.md``: the comparison ``table`` and the human-``study`` section.

    Either part left None is kept from the file as it is; ``study=""`` removes the section.
    """
    path = Path(folder) / "table.md"
    try:
        old = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):  # missing or damaged: nothing to keep
        old = ""
    old_table, marker, old_study = old.partition(STUDY_MARKER)
    table = old_table if table is None else table
    study = (marker + old_study if marker else "") if study is None else \
        (f"{STUDY_MARKER}\n{study}" if study else "")
    text = table.rstrip("\n") + ("\n\n" + study.strip("\n") if study else "")
    write_text(path, text.strip("\n") + "\n")
    return path


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; {} if the file is missing, unreadable or not an object."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class ModelDir:
    """``models/<name>/`` of a run: status, log, loss curve, weights, predictions, scores."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.name = self.path.name

    status_file = property(lambda self: self.path / "status.json")
    log_file = property(lambda self: self.path / "log.txt")
    loss_file = property(lambda self: self.path / "loss.csv")
    weights_dir = property(lambda self: self.path / "weights")
    predictions_file = property(lambda self: self.path / "pred_ab.npy")
    raw_predictions_file = property(lambda self: self.path / "pred_ab_input.npy")

    def status(self) -> dict[str, Any]:
        """The model's status.json ({} when it has none)."""
        return read_json(self.status_file)

    @property
    def done(self) -> bool:
        return self.status().get("status") == "done"

    def write_status(self, status: dict[str, Any]) -> None:
        write_json(self.status_file, status)

    def write_predictions(self, ab: np.ndarray) -> None:
        write_with(self.predictions_file, lambda p: np.save(p, ab))

    def write_raw_predictions(self, ab: np.ndarray) -> None:
        """Predictions at the size the model was given, before the host upsamples them."""
        write_with(self.raw_predictions_file, lambda p: np.save(p, ab))

    def raw_predictions(self) -> np.ndarray:
        return np.load(self.raw_predictions_file, allow_pickle=False)

    def predictions(self) -> np.ndarray | None:
        """(N, E, E, 2) ab predictions on the test images, memory-mapped, or None."""
        try:
            return np.load(self.predictions_file, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, EOFError):  # missing, damaged or empty
            return None

    def write_rows(self, rows: dict[str, np.ndarray | str]) -> None:
        """Per-image metric rows: arrays to scores.npz, unavailable metrics' reasons to JSON."""
        arrays = {k: v for k, v in rows.items() if isinstance(v, np.ndarray)}
        write_with(self.path / "scores.npz", lambda p: np.savez(p, **arrays))
        write_json(self.path / "unavailable.json",
                   {k: v for k, v in rows.items() if isinstance(v, str)})

    def problem(self, n_images: int, eval_shape: tuple[int, int], metrics: list[str]
                ) -> str | None:
        """What is wrong with a finished model's files, as ``path: what``; None if nothing.

        Checks that status.json parses, pred_ab.npy holds ``n_images`` predictions of
        ``eval_shape``, the per-image rows hold a row per image for every metric, and every
        zip archive among the saved weights (``weights.pt``, ``.keras``) passes its CRC check.
        """
        try:
            json.loads(self.status_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            return f"{self.status_file}: unreadable ({type(exc).__name__})"
        pred = self.predictions()
        want = (n_images, *eval_shape, 2)
        if pred is None or pred.shape != want:
            found = "not a readable .npy array" if pred is None else f"shape {pred.shape}"
            return f"{self.predictions_file}: {found}, expected {want}"
        try:
            rows = self.rows()
        except Exception as exc:  # zip, npy and JSON errors alike: the rows are unusable
            return f"{self.path / 'scores.npz'}: unreadable ({type(exc).__name__}: {exc})"
        for name in metrics:
            row = rows.get(name)
            if row is None:
                return f"{self.path / 'scores.npz'}: no rows for metric {name}"
            if isinstance(row, np.ndarray) and len(row) != n_images:
                return f"{self.path / 'scores.npz'}: {name} has {len(row)} rows, expected " \
                       f"{n_images}"
        return self._weights_problem()

    def _weights_problem(self) -> str | None:
        for path in sorted(self.weights_dir.rglob("*")) if self.weights_dir.is_dir() else []:
            if path.suffix not in (".pt", ".keras") or not path.is_file():
                continue
            try:
                with zipfile.ZipFile(path) as archive:
                    bad = archive.testzip()
            except (OSError, zipfile.BadZipFile) as exc:
                return f"{path}: damaged ({exc})"
            if bad is not None:
                return f"{path}: damaged (member {bad} fails its CRC)"
        return None

    def rows(self) -> dict[str, np.ndarray | str]:
        """The per-image metric rows :meth:`write_rows` wrote."""
        with np.load(self.path / "scores.npz", allow_pickle=False) as npz:
            rows: dict[str, np.ndarray | str] = {k: npz[k] for k in npz.files}
        rows.update(json.loads((self.path / "unavailable.json").read_text(encoding="utf-8")))
        return rows


class RunDir:
    """One run directory (see the module docstring for its layout)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @classmethod
    def create(cls, output_dir: Path, name: str) -> RunDir:
        """A new, empty ``output_dir/<name>-<timestamp>[-k]``."""
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = Path(output_dir) / f"{name}-{stamp}"
        suffix = 1
        while path.exists():
            suffix += 1
            path = Path(output_dir) / f"{name}-{stamp}-{suffix}"
        path.mkdir(parents=True)
        return cls(path)

    def __str__(self) -> str:
        return str(self.path)

    config_file = property(lambda self: self.path / "config.yaml")
    summary_file = property(lambda self: self.path / "summary.csv")
    table_file = property(lambda self: self.path / "table.md")
    test_lab_file = property(lambda self: self.path / "test_lab.npy")
    test_input_file = property(lambda self: self.path / "test_input.npy")
    study_dir = property(lambda self: self.path / "study")

    @property
    def started(self) -> bool:
        """Whether ``harness run`` wrote this directory (it has config.yaml)."""
        return self.config_file.is_file()

    @property
    def finished(self) -> bool:
        """Whether the run wrote its results (config.yaml and summary.csv)."""
        return self.started and self.summary_file.is_file()

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold ``.lock`` (an advisory ``flock``, released by the kernel when the holder dies)
        while writing; :class:`RunLocked`, naming the holder's PID, if another process has it.
        The file keeps naming the last holder; it is not a result.
        """
        path = self.path / ".lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
                raise RunLocked(f"{self.path}: another harness process is writing this run "
                                f"({holder}); wait for it to finish or stop it") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"PID {os.getpid()} on {socket.gethostname()}, since "
                          f"{dt.datetime.now().isoformat(timespec='seconds')}\n".encode(), 0)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def model(self, name: str) -> ModelDir:
        return ModelDir(self.path / "models" / name)

    def models(self) -> list[ModelDir]:
        """Every model folder that holds a status.json, by name."""
        root = self.path / "models"
        return [ModelDir(p.parent) for p in sorted(root.glob("*/status.json"))]

    def write_config(self, text: str) -> None:
        write_text(self.config_file, text)

    def read(self, name: str) -> dict[str, Any]:
        """``name``.json of the run (environment, data_report, timings): {} if unreadable."""
        return read_json(self.path / f"{name}.json")

    def write(self, name: str, data: dict[str, Any]) -> None:
        write_json(self.path / f"{name}.json", data)

    def write_test_lab(self, L: np.ndarray, ab: np.ndarray) -> None:
        write_with(self.test_lab_file,
                   lambda p: np.save(p, np.concatenate([L[..., None], ab], axis=-1)))

    def test_lab(self) -> np.ndarray | None:
        """(N, E, E, 3) Lab test images, memory-mapped, or None when the run has none."""
        try:
            return np.load(self.test_lab_file, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, EOFError):  # missing, damaged or empty
            return None

    def write_test_input(self, L: np.ndarray) -> None:
        write_with(self.test_input_file, lambda p: np.save(p, L))

    def test_input(self) -> np.ndarray:
        """(N, S, S) test L at the models' input size, memory-mapped."""
        return np.load(self.test_input_file, mmap_mode="r", allow_pickle=False)

    def test_names(self) -> list[str]:
        return [str(x) for x in self.read("data_report").get("test_images") or []]

    def write_frame(self, name: str, frame: Any) -> None:
        """A pandas frame as ``name``.csv (summary, per_image)."""
        write_with(self.path / f"{name}.csv", lambda p: frame.to_csv(p, index=False))

    def write_table(self, table: str | None = None, study: str | None = None) -> Path:
        """See :func:`write_table`."""
        return write_table(self.path, table, study)
