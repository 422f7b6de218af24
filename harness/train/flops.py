"""FLOPs per training step, the rate a fit achieved, and the rate the machine can attain.

What is counted, the same for both frameworks: the multiply-adds of convolutions (transposed
included) and matrix products, two FLOPs each, in one training step's forward and backward
pass, as executed. Element-wise work (normalisation, activations, losses, the optimizer) is
not counted: it is memory-bound, and counting it would make the rate of a step incomparable
with a matrix product's. For torch the count is :class:`torch.utils.flop_counter.FlopCounterMode`
over the first real step of a fit. For Keras on TensorFlow it is read from the traced graph
of a forward pass and the gradients of its outputs at the training batch's shape: every
``Conv2D``/``MatMul``-family op that the gradients depend on, its FLOPs from its static shapes
(so, as in torch, the input gradient of the first layer, which nothing uses, is left out).
Tracing takes about a second and runs nothing; Keras's own train step is not reused because
its traced graph is private to Keras.

The attainable rate is the better of two probes, each the best of a few timed runs: ``torch.mm``
of two square matrices, and a 3x3 convolution (on this project's AMD EPYC CPU, MKL's matrix
product reaches 221 GFLOP/s on 2 threads where oneDNN's convolution reaches 363), on the
training device in the training precision (matrices of 2048 on a CPU, 8192 on a GPU, where
smaller products leave the chip idle between kernels), probed once per run; the best probe ever seen
on the machine is kept under the harness cache directory (``attainable.json``). A fit's
achieved rate over that is its share of the machine; on a GPU it is the model FLOPs
utilisation (MFU) against what these kernels attain there, not against the datasheet peak.

Frameworks are imported inside functions: importing this module loads neither.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import math
import os
import platform
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.atomic import write_json
from harness.colorizer import TrainingCompute

log = logging.getLogger("harness")

CACHE_FILE = "attainable.json"
#: Seconds of timed products after which the probe stops (it always times at least one).
PROBE_SECONDS = 1.5
PROBE_REPEATS = 5


# -- counting -----------------------------------------------------------------------------------


class TorchStepMeter:
    """Counts a torch fit's steps and images; the first step runs under ``FlopCounterMode``.

    ``replicas`` (data-parallel processes) multiplies the FLOPs counted in this process, so
    ``flops_per_step`` is the global step's.
    """

    def __init__(self, replicas: int = 1) -> None:
        self.replicas = replicas
        self.flops: int | None = None
        self.steps = self.images = 0

    @contextlib.contextmanager
    def step(self, images: int) -> Iterator[None]:
        """Wrap one training step of ``images`` images (all replicas)."""
        if self.steps:
            yield
        else:
            from torch.utils.flop_counter import FlopCounterMode

            with FlopCounterMode(display=False) as counter:
                yield
            self.flops = int(counter.get_total_flops() * self.replicas)
        self.steps += 1
        self.images += images

    def result(self, seconds: float, net: Any, autocast: Any) -> TrainingCompute:
        """The figures of the fit, ``seconds`` long, of network ``net`` computing under
        ``autocast`` (a ``torch.autocast`` or a null context: float32)."""
        import torch

        dtype = str(getattr(autocast, "fast_dtype", torch.float32)).removeprefix("torch.")
        params = sum(p.numel() for p in net.parameters() if p.requires_grad)
        return TrainingCompute(self.flops, self.steps, self.images, seconds, params, dtype)


def keras_step_flops(model: Any, input_shape: tuple[int, ...]) -> int | None:
    """FLOPs of one training step of Keras ``model`` on inputs of ``input_shape`` (see module
    notes); None on a backend other than TensorFlow, or when the graph cannot be counted."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return None
    try:
        return _tf_step_flops(model, input_shape)
    except Exception as exc:  # accounting must never cost the fit
        log.warning("%s: FLOPs per step not counted (%s: %s)", model.name, type(exc).__name__,
                    exc)
        return None


def keras_compute(model: Any, flops: int | None, steps: int, images: int,
                  seconds: float) -> TrainingCompute:
    """The figures of a Keras fit of ``model``: ``steps`` steps on ``images`` images in
    ``seconds``, ``flops`` per step (from :func:`keras_step_flops`)."""
    params = sum(math.prod(w.shape) for w in model.trainable_weights)
    return TrainingCompute(flops, steps, images, seconds, int(params),
                           str(model.dtype_policy.compute_dtype))


