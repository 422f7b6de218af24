"""The shared torch trainer: learning, budgets, divergence, kill-and-resume, save / load."""

from __future__ import annotations

import math
import platform
import resource
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError
from torch import nn

from harness.color import AB_NORM, normalize_l, rgb_to_lab
from harness.colorizer import Budget, FitContext
from harness.data.dataset import LabSet
from harness.errors import TrainingDiverged
from harness.progress import LossLog
from harness.train import allocator
from harness.train.options import TorchTrainOptions
from harness.train.torch_trainer import (
    CHECKPOINT,
    TorchColorizer,
    Trainer,
    lr_factor,
)


def lab_set(n: int, size: int = 20, crop: int | None = 16) -> LabSet:
    """Gradients from dark blue to light yellow at random angles: ab is a function of L."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:size, 0:size] / size
    angle = rng.uniform(0, 2 * np.pi, n)[:, None, None]
    t = ((np.cos(angle) * x + np.sin(angle) * y) % 1.0)[..., None]
    rgb = t * np.array([0.95, 0.85, 0.2]) + (1 - t) * np.array([0.1, 0.15, 0.6])
    lab = rgb_to_lab(rgb.astype(np.float32))
    return LabSet(lab, range(n), [f"img{i}" for i in range(n)], np.full(n, -1), [], crop=crop)


DEFAULTS = {"batch_size": 4, "log_every": 1, "lr": 1e-2}


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Dropout2d(0.1),
                                  nn.Conv2d(8, 2, 3, padding=1))

    def forward(self, L):
        return self.body(normalize_l(L))


class Tiny(TorchColorizer):
    """Regresses ab / 110 with a two-layer net; its dropout makes the RNG state matter."""

    def build_network(self):
        return _Net()

    def loss(self, outputs, batch):
        return F.mse_loss(outputs, batch["ab"] / AB_NORM)

    def decode(self, outputs):
        return outputs * AB_NORM


class FailsAt(Tiny):
    """Tiny whose loss misbehaves at one step: NaN, or a crash standing in for a kill."""

    def __init__(self, step: int, error: type[Exception] | None = None, **options) -> None:
        super().__init__(Tiny.Options(**{**DEFAULTS, **options}))
        self.fail_step, self.error, self.calls = step, error, 0

    def loss(self, outputs, batch):
        self.calls += 1
        loss = super().loss(outputs, batch)
        if self.calls == self.fail_step:
            if self.error is not None:
                raise self.error("killed")
            return loss * float("nan")
        return loss


def context(tmp_path, name: str = "m", resume: bool = False) -> FitContext:
    return FitContext(device="cpu", seed=0, model_dir=tmp_path / name,
                      loss_log=LossLog(tmp_path / name / "loss.csv"), resume=resume)


def tiny(**options) -> Tiny:
    return Tiny(Tiny.Options(**{**DEFAULTS, **options}))


def steps_logged(ctx: FitContext) -> list[int]:
    return [int(row["step"]) for row in ctx.loss_log.rows]


def test_loss_falls_on_a_learnable_task(tmp_path):
    ctx = context(tmp_path)
    tiny().fit(lab_set(16), None, Budget(steps=60), ctx)
    losses = [row["loss"] for row in ctx.loss_log.rows]
    assert len(losses) == 60
    # medians: at the tiny net's floor one unlucky batch of crops can double a row's loss
    assert np.median(losses[-10:]) < 0.3 * np.median(losses[:5])


@pytest.mark.parametrize(("budget", "steps"), [
    (Budget(steps=7), 7),
    (Budget(epochs=2), 5),  # 20 samples (2 epochs of 10 images) in full batches of 4
    (Budget(epochs=5, steps=4), 4),
])
def test_budget_in_steps_and_epochs(tmp_path, budget, steps):
    ctx = context(tmp_path)
    tiny().fit(lab_set(10), None, budget, ctx)
    assert steps_logged(ctx) == list(range(1, steps + 1))
    state = torch.load(ctx.checkpoint_dir / CHECKPOINT, weights_only=True)
    assert state["step"] == steps


def test_budget_in_minutes(tmp_path):
    ctx = context(tmp_path)
    start = time.monotonic()
    tiny().fit(lab_set(10), None, Budget(minutes=0.01, steps=10**6), ctx)
    assert time.monotonic() - start < 60  # not the million steps
    assert 0 < len(ctx.loss_log.rows) < 10**6
    # stopped because 0.6 s had passed (the log's clock starts a hair after the budget's)
    assert ctx.loss_log.rows[-1]["seconds"] >= 0.6 - 0.01


def test_no_budget_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no limit"):
        tiny().fit(lab_set(4), None, Budget(), context(tmp_path))


def test_nan_loss_raises_with_its_step(tmp_path):
    model = FailsAt(3, batch_size=4, log_every=10)  # detected at the log, not at the step
    with pytest.raises(TrainingDiverged, match="step 3"):
        model.fit(lab_set(10), None, Budget(steps=20), context(tmp_path))


def test_kill_and_resume_equals_an_uninterrupted_run(tmp_path, monkeypatch):
    data = lab_set(10)  # batches of 4: the step-4 checkpoint falls inside epoch 1
    options = {"batch_size": 4, "log_every": 1, "checkpoint_every": 2}
    whole = tiny(**options)
    whole_ctx = context(tmp_path, "whole")
    whole.fit(data, None, Budget(steps=8), whole_ctx)

    killed = FailsAt(5, RuntimeError, **options)  # dies in step 5, after the step-4 checkpoint
    with pytest.raises(RuntimeError, match="killed"):
        killed.fit(data, None, Budget(steps=8), context(tmp_path, "resumed"))
    loads = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(k) or real_load(*a, **k))
    resumed_ctx = context(tmp_path, "resumed", resume=True)  # a fresh process's view
    resumed = tiny(**options)
    resumed.fit(data, None, Budget(steps=8), resumed_ctx)

    assert loads and all(k.get("weights_only") is True for k in loads)
    assert steps_logged(resumed_ctx) == list(range(1, 9))
    assert [r["loss"] for r in resumed_ctx.loss_log.rows] == \
        [r["loss"] for r in whole_ctx.loss_log.rows]
    for key, value in whole.net.state_dict().items():
        assert torch.equal(value, resumed.net.state_dict()[key]), key


def test_save_load_round_trip(tmp_path, monkeypatch):
    model = tiny(batch_size=3)
    model.fit(lab_set(8), None, Budget(steps=3), context(tmp_path))
    model.save(tmp_path / "saved")
    loads = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(k) or real_load(*a, **k))
    again = tiny(batch_size=2)  # another batch size: predictions must not depend on it
    again.load(tmp_path / "saved")
    assert [k.get("weights_only") for k in loads] == [True]
    L = np.random.default_rng(1).uniform(0, 100, (5, 24, 40)).astype(np.float32)
    ab = model.predict(L)
    assert ab.shape == (5, 24, 40, 2) and ab.dtype == np.float32
    np.testing.assert_allclose(again.predict(L), ab, rtol=1e-6, atol=1e-5)  # float32 noise


def test_predict_before_fit_is_an_error():
    with pytest.raises(RuntimeError, match="fit"):
        tiny().predict(np.zeros((1, 8, 8), np.float32))


def test_fit_leaves_global_torch_flags_alone(tmp_path):
    tiny().fit(lab_set(4), None, Budget(steps=1), context(tmp_path))
    assert not torch.are_deterministic_algorithms_enabled()
    assert torch.utils.deterministic.fill_uninitialized_memory


def test_lr_schedules():
    cosine = lr_factor(TorchTrainOptions(), total_steps=100)
    assert cosine(0) == 1.0 and cosine(50) == pytest.approx(0.5) and cosine(100) == 0.0
    assert lr_factor(TorchTrainOptions(), total_steps=None)(10**6) == 1.0  # minutes only
    step = lr_factor(TorchTrainOptions(schedule="step", lr_milestones=(10, 20), lr_gamma=0.1),
                     total_steps=None)
    assert [step(9), step(10), step(25)] == pytest.approx([1.0, 0.1, 0.01])
    with pytest.raises(ValidationError, match="lr_milestones"):
        TorchTrainOptions(schedule="step")


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc settings")
def test_fit_keeps_large_blocks_on_the_heap(tmp_path):
    """With glibc's starting threshold, each freed 1 MiB block is unmapped and faults in anew."""
    allocator.glibc_mallopt()(allocator.M_MMAP_THRESHOLD, 128 << 10)
    tiny().fit(lab_set(4), None, Budget(steps=1), context(tmp_path))
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(50):
        np.ones(1 << 18, np.float32).sum()  # 1 MiB, allocated and freed: 256 pages
    assert resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults < 2000



