"""README's plugin reference is what scripts/plugin_reference.py generates from the code."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_readme_reference_is_current():
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "plugin_reference.py"),
                          "--check"], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
