"""The shared Keras training loop: plugins define a network and a loss; this does the rest.

A :class:`KerasColorizer` subclass supplies :meth:`~KerasColorizer.build_model` and
:meth:`~KerasColorizer.loss` (and optionally :meth:`~KerasColorizer.decode`); the base class
trains under the host's budget with the same options and files as the torch trainer
(:mod:`harness.train.torch_trainer`), checkpoints, resumes, detects divergence, predicts and
saves. Networks take L (B, H, W, 1) in [0, 100] and return ab (B, H, W, 2) in Lab units, so
the Lab normalisation lives inside the saved model (:class:`NormalizeL`, :class:`DenormalizeAB`).

Importing this module runs :func:`harness.keras_env.configure` before Keras loads; Keras
plugins take ``keras`` and ``layers`` from here so that order holds whatever imports first.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import gc
import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np

from harness.atomic import write_json, write_with
from harness.color import denormalize_ab, normalize_ab, normalize_l
from harness.colorizer import Budget, Colorizer, FitContext
from harness.errors import TrainingDiverged
from harness.keras_env import configure, generator_dataset_malloc
from harness.progress import Progress
from harness.train.flops import keras_compute, keras_step_flops
from harness.train.options import KerasTrainOptions

configure()

import keras  # noqa: E402  (after configure(): backend, log level and threads come first)
from keras import layers  # noqa: E402

if TYPE_CHECKING:
    from harness.data.dataset import LabSet, SampleStream

MODEL = "model.keras"
META = "model.json"
LAST = "last.json"


@keras.saving.register_keras_serializable(package="harness")
class NormalizeL(layers.Layer):
    """L in [0, 100] -> ``normalize_l(L)`` in [-0.5, 0.5]; the first layer of every network."""

    def call(self, L):
        return normalize_l(L)


@keras.saving.register_keras_serializable(package="harness")
class DenormalizeAB(layers.Layer):
    """``normalize_ab`` units (about [-1, 1]) -> ab in Lab units; always computed in float32."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)

    def call(self, x):
        return denormalize_ab(x)


@keras.saving.register_keras_serializable(package="harness")
class ABLoss(keras.losses.Loss):
    """Squared (``mse``) or Huber error between ab maps given in Lab units.

    Measured on ``normalize_ab(ab) * scale``: scale 1 is [-1, 1] units; Iizuka et al. measure
    in [0, 1] units (scale 0.5). ``delta`` (Huber's knee) is in Lab units.
    """

    def __init__(self, kind: Literal["mse", "huber"] = "mse", delta: float = 10.0,
                 scale: float = 1.0, name: str = "ab_loss", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.kind, self.delta, self.scale = kind, delta, scale

    def call(self, y_true, y_pred):
        true, pred = normalize_ab(y_true) * self.scale, normalize_ab(y_pred) * self.scale
        if self.kind == "huber":
            return keras.losses.huber(true, pred, delta=normalize_ab(self.delta) * self.scale)
        return keras.losses.mean_squared_error(true, pred)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "kind": self.kind, "delta": self.delta,
                "scale": self.scale}


#: Batch-norm momentum: torch's default (0.1 there, the weight of the new batch). Keras's 0.99
#: leaves the moving statistics near their initial values after a few hundred steps.
BN_MOMENTUM = 0.9


def channels(n: int, width: float) -> int:
    """``n`` channels (or units) scaled by ``width``, at least 4."""
    return max(4, round(n * width))


def conv_block(x, filters: int, strides: int = 1, kernel: int = 3):
    """Convolution ('same' padding, no bias), batch norm, ReLU."""
    x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False)(x)
    return layers.ReLU()(layers.BatchNormalization(momentum=BN_MOMENTUM)(x))


