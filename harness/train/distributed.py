"""Multi-process helpers for torch DDP under ``torchrun``: rank, world size, process group."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    """True inside an initialised process group."""
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    """Number of processes training together (1 outside a process group)."""
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    """This process's rank (0 outside a process group)."""
    return dist.get_rank() if is_distributed() else 0


def is_main() -> bool:
    """True on rank 0, the only rank that writes checkpoints, logs and weights."""
    return rank() == 0


def local_rank() -> int:
    """This process's index on its machine, from torchrun's ``LOCAL_RANK`` (0 if unset)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def init_from_env(device: str = "cpu") -> bool:
    """Join the process group torchrun describes; return whether training is distributed.

    Reads ``WORLD_SIZE``, ``RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` (the ``env://``
    method). The backend is nccl when ``device`` is a CUDA device, gloo otherwise. Does
    nothing outside torchrun (``WORLD_SIZE`` unset or 1) or when a group already exists.
    """
    if is_distributed():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    cuda = torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.set_device(local_rank())
    dist.init_process_group("nccl" if cuda else "gloo")
    return True


def rank_device(device: str | torch.device) -> torch.device:
    """The device this rank trains on: under DDP an unindexed ``cuda`` is ``cuda:<local rank>``."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None and is_distributed():
        return torch.device("cuda", local_rank())
    return device


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when ``flag`` is true on any; so all ranks stop at the same step."""
    if not is_distributed():
        return flag
    value = torch.tensor(float(flag), device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())
