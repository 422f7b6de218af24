"""The shared trainers' options, framework-free so a config validates without torch or TensorFlow.

:class:`TrainOptions` holds what both trainers take, with one meaning; :class:`TorchTrainOptions`
and :class:`KerasTrainOptions` add each framework's own. A model plugin's options subclass one
of the last two, in a module that imports no framework (see README, "Write a plugin").
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from harness import limits
from harness.colorizer import PluginOptions


class TrainOptions(PluginOptions):
    """Batch, Adam(W) and learning-rate schedule, checkpoint and logging cadence.

    Betas and weight decay are Zhang et al.'s; their learning rate (3e-5, divided by 3 at 200k
    and 375k steps) suits 450k-step runs, so the default is higher, for budgets of hundreds to
    thousands of steps. ``schedule``: ``constant``; ``cosine`` decays to 0 over the budget's
    steps (held constant when the budget is minutes only); ``step`` multiplies the rate by
    ``lr_gamma`` at each of ``lr_milestones``.
    """

    batch_size: int = Field(16, ge=1)
    lr: float = Field(1e-3, gt=0)
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = Field(1e-3, ge=0)
    schedule: Literal["constant", "cosine", "step"] = "cosine"
    lr_milestones: tuple[int, ...] = ()
    lr_gamma: float = Field(1 / 3, gt=0)
    #: Steps between checkpoints (one is always written at the end).
    checkpoint_every: int = Field(500, ge=1)
    #: Minutes of training between checkpoints, whatever the step count: a killed run loses
    #: at most this much (and ``checkpoint_every`` steps) of training.
    checkpoint_minutes: float = Field(1.0, gt=0, le=24 * 60)
    #: Steps between loss-log rows (each the mean loss since the last row).
    log_every: int = Field(10, ge=1)
    #: Steps between validation losses (one is always computed at the end), when the data
    #: has a validation split: the model's loss, in eval mode, on the first ``val_batches``
    #: batches of it (the same every time), in loss.csv's ``val_loss`` column.
    val_every: int = Field(100, ge=1)
    val_batches: int = Field(4, ge=1)
    num_workers: int = Field(0, ge=0)
    #: bfloat16 mixed precision on a GPU; ignored elsewhere.
    amp: bool = True

    @field_validator("batch_size")
    @classmethod
    def _batch(cls, value: int) -> int:
        return limits.at_most(value, limits.MAX_BATCH, limits.BATCH_REASON)

    @field_validator("num_workers")
    @classmethod
    def _loader_workers(cls, value: int) -> int:
        return limits.at_most(value, limits.MAX_LOADER_WORKERS, limits.LOADER_WORKERS_REASON)

    @model_validator(mode="after")
    def _milestones(self) -> TrainOptions:
        if self.schedule == "step" and not self.lr_milestones:
            raise ValueError("lr_milestones: the step schedule needs at least one milestone")
        if list(self.lr_milestones) != sorted(set(self.lr_milestones)):
            raise ValueError("lr_milestones must be increasing")
        return self



class TorchTrainOptions(TrainOptions):
    """The shared options plus torch's own (:mod:`harness.train.torch_trainer`).

    The loss is read back from the device only at log rows, so a GPU never waits in between.
    """

    #: Channels-last memory format on CUDA (faster convolutions on tensor cores).
    channels_last: bool = True


class KerasTrainOptions(TrainOptions):
    """The shared options plus Keras's own (:mod:`harness.train.keras_trainer`).

    Two differences of framework: ``weight_decay`` is decoupled (Keras applies it to the
    weights, as AdamW, where torch's Adam adds it to the gradient), and ``num_workers`` counts
    threads filling Keras's batch queue (0: batches are made in tf.data's reader thread).
    ``jit_compile`` (XLA) defaults to on for a GPU and off for the CPU, where compiling a
    network takes tens of seconds, more than it saves on budgets of a few hundred steps.
    ``distribute: mirrored`` trains on every visible GPU with ``tf.distribute.MirroredStrategy``
    (``batch_size`` is then the global batch); with fewer than two GPUs it is ignored.
    """

    jit_compile: bool | None = None
    distribute: Literal["none", "mirrored"] = "none"