def _tf_step_flops(model: Any, input_shape: tuple[int, ...]) -> int:
    import tensorflow as tf

    def forward_backward(x):
        with tf.GradientTape() as tape:
            outputs = tf.nest.flatten(model(x, training=True))
            total = tf.add_n([tf.reduce_sum(tf.cast(y, tf.float32)) for y in outputs])
        # The sum too: a real loss needs the outputs, the gradients of a sum only its shape.
        return total, tape.gradient(total, model.trainable_variables)

    graph = tf.function(forward_backward).get_concrete_function(
        tf.TensorSpec(input_shape, tf.float32)).graph
    return sum(graph_op_flops(op) for op in _needed_ops(graph))


def _needed_ops(graph: Any) -> list[Any]:
    """The ops the graph's outputs depend on (what TensorFlow runs; the rest is pruned)."""
    seen: dict[str, Any] = {}
    stack = [t.op for t in graph.outputs]
    while stack:
        op = stack.pop()
        if op.name in seen:
            continue
        seen[op.name] = op
        stack.extend(t.op for t in op.inputs)
        stack.extend(op.control_inputs)
    return list(seen.values())


def graph_op_flops(op: Any) -> int:
    """FLOPs of one TensorFlow graph op (0 for ops that are not convolutions or products)."""
    kind = op.type
    if kind in ("Conv2D", "Conv3D", "DepthwiseConv2dNative", "Conv2DBackpropInput",
                "Conv2DBackpropFilter", "Conv3DBackpropInputV2", "Conv3DBackpropFilterV2",
                "DepthwiseConv2dNativeBackpropInput", "DepthwiseConv2dNativeBackpropFilter"):
        # Every variant does the forward convolution's multiply-adds: one per element of the
        # forward output and tap of the filter; the forward output is the backprops' last input.
        out = op.outputs[0] if kind in ("Conv2D", "Conv3D", "DepthwiseConv2dNative") \
            else op.inputs[2]
        # The filter: (*window, in, out) or, depthwise, (*window, in, multiplier); a filter
        # gradient's is its output's shape.
        filt = _shape(op.outputs[0] if "Filter" in kind else op.inputs[1])
        taps = math.prod(filt[:-2]) if "Depthwise" in kind else math.prod(filt[:-1])
        return 2 * math.prod(_shape(out)) * taps
    if kind == "MatMul":
        a, b = _shape(op.inputs[0]), _shape(op.inputs[1])
        m, k = (a[1], a[0]) if op.get_attr("transpose_a") else (a[0], a[1])
        n = b[0] if op.get_attr("transpose_b") else b[1]
        return 2 * m * k * n
    if kind in ("BatchMatMul", "BatchMatMulV2", "BatchMatMulV3"):
        out, a = _shape(op.outputs[0]), _shape(op.inputs[0])
        k = a[-2] if op.get_attr("adj_x") else a[-1]
        return 2 * math.prod(out) * k
    return 0


def _shape(tensor: Any) -> list[int]:
    shape = tensor.shape.as_list()
    if any(d is None for d in shape):
        raise ValueError(f"{tensor.name}: shape {shape} is not fully known")
    return shape


# -- the machine's rate -------------------------------------------------------------------------


