"""The parent's job monitor: log lines off a terminal, tqdm bars on one; the loss.csv tail."""

from __future__ import annotations

import io
import logging
import sys
from pathlib import Path

import pytest

from harness.config import RunConfig, dump_config
from harness.execution import JobSpec
from harness.monitor import Monitor, last_loss_row
from harness.rundir import RunDir

CURSOR_UP = "\x1b[A"
HEADER = "step,epoch,loss,images_per_s,seconds,val_loss\r\n"


def _row(step: int, loss: float = 2.5, rate: float = 35.2) -> str:
    return f"{step},0,{loss},{rate},{step / 10},\r\n"


@pytest.fixture
def specs(tmp_path):
    """Two jobs of one run: zhang with a budget of 100 steps, mean-prior of one minute."""
    config = dump_config(RunConfig.model_validate({
        "data": {"source": "demo"}, "budget": {"steps": 100},
        "models": [{"plugin": "zhang"}, {"plugin": "mean-prior", "budget": {"minutes": 1}}]}))
    out = []
    for label in ("zhang", "mean-prior"):
        RunDir(tmp_path).model(label).path.mkdir(parents=True)
        out.append(JobSpec(run_dir=str(tmp_path), config=config, label=label, plugin=label,
                           rows=(label,), hinted=False, device="cpu", resume=False))
    return out


def _write_loss(spec: JobSpec, *rows: str) -> None:
    RunDir(spec.run_dir).model(spec.label).loss_file.write_text(HEADER + "".join(rows))


def _messages(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records]


def _run(monitor: Monitor, specs: list[JobSpec]) -> None:
    """Both jobs start; zhang reports step 40; zhang is done, mean-prior fails."""
    for spec in specs:
        monitor.start(spec, "pid 7")
    _write_loss(specs[0], _row(39), _row(40))
    _write_loss(specs[1], _row(12, 1.25, 8))
    monitor.poll(specs)
    monitor.end(specs[0], {"zhang": {"status": "done"}})
    monitor.end(specs[1], {"mean-prior": {"status": "failed", "error": "loss became nan"}})


def test_off_a_terminal_every_event_is_a_log_line(specs, caplog):
    caplog.set_level(logging.INFO, logger="harness")
    stream = io.StringIO()  # not a terminal: no bars
    monitor = Monitor(2, stream=stream)
    monitor.start(specs[0], "pid 7")
    monitor.poll(specs[:1])  # no loss.csv yet: nothing to say
    _write_loss(specs[0], _row(40))
    monitor.poll(specs[:1])
    monitor.poll(specs[:1])  # unchanged: no second line
    _write_loss(specs[0], _row(40), _row(41, 2.25, 36))
    monitor.poll(specs[:1])
    monitor.end(specs[0], {"zhang": {"status": "done"}})
    monitor.start(specs[1])
    monitor.end(specs[1], {"mean-prior": {"status": "failed", "error": "loss became nan"}})
    lines = _messages(caplog)
    assert lines[0].startswith("model 1/2: zhang (") and lines[0].endswith("elapsed), pid 7")
    assert lines[1:3] == ["running zhang: step 40, loss 2.5, 35 img/s",
                          "running zhang: step 41, loss 2.25, 36 img/s"]
    assert lines[3].startswith("[1/2] done zhang in ") and lines[3].endswith(" s")
    assert lines[4].startswith("model 2/2: mean-prior (")
    assert lines[5].startswith("[2/2] failed mean-prior after ")
    assert lines[5].endswith(" s: loss became nan") and len(lines) == 6
    assert stream.getvalue() == ""