def learning_rate(options: KerasTrainOptions, total_steps: int | None):
    """The rate, or a Keras schedule of it, matching the torch trainer's ``lr_factor``."""
    if options.schedule == "cosine" and total_steps:
        return keras.optimizers.schedules.CosineDecay(options.lr, decay_steps=total_steps)
    if options.schedule == "step":  # torch: lr * gamma ** (number of milestones <= step)
        milestones = options.lr_milestones
        return keras.optimizers.schedules.PiecewiseConstantDecay(
            [m - 1 for m in milestones],
            [options.lr * options.lr_gamma**k for k in range(len(milestones) + 1)])
    return options.lr


class KerasColorizer(Colorizer):
    """A colorizer trained by the shared Keras loop.

    Subclasses set ``uses_labels = True`` to be given the class count of a labelled training
    set (class sub-folders); the model then returns a dict ``{"ab": ..., "label": logits}``
    trained against ``{"ab": ab, "label": class index}``. With a validation split, the loop
    logs the compiled loss on it (see :class:`Trainer`).
    """

    framework = "keras"
    Options = KerasTrainOptions
    options: KerasTrainOptions
    #: Whether the network has a class output when the training set is labelled.
    uses_labels: ClassVar[bool] = False
    #: Input sides the network needs to be a multiple of (its total stride).
    input_multiple: ClassVar[int] = 8

    def __init__(self, options: KerasTrainOptions | None = None) -> None:
        super().__init__(options)
        self.model: keras.Model | None = None
        self.class_names: list[str] = []
        #: Side of the training crops (None until fit or load).
        self.input_size: int | None = None
        self.device: str | None = None  # a Keras device name; None lets Keras place ops

    @abc.abstractmethod
    def build_model(self, n_classes: int) -> keras.Model:
        """A fresh network: L (B, H, W, 1) in [0, 100] -> ab (B, H, W, 2) in Lab units, or,
        when ``n_classes`` > 0, a dict ``{"ab": ab, "label": logits (B, n_classes)}``."""

    @abc.abstractmethod
    def loss(self, n_classes: int) -> tuple[Any, dict[str, float] | None]:
        """``(loss, loss_weights)`` for ``model.compile``: a loss, or dicts keyed by output."""

    def decode(self, outputs: Any) -> np.ndarray:
        """ab (B, H, W, 2) in Lab units from the network's outputs (numpy)."""
        return outputs["ab"] if isinstance(outputs, dict) else outputs

    def fit(self, train: LabSet, val: LabSet | None, budget: Budget, ctx: FitContext) -> None:
        """Train on ``train`` until ``budget`` runs out; see :class:`Trainer`."""
        Trainer(self, train, budget, ctx, val).run()

    def outputs(self, L: np.ndarray) -> Any:
        """The network's outputs (numpy) for one batch of L (B, H, W) in [0, 100]."""
        model = self._trained_model()
        with _device_scope(self.device):
            return model.predict_on_batch(np.asarray(L, dtype=np.float32)[..., None])

    def predict(self, L: np.ndarray) -> np.ndarray:
        """Colorize L (N, H, W) in [0, 100] -> ab (N, H, W, 2) float32, in batches.

        Sides that are not a multiple of :attr:`input_multiple` are padded (edge values) for
        the network and cropped back.
        """
        L = np.asarray(L, dtype=np.float32)
        n, h, w = L.shape
        m = self.input_multiple
        padded = np.pad(L, ((0, 0), (0, -h % m), (0, -w % m)), mode="edge")
        out = np.empty((n, h, w, 2), dtype=np.float32)
        for start in range(0, n, self.options.batch_size):
            ab = self.decode(self.outputs(padded[start : start + self.options.batch_size]))
            out[start : start + len(ab)] = ab[:, :h, :w]
        return out

    def save(self, directory: Path) -> None:
        """Write ``model.keras`` (float32, no optimizer) and ``model.json`` (class names, training
        crop size)."""
        directory = Path(directory)
        write_with(directory / MODEL, self._trained_model().save)
        write_json(directory / META, {"class_names": self.class_names,
                                      "input_size": self.input_size})

    def load(self, directory: Path) -> None:
        """Read back what :meth:`save` wrote, with Keras's ``safe_mode``."""
        directory = Path(directory)
        model = keras.saving.load_model(directory / MODEL, safe_mode=True, compile=False)
        self.model = _for_inference(model)
        meta = json.loads((directory / META).read_text())
        self.class_names, self.input_size = meta["class_names"], meta.get("input_size")

    def _trained_model(self) -> keras.Model:
        if self.model is None:
            raise RuntimeError(f"{type(self).__name__}: call fit() or load() first")
        return self.model


