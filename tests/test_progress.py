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