def test_on_a_terminal_each_running_job_has_a_bar(specs, caplog):
    caplog.set_level(logging.INFO, logger="harness")
    handlers = list(logging.root.handlers)
    stream = io.StringIO()
    _run(Monitor(2, stream=stream, bars=True), specs)
    drawn = stream.getvalue()
    assert "zhang:  40%|" in drawn and "| step 40/100, loss 2.5, 35 img/s" in drawn
    assert "mean-prior: step 12, loss 1.25, 8 img/s" in drawn  # a time budget: no total
    assert "jobs: 100%|" in drawn and "| 2/2 [" in drawn
    lines = _messages(caplog)
    assert not any(x.startswith(("model ", "running ")) for x in lines)  # the bars say it
    assert lines[0].startswith("[1/2] done zhang in ")
    assert lines[1].startswith("[2/2] failed mean-prior after ")
    assert lines[1].endswith(": loss became nan") and len(lines) == 2
    assert logging.root.handlers == handlers  # console logging given back after the last job


def test_log_lines_print_above_the_bars_not_into_them(specs, capsys):
    """A console log line (the CLI's handler on stderr) while bars are drawn there."""
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logging.root.addHandler(console)
    harness_log = logging.getLogger("harness")
    level = harness_log.level
    harness_log.setLevel(logging.INFO)
    try:
        monitor = Monitor(2, bars=True)  # on stderr
        monitor.start(specs[0])
        monitor.poll(specs[:1])
        harness_log.info("a message while zhang runs")
        monitor.close()
    finally:
        harness_log.setLevel(level)
        logging.root.removeHandler(console)
    screen = capsys.readouterr().err.replace(CURSOR_UP, "")
    segments = screen.replace("\n", "\r").split("\r")  # what each redraw leaves on a line
    assert "INFO a message while zhang runs" in segments


def test_inline_jobs_show_the_overall_bar_only(specs, caplog):
    caplog.set_level(logging.INFO, logger="harness")
    stream = io.StringIO()
    monitor = Monitor(1, stream=stream, bars=True)
    monitor.start(specs[0])  # inline: never polled, the trainer draws its own bar
    monitor.end(specs[0], {"zhang": {"status": "done"}})
    assert "jobs: 100%|" in stream.getvalue() and "zhang" not in stream.getvalue()
    assert _messages(caplog)[0].startswith("[1/1] done zhang in ")


def test_no_jobs_no_bars():
    stream = io.StringIO()
    Monitor(0, stream=stream, bars=True)
    assert stream.getvalue() == ""


def test_tail_reader_reads_the_last_row_of_a_large_file_from_its_end(tmp_path, monkeypatch):
    path = tmp_path / "loss.csv"
    path.write_text(HEADER + "".join(_row(step) for step in range(1, 20001)))
    read: list[int] = []

    class Counted(io.FileIO):  # counts the bytes read from the file
        def readinto(self, buffer):
            read.append(super().readinto(buffer))
            return read[-1]

        def readall(self):
            data = super().readall()
            read.append(len(data))
            return data

    monkeypatch.setattr(Path, "open", lambda self, mode="r": io.BufferedReader(Counted(self)))
    row = last_loss_row(path)
    assert row is not None and row["step"] == "20000" and row["loss"] == "2.5"
    assert path.stat().st_size > 100_000 and sum(read) < 20_000  # the header and a tail
    assert last_loss_row(path, tail=64)["step"] == "20000"  # a tail of one row is enough


def test_tail_reader_skips_a_half_written_last_line(tmp_path):
    path = tmp_path / "loss.csv"
    path.write_text(HEADER + _row(40) + "41,0,2.")
    assert last_loss_row(path)["step"] == "40"
    path.write_text(HEADER + "41,0,2.")
    assert last_loss_row(path) is None
    path.write_text(HEADER)
    assert last_loss_row(path) is None
    path.write_text("step,epoch,lo")  # even the header unfinished
    assert last_loss_row(path) is None
    path.write_text(HEADER + "40,0,,35,4.0,\r\n")  # no loss: not a row to show
    assert last_loss_row(path) is None
    assert last_loss_row(tmp_path / "absent.csv") is None