class Trainer:
    """One ``fit`` of a :class:`KerasColorizer`, with the torch trainer's semantics.

    The budget is the first of epochs, steps or minutes (minutes count the time trained
    before a resume). Step ``s`` trains on batch ``s`` of the set's
    :class:`~harness.data.dataset.SampleStream` (always ``batch_size`` samples), whatever
    happened before, so a resumed run sees the batches an uninterrupted one would. Seeds
    Keras from ``ctx.seed``. Every ``checkpoint_every`` steps, every ``checkpoint_minutes``
    and at the end, writes ``step-NNNNNNNN.keras`` (weights and optimizer state) then
    ``last.json`` (step, epoch, seconds, file, and the one before as a fallback) to
    ``ctx.checkpoint_dir``, each atomically, and flushes ``ctx.loss_log``; with ``ctx.resume``
    training continues from the newest readable checkpoint. A NaN or
    infinite loss raises :class:`~harness.errors.TrainingDiverged` naming the step. With
    ``val``, every ``val_every`` steps and at the end the model's compiled loss (every output's,
    weighted) is evaluated in inference mode on the first ``val_batches`` batches of ``val``
    (unshuffled, epoch 0: the same batches each time; sides cut down to a multiple of
    :attr:`~KerasColorizer.input_multiple`), logged and recorded in the loss log's
    ``val_loss``. Progress, logging, validation and checkpoints run in a Keras callback after
    each step; Keras's own progress bar is off. The fit's FLOPs and timing end up in
    ``colorizer.compute`` (:mod:`harness.train.flops`).
    """

    def __init__(self, colorizer: KerasColorizer, train: LabSet, budget: Budget,
                 ctx: FitContext, val: LabSet | None = None) -> None:
        if budget.epochs is None and budget.steps is None and budget.minutes is None:
            raise ValueError("the training budget sets no limit (epochs, steps or minutes)")
        self.options = colorizer.options
        self.colorizer, self.train, self.budget, self.ctx = colorizer, train, budget, ctx
        self.stream = train.stream(self.options.batch_size)
        limits = [budget.steps, budget.epochs and self.stream.steps_for_epochs(budget.epochs)]
        self.total_steps = min((n for n in limits if n is not None), default=None)
        self.n_classes = len(train.class_names) if colorizer.uses_labels and train.has_labels \
            else 0
        self.val = self._val_data(val) if val is not None and len(val) else None
        self.val_step = 0  # the step of the last validation loss
        self.step = 0
        self.seconds = 0.0  # trained before this process started (resume)

    def run(self) -> None:
        # Models of earlier fits linger in reference cycles, their traced functions still
        # registered with TensorFlow, which makes tracing this one several times slower.
        gc.collect()
        colorizer, ctx, opts = self.colorizer, self.ctx, self.options
        colorizer.device = _keras_device(ctx.device)
        strategy = _strategy(opts, ctx)
        policy = "mixed_bfloat16" if opts.amp and _is_gpu(colorizer.device) else "float32"
        keras.utils.set_random_seed(ctx.seed)
        with strategy or _device_scope(colorizer.device):
            with _dtype_policy(policy):
                self.model = colorizer.build_model(self.n_classes)
            loss, weights = colorizer.loss(self.n_classes)
            jit = opts.jit_compile if opts.jit_compile is not None else _is_gpu(colorizer.device)
            optimizer = keras.optimizers.AdamW(
                learning_rate(opts, self.total_steps), beta_1=opts.betas[0],
                beta_2=opts.betas[1], weight_decay=opts.weight_decay)
            self.model.compile(optimizer=optimizer, loss=loss, loss_weights=weights,
                               jit_compile=jit)
            if ctx.resume:
                self._resume()
            if not self.done(self.seconds):
                self._fit()
        with _device_scope(colorizer.device):
            inference = colorizer.build_model(self.n_classes)  # float32, one device
        inference.set_weights(self.model.get_weights())
        colorizer.model = _for_inference(inference)
        colorizer.class_names = list(self.train.class_names) if self.n_classes else []
        colorizer.input_size = self.train.image_size

    def _fit(self) -> None:
        batches = _Batches(self.stream, self.step, self.total_steps,
                           with_labels=self.n_classes > 0, workers=self.options.num_workers)
        desc = self.ctx.model_dir.name
        on_tf = keras.backend.backend() == "tensorflow"  # a PyDataset becomes a generator dataset
        side = self.train.image_size
        flops = keras_step_flops(self.model, (self.options.batch_size, side, side, 1))
        first, start = self.step, time.monotonic()
        with Progress(self.total_steps, desc=desc, unit="step") as progress, \
                generator_dataset_malloc() if on_tf else contextlib.nullcontext():
            if self.step:
                progress.update(self.step)
            # One Keras epoch of the remaining steps; shuffle=False: the order is the loader's.
            self.model.fit(batches, epochs=1, shuffle=False, verbose=0,
                           callbacks=[_StepCallback(self, progress)])
        images = (self.step - first) * self.stream.samples_per_step
        self.colorizer.compute = dataclasses.replace(
            keras_compute(self.model, flops, self.step - first, images, time.monotonic() - start),
            earlier_seconds=self.seconds)

    def done(self, seconds: float) -> bool:
        """Whether the budget is spent at ``self.step`` after ``seconds`` of training."""
        minutes = self.budget.minutes
        return (self.total_steps is not None and self.step >= self.total_steps) or \
            (minutes is not None and seconds >= 60 * minutes)

    def val_due(self, final: bool = False) -> bool:
        """Whether a validation loss is due at ``self.step`` (``final``: the last step)."""
        return (self.val is not None and self.step > self.val_step
                and (final or self.step % self.options.val_every == 0))

    def val_loss(self) -> float:
        """The compiled loss over the fixed validation batches, in inference mode.

        ``model.evaluate`` reuses the model's one test function (traced once: the batches'
        leading dimension is unknown to it) and resets the metrics, the training loss's
        running mean included.
        """
        self.val_step = self.step
        x, y = self.val
        logs = self.model.evaluate(x, y, batch_size=self.options.batch_size, verbose=0,
                                   return_dict=True)
        return float(logs["loss"])

    def _val_data(self, val: LabSet) -> tuple[np.ndarray, Any]:
        """Inputs and targets of the first ``val_batches`` batches of ``val``, in order."""
        if self.n_classes and not (val.has_labels and val.class_names == self.train.class_names):
            raise ValueError(f"{self.ctx.model_dir.name}: the validation images need the "
                             f"training set's class labels {self.train.class_names} for the "
                             f"class loss; got classes {val.class_names}")
        opts, m = self.options, self.colorizer.input_multiple
        items = val.order(0, shuffle=False)[: opts.val_batches * opts.batch_size]
        L, ab = val.batch(items)
        h, w = L.shape[1] - L.shape[1] % m, L.shape[2] - L.shape[2] % m
        L, ab = L[:, :h, :w, None], ab[:, :h, :w]
        return L, ({"ab": ab, "label": val.labels[items]} if self.n_classes else ab)

    def checkpoint(self, seconds: float) -> None:
        """Write the step's checkpoint and ``last.json``, keep the one before as a fallback,
        drop older ones, flush the loss log."""
        folder = self.ctx.checkpoint_dir
        name = f"step-{self.step:08d}.keras"
        write_with(folder / name, self.model.save)
        entry = {"file": name, "step": self.step, "epoch": self.stream.epoch_at(self.step - 1),
                 "seconds": seconds}
        previous = [e for e in self._checkpoints() if e["file"] != name][:1]
        write_json(folder / LAST, {**entry, "previous": previous})
        keep = {name, *(e["file"] for e in previous)}
        for old in folder.glob("step-*.keras"):
            if old.name not in keep:
                old.unlink()
        self.ctx.loss_log.flush()

    def _checkpoints(self) -> list[dict]:
        """Checkpoints to resume from, newest first: those ``last.json`` names, or, when it is
        unreadable, every ``step-*.keras`` file (with its trained seconds unknown: 0)."""
        folder = self.ctx.checkpoint_dir
        try:
            meta = json.loads((folder / LAST).read_text(encoding="utf-8"))
            entries = [meta, *meta.get("previous", [])]
            return [{k: e[k] for k in ("file", "step", "epoch", "seconds")} for e in entries]
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            self.ctx.log.warning("%s: unreadable (%s); looking for checkpoint files",
                                 folder / LAST, type(exc).__name__)
        files = sorted(folder.glob("step-*.keras"), reverse=True)
        return [{"file": f.name, "step": int(f.stem.split("-")[1]), "seconds": 0.0}
                for f in files if f.stem.split("-")[1].isdigit()]

    def _resume(self) -> None:
        log = self.ctx.log
        for i, entry in enumerate(self._checkpoints()):
            path = self.ctx.checkpoint_dir / entry["file"]
            try:
                self.model.optimizer.build(self.model.trainable_variables)
                self.model.load_weights(path)
            except Exception as exc:  # truncated, zeroed or foreign file: try the next
                log.warning("%s: unreadable checkpoint (%s); %s", path, type(exc).__name__,
                            "trying the previous one" if i == 0 else "trying an older one")
                continue
            self.step, self.seconds = int(entry["step"]), float(entry["seconds"])
            self.ctx.loss_log.resume_at(self.step)
            log.info("%s: resuming from step %d (%s)", self.ctx.model_dir.name, self.step,
                     path.name)
            return
        log.info("%s: no checkpoint, starting over", self.ctx.model_dir.name)


