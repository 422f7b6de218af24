"""Thread settings for torch, TensorFlow and OpenMP: measured defaults, overridden by the config.

:func:`choose` records a run's ``threads`` settings (see :class:`harness.config.ThreadsConfig`)
and puts ``OMP_WAIT_POLICY`` into the environment, which OpenMP reads once, when torch loads
it: call it before torch is imported for the policy to count (``harness run`` does, and
:func:`harness.keras_env.configure` applies the default before it imports torch).
:func:`torch_threads` and :func:`tensorflow_threads` are what :mod:`harness.keras_env`
and the torch trainer apply.

Precedence for each setting: the config, then the user's environment (``OMP_NUM_THREADS``
for torch, ``OMP_WAIT_POLICY``), then the defaults below, chosen from
``benchmarks/bench_threads.py`` on a 2-core machine (zhang, width 0.125, 64 px, batch 16,
training images/s, medians of 2-3 runs each; idle / one other process busy-looping /
under other agents' load average of 3-7):

- torch, 1 thread: 354-358 / 357 / 236-253. 2 threads, OpenMP's default wait policy:
  566-569 / 175 / 12-452; with ``OMP_WAIT_POLICY=PASSIVE``: 292-306 / 187 / 175; libgomp
  spin counts of 1,000 and 10,000 fell between. Two threads are 1.6x one on an idle machine
  and half of it when another process holds a core; PASSIVE makes idle two-thread training
  1.9x slower to soften the loaded case. The defaults are tuned for an idle machine, where
  the main job is meant to run: every core, OpenMP's own wait policy. On a machine shared
  with other work set ``threads: {torch: 1}`` (or ``OMP_NUM_THREADS=1``).
- TensorFlow (regression-mse, width 0.5): 1 and 2 threads within noise idle, 2 ahead with a
  busy core; its pool is not OpenMP's and the wait policy made no clear difference. So
  TensorFlow keeps every core too.
"""

from __future__ import annotations

import logging
import os
import sys

#: OpenMP's wait policy unless the config or the environment says otherwise (None: OpenMP's).
OMP_WAIT_POLICY: str | None = None
#: TensorFlow's intra-op threads; None: every core this process may run on.
TENSORFLOW_THREADS: int | None = None

log = logging.getLogger(__name__)
_chosen: dict[str, int | str | None] = {"torch": None, "tensorflow": None,
                                        "omp_wait_policy": None}
_policy_set: str | None = None  # the OMP_WAIT_POLICY this module put in the environment


def available_cores() -> int:
    """CPUs this process may run on (``sched_getaffinity`` honours taskset and cpusets)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def choose(torch: int | None = None, tensorflow: int | None = None,
           omp_wait_policy: str | None = None) -> None:
    """Make these the process's settings (None: environment, then default); see the module.

    Applies torch's count at once if torch is loaded; TensorFlow's is applied by
    :func:`harness.keras_env.configure` (before TensorFlow starts its pools).
    """
    _chosen.update(torch=torch, tensorflow=tensorflow, omp_wait_policy=omp_wait_policy)
    prepare_openmp()
    if "torch" in sys.modules:
        configure_torch()


def prepare_openmp() -> None:
    """Put the chosen (else the user's, else the default) ``OMP_WAIT_POLICY`` into the
    environment, if torch has not started OpenMP yet."""
    global _policy_set
    current = os.environ.get("OMP_WAIT_POLICY")
    users = current if current is not None and current != _policy_set else None
    policy = (_chosen["omp_wait_policy"] or users or OMP_WAIT_POLICY or "").upper()
    if policy == (current or "").upper() or (not policy and current is None):
        return  # OpenMP reads it case-insensitively
    if not policy:  # back to OpenMP's own: undo what this module set
        if "torch" not in sys.modules:
            os.environ.pop("OMP_WAIT_POLICY", None)
            _policy_set = None
        return
    if "torch" not in sys.modules:
        os.environ["OMP_WAIT_POLICY"] = _policy_set = policy
    elif _chosen["omp_wait_policy"]:
        log.warning("threads.omp_wait_policy=%s is not applied: OpenMP started with torch "
                    "already; set OMP_WAIT_POLICY in the environment instead", policy)


def torch_threads(cores: int | None = None) -> int | None:
    """torch's intra-op threads: the config's, else None when ``OMP_NUM_THREADS`` is set (torch
    follows it), else the default (every core when that is None)."""
    if _chosen["torch"] is not None:
        return _chosen["torch"]
    if "OMP_NUM_THREADS" in os.environ:
        return None
    return default_torch_threads(cores or available_cores())


def default_torch_threads(cores: int) -> int:
    """torch's measured default on ``cores`` CPUs: every one (see the module notes)."""
    return cores


def tensorflow_threads(cores: int | None = None) -> int:
    """TensorFlow's intra-op threads: the config's, else the default (every core if None)."""
    return _chosen["tensorflow"] or TENSORFLOW_THREADS or cores or available_cores()


def configure_torch() -> None:
    """Give torch its intra-op thread count (:func:`torch_threads`), if it should change."""
    import torch

    threads = torch_threads()
    if threads is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
