"""all.yaml's learned models train on full batches (both shared trainers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.colorizer import Budget, FitContext
from harness.config import load_config
from harness.data.loader import load_splits
from harness.plugins import load_registry
from harness.progress import LossLog
from harness.run import resolve_models
from harness.train import keras_trainer, torch_trainer

ALL_YAML = Path(__file__).resolve().parents[2] / "configs" / "all.yaml"


@pytest.fixture
def batch_sizes(monkeypatch) -> dict[int, int]:
    """Samples in the batch of each step (0-based) that either trainer trains on."""
    sizes: dict[int, int] = {}
    torch_step = torch_trainer.Trainer._train_step
    keras_batch = keras_trainer._Batches.__getitem__

    def recorded_step(self, batch):
        sizes[self.step] = len(batch["L"])
        return torch_step(self, batch)

    def recorded_batch(self, index):
        x, y = keras_batch(self, index)
        sizes[self.start + index] = len(x)
        return x, y

    monkeypatch.setattr(torch_trainer.Trainer, "_train_step", recorded_step)
    monkeypatch.setattr(keras_trainer._Batches, "__getitem__", recorded_batch)
    return sizes


def test_all_yaml_models_train_on_full_batches(tmp_path, batch_sizes):
    """all.yaml's learned models, at a tiny width, on its demo training split."""
    cfg = load_config(ALL_YAML, ["data.size=16", "data.eval_size=32"])
    registry = load_registry(cfg.plugins)
    train = load_splits(cfg.data, registry, cfg.seed).train
    learned = [m for m in resolve_models(cfg, registry)
               if m.entry.framework in ("torch", "keras")]
    assert {m.entry.framework for m in learned} == {"torch", "keras"}
    for model in learned:
        options = model.options.model_copy(update={"width": 1 / 32, "log_every": 1})
        ctx = FitContext(device="cpu", seed=0, model_dir=tmp_path / model.label,
                         loss_log=LossLog(tmp_path / model.label / "loss.csv"))
        batch_sizes.clear()
        model.entry.load()(options).fit(train, None, Budget(steps=3), ctx)
        assert [int(row["step"]) for row in ctx.loss_log.rows] == [1, 2, 3]
        assert batch_sizes == dict.fromkeys(range(3), options.batch_size), model.label
