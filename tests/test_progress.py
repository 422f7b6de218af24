"""Overall run progress: model k of n, elapsed time, an estimate from the models so far."""

from __future__ import annotations

from harness.progress import RunProgress


def test_estimate_is_the_mean_model_time_times_the_models_left():
    progress = RunProgress(4)
    assert progress.next("a").startswith("model 1/4: a (") and "left" not in progress.next("b")
    progress.finished(60.0)
    progress.finished(120.0)
    line = progress.next("c")
    assert line.startswith("model 3/4: c (") and line.endswith("about 3m00s left)")


def test_resumed_loss_log_keeps_one_row_format(tmp_path):
    from harness.progress import LossLog

    path = tmp_path / "loss.csv"
    path.write_text("step,epoch,loss,images_per_s,seconds\n1,0,2.0,10,0.1\n2,0,1.5,10,0.2\n"
                    "3,0,1.2,10,0.3\n")  # an older layout, without val_loss
    log = LossLog(path)
    log.resume_at(2)
    log.append(3, 0, 1.1, 11.0, 0.35)
    log.flush()
    lines = path.read_text().splitlines()
    assert lines[0] == ",".join(LossLog.FIELDS) and len(lines) == 4
    assert all(len(x.split(",")) == len(LossLog.FIELDS) for x in lines)
    path.write_bytes(b"\x00\xff garbage")
    damaged = LossLog(path)
    damaged.resume_at(2)
    assert damaged.rows == []
