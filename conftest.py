"""Repository-level pytest hooks: which package modules ``--doctest-modules`` imports.

``harness`` is in ``testpaths`` so the docstring examples (``>>>``) run with the suite. A
module without an example is not collected at all: importing it would find nothing to run and
would, for the trainers, the LPIPS weights and the torch colour ops, pull in torch or
TensorFlow (and their device probing) at collection time.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).parent / "harness"


def pytest_ignore_collect(collection_path: Path, config) -> bool | None:
    """Skip ``harness/**.py`` files that hold no doctest example; no opinion elsewhere."""
    if collection_path.suffix != ".py" or _PACKAGE not in collection_path.parents:
        return None
    if collection_path.name == "__main__.py":
        return True
    return ">>>" not in collection_path.read_text(encoding="utf-8") or None