class Recording(Tiny):
    """Tiny that notes the size of every batch it trains on."""

    def __init__(self, **options) -> None:
        super().__init__(Tiny.Options(**{**DEFAULTS, **options}))
        self.sizes: list[int] = []

    def loss(self, outputs, batch):
        self.sizes.append(len(batch["L"]))
        return super().loss(outputs, batch)


@pytest.mark.parametrize(("n", "batch"), [(3, 8), (10, 4), (8, 4)])
def test_every_step_is_a_full_batch(tmp_path, n, batch):
    """Fewer images than a batch, a set that is not a multiple of the batch, one that is."""
    ctx = context(tmp_path)
    model = Recording(batch_size=batch)
    model.fit(lab_set(n), None, Budget(epochs=3), ctx)
    steps = math.ceil(3 * n / batch)  # three epochs of samples cut into full batches
    assert steps_logged(ctx) == list(range(1, steps + 1))
    assert model.sizes == [batch] * steps


def test_val_loss_every_val_every_steps_and_at_the_end(tmp_path):
    ctx = context(tmp_path)
    tiny(val_every=5, val_batches=2).fit(lab_set(12), lab_set(6, crop=None), Budget(steps=12),
                                          ctx)
    val = {int(r["step"]): r["val_loss"] for r in ctx.loss_log.rows if r["val_loss"] is not None}
    assert sorted(val) == [5, 10, 12] and all(math.isfinite(v) and v > 0 for v in val.values())
    header, *rows = (ctx.model_dir / "loss.csv").read_text().splitlines()
    assert header.split(",")[-1] == "val_loss"
    assert rows[0].endswith(",") and not rows[4].endswith(",")  # empty where not computed


