"""FLOP accounting: both trainers' counts against the analytic formula, the probe's cache."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch.nn.functional as F
from torch import nn

from harness.color import AB_NORM, normalize_l
from harness.colorizer import Budget, FitContext, TrainingCompute
from harness.data.dataset import LabSet
from harness.progress import LossLog
from harness.train import flops
from harness.train.torch_trainer import TorchColorizer


def conv_flops(batch: int, side: int, cin: int, cout: int, kernel: int = 3) -> int:
    """2 x multiply-adds of a 'same' convolution whose output is ``side`` square."""
    return 2 * batch * side * side * cout * kernel * kernel * cin


def lab_set(n: int = 8, size: int = 20, crop: int = 16) -> LabSet:
    rng = np.random.default_rng(0)
    lab = np.stack([rng.uniform(10, 90, (n, size, size)),
                    rng.uniform(-40, 40, (n, size, size)),
                    rng.uniform(-40, 40, (n, size, size))], -1).astype(np.float32)
    return LabSet(lab, range(n), [f"i{k}" for k in range(n)], np.full(n, -1), [], crop=crop)


def context(tmp_path) -> FitContext:
    return FitContext(device="cpu", seed=0, model_dir=tmp_path,
                      loss_log=LossLog(tmp_path / "loss.csv"))


class TorchTwoConv(TorchColorizer):
    def build_network(self):
        class Net(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.c1 = nn.Conv2d(1, 8, 3, padding=1)
                self.c2 = nn.Conv2d(8, 2, 3, padding=1)

            def forward(self, L):
                return self.c2(F.relu(self.c1(normalize_l(L))))

        return Net()

    def loss(self, outputs, batch):
        return F.mse_loss(outputs, batch["ab"] / AB_NORM)

    def decode(self, outputs):
        return outputs * AB_NORM


def test_torch_trainer_counts_forward_and_backward(tmp_path):
    model = TorchTwoConv(TorchTwoConv.Options(batch_size=4, log_every=1))
    model.fit(lab_set(), None, Budget(steps=3), context(tmp_path))
    c = model.compute
    f1, f2 = conv_flops(4, 16, 1, 8), conv_flops(4, 16, 8, 2)
    # forward, then both gradients of c2 but only the weight gradient of c1 (its input is data)
    assert c.flops_per_step == f1 + f2 + f2 + f2 + f1
    assert (c.steps, c.images, c.dtype) == (3, 12, "float32")
    assert c.parameters == (8 * 9 + 8) + (2 * 8 * 9 + 2)
    assert c.train_seconds > 0


def test_keras_count_matches_the_analytic_formula(tmp_path):
    from harness.train.keras_trainer import (
        ABLoss,
        DenormalizeAB,
        KerasColorizer,
        NormalizeL,
        keras,
        layers,
    )

    class KerasTwoConv(KerasColorizer):
        input_multiple = 2

        def build_model(self, n_classes):
            L = keras.Input((None, None, 1))
            x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(NormalizeL()(L))
            x = layers.UpSampling2D(2, interpolation="bilinear")(x)
            x = layers.Conv2D(2, 3, padding="same")(x)
            return keras.Model(L, DenormalizeAB()(x))

        def loss(self, n_classes):
            return ABLoss(), None

    model = KerasTwoConv(KerasTwoConv.Options(batch_size=4, log_every=1))
    model.fit(lab_set(), None, Budget(steps=2), context(tmp_path))
    c = model.compute
    f1, f2 = conv_flops(4, 8, 1, 8), conv_flops(4, 16, 8, 2)  # the stride halves c1's output
    assert c.flops_per_step == 2 * f1 + 3 * f2
    assert (c.steps, c.images, c.dtype) == (2, 8, "float32")
    assert c.parameters == (8 * 9 + 8) + (2 * 8 * 9 + 2)

    # dense layers: matrix products, the first layer's input gradient left out again
    x = keras.Input((16,))
    dense = keras.Model(x, layers.Dense(4)(layers.Dense(32, activation="relu")(x)))
    d1, d2 = 2 * 5 * 16 * 32, 2 * 5 * 32 * 4
    assert flops.keras_step_flops(dense, (5, 16)) == 2 * d1 + 3 * d2


def test_probe_keeps_the_best_rate_per_machine_and_precision(tmp_path, monkeypatch):
    rates = iter([40.0, 60.0, 50.0])
    monkeypatch.setattr(flops, "probe_gflops",
                        lambda device, dtype: {"matmul": next(rates), "conv3x3": 1.0})
    monkeypatch.setattr(flops, "_MEASURED", {})
    first = flops.attainable("cpu", cache_root=tmp_path)
    assert first["gflops"] == 40.0 and not first["cached"]
    assert flops.attainable("cpu", cache_root=tmp_path)["gflops"] == 40.0  # one probe a run
    monkeypatch.setattr(flops, "_MEASURED", {})  # a later run probes faster: kept
    assert flops.attainable("cpu", cache_root=tmp_path)["gflops"] == 60.0
    monkeypatch.setattr(flops, "_MEASURED", {})  # and a slower one does not replace it
    third = flops.attainable("cpu", cache_root=tmp_path)
    assert third["gflops"] == 60.0 and third["cached"]
    cache = json.loads((tmp_path / flops.CACHE_FILE).read_text())
    assert [r["gflops"] for r in cache.values()] == [60.0]
    with pytest.raises(StopIteration):  # another precision is its own key: probed
        flops.attainable("cpu", "float64", cache_root=tmp_path)


def test_compute_status_rates(tmp_path, monkeypatch):
    monkeypatch.setattr(flops, "probe_gflops",
                        lambda device, dtype: {"matmul": 20.0, "conv3x3": 50.0})
    monkeypatch.setattr(flops, "_MEASURED", {})
    compute = TrainingCompute(flops_per_step=2e9, steps=30, images=480, train_seconds=6.0,
                              parameters=10)
    figures = flops.compute_status(compute)  # framework-free: no probe yet
    assert figures["achieved_gflops"] == 10.0 and figures["attainable_gflops"] is None
    out = flops.with_attainable(figures, "cpu", cache_root=tmp_path)
    assert out["achieved_gflops"] == 10.0 and out["attainable_gflops"] == 50.0
    assert out["percent_of_attainable"] == 20.0 and out["images_per_s"] == 80.0
    assert out["probe"]["threads"] >= 1
    assert flops.with_attainable(out, "cpu", cache_root=tmp_path) is out  # added once
    unknown = flops.with_attainable(
        flops.compute_status(TrainingCompute(None, 30, 480, 6.0, 10)), "cpu", tmp_path)
    assert unknown["achieved_gflops"] is None and unknown["images_per_s"] == 80.0
    assert unknown["attainable_gflops"] is None


def test_probe_measures_matmul_and_convolution():
    rates = flops.probe_gflops("cpu", size=256)
    assert set(rates) == {"matmul", "conv3x3"} and all(v > 0 for v in rates.values())
