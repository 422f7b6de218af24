"""DDP through the shared trainer: two CPU processes (gloo) train ``zhang`` in lock-step."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from harness.color import rgb_to_lab
from harness.colorizer import Budget, FitContext
from harness.data.dataset import LabSet
from harness.progress import LossLog
from harness.train import distributed
from harness.train.torch_trainer import CHECKPOINT
from harness_plugins.zhang_model import ZhangColorizer

WORLD = 2
STEPS = 12


def lab_set(n: int = 8, size: int = 40) -> LabSet:
    """Stripes from dark blue to light yellow at random angles: ab is a function of L."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:size, 0:size] / size
    angle = rng.uniform(0, 2 * np.pi, n)[:, None, None]
    t = ((np.cos(angle) * x + np.sin(angle) * y) % 1.0)[..., None]
    rgb = t * np.array([0.95, 0.85, 0.2]) + (1 - t) * np.array([0.1, 0.15, 0.6])
    lab = rgb_to_lab(rgb.astype(np.float32))
    return LabSet(lab, range(n), [f"img{i}" for i in range(n)], np.full(n, -1), [], crop=32)


def _train(rank: int, port: int, tmp_path) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=WORLD)
    try:
        torch.set_num_threads(1)
        model_dir = tmp_path / f"rank{rank}"
        ctx = FitContext(device="cpu", seed=0, model_dir=model_dir,
                         loss_log=LossLog(model_dir / "loss.csv"))
        model = ZhangColorizer(ZhangColorizer.Options(
            width=1 / 16, batch_size=2, lr=1e-2, log_every=3, checkpoint_every=6))
        model.fit(lab_set(), None, Budget(steps=STEPS), ctx)
        params = {k: v for k, v in model.net.named_parameters()}
        torch.save({"params": params, "world": distributed.world_size(),
                    "rows": ctx.loss_log.rows}, tmp_path / f"result{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_train_identical_parameters(tmp_path, monkeypatch):
    # Spawned workers import this module by its pytest name (tests.train...); make the
    # project root importable for them whichever way pytest was launched.
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2]))
    mp.spawn(_train, args=(_free_port(), tmp_path), nprocs=WORLD, join=True)
    results = [torch.load(tmp_path / f"result{r}.pt", weights_only=True) for r in range(WORLD)]
    assert all(r["world"] == WORLD for r in results)
    for name, value in results[0]["params"].items():
        assert torch.equal(value, results[1]["params"][name]), name

    rows = results[0]["rows"]
    assert [int(r["step"]) for r in rows] == list(range(3, STEPS + 1, 3))
    assert rows[-1]["loss"] < 0.85 * rows[0]["loss"]
    assert (tmp_path / "rank0" / "checkpoints" / CHECKPOINT).exists()
    assert (tmp_path / "rank0" / "loss.csv").exists()
    assert not (tmp_path / "rank1" / "loss.csv").exists()  # only rank 0 writes
    assert not (tmp_path / "rank1" / "checkpoints" / CHECKPOINT).exists()
