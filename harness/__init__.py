"""Colorization benchmark harness: one protocol, many colorizers, one comparison table."""

from harness.hookspecs import hookimpl, hookspec

__all__ = ["hookimpl", "hookspec", "__version__"]
__version__ = "0.1.0"