def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what ``platform`` says."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def probe_key(device: str, dtype: str) -> dict[str, Any]:
    """What the probe's result depends on: device, CPU model, threads, torch, precision."""
    import torch

    dev = torch.device(device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else dev.type
    return {"device": name, "cpu": cpu_model(), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "dtype": dtype, "size": probe_size(device)}


def probe_size(device: str) -> int:
    return 2048 if device.startswith("cpu") else 8192


def probe_gflops(device: str, dtype: str = "float32", size: int | None = None
                 ) -> dict[str, float]:
    """Best rates (GFLOP/s) on ``device`` of ``torch.mm`` of two ``size``-square matrices and
    of a 3x3, 128 -> 128 channel convolution over 16 maps of ``size / 32`` squared (the
    library's direct-convolution path, faster than its matrix product on some CPUs)."""
    import torch
    import torch.nn.functional as F

    dev, size = torch.device(device), size or probe_size(device)
    sync = {"cuda": torch.cuda.synchronize,
            "mps": lambda: torch.mps.synchronize()}.get(dev.type, lambda: None)
    gen = torch.Generator(device="cpu").manual_seed(0)

    def tensor(*shape):
        return torch.randn(*shape, generator=gen).to(dev, getattr(torch, dtype))

    side = max(8, size // 32)
    a, b, x, w = tensor(size, size), tensor(size, size), tensor(16, 128, side, side), \
        tensor(128, 128, 3, 3)
    kernels = {"matmul": (lambda: torch.mm(a, b), 2 * size**3),
               "conv3x3": (lambda: F.conv2d(x, w, padding=1), 2 * 16 * 128 * 128 * 9 * side**2)}
    rates = {}
    with torch.inference_mode():
        for name, (run, flops) in kernels.items():
            run()  # warm-up: the allocation and the library's first call
            sync()
            best, spent = math.inf, 0.0
            for _ in range(PROBE_REPEATS):
                start = time.perf_counter()
                run()
                sync()
                seconds = time.perf_counter() - start
                best, spent = min(best, seconds), spent + seconds
                if spent > PROBE_SECONDS:
                    break
            rates[name] = round(flops / best / 1e9, 2)
    return rates


#: Probes made by this process, by cache key: one per key per run.
_MEASURED: dict[str, dict[str, Any]] = {}


def attainable(device: str, dtype: str = "float32", cache_root: Path | None = None
               ) -> dict[str, Any]:
    """The machine's attainable rate on ``device`` in ``dtype``: the best probe seen here.

    Each process probes once per key; ``<cache_root>/attainable.json`` (default: the harness
    cache directory) keeps the best probe of every run, so a probe slowed by other processes
    (the one-minute load average is recorded beside each) never stands for long. Returns
    ``{"gflops", "measured", "load_average", "cached", **probe_key}``, ``cached`` when the
    stored best beat this process's probe.
    """
    from harness import paths

    path = Path(cache_root or paths.cache_root()) / CACHE_FILE
    key = probe_key(device, dtype)
    name = json.dumps(key, sort_keys=True)
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        cache = {}
    cache = cache if isinstance(cache, dict) else {}
    best = cache.get(name) if isinstance(cache.get(name), dict) else None
    if name not in _MEASURED:
        rates = probe_gflops(device, dtype)
        _MEASURED[name] = {**key, "gflops": max(rates.values()), "rates": rates,
                           "measured": dt.datetime.now().isoformat(timespec="seconds"),
                           "load_average": _load_average()}
        log.info("probe: %s GFLOP/s (%s on %s, %d threads)",
                 ", ".join(f"{k} {v:.1f}" for k, v in rates.items()), dtype, key["device"],
                 key["threads"])
    record = _MEASURED[name]
    if best is not None and float(best.get("gflops", 0)) >= record["gflops"]:
        return {**best, "cached": True}
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, {**cache, name: record})
    return {**record, "cached": False}


def compute_status(compute: TrainingCompute) -> dict[str, Any]:
    """The ``compute`` entry of a model's ``status.json``: the trainer's figures and the
    achieved rate (None where FLOPs or time are unknown); :func:`with_attainable` adds the
    machine's attainable rate. Framework-free: a Keras worker writes it without torch."""
    out: dict[str, Any] = {
        "flops_per_step": compute.flops_per_step, "steps": compute.steps,
        "images": compute.images, "train_seconds": round(compute.train_seconds, 3),
        "train_seconds_total": round(compute.train_seconds + compute.earlier_seconds, 3),
        "parameters": compute.parameters, "dtype": compute.dtype,
        "images_per_s": None, "achieved_gflops": None, "attainable_gflops": None,
        "percent_of_attainable": None, "probe": None}
    seconds = compute.train_seconds
    if seconds > 0:
        out["images_per_s"] = _significant(compute.images / seconds)
    if compute.flops_per_step is not None and seconds > 0:
        out["achieved_gflops"] = _significant(compute.flops_per_step * compute.steps / seconds
                                              / 1e9)
    return out


def with_attainable(figures: dict[str, Any], device: str,
                    cache_root: Path | None = None) -> dict[str, Any]:
    """:func:`compute_status`'s figures with the attainable rate on ``device`` (the torch probe,
    :func:`attainable`) and the achieved rate's share of it; unchanged without an achieved
    rate, or once added."""
    achieved = figures.get("achieved_gflops")
    if achieved is None or figures.get("attainable_gflops") is not None:
        return figures
    probe = attainable(device, figures["dtype"], cache_root)
    return {**figures, "attainable_gflops": probe["gflops"],
            "percent_of_attainable": _significant(100 * achieved / probe["gflops"]),
            "probe": {k: v for k, v in probe.items() if k != "cached"}}


def _load_average() -> float | None:
    with contextlib.suppress(OSError, AttributeError):
        return round(os.getloadavg()[0], 2)
    return None


def _significant(x: float, digits: int = 4) -> float:
    return float(f"{x:.{digits}g}")
