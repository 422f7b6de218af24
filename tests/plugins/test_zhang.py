"""The ``zhang`` and ``zhang-rebalanced`` plugins: network, losses, options, fit, predict, save."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from harness.color import rgb_to_lab
from harness.colorizer import Budget, FitContext
from harness.data.dataset import LabSet
from harness.progress import LossLog
from harness_plugins.zhang_model import ZhangColorizer, zhang_network
from harness_plugins.zhang_rebalanced_model import ZhangRebalancedColorizer, segmentation_term

TINY = {"width": 1 / 16, "batch_size": 4, "log_every": 1}


def lab_set(n: int = 8, size: int = 40, crop: int | None = 32) -> LabSet:
    """Stripes from dark blue to light yellow at random angles: ab is a function of L."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:size, 0:size] / size
    angle = rng.uniform(0, 2 * np.pi, n)[:, None, None]
    t = ((np.cos(angle) * x + np.sin(angle) * y) % 1.0)[..., None]
    rgb = t * np.array([0.95, 0.85, 0.2]) + (1 - t) * np.array([0.1, 0.15, 0.6])
    lab = rgb_to_lab(rgb.astype(np.float32))
    return LabSet(lab, range(n), [f"img{i}" for i in range(n)], np.full(n, -1), [], crop=crop)


def batch_of(labset: LabSet) -> dict[str, torch.Tensor]:
    L, ab = labset.arrays()
    return {"L": torch.from_numpy(L[:, None]), "ab": torch.from_numpy(ab).permute(0, 3, 1, 2)}


def test_paper_network_has_32m_parameters():
    with torch.device("meta"):  # shapes only, nothing allocated
        net = zhang_network(313, width=1.0)
    assert sum(p.numel() for p in net.parameters()) == 32_235_385


def test_logits_are_at_a_quarter_of_the_input():
    logits = zhang_network(265, width=1 / 16)(torch.rand(2, 1, 24, 40) * 100)
    assert logits.shape == (2, 265, 6, 10)


def test_soft_encoded_cross_entropy_by_hand():
    model = ZhangColorizer(ZhangColorizer.Options(k=3))
    ab = np.array([[13.0, -7.0], [42.0, 18.0]])  # two pixels, one row
    logits = torch.randn(1, 313, 1, 2, generator=torch.Generator().manual_seed(0))
    batch = {"ab": torch.tensor(ab.T[None, :, None, :], dtype=torch.float32),
             "L": torch.full((1, 1, 1, 2), 50.0)}

    log_p = torch.log_softmax(logits.double(), dim=1)[0, :, 0].numpy().T  # (2, Q)
    expected = []
    for pixel, lp in zip(ab, log_p):
        d2 = ((model.bins.centres - pixel) ** 2).sum(axis=1)
        near = np.argsort(d2)[:3]
        w = np.exp(-d2[near] / (2 * 5.0**2))
        expected.append(-(w / w.sum() * lp[near]).sum())
    assert model.loss(logits, batch).item() == pytest.approx(np.mean(expected), rel=1e-5)


def test_grey_images_are_left_out_of_the_loss():
    model = ZhangColorizer()
    logits = torch.randn(2, 313, 2, 2, generator=torch.Generator().manual_seed(0))
    colour = torch.tensor([30.0, -20.0])[None, :, None, None].expand(1, 2, 8, 8)
    grey = torch.full((1, 2, 8, 8), 2.0)  # chroma 2.8 < 5 everywhere
    L = torch.full((2, 1, 8, 8), 50.0)
    both = model.loss(logits, {"L": L, "ab": torch.cat([colour, grey])})
    alone = model.loss(logits[:1], {"L": L[:1], "ab": colour})
    assert both.item() == pytest.approx(alone.item(), rel=1e-6)
    only_grey = model.loss(logits[1:], {"L": L[1:], "ab": grey})
    assert only_grey.item() == 0.0


def test_segmentation_term_follows_lightness_edges():
    constant = torch.tensor([25.0, -40.0])[None, :, None, None].expand(1, 2, 6, 6)
    flat_L = torch.full((1, 1, 6, 6), 50.0)
    assert segmentation_term(constant, flat_L).item() == pytest.approx(0.0, abs=1e-8)

    checker = (torch.arange(6)[:, None] + torch.arange(6)) % 2  # 6 x 6 of 0 / 1
    ab = torch.stack([40.0 * checker - 20.0, torch.zeros(6, 6)])[None]
    similar = flat_L + checker  # intensities 50 / 51: the colour flips are penalised
    assert segmentation_term(ab, similar, sigma=5.0).item() > 100.0
    edges = 30.0 + 40.0 * checker[None, None]  # colour flips where intensity jumps: free
    assert segmentation_term(ab, edges, sigma=5.0).item() < 1e-6


def test_segmentation_term_is_differentiable():
    ab = torch.randn(2, 2, 8, 8, requires_grad=True)
    segmentation_term(ab, torch.rand(2, 1, 8, 8) * 100, radius=2).backward()
    assert ab.grad is not None and ab.grad.abs().sum() > 0


def test_rebalancing_with_lambda_1_is_no_rebalancing():
    data = lab_set()
    batch = batch_of(lab_set(crop=None))
    logits = torch.randn(8, 313, 10, 10, generator=torch.Generator().manual_seed(0))
    plain = ZhangColorizer().loss(logits, batch)
    losses = {}
    for lam in (1.0, 0.5):
        model = ZhangRebalancedColorizer(
            ZhangRebalancedColorizer.Options.model_validate({"lambda": lam, "seg_weight": 0}))
        model.prepare(data, ctx=None)
        prior, w = model.buffers["prior"], model.buffers["class_weights"]
        assert (prior * w).sum().item() == pytest.approx(1.0, rel=1e-5)
        losses[lam] = model.loss(logits, batch)
    assert losses[1.0].item() == pytest.approx(plain.item(), rel=1e-5)
    assert losses[0.5].item() != pytest.approx(plain.item(), rel=1e-2)


def test_options_name_the_bad_field():
    options = ZhangRebalancedColorizer.Options.model_validate({"lambda": 0.25})
    assert options.lam == 0.25
    with pytest.raises(ValidationError, match="bins"):
        ZhangColorizer.Options(bins="hexagons")
    with pytest.raises(ValidationError, match="lambda"):
        ZhangRebalancedColorizer.Options.model_validate({"lambda": 2})
    with pytest.raises(ValidationError, match="widht"):
        ZhangColorizer.Options.model_validate({"widht": 1})


@pytest.mark.parametrize("cls", [ZhangColorizer, ZhangRebalancedColorizer])
def test_fit_predict_any_size_save_load(tmp_path, cls):
    model = cls(cls.Options(**TINY, bins="grid:22"))
    ctx = FitContext(device="cpu", seed=0, model_dir=tmp_path / "m",
                     loss_log=LossLog(tmp_path / "m" / "loss.csv"))
    model.fit(lab_set(), None, Budget(steps=2), ctx)
    assert len(ctx.loss_log.rows) == 2

    L = np.random.default_rng(0).uniform(0, 100, (5, 24, 40)).astype(np.float32)
    ab = model.predict(L)  # two batches: 4 + 1
    assert ab.shape == (5, 24, 40, 2) and ab.dtype == np.float32
    assert np.isfinite(ab).all() and np.abs(ab).max() <= 110

    model.save(tmp_path / "saved")
    again = cls(cls.Options(**TINY, bins="grid:22"))
    again.load(tmp_path / "saved")
    assert again.buffers.keys() == model.buffers.keys()
    np.testing.assert_allclose(again.predict(L), ab, rtol=0, atol=1e-4)
