"""The shared Keras trainer and its environment: budgets, divergence, kill-and-resume, save/load."""

from __future__ import annotations

import json
import math
import os
import platform
import resource
import subprocess
import sys
import time

import numpy as np
import pytest
from pydantic import ValidationError

from harness import keras_env, threads
from harness.colorizer import Budget, FitContext
from harness.data.dataset import LabSet
from harness.errors import TrainingDiverged
from harness.progress import LossLog
from harness.train import keras_trainer
from harness.train.keras_trainer import (
    LAST,
    MODEL,
    ABLoss,
    DenormalizeAB,
    KerasColorizer,
    NormalizeL,
    Trainer,
    keras,
    layers,
    learning_rate,
)
from harness.train.options import KerasTrainOptions


def lab_array(n: int, size: int = 16) -> np.ndarray:
    """Sinusoidal L patterns whose ab is a fixed function of L: learnable pixel by pixel."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:size, 0:size] / size
    f = rng.uniform(0.5, 2.0, (n, 2, 1, 1))
    phase = rng.uniform(0, 2 * np.pi, (n, 1, 1))
    L = 50 + 40 * np.sin(2 * np.pi * (f[:, 0] * x + f[:, 1] * y) + phase)
    return np.stack([L, 60 * np.sin(L / 15), 50 * np.cos(L / 20)], -1).astype(np.float32)


def lab_set(n: int, lab: np.ndarray | None = None) -> LabSet:
    lab = lab_array(n) if lab is None else lab
    return LabSet(lab, range(n), [f"img{i}" for i in range(n)], np.full(n, -1), [])


class Tiny(KerasColorizer):
    """Two convolutions around a halving, so inputs are padded to even sides."""

    input_multiple = 2

    def build_model(self, n_classes):
        L = keras.Input((None, None, 1))
        x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(NormalizeL()(L))
        x = layers.UpSampling2D(2, interpolation="bilinear")(x)
        x = layers.Conv2D(2, 3, padding="same", activation="tanh")(x)
        return keras.Model(L, DenormalizeAB()(x))

    def loss(self, n_classes):
        return ABLoss(), None


class Dropping(Tiny):
    """Tiny with dropout before its last convolution: training mode would show in its loss."""

    def build_model(self, n_classes):
        L = keras.Input((None, None, 1))
        x = layers.Conv2D(8, 3, padding="same", activation="relu")(NormalizeL()(L))
        x = layers.Conv2D(2, 3, padding="same", activation="tanh")(layers.Dropout(0.5)(x))
        return keras.Model(L, DenormalizeAB()(x))


DEFAULTS = {"batch_size": 4, "log_every": 1, "lr": 1e-2}


def tiny(**options) -> Tiny:
    return Tiny(Tiny.Options(**{**DEFAULTS, **options}))


class KilledLog(LossLog):
    """A loss log whose process dies while logging ``step``."""

    def __init__(self, path, step: int) -> None:
        super().__init__(path)
        self.kill_step = step

    def append(self, step, *args) -> None:
        if step == self.kill_step:
            raise KeyboardInterrupt
        super().append(step, *args)


def context(tmp_path, name: str = "m", resume: bool = False, log: LossLog | None = None):
    return FitContext(device="cpu", seed=0, model_dir=tmp_path / name, resume=resume,
                      loss_log=log or LossLog(tmp_path / name / "loss.csv"))


def steps_logged(ctx: FitContext) -> list[int]:
    return [int(row["step"]) for row in ctx.loss_log.rows]


def last_checkpoint(ctx: FitContext) -> dict:
    return json.loads((ctx.checkpoint_dir / LAST).read_text())


def test_loss_falls_within_an_epoch_budget(tmp_path):
    ctx = context(tmp_path)
    tiny(log_every=5).fit(lab_set(16), None, Budget(epochs=15), ctx)  # 4 steps an epoch
    assert steps_logged(ctx) == list(range(5, 61, 5))
    losses = [row["loss"] for row in ctx.loss_log.rows]
    assert losses[-1] < 0.5 * losses[0]
    assert [row["epoch"] for row in ctx.loss_log.rows][:3] == [1, 2, 3]  # step 5 is in epoch 1


def test_step_budget_log_and_checkpoints(tmp_path):
    ctx = context(tmp_path)
    tiny(log_every=3, checkpoint_every=5).fit(lab_set(10), None, Budget(epochs=9, steps=7), ctx)
    assert steps_logged(ctx) == [3, 5, 6, 7]  # rows at each log step and each checkpoint
    assert ctx.loss_log.path.exists()
    meta = last_checkpoint(ctx)
    assert (meta["step"], meta["epoch"]) == (7, 2)  # step 7 starts at sample 24: epoch 2
    kept = sorted(p.name for p in ctx.checkpoint_dir.glob("*.keras"))
    assert kept == sorted([meta["previous"][0]["file"], meta["file"]])  # and its fallback


def test_minutes_budget(tmp_path):
    ctx = context(tmp_path)
    start = time.monotonic()
    tiny().fit(lab_set(8), None, Budget(minutes=0.01), ctx)  # no step limit: endless batches
    assert time.monotonic() - start < 30
    assert last_checkpoint(ctx)["step"] > 0
    assert ctx.loss_log.rows[-1]["seconds"] >= 0.6  # the step that spent the budget is logged


def test_no_budget_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no limit"):
        tiny().fit(lab_set(4), None, Budget(), context(tmp_path))


def test_nan_loss_raises_with_its_step(tmp_path):
    lab = lab_array(12)
    data = lab_set(12, lab)
    lab[data.order(0, shuffle=True)[6], 3, 3, 1] = np.nan  # an image of the second batch
    with pytest.raises(TrainingDiverged, match="at step 2$"):
        tiny(checkpoint_every=1).fit(data, None, Budget(steps=10), context(tmp_path))
    assert last_checkpoint(context(tmp_path))["step"] == 1


def test_kill_and_resume_continues_from_the_checkpoint(tmp_path):
    data = lab_set(10)  # batches of 4: the step-4 checkpoint falls inside epoch 1
    options = {"checkpoint_every": 4}
    whole_ctx = context(tmp_path, "whole")
    whole = tiny(**options)
    whole.fit(data, None, Budget(steps=9), whole_ctx)

    killed_ctx = context(tmp_path, "resumed", log=KilledLog(tmp_path / "resumed" / "loss.csv", 6))
    with pytest.raises(KeyboardInterrupt):
        tiny(**options).fit(data, None, Budget(steps=9), killed_ctx)
    assert last_checkpoint(killed_ctx)["step"] == 4

    resumed_ctx = context(tmp_path, "resumed", resume=True)  # a fresh process's view
    resumed = tiny(**options)
    resumed.fit(data, None, Budget(steps=9), resumed_ctx)
    assert steps_logged(resumed_ctx) == list(range(1, 10))
    np.testing.assert_allclose([r["loss"] for r in resumed_ctx.loss_log.rows],
                               [r["loss"] for r in whole_ctx.loss_log.rows], rtol=1e-5)
    L = data.arrays()[0]
    np.testing.assert_allclose(resumed.predict(L), whole.predict(L), atol=1e-3)


def test_resume_without_a_checkpoint_starts_over(tmp_path):
    ctx = context(tmp_path, resume=True)
    tiny().fit(lab_set(4), None, Budget(steps=2), ctx)
    assert steps_logged(ctx) == [1, 2]


def test_save_load_round_trip_in_safe_mode(tmp_path):
    model = tiny(batch_size=3)
    model.fit(lab_set(8), None, Budget(steps=3), context(tmp_path))
    model.save(tmp_path / "saved")
    assert (tmp_path / "saved" / MODEL).exists()
    again = tiny(batch_size=2)  # another batch size: predictions must not depend on it
    again.load(tmp_path / "saved")
    L = np.random.default_rng(1).uniform(0, 100, (5, 24, 41)).astype(np.float32)  # odd: padded
    ab = model.predict(L)
    assert ab.shape == (5, 24, 41, 2) and ab.dtype == np.float32
    np.testing.assert_allclose(again.predict(L), ab, rtol=0, atol=1e-4)


def test_amp_checkpoints_mixed_precision_and_saves_float32(tmp_path):
    """On a GPU device, training runs in mixed bfloat16; the saved model is float32. (Without
    a GPU, TensorFlow places the "gpu:0" ops on the CPU, which still runs the policy.)"""
    ctx = FitContext(device="cuda", seed=0, model_dir=tmp_path, loss_log=LossLog(tmp_path / "l"))
    model = tiny(jit_compile=False)
    model.fit(lab_set(8), None, Budget(steps=2), ctx)
    checkpoint = keras.saving.load_model(ctx.checkpoint_dir / last_checkpoint(ctx)["file"])
    assert "mixed_bfloat16" in {layer.dtype_policy.name for layer in checkpoint.layers}
    model.save(tmp_path / "saved")
    saved = keras.saving.load_model(tmp_path / "saved" / MODEL)
    assert {layer.dtype_policy.name for layer in saved.layers} == {"float32"}


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc settings")
def test_fit_gives_malloc_back_to_the_process(tmp_path):
    """TensorFlow's generator datasets make every later large allocation fault in afresh."""
    tiny().fit(lab_set(4), None, Budget(steps=1), context(tmp_path))
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(50):
        np.ones(1 << 18, np.float32).sum()  # 1 MiB, allocated and freed: 256 pages
    assert resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults < 2000


