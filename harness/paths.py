"""Where the harness keeps what it can rebuild: the one definition of the cache root."""

from __future__ import annotations

import os
from pathlib import Path

APP = "colorization-harness"


def cache_root() -> Path:
    """``$HARNESS_CACHE_DIR``, else ``$XDG_CACHE_HOME/colorization-harness``, else
    ``~/.cache/colorization-harness`` (the XDG base-directory default).

    Holds the decoded Lab images, the verified LPIPS weights and the attainable-FLOPs probe;
    deleting it costs only the time to rebuild them.
    """
    if os.environ.get("HARNESS_CACHE_DIR"):
        return Path(os.environ["HARNESS_CACHE_DIR"])
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache") / APP
