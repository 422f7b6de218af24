"""The framework-neutral colorizer protocol every model and baseline implements.

Conventions, fixed for every plugin: numpy arrays, channel-last, float32, CIE Lab (D65).
``L`` has shape ``(N, H, W)`` with values in [0, 100]; ``ab`` has shape ``(N, H, W, 2)`` in Lab
units (roughly [-110, 110]). The host resizes L to the model's input size (``data.size``),
upsamples the returned ab to the evaluation size and recombines it with the full-resolution L,
identically for every plugin.

Two kinds of method see more than the grey input; the tables mark their rows and never rank
them against the automatic ones (no bold best, never the reference):

- **User-assisted** (:attr:`Colorizer.takes_hints`): the host calls ``predict(L, hints=...)``
  with :class:`harness.hints.Hints` drawn from each test image's ground truth, once per count
  of the config's ``hints:`` list (rows ``NAME@N``, one ``fit`` shared by all). The exception
  to the resizing rule: such a method gets L and the hints *at the evaluation size* and returns
  ab at that size, because resizing a hint mask would lose or smear hints.
- **Oracle** (:attr:`Colorizer.uses_ground_truth`): the host calls
  ``predict(L, ab_true=...)`` with the test images' true ab (at the evaluation size, whatever
  size L is given at), to show what a piece of ground truth is worth.
"""

from __future__ import annotations

import abc
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from harness.data.dataset import LabSet
    from harness.progress import LossLog


class PluginOptions(BaseModel):
    """Base for a colorizer's options; unknown keys are rejected with the field named."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Budget:
    """How long to train: whichever of epochs, steps or minutes runs out first."""

    epochs: int | None = None
    steps: int | None = None
    minutes: float | None = None

    def describe(self) -> str:
        parts = [f"{v} {k}" for k, v in vars(self).items() if v is not None]
        return ", ".join(parts) or "unbounded"


@dataclass
class FitContext:
    """What the host hands a colorizer's ``fit``: device, seed, where to write, how to report.

    ``model_dir`` holds the model's checkpoints and loss curve; when ``resume`` is true a
    trainer continues from the last checkpoint found there instead of starting over.
    """

    device: str
    seed: int
    model_dir: Path
    loss_log: LossLog
    resume: bool = False
    #: The training images whole, at the evaluation size (``train`` serves random crops), for
    #: a method that indexes images rather than learns from crops; None outside a run.
    train_full: LabSet | None = None
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("harness"))

    @property
    def checkpoint_dir(self) -> Path:
        """``model_dir/checkpoints``, created on first use."""
        path = self.model_dir / "checkpoints"
        path.mkdir(parents=True, exist_ok=True)
        return path


@dataclass(frozen=True)
class TrainingCompute:
    """What one ``fit`` computed, as a trainer reports it in :attr:`Colorizer.compute`.

    ``flops_per_step``: floating-point operations of one full-batch training step (forward and
    backward; see :mod:`harness.train.flops`), None where they could not be counted. ``steps``,
    ``images`` and ``train_seconds`` cover the steps this ``fit`` trained (after a resume, the
    steps since). ``dtype`` is the precision the network computed in; ``parameters`` counts
    its trainable parameters. ``earlier_seconds`` were trained before a resume (from the
    checkpoint), so a resumed model's total training time is their sum with ``train_seconds``.
    The host adds the achieved rate to the model's ``status.json``.
    """

    flops_per_step: float | None
    steps: int
    images: int
    train_seconds: float
    parameters: int
    dtype: str = "float32"
    earlier_seconds: float = 0.0


class Colorizer(abc.ABC):
    """A colorization method. Subclass, declare ``Options``, register it through the hook."""

    #: Set by a learned model's ``fit`` (the shared trainers do); None for the others.
    compute: TrainingCompute | None = None

    #: "torch", "keras" or "numpy"; shown by ``harness plugins`` and recorded in results.
    framework: ClassVar[str] = "numpy"
    #: Pydantic model of the options accepted under ``models[].options`` in a config.
    Options: ClassVar[type[PluginOptions]] = PluginOptions
    #: A user-assisted method: ``predict(L, hints)`` also receives :class:`harness.hints.Hints`
    #: drawn by the host from each test image's ground truth, identical for every such method,
    #: once per count in the config's ``hints:`` list (rows ``name@N``). L and hints come at
    #: the evaluation size, and ab is returned at that size (module docstring). Tables mark
    #: these rows as user-assisted; automatic methods (the default) never see hints.
    takes_hints: ClassVar[bool] = False
    #: True for a method with nothing to save (a fixed rule, e.g. ``gray``), whose default
    #: ``save`` and ``load`` then do nothing. A method that learns state overrides both.
    stateless: ClassVar[bool] = False
    #: An oracle: ``predict(L, ab_true)`` also receives the test images' ground-truth ab
    #: (N, E, E, 2) at the evaluation size. Read from the built instance, so a plugin may make it
    #: a property of its options (``welsh``'s ``reference: oracle``). Tables mark these rows as
    #: "oracle (uses ground truth)"; every other method never sees the test colour.
    uses_ground_truth: bool = False

    def __init__(self, options: PluginOptions | None = None) -> None:
        self.options = options if options is not None else self.Options()

    @abc.abstractmethod
    def fit(self, train: LabSet, val: LabSet | None, budget: Budget, ctx: FitContext) -> None:
        """Train on the shared loader's samples within ``budget``; report losses to ctx."""

    @abc.abstractmethod
    def predict(self, L: np.ndarray) -> np.ndarray:
        """Colorize: ``L`` (N, H, W) in [0, 100] -> ab (N, H, W, 2) in Lab units."""

    def save(self, directory: Path) -> None:
        """Write the trained state to ``directory`` in a safe format (no arbitrary pickles)."""
        self._stateless_or_fail("save")

    def load(self, directory: Path) -> None:
        """Read back what :meth:`save` wrote."""
        self._stateless_or_fail("load")

    def _stateless_or_fail(self, method: str) -> None:
        if not self.stateless:
            raise NotImplementedError(
                f"{type(self).__name__} overrides neither save() nor load() and does not declare "
                f"stateless = True; without them `harness colorize` could not reload the "
                f"trained model ({method} called)")

    def extra_results(self, test: LabSet) -> dict[str, float]:
        """Optional figures reported beside the metrics, e.g. a class branch's test accuracy."""
        return {}

    def write_extras(self, directory: Path, test: LabSet) -> None:  # noqa: B027 - optional
        """Optional files about the test predictions just made, written into the model's
        directory (``models/<row>/``), e.g. which reference each test image used."""
