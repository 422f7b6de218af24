"""iizuka: registration, any input size, the joint class branch with and without labels."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from harness.colorizer import Budget, FitContext
from harness.data.dataset import LabSet
from harness.progress import LossLog
from harness.train.keras_trainer import ABLoss, keras
from harness_plugins.iizuka_model import (
    IizukaColorizer,
    IizukaOptions,
    build_iizuka_net,
    dense_sizes,
)

TINY = {"width": 0.0625, "global_size": 32, "batch_size": 8, "log_every": 5}


def lab_set(n: int = 16, size: int = 16, labelled: bool = True) -> LabSet:
    """Class 0: horizontal stripes, warm; class 1: vertical stripes, cool."""
    rng = np.random.default_rng(0)
    labels = np.arange(n) % 2
    y, x = np.mgrid[0:size, 0:size] / size
    freq = rng.uniform(1, 3, (n, 1, 1))
    L = 50 + 30 * np.sin(2 * np.pi * freq * np.where(labels[:, None, None] == 0, y, x))
    ab = np.where(labels[:, None, None, None] == 0, [40.0, 50.0], [-30.0, -40.0])
    lab = np.concatenate([L[..., None], ab * np.ones_like(L[..., None])], -1)
    names = [f"img{i}" for i in range(n)]
    if not labelled:
        return LabSet(lab.astype(np.float32), range(n), names, np.full(n, -1), [])
    return LabSet(lab.astype(np.float32), range(n), names, labels, ["warm", "cool"])


def fit(tmp_path, data: LabSet, steps: int, val: LabSet | None = None,
        **options) -> tuple[IizukaColorizer, FitContext]:
    ctx = FitContext(device="cpu", seed=0, model_dir=tmp_path / "iizuka",
                     loss_log=LossLog(tmp_path / "loss.csv"))
    model = IizukaColorizer(IizukaOptions(**{**TINY, **options}))
    model.fit(data, val, Budget(steps=steps), ctx)
    return model, ctx


def test_global_size_must_survive_five_halvings():
    with pytest.raises(ValueError, match="global_size"):
        IizukaOptions(global_size=48)


@pytest.mark.parametrize("n_classes", [0, 3])
def test_any_multiple_of_8_keeps_its_size(n_classes):
    net = build_iizuka_net(0.0625, 32, n_classes)
    out = net(np.full((2, 24, 40, 1), 50, np.float32))
    ab = np.asarray(out["ab"] if n_classes else out)
    assert ab.shape == (2, 24, 40, 2) and np.abs(ab).max() <= 110
    if n_classes:
        assert tuple(out["label"].shape) == (2, 3)


def test_paper_dense_sizes_scale_only_below_width_1():
    assert dense_sizes(2.0) == (1024, 512, 256, 256)
    assert dense_sizes(0.25) == (256, 128, 64, 64)
    net = build_iizuka_net(0.25, 32, 6)
    units = [layer.units for layer in net.layers if isinstance(layer, keras.layers.Dense)]
    assert units == [256, 128, 64, 64, 6]


def test_labelled_training_reports_class_accuracy_and_round_trips(tmp_path):
    data, val = lab_set(), lab_set(8)
    model, ctx = fit(tmp_path, data, 30, val, alpha=1.0, lr=3e-3, val_batches=1)
    assert model.class_names == data.class_names
    result = model.extra_results(data)
    assert set(result) == {"class_accuracy"} and 0.0 <= result["class_accuracy"] <= 1.0
    assert result["class_accuracy"] >= 0.75  # stripe orientation is easy for the global branch

    # The validation loss (at the last step) is the compiled one: ab's plus alpha (1) x the class's.
    L, ab = val.arrays()
    out = model.outputs(L)  # the trained weights, in inference mode
    ab_loss = float(ABLoss("mse", scale=0.5)(ab, out["ab"]))
    class_loss = float(keras.losses.SparseCategoricalCrossentropy(from_logits=True)(
        val.labels, out["label"]))
    logged = ctx.loss_log.rows[-1]["val_loss"]
    assert logged == pytest.approx(ab_loss + class_loss, rel=1e-4)
    assert logged != pytest.approx(ab_loss, rel=1e-3)

    model.save(tmp_path / "saved")
    again = IizukaColorizer(IizukaOptions(**TINY))
    again.load(tmp_path / "saved")
    L = data.arrays()[0]
    np.testing.assert_allclose(again.predict(L), model.predict(L), atol=1e-4)
    assert again.extra_results(data) == result
    # Scored at the evaluation size, larger than the training crops, as in a run.
    L, ab = data.arrays()
    wider = LabSet(np.concatenate([L[..., None], ab], -1).repeat(2, 1).repeat(2, 2),
                   range(len(data)), data.names, data.labels, data.class_names)
    assert again.extra_results(wider)["class_accuracy"] >= 0.75


def test_unlabelled_training_has_no_class_output(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="harness"):
        model, ctx = fit(tmp_path, lab_set(labelled=False), 2)
    assert "no class labels" in caplog.text
    assert not isinstance(model.model.output, dict)
    assert model.extra_results(lab_set()) == {}
    assert model.predict(lab_set().arrays()[0][:2]).shape == (2, 16, 16, 2)


def test_val_without_the_training_classes_is_refused(tmp_path):
    with pytest.raises(ValueError, match="class labels"):
        fit(tmp_path, lab_set(), 2, lab_set(8, labelled=False))