def test_predict_before_fit_is_an_error():
    with pytest.raises(RuntimeError, match="fit"):
        tiny().predict(np.zeros((1, 8, 8), np.float32))


def test_ab_loss_units():
    true = np.zeros((1, 2, 2, 2), np.float32)
    pred = np.full_like(true, 55.0)  # half of normalize_ab's unit
    assert float(ABLoss()(true, pred)) == pytest.approx(0.25)
    assert float(ABLoss(scale=0.5)(true, pred)) == pytest.approx(0.0625)
    # Huber: quadratic (halved) below the knee, linear above it.
    assert float(ABLoss("huber", delta=110.0)(true, pred)) == pytest.approx(0.125)
    assert float(ABLoss("huber", delta=11.0)(true, pred)) == pytest.approx(0.1 * (0.5 - 0.05))


def test_lr_schedules_match_the_torch_trainer():
    def rates(options, total, steps):
        lr = learning_rate(options, total)
        return [float(lr(step)) if callable(lr) else lr for step in steps]

    cosine = rates(KerasTrainOptions(lr=1.0), 100, [0, 50, 100])
    assert cosine == pytest.approx([1.0, 0.5, 0.0])
    assert rates(KerasTrainOptions(lr=1.0), None, [10**6]) == [1.0]  # minutes only
    step = KerasTrainOptions(lr=1.0, schedule="step", lr_milestones=(10, 20), lr_gamma=0.1)
    assert rates(step, None, [9, 10, 25]) == pytest.approx([1.0, 0.1, 0.01])
    with pytest.raises(ValidationError, match="lr_milestones"):
        KerasTrainOptions(schedule="step")


