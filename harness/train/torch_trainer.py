"""The shared torch training loop: plugins define a network, a loss and a decoder; it does the rest.

A :class:`TorchColorizer` subclass supplies :meth:`~TorchColorizer.build_network`,
:meth:`~TorchColorizer.loss` and :meth:`~TorchColorizer.decode` (and optionally
:meth:`~TorchColorizer.prepare`); the base class trains with Adam under the host's budget,
seeds, checkpoints, resumes, detects divergence, predicts and saves. Under ``torchrun`` it
trains with DistributedDataParallel, one process per device, rank 0 writing every file.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import math
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from harness import threads
from harness.atomic import atomic_path
from harness.colorizer import Budget, Colorizer, FitContext
from harness.data.adapters import torch_stream_loader
from harness.errors import TrainingDiverged
from harness.progress import Progress
from harness.train import distributed
from harness.train.allocator import steady_heap
from harness.train.flops import TorchStepMeter
from harness.train.options import TorchTrainOptions

if TYPE_CHECKING:
    from harness.data.dataset import LabSet

CHECKPOINT = "last.pt"
PREVIOUS = "previous.pt"
WEIGHTS = "weights.pt"

threads.configure_torch()  # once, at import: the pool size of harness.threads


def lr_factor(options: TorchTrainOptions, total_steps: int | None) -> Callable[[int], float]:
    """The learning-rate multiplier at each step under ``options.schedule``."""
    if options.schedule == "cosine" and total_steps:
        return lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps))
    if options.schedule == "step":
        return lambda step: options.lr_gamma ** sum(step >= m for m in options.lr_milestones)
    return lambda step: 1.0


class TorchColorizer(Colorizer):
    """A colorizer trained by the shared torch loop.

    The network maps L (B, 1, H, W) in [0, 100] to outputs: a tensor, or a tuple, list or dict
    of tensors, which reach :meth:`loss` and :meth:`decode` in float32 whatever the autocast
    precision. State beyond the network's (a class prior, say) belongs in ``self.buffers``, a
    dict of tensors that follows the device and is saved in checkpoints and ``weights.pt``.
    With a validation split, the loop logs :meth:`loss` on it (see :class:`Trainer`). ``fit``
    trains on ``ctx.device``; a model made by ``load`` sits on CUDA when there is one, else
    the CPU, until :meth:`to` moves it.
    """

    framework = "torch"
    Options = TorchTrainOptions
    options: TorchTrainOptions

    def __init__(self, options: TorchTrainOptions | None = None) -> None:
        super().__init__(options)
        self.net: nn.Module | None = None
        self.buffers: dict[str, Tensor] = {}
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    @abc.abstractmethod
    def build_network(self) -> nn.Module:
        """A freshly initialised network: L (B, 1, H, W) in [0, 100] -> outputs."""

    @abc.abstractmethod
    def loss(self, outputs: Any, batch: dict[str, Tensor]) -> Tensor:
        """The scalar training loss. ``batch`` is a dict of tensors on the training device:
        ``L`` (B, 1, H, W) raw lightness in [0, 100], ``ab`` (B, 2, H, W) in Lab units and
        ``label`` (B,) class indices (-1 where unlabelled)."""

    @abc.abstractmethod
    def decode(self, outputs: Any) -> Tensor:
        """ab (B, 2, h, w) in Lab units; resized bilinearly to the input size if h, w differ."""

    def prepare(self, train: LabSet, ctx: FitContext) -> None:  # noqa: B027 - optional hook
        """Called once before training starts (not on resume: ``buffers`` come back from the
        checkpoint), e.g. to compute a class prior in one pass over ``train``."""

    def to(self, device: str | torch.device) -> TorchColorizer:
        """Move the network and buffers to ``device`` (channels-last on CUDA if enabled)."""
        self.device = torch.device(device)
        self.buffers = {k: v.to(self.device) for k, v in self.buffers.items()}
        if self.net is not None:
            self.net.to(self.device, memory_format=self._memory_format())
        return self

    def fit(self, train: LabSet, val: LabSet | None, budget: Budget, ctx: FitContext) -> None:
        """Train on ``train`` until ``budget`` runs out; see :class:`Trainer`."""
        Trainer(self, train, budget, ctx, val).run()

    @torch.inference_mode()
    def predict(self, L: np.ndarray) -> np.ndarray:
        """Colorize L (N, H, W) in [0, 100] -> ab (N, H, W, 2) float32, in batches."""
        net = self._trained_net()
        net.eval()
        L = np.asarray(L, dtype=np.float32)
        out = np.empty((*L.shape, 2), dtype=np.float32)
        for start in range(0, len(L), self.options.batch_size):
            x = torch.from_numpy(L[start : start + self.options.batch_size, None])
            x = x.to(self.device, memory_format=self._memory_format())  # B x 1 x H x W
            with self._autocast():
                outputs = net(x)
            ab = self.decode(_float32(outputs))  # B x 2 x h x w
            if ab.shape[-2:] != L.shape[-2:]:
                ab = F.interpolate(ab, size=L.shape[-2:], mode="bilinear", align_corners=False)
            out[start : start + len(x)] = ab.permute(0, 2, 3, 1).float().cpu().numpy()
        return out

    def save(self, directory: Path) -> None:
        """Write ``weights.pt`` (network state dict and buffers) atomically; rank 0 only."""
        if not distributed.is_main():
            return
        state = {"model": self._trained_net().state_dict(), "buffers": self.buffers}
        with atomic_path(Path(directory) / WEIGHTS) as tmp:
            torch.save(state, tmp)

    def load(self, directory: Path) -> None:
        """Read ``weights.pt`` with ``weights_only=True`` onto ``self.device``."""
        state = torch.load(Path(directory) / WEIGHTS, map_location="cpu", weights_only=True)
        self.net = self.build_network()
        self.net.load_state_dict(state["model"])
        self.buffers = dict(state["buffers"])
        self.to(self.device)

    def _trained_net(self) -> nn.Module:
        if self.net is None:
            raise RuntimeError(f"{type(self).__name__}: call fit() or load() first")
        return self.net

    def _memory_format(self) -> torch.memory_format:
        cuda = self.device.type == "cuda" and self.options.channels_last
        return torch.channels_last if cuda else torch.preserve_format

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.device.type == "cuda" and self.options.amp:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()


class Trainer:
    """One ``fit`` of a :class:`TorchColorizer`.

    The budget is the first of epochs, steps or minutes (minutes count the time trained
    before a resume). Step ``s`` trains on batch ``s`` of the set's
    :class:`~harness.data.dataset.SampleStream`: always ``batch_size`` samples per rank, the
    same batch whatever happened before. Seeds torch from ``ctx.seed``; on the CPU
    deterministic kernels make a resumed run bit-identical to an uninterrupted one. Every
    ``checkpoint_every`` steps, every ``checkpoint_minutes`` and at the end, rank 0 writes
    ``ctx.checkpoint_dir / "last.pt"`` (model, optimizer, scheduler, step, RNG states,
    buffers) atomically, keeping the one before as ``previous.pt``, and flushes
    ``ctx.loss_log``; with ``ctx.resume`` training continues from the newest readable one. A
    NaN or infinite loss raises :class:`~harness.errors.TrainingDiverged` naming the step. With
    ``val``, every ``val_every`` steps and at the end rank 0 computes the model's loss on the
    first ``val_batches`` batches of ``val`` (unshuffled, epoch 0: the same batches each time)
    in eval mode without gradients, logs it and records it in the loss log's ``val_loss``.
    Allocation follows :func:`~harness.train.allocator.steady_heap`. The fit's FLOPs (counted
    over its first step) and timing end up in ``model.compute``
    (:class:`~harness.train.flops.TorchStepMeter`).
    """

    def __init__(self, model: TorchColorizer, train: LabSet, budget: Budget,
                 ctx: FitContext, val: LabSet | None = None) -> None:
        if budget.epochs is None and budget.steps is None and budget.minutes is None:
            raise ValueError("the training budget sets no limit (epochs, steps or minutes)")
        self.options = model.options
        distributed.init_from_env(ctx.device)
        self.stream = train.stream(self.options.batch_size, rank=distributed.rank(),
                                   world=distributed.world_size())
        self.model, self.train, self.budget, self.ctx = model, train, budget, ctx
        self.val = val if val is not None and len(val) else None
        self.val_step = 0  # the step of the last validation loss
        self.device = distributed.rank_device(ctx.device)
        self.main = distributed.is_main()
        limits = [budget.steps, budget.epochs and self.stream.steps_for_epochs(budget.epochs)]
        self.total_steps = min((n for n in limits if n is not None), default=None)
        self.step = 0
        self.saved_step = -1  # the step of the last checkpoint written
        self.saved_at = time.monotonic()  # when it was written (or training began)
        self.seconds = 0.0  # trained before this process started (resume)
        self.pending: list[tuple[int, int, Tensor, int]] = []  # step, epoch, loss, images
        self.meter = TorchStepMeter(distributed.world_size())  # -> model.compute

    def run(self) -> None:
        model, ctx = self.model, self.ctx
        steady_heap()
        with _backend_flags(self.device):
            torch.manual_seed(ctx.seed)
            model.net = model.build_network()
            model.to(self.device)
            opts = self.options
            self.optimizer = torch.optim.Adam(model.net.parameters(), lr=opts.lr,
                                              betas=opts.betas, weight_decay=opts.weight_decay)
            self.scheduler = torch.optim.lr_scheduler.LambdaLR(
                self.optimizer, lr_factor(opts, self.total_steps))
            if not (ctx.resume and self._resume()):
                model.prepare(self.train, ctx)
                model.to(self.device)
            self.net = model.net
            if distributed.world_size() > 1:
                ids = [self.device.index] if self.device.type == "cuda" else None
                self.net = DistributedDataParallel(model.net, device_ids=ids)
            self._loop()

    def _loop(self) -> None:
        self.net.train()
        start = self.last_log = time.monotonic()
        progress = Progress(self.total_steps, desc=self.ctx.model_dir.name, unit="step") \
            if self.main else None
        if progress is not None and self.step:
            progress.update(self.step)  # resumed: the bar starts where the checkpoint stopped
        try:
            if not self._done(start):
                for batch in self._loader():
                    with self.meter.step(len(batch["L"]) * distributed.world_size()):
                        self._train_step(batch)
                    if self.step % self.options.log_every == 0 or self._val_due():
                        self._log(start, progress)
                    if self._checkpoint_due():
                        self._checkpoint(start, progress)
                    if self._done(start):
                        break
            self._checkpoint(start, progress, final=True)
            self.model.compute = dataclasses.replace(
                self.meter.result(time.monotonic() - start, self.model.net,
                                  self.model._autocast()), earlier_seconds=self.seconds)
        finally:
            if progress is not None:
                progress.close()

    def _done(self, start: float) -> bool:
        done = self.total_steps is not None and self.step >= self.total_steps
        if self.budget.minutes is not None:
            elapsed = self.seconds + time.monotonic() - start
            done = distributed.any_rank(done or elapsed >= 60 * self.budget.minutes, self.device)
        return done

    def _loader(self) -> torch.utils.data.DataLoader:
        """The stream's batches from the current step to the budget's last (endless when the
        budget is minutes only)."""
        return torch_stream_loader(self.stream, self.step, self.total_steps,
                                   num_workers=self.options.num_workers,
                                   pin_memory=self.device.type == "cuda")

    def _train_step(self, batch: dict[str, Tensor]) -> None:
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        batch["L"] = batch["L"].to(memory_format=self.model._memory_format())  # B x 1 x H x W
        with self.model._autocast():
            outputs = self.net(batch["L"])
        loss = self.model.loss(_float32(outputs), batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        images = len(batch["L"]) * distributed.world_size()
        self.pending.append((self.step, self.stream.epoch_at(self.step - 1), loss.detach(),
                             images))

    def _val_due(self, final: bool = False) -> bool:
        return (self.val is not None and self.main and self.step > self.val_step
                and (final or self.step % self.options.val_every == 0))

    @torch.no_grad()
    def _val_loss(self) -> float:
        """The model's mean loss over the fixed validation batches, in eval mode."""
        net, opts = self.model.net, self.options
        net.eval()
        self.val_step = self.step
        total, count = 0.0, 0
        try:
            batches = self.val.iter_batches(opts.batch_size)
            for _, (L, ab, labels) in zip(range(opts.val_batches), batches):
                batch = {"L": torch.from_numpy(np.ascontiguousarray(L[:, None])),
                         "ab": torch.from_numpy(np.ascontiguousarray(ab.transpose(0, 3, 1, 2))),
                         "label": torch.from_numpy(np.asarray(labels, dtype=np.int64))}
                batch = {k: v.to(self.device) for k, v in batch.items()}
                batch["L"] = batch["L"].to(memory_format=self.model._memory_format())
                with self.model._autocast():
                    outputs = net(batch["L"])
                total += float(self.model.loss(_float32(outputs), batch)) * len(L)
                count += len(L)
        finally:
            net.train()
        return total / count

    def _log(self, start: float, progress: Progress | None, final: bool = False) -> None:
        """Read the pending losses back (one device sync), check them, append a log row; with
        a validation loss due, compute it and record it on the row of this step."""
        val_loss = self._val_loss() if self._val_due(final) else None
        if val_loss is not None:
            self.ctx.log.info("%s step %d: val_loss %.4g", self.ctx.model_dir.name, self.step,
                              val_loss)
        if not self.pending:
            if val_loss is not None:
                self.ctx.loss_log.set_val_loss(self.step, val_loss)
            return
        losses = torch.stack([p[2] for p in self.pending]).float().cpu()
        bad = (~torch.isfinite(losses)).nonzero()
        if len(bad):
            at = self.pending[int(bad[0])][0]
            if self.main:
                self.ctx.loss_log.flush()
            raise TrainingDiverged(f"loss became {losses[bad[0]].item()} at step {at}")
        now = time.monotonic()
        rate = sum(p[3] for p in self.pending) / max(now - self.last_log, 1e-9)
        loss = losses.mean().item()
        if self.main:
            self.ctx.loss_log.append(self.step, self.pending[-1][1], loss, rate,
                                     self.seconds + now - start, val_loss)
            if progress is not None:
                progress.update(len(self.pending), loss=loss, img_s=rate)
        self.pending.clear()
        self.last_log = now

    def _checkpoint_due(self) -> bool:
        """Every ``checkpoint_every`` steps, or ``checkpoint_minutes`` after the last one."""
        return self.step % self.options.checkpoint_every == 0 or \
            time.monotonic() - self.saved_at >= 60 * self.options.checkpoint_minutes

    def _checkpoint(self, start: float, progress: Progress | None, final: bool = False) -> None:
        self._log(start, progress, final)
        self.saved_at = time.monotonic()
        if not self.main or self.saved_step == self.step:
            return
        self.saved_step = self.step
        state = {
            "model": self.model.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "buffers": self.model.buffers,
            "step": self.step,
            "seconds": self.seconds + time.monotonic() - start,
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state(self.device)
            if self.device.type == "cuda" else None,
        }
        folder = self.ctx.checkpoint_dir
        with atomic_path(folder / CHECKPOINT) as tmp:
            torch.save(state, tmp)
            if (folder / CHECKPOINT).exists():  # kept: the fallback if last.pt is damaged
                os.replace(folder / CHECKPOINT, folder / PREVIOUS)
        self.ctx.loss_log.flush()

    def _resume(self) -> bool:
        """Restore the newest readable checkpoint (``last.pt``, else ``previous.pt``); return
        whether there was one. An unreadable one is reported and skipped."""
        log = self.ctx.log
        for path in (self.ctx.checkpoint_dir / CHECKPOINT, self.ctx.checkpoint_dir / PREVIOUS):
            if not path.exists():
                continue
            try:
                state = torch.load(path, map_location=self.device, weights_only=True)
                self._restore(state)
            except Exception as exc:  # truncated, zeroed or foreign file: try the next
                log.warning("%s: unreadable checkpoint (%s: %s): %s", path, type(exc).__name__,
                            str(exc).splitlines()[0] if str(exc) else "", "trying the previous "
                            "one" if path.name == CHECKPOINT else "starting over")
                continue
            if self.main:
                self.ctx.loss_log.resume_at(self.step)
            log.info("%s: resuming from step %d (%s)", self.ctx.model_dir.name, self.step,
                     path.name)
            return True
        log.info("%s: no checkpoint, starting over", self.ctx.model_dir.name)
        return False

    def _restore(self, state: dict) -> None:
        self.model.net.load_state_dict(state["model"])
        self.model.buffers = dict(state["buffers"])
        self.model.to(self.device)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step, self.seconds = int(state["step"]), float(state["seconds"])
        torch.set_rng_state(state["rng_cpu"].cpu())
        if state["rng_cuda"] is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng_cuda"].cpu(), self.device)


def _float32(outputs: Any) -> Any:
    """Network outputs in float32: a tensor, or a tuple, list or dict of them."""
    if isinstance(outputs, Tensor):
        return outputs.float()
    if isinstance(outputs, dict):
        return {k: _float32(v) for k, v in outputs.items()}
    if isinstance(outputs, (tuple, list)):
        return type(outputs)(_float32(v) for v in outputs)
    return outputs


@contextlib.contextmanager
def _backend_flags(device: torch.device) -> Iterator[None]:
    """Deterministic kernels on the CPU, cuDNN autotuning on CUDA; restored afterwards.

    Determinism does not need uninitialised memory filled with NaN (a debugging aid that
    costs a sixth of a CPU training step), so that is switched off meanwhile.
    """
    saved = (torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.utils.deterministic.fill_uninitialized_memory,
             torch.backends.cudnn.benchmark)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True)
        torch.utils.deterministic.fill_uninitialized_memory = False
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        torch.utils.deterministic.fill_uninitialized_memory = saved[2]
        torch.backends.cudnn.benchmark = saved[3]