class _StepCallback(keras.callbacks.Callback):
    """After each step: divergence check, loss-log row (with any validation loss due) and
    progress, checkpoint, minutes.

    ``logs["loss"]`` is Keras's running mean since its metrics were last reset; they are reset
    at each log row (after the validation loss, which resets them too), so a row's loss is the
    mean over its steps, and a NaN step keeps the mean NaN until it is seen.
    """

    def __init__(self, trainer: Trainer, progress: Progress) -> None:
        super().__init__()
        self.t, self.progress = trainer, progress
        self.start = self.last_row = time.monotonic()
        self.images = 0  # since the last row
        self.loss = math.nan
        self.logged = self.saved = trainer.step
        self.saved_at = self.start  # when the last checkpoint was written

    def on_train_batch_end(self, batch: int, logs: dict[str, float] | None = None) -> None:
        t, now = self.t, time.monotonic()  # one reading: the row, checkpoint and budget agree
        t.step += 1
        self.images += t.stream.batch_size
        self.loss = float(logs["loss"])
        if not math.isfinite(self.loss):
            t.ctx.loss_log.flush()
            raise TrainingDiverged(f"loss became {self.loss} at step {t.step}")
        if t.step % t.options.log_every == 0 or t.val_due():
            self._row(now)
        if t.step % t.options.checkpoint_every == 0 or \
                now - self.saved_at >= 60 * t.options.checkpoint_minutes:
            self._checkpoint(now)
        if t.done(self._seconds(now)):
            self.model.stop_training = True

    def on_train_end(self, logs: dict[str, float] | None = None) -> None:
        self._checkpoint(time.monotonic(), final=True)

    def _seconds(self, now: float) -> float:
        """Seconds trained at ``now``, counting those before a resume."""
        return self.t.seconds + now - self.start

    def _row(self, now: float, final: bool = False) -> None:
        t = self.t
        val_loss = t.val_loss() if t.val_due(final) else None
        if val_loss is not None:
            t.ctx.log.info("%s step %d: val_loss %.4g", t.ctx.model_dir.name, t.step, val_loss)
        if self.logged == t.step:
            if val_loss is not None:
                t.ctx.loss_log.set_val_loss(t.step, val_loss)
            return
        rate = self.images / max(now - self.last_row, 1e-9)
        t.ctx.loss_log.append(t.step, t.stream.epoch_at(t.step - 1), self.loss, rate,
                              self._seconds(now), val_loss)
        self.progress.update(t.step - self.logged, loss=self.loss, img_s=rate)
        self.model.reset_metrics()
        self.logged, self.last_row, self.images = t.step, now, 0

    def _checkpoint(self, now: float, final: bool = False) -> None:
        self._row(now, final)
        self.saved_at = now
        if self.saved != self.t.step:
            self.t.checkpoint(self._seconds(now))
            self.saved = self.t.step