def test_val_loss_is_deterministic_and_in_eval_mode(tmp_path):
    model = tiny(val_batches=1)
    model.fit(lab_set(8), None, Budget(steps=2), context(tmp_path))
    trainer = Trainer(model, lab_set(8), Budget(steps=1), context(tmp_path, "t"),
                      lab_set(6, crop=None))
    first, second = trainer._val_loss(), trainer._val_loss()  # dropout would differ in train mode
    assert first == second and model.net.training


def test_no_val_loss_without_a_validation_split(tmp_path):
    ctx = context(tmp_path)
    tiny(val_every=2).fit(lab_set(8), None, Budget(steps=4), ctx)
    assert all(r["val_loss"] is None for r in ctx.loss_log.rows)


def test_time_cadence_and_a_damaged_checkpoint_falls_back(tmp_path, caplog):
    """checkpoint_minutes writes checkpoints mid-training whatever checkpoint_every says; a
    damaged last.pt falls back to previous.pt, and with both damaged training starts over."""
    data = lab_set(8)
    options = {"batch_size": 4, "log_every": 1, "checkpoint_every": 1000,
               "checkpoint_minutes": 1e-9}  # every step
    ctx = context(tmp_path)
    tiny(**options).fit(data, None, Budget(steps=3), ctx)
    folder = ctx.checkpoint_dir
    assert torch.load(folder / "previous.pt", weights_only=True)["step"] == 2
    (folder / CHECKPOINT).write_bytes((folder / CHECKPOINT).read_bytes()[:100])  # truncated
    caplog.set_level("INFO", logger="harness")
    resumed = context(tmp_path, resume=True)
    tiny(**options).fit(data, None, Budget(steps=4), resumed)
    assert "unreadable checkpoint" in caplog.text and "resuming from step 2" in caplog.text
    assert steps_logged(resumed) == [1, 2, 3, 4]
    for name in (CHECKPOINT, "previous.pt"):
        (folder / name).write_bytes(b"garbage")
    caplog.clear()
    again = context(tmp_path, resume=True)
    tiny(**options).fit(data, None, Budget(steps=2), again)
    assert "no checkpoint, starting over" in caplog.text and steps_logged(again) == [1, 2]
