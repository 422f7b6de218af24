import numpy as np
import pytest
import torch

from harness.color import (
    decode_annealed_torch,
    decode_mean_torch,
    denormalize_ab,
    nearest_torch,
    normalize_ab,
    normalize_l,
    soft_encode_torch,
    zhang313,
)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
RNG = np.random.default_rng(0)


def _nchw(x: np.ndarray, device: str) -> torch.Tensor:
    """Channel-last (N, H, W, C) array -> (N, C, H, W) tensor."""
    return torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).to(device)


def _nhwc(t: torch.Tensor) -> np.ndarray:
    return t.permute(0, 2, 3, 1).cpu().numpy()


@pytest.fixture
def ab():
    return RNG.uniform(-100, 100, (2, 5, 7, 2)).astype(np.float32)  # N, H, W, 2


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("k", [1, 5, 10])
def test_soft_encode_and_nearest_match_numpy(ab, device, k):
    bins = zhang313()
    soft = soft_encode_torch(_nchw(ab, device), bins.centres, k=k)
    assert soft.shape == (2, 313, 5, 7) and soft.device.type == device
    np.testing.assert_allclose(_nhwc(soft), bins.soft_encode(ab, k=k), atol=1e-5)
    nearest = nearest_torch(_nchw(ab, device), torch.tensor(bins.centres, device=device))
    np.testing.assert_array_equal(nearest.cpu().numpy(), bins.nearest(ab))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("T", [0.0, 0.38, 1.0])
def test_decoding_matches_numpy(device, T):
    """Agreement to 1e-5 in network units (ab / 110), i.e. float32 rounding at |ab| ~ 100."""
    bins = zhang313()
    logits = RNG.normal(0, 3, (2, 4, 6, 313)).astype(np.float32)
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    annealed, mean = bins.decode_annealed(probs, T=T), bins.decode_mean(probs)
    for x, from_logits in [(logits, True), (probs, False)]:
        got = decode_annealed_torch(_nchw(x, device), bins.centres, T=T, from_logits=from_logits)
        assert got.shape == (2, 2, 4, 6)
        tol = 1e-5 if T else 0.0
        np.testing.assert_allclose(normalize_ab(_nhwc(got)), normalize_ab(annealed), atol=tol)
        got = decode_mean_torch(_nchw(x, device), bins.centres, from_logits=from_logits)
        np.testing.assert_allclose(normalize_ab(_nhwc(got)), normalize_ab(mean), atol=1e-5)


def test_annealed_decoding_is_differentiable():
    centres = torch.tensor(zhang313().centres, dtype=torch.float64)
    logits = torch.randn(1, 313, 2, 1, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: decode_annealed_torch(x, centres), (logits,))


def test_normalisation_helpers_work_on_tensors():
    L = torch.tensor([0.0, 50.0, 100.0])
    torch.testing.assert_close(normalize_l(L), torch.tensor([-0.5, 0.0, 0.5]))
    ab = torch.tensor([-110.0, 55.0])
    torch.testing.assert_close(denormalize_ab(normalize_ab(ab)), ab)
