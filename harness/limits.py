"""Upper bounds on what a config may ask for, each with the reason the error message gives.

Every bound stops a value that validates but could only fail later (out of memory after the
images were decoded, or after every model trained), so it fails up front instead, naming the key.
"""

from __future__ import annotations

#: Largest ``data.size``, ``data.eval_size`` and training-image side (``size * train_scale``).
MAX_SIDE = 2048
#: Bytes a cached pixel takes: float32 L, a and b.
LAB_BYTES = 12
SIDE_REASON = (f"the Lab cache and the test set held in memory for scoring take {LAB_BYTES} "
               f"bytes a pixel (float32 L, a, b), {MAX_SIDE**2 * LAB_BYTES / 2**20:.0f} MiB an "
               f"image at {MAX_SIDE} px, and decoding holds several such copies per worker")

#: Default ``data.max_pixels``: images with more pixels are skipped, read from the header only.
DEFAULT_MAX_PIXELS = 40_000_000
#: Bytes a pixel takes at the peak of decoding one image to float RGB and resizing it (PIL's
#: copies, the float32 array, the three resampled channels): 5.8 GB for a 144 MP PNG.
DECODE_BYTES = 40
PIXELS_REASON = (f"decoding takes about {DECODE_BYTES} bytes a pixel per worker, "
                 f"{DEFAULT_MAX_PIXELS * DECODE_BYTES / 1e9:.1f} GB at the default "
                 f"{DEFAULT_MAX_PIXELS / 1e6:.0f} MP")

#: Most decode threads (``data.workers``).
MAX_WORKERS = 64
WORKERS_REASON = ("each decode thread holds one full-resolution image (up to "
                  f"{DEFAULT_MAX_PIXELS * DECODE_BYTES / 1e9:.1f} GB at the default pixel "
                  "limit), and threads beyond the cores decode no faster")

#: Most bootstrap resamples (``report.bootstrap``).
MAX_BOOTSTRAP = 100_000
BOOTSTRAP_REASON = ("the vectorised bootstrap holds resamples x test images float64 values "
                    f"({MAX_BOOTSTRAP * 1000 * 8 / 1e9:.1f} GB for {MAX_BOOTSTRAP} resamples "
                    "of 1000 images), and at that count the Monte Carlo error of a 95% bound "
                    "is already under 1% of the standard error")

#: Seeds: NumPy's legacy seeding (Keras's ``set_random_seed``) takes 32-bit unsigned integers.
MAX_SEED = 2**32 - 1

#: Largest config file read: a run config is a few kB; anything far larger is not one.
MAX_CONFIG_BYTES = 1 << 20

#: Most intra-op threads per framework (``threads.torch``, ``threads.tensorflow``).
MAX_THREADS = 1024
THREADS_REASON = ("OpenMP starts that many threads for every parallel region, each with its "
                  "own stack, and threads beyond the cores only contend")

#: Largest training batch (``batch_size`` of the shared trainers' options).
MAX_BATCH = 4096
_BATCH_GB = MAX_BATCH * 256**2 * LAB_BYTES / 1e9
BATCH_REASON = (f"each batch is drawn and stacked in memory first, batch x side^2 x {LAB_BYTES} "
                f"bytes before any activation ({_BATCH_GB:.1f} GB for {MAX_BATCH} crops of "
                f"256 px), and the networks' activations take several times that")

#: Most batch-loading workers (``num_workers`` of the shared trainers' options).
MAX_LOADER_WORKERS = 64
LOADER_WORKERS_REASON = ("each is a process (torch) or thread (Keras) of its own, and workers "
                         "beyond the cores only contend")

#: Most model jobs at a time (``execution.workers``).
MAX_JOBS = 256
JOBS_REASON = ("each is a process holding a whole framework (hundreds of MB) and its model's "
               "data; a Ray cluster larger than that takes several runs or a sweep")

#: Most GPUs one Ray job asks for (``execution.gpus_per_job``).
MAX_GPUS_PER_JOB = 16
GPUS_PER_JOB_REASON = ("a job trains one model in one process on one node, and a request no "
                       "node can meet leaves the task waiting forever")


def at_most(value: float | None, bound: float, reason: str) -> float | None:
    """``value``, or a ValueError saying the bound and why it exists (None passes).

    >>> at_most(3, 4, "x")
    3
    """
    if value is not None and value > bound:
        raise ValueError(f"must be <= {bound}: {reason}")
    return value
