"""Study fixtures: a fake finished run as the human study needs it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture
def fake_run(tmp_path):
    """Build ``tmp_path/run``: test_lab.npy, test image names, models' status and pred_ab.npy.

    Returns a builder ``fake_run(models=, n=, size=, broken=False)``; with ``broken`` one more
    model, "broken", is there with a failed status and no predictions.
    """

    def build(models=("zhang", "iizuka"), n: int = 30, size: int = 8,
              broken: bool = False) -> Path:
        rng = np.random.default_rng(0)
        run = tmp_path / "run"
        lab = np.concatenate([rng.uniform(20, 80, (n, size, size, 1)),
                              rng.uniform(-40, 40, (n, size, size, 2))], -1).astype(np.float32)
        (run / "models").mkdir(parents=True)
        np.save(run / "test_lab.npy", lab)
        (run / "data_report.json").write_text(json.dumps(
            {"test_images": [f"photo{i:02d}" for i in range(n)]}))
        for k, model in enumerate((*models, "broken") if broken else models):
            (run / "models" / model).mkdir()
            done = model != "broken"
            (run / "models" / model / "status.json").write_text(
                json.dumps({"status": "done" if done else "failed"}))
            if done:
                np.save(run / "models" / model / "pred_ab.npy", lab[..., 1:] * (0.3 * k))
        return run

    return build
