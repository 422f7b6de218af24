"""What the main job (configs/all.yaml) trains: the trainer benchmarks take their defaults here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ALL_YAML = ROOT / "configs" / "all.yaml"


def main_job_options(plugin: str, config: Path = ALL_YAML) -> dict[str, Any]:
    """``data_size`` and the options of ``plugin``'s first model in ``config``."""
    from harness.config import load_config

    cfg = load_config(config)
    model = next((m for m in cfg.models if m.plugin == plugin), None)
    if model is None:
        raise SystemExit(f"{config}: no model with plugin {plugin}")
    return {"data_size": cfg.data.size, **model.options}
