"""Process set-up for Keras: backend, quiet start-up, threads; beside torch, load order, malloc.

Call :func:`configure` before the first ``import keras`` / ``import tensorflow``; it is
idempotent, and everything it sets yields to a value the user has already chosen.

Always, in every process that runs Keras:

- ``KERAS_BACKEND`` defaults to ``tensorflow``.
- TensorFlow's start-up chatter (C++ log lines written before absl is initialised, the CUDA
  probe on GPU-less machines, Python-side warnings) is kept out of the terminal:
  ``TF_CPP_MIN_LOG_LEVEL=2``, absl and ``tensorflow`` loggers at ERROR, and stderr captured
  while TensorFlow loads, then passed to this module's logger at DEBUG (or echoed
  if the import fails). ``HARNESS_TF_VERBOSE=1`` keeps all of it.
- ``TF_FORCE_GPU_ALLOW_GROWTH=true``: TensorFlow takes GPU memory as it needs it instead of
  nearly all of it at start-up, leaving room for torch in the same process, or for another
  job on a GPU that Ray shares out by fractions (``execution.gpus_per_job`` below 1).
- TensorFlow's intra-op threads come from :mod:`harness.threads` (the run config's
  ``threads``, else measured defaults) and its inter-op pool, by default one thread per core
  each launching multi-threaded kernels, is held to 2: an oversubscription of TensorFlow's own.

Only where torch and TensorFlow share a process (the ``inline`` backend, and a user's own
script), each a workaround for one of the two hurting the other:

- Load order: torch and, where installed, Triton are imported before TensorFlow. Triton's
  native library (which torch loads lazily, e.g. when an optimizer is first created) and
  TensorFlow's each carry their own LLVM; loaded after TensorFlow, Triton's segfaults the
  process. torch imported after a Keras fit also segfaulted when LPIPS built its network
  (seen on 2026-12-02; Triton was not loaded when torch was imported, but may have been by
  then). torch's intra-op pool is sized then too (:func:`harness.threads.configure_torch`).
- Memory: see :func:`generator_dataset_malloc`, which the Keras trainer wraps around a fit:
  glibc's malloc setting that TensorFlow fixes would slow every later torch step.

A Keras model's worker under the ``process`` and ``ray`` backends runs TensorFlow alone: it
fits and predicts, and its scoring (LPIPS is torch) runs in a second worker
(:func:`harness.execution.stages`). The worker sets ``HARNESS_ISOLATED_WORKER=1``, and both
workarounds are skipped there: torch is never imported, and no torch step follows the fit.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import sys
import tempfile
from collections.abc import Iterator, Mapping

from harness import threads
from harness.threads import available_cores
from harness.train.allocator import M_MMAP_THRESHOLD, glibc_mallopt, steady_heap

VERBOSE_VAR = "HARNESS_TF_VERBOSE"
#: Set by a worker that runs Keras without torch (see the module docstring).
ISOLATED_VAR = "HARNESS_ISOLATED_WORKER"
INTER_OP_THREADS = 2
# TensorFlow's glibc mmap threshold for generator datasets.
TF_MMAP_THRESHOLD = 128 << 10

log = logging.getLogger(__name__)


def verbose(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the user asked to see TensorFlow's own logging (``HARNESS_TF_VERBOSE=1``)."""
    return environ.get(VERBOSE_VAR, "").lower() in ("1", "true", "yes", "on")


def environment_defaults(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The variables :func:`configure` would set: its defaults the user has not set."""
    defaults = {"KERAS_BACKEND": "tensorflow", "TF_FORCE_GPU_ALLOW_GROWTH": "true"}
    if not verbose(environ):
        defaults["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return {k: v for k, v in defaults.items() if k not in environ}


def isolated(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether this process runs Keras without torch (``HARNESS_ISOLATED_WORKER=1``)."""
    return environ.get(ISOLATED_VAR) == "1"


def thread_counts(cores: int) -> tuple[int, int]:
    """``(intra-op, inter-op)`` threads for TensorFlow on ``cores`` CPUs (see module notes)."""
    return threads.tensorflow_threads(cores), min(INTER_OP_THREADS, cores)


def configure() -> None:
    """Set up the process for Keras (see the module docstring); safe to call repeatedly."""
    defaults = environment_defaults()
    quiet = "TF_CPP_MIN_LOG_LEVEL" in defaults  # neither verbose nor the user's own level
    os.environ.update(defaults)
    cores = available_cores()
    if not isolated():
        _load_torch_first()
    if os.environ["KERAS_BACKEND"] != "tensorflow":
        return
    with _captured_stderr() if quiet else contextlib.nullcontext():
        import tensorflow as tf

        _configure_tf_threads(tf, cores)
        tf.config.list_physical_devices()  # probes CUDA (noisily) while stderr is captured
    if quiet:
        _quiet_python_loggers()


@contextlib.contextmanager
def generator_dataset_malloc() -> Iterator[None]:
    """Give TensorFlow its malloc setting for the block, and the rest of the process back its own.

    The first generator dataset (what Keras makes of a ``PyDataset``) fixes glibc's mmap
    threshold at 128 KiB for good, a TensorFlow workaround for memory growth under Python
    3.11. Every later allocation above that size is then mapped and unmapped afresh: a torch
    training step after a Keras fit took 30x the page faults and twice the time. This block
    applies TensorFlow's threshold, then :func:`~harness.train.allocator.steady_heap`. Off
    glibc, and in an isolated worker (no torch step follows), it does nothing.
    """
    mallopt = None if isolated() else glibc_mallopt()
    if mallopt is None:
        yield
        return
    mallopt(M_MMAP_THRESHOLD, TF_MMAP_THRESHOLD)
    try:
        yield
    finally:
        steady_heap()


def _load_torch_first() -> None:
    """Import torch (and Triton) before TensorFlow; size torch's pool (:mod:`harness.threads`)."""
    threads.prepare_openmp()
    try:
        import torch  # noqa: F401
    except ImportError:
        return
    if importlib.util.find_spec("triton") is not None:
        importlib.import_module("triton")
    threads.configure_torch()


def _configure_tf_threads(tf, cores: int) -> None:
    threading = tf.config.threading
    intra, inter = thread_counts(cores)
    try:
        if threading.get_intra_op_parallelism_threads() == 0:
            threading.set_intra_op_parallelism_threads(intra)
        if threading.get_inter_op_parallelism_threads() == 0:
            threading.set_inter_op_parallelism_threads(inter)
    except RuntimeError:  # TensorFlow already started its pools: keep them
        log.debug("TensorFlow already initialised; thread counts left as they are")


def _quiet_python_loggers() -> None:
    from absl import logging as absl_logging

    if absl_logging.get_verbosity() == absl_logging.WARNING:  # absl's default: not chosen
        absl_logging.set_verbosity(absl_logging.ERROR)
    tf_logger = logging.getLogger("tensorflow")
    if tf_logger.level == logging.NOTSET:
        tf_logger.setLevel(logging.ERROR)


@contextlib.contextmanager
def _captured_stderr() -> Iterator[None]:
    """Redirect file descriptor 2 (C++ writes there too) to a temporary file for the block.

    The capture goes to the DEBUG log, or back to stderr if the block raises.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        failed = True
        try:
            yield
            failed = False
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode(errors="replace").strip()
            if text and failed:
                print(text, file=sys.stderr)
            elif text:
                log.debug("TensorFlow start-up output:\n%s", text)