class _Batches(keras.utils.PyDataset):
    """Steps ``start`` to ``stop`` (None: endless) of ``stream``, in order: ``(L (B, H, W, 1),
    ab)`` batches, or ``(L, {"ab": ab, "label": labels})`` ``with_labels``."""

    def __init__(self, stream: SampleStream, start: int, stop: int | None, *,
                 with_labels: bool, workers: int) -> None:
        super().__init__(workers=max(1, workers))
        self.stream, self.start, self.stop, self.with_labels = stream, start, stop, with_labels

    @property
    def num_batches(self) -> int | None:
        return None if self.stop is None else self.stop - self.start

    def __getitem__(self, index: int):
        L, ab, labels = self.stream.batch(self.start + index)
        return L[..., None], ({"ab": ab, "label": labels} if self.with_labels else ab)


def _for_inference(model: keras.Model) -> keras.Model:
    """Predict without XLA: inputs change size, and each size would be compiled anew."""
    model.jit_compile = False
    return model


def _keras_device(device: str) -> str | None:
    """A harness device (cpu, cuda, cuda:N, mps, auto) as a Keras device name.

    ``None`` (auto, mps) leaves placement to Keras: TensorFlow's Metal plugin shows an Apple
    GPU as ``GPU:0``.
    """
    kind, _, index = device.partition(":")
    if kind == "cpu":
        return "cpu:0"
    if kind == "cuda":
        return f"gpu:{index or 0}"
    return None


def _is_gpu(device: str | None) -> bool:
    return device is not None and device.startswith("gpu")


def _device_scope(device: str | None) -> contextlib.AbstractContextManager:
    """Place ops on ``device``; a CPU scope keeps TensorFlow off any GPU without hiding it
    from the rest of the process."""
    return keras.device(device) if device else contextlib.nullcontext()


def _strategy(options: KerasTrainOptions, ctx: FitContext):
    """A MirroredStrategy scope over every visible GPU when asked for and there are two or
    more (TensorFlow backend), else None."""
    if options.distribute != "mirrored":
        return None
    gpus = 0
    if keras.backend.backend() == "tensorflow" and _keras_device(ctx.device) != "cpu:0":
        import tensorflow as tf

        gpus = len(tf.config.list_logical_devices("GPU"))
        if gpus >= 2:
            return tf.distribute.MirroredStrategy().scope()
    ctx.log.info("distribute=mirrored needs two or more GPUs (found %d): one device", gpus)
    return None


@contextlib.contextmanager
def _dtype_policy(name: str):
    """Build layers under the Keras dtype policy ``name``; restore the previous one after."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