def test_env_defaults_respect_the_user():
    assert keras_env.environment_defaults({})["TF_CPP_MIN_LOG_LEVEL"] == "2"
    user = keras_env.environment_defaults({"TF_CPP_MIN_LOG_LEVEL": "0", "KERAS_BACKEND": "jax"})
    assert "TF_CPP_MIN_LOG_LEVEL" not in user and "KERAS_BACKEND" not in user
    assert "TF_CPP_MIN_LOG_LEVEL" not in keras_env.environment_defaults(
        {keras_env.VERBOSE_VAR: "1"})


def test_configure_is_idempotent_and_quiet():
    code = ("from harness import keras_env as e; e.configure(); e.configure(); "
            "import os, tensorflow as tf, torch; t = tf.config.threading; "
            "torch.optim.Adam([torch.zeros(1, requires_grad=True)]); "  # loads Triton after TF
            "print(os.environ['TF_CPP_MIN_LOG_LEVEL'], t.get_intra_op_parallelism_threads(), "
            "t.get_inter_op_parallelism_threads(), torch.get_num_threads(), "
            "os.environ.get('OMP_WAIT_POLICY', 'unset'))")  # as chosen before OpenMP started
    env = {k: v for k, v in os.environ.items() if k not in (
        "TF_CPP_MIN_LOG_LEVEL", keras_env.VERBOSE_VAR, "OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, check=True)
    assert done.stderr == ""
    cores = keras_env.available_cores()
    intra, inter = keras_env.thread_counts(cores)
    torch_threads = threads.default_torch_threads(cores)
    assert done.stdout.split() == ["2", str(intra), str(inter), str(torch_threads),
                                   threads.OMP_WAIT_POLICY or "unset"]


@pytest.mark.parametrize(("n", "batch"), [(3, 8), (10, 4), (8, 4)])
def test_every_step_is_a_full_batch(tmp_path, monkeypatch, n, batch):
    """Fewer images than a batch, a set that is not a multiple of the batch, one that is."""
    sizes = {}  # step -> samples; Keras reads the first batch twice (once for its signature)
    read = keras_trainer._Batches.__getitem__

    def recorded(self, index):
        x, y = read(self, index)
        sizes[self.start + index] = len(x)
        return x, y

    monkeypatch.setattr(keras_trainer._Batches, "__getitem__", recorded)
    ctx = context(tmp_path)
    tiny(batch_size=batch).fit(lab_set(n), None, Budget(epochs=3), ctx)
    steps = math.ceil(3 * n / batch)  # three epochs of samples cut into full batches
    assert steps_logged(ctx) == list(range(1, steps + 1))
    assert sizes == dict.fromkeys(range(steps), batch)


def test_val_loss_every_val_every_steps_and_at_the_end(tmp_path, monkeypatch):
    traces = []  # test_step runs in Python only while the test function is traced
    step = keras.Model.test_step
    monkeypatch.setattr(keras.Model, "test_step", lambda self, data: traces.append(1) or
                        step(self, data))
    ctx = context(tmp_path)
    val = lab_set(6, lab_array(6, size=21))  # batches of 4 and 2, sides cut to 20
    tiny(val_every=5, val_batches=2).fit(lab_set(12), val, Budget(steps=12), ctx)
    val = {int(r["step"]): r["val_loss"] for r in ctx.loss_log.rows if r["val_loss"] is not None}
    assert sorted(val) == [5, 10, 12] and all(math.isfinite(v) and v > 0 for v in val.values())
    assert len(traces) == 1  # three evaluations, two batch sizes, one trace
    header, *rows = (ctx.model_dir / "loss.csv").read_text().splitlines()
    assert header.split(",")[-1] == "val_loss"
    assert rows[0].endswith(",") and not rows[4].endswith(",")  # empty where not computed


def test_val_loss_is_the_compiled_loss_in_inference_mode(tmp_path):
    model = Dropping(Dropping.Options(**{**DEFAULTS, "val_batches": 2}))
    ctx = context(tmp_path)
    val = lab_set(7, lab_array(7, size=21))  # batches of 4 and 3: weighted by their sizes
    trainer = Trainer(model, lab_set(8), Budget(steps=2), ctx, val)
    trainer.run()
    logged = ctx.loss_log.rows[-1]["val_loss"]
    L, ab = val.arrays()
    pred = trainer.model(L[:, :20, :20, None], training=False)  # dropout off
    assert logged == pytest.approx(float(ABLoss()(ab[:, :20, :20], pred)), rel=1e-5)
    assert trainer.val_loss() == trainer.val_loss() == pytest.approx(logged, rel=1e-6)


def test_no_val_loss_without_a_validation_split(tmp_path):
    ctx = context(tmp_path)
    tiny(val_every=2).fit(lab_set(8), None, Budget(steps=4), ctx)
    assert all(r["val_loss"] is None for r in ctx.loss_log.rows)


def test_time_cadence_and_a_damaged_checkpoint_falls_back(tmp_path, caplog):
    """As the torch trainer: mid-training checkpoints by time; a damaged newest checkpoint
    (or last.json) falls back to the one before; with none readable, training starts over."""
    data = lab_set(8)
    options = {"checkpoint_every": 1000, "checkpoint_minutes": 1e-9}  # every step
    ctx = context(tmp_path)
    tiny(**options).fit(data, None, Budget(steps=3), ctx)
    meta = last_checkpoint(ctx)
    assert meta["step"] == 3 and meta["previous"][0]["step"] == 2
    newest = ctx.checkpoint_dir / meta["file"]
    newest.write_bytes(newest.read_bytes()[:100])
    caplog.set_level("INFO", logger="harness")
    resumed = context(tmp_path, resume=True)
    tiny(**options).fit(data, None, Budget(steps=4), resumed)
    assert "unreadable checkpoint" in caplog.text and "resuming from step 2" in caplog.text
    (ctx.checkpoint_dir / LAST).write_text("{not json")
    for f in ctx.checkpoint_dir.glob("step-*.keras"):
        f.write_bytes(b"")
    caplog.clear()
    again = context(tmp_path, resume=True)
    tiny(**options).fit(data, None, Budget(steps=2), again)
    assert "no checkpoint, starting over" in caplog.text and steps_logged(again) == [1, 2]
