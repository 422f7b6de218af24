"""LPIPS metrics (alex, vgg; lpips v0.1) on the RGB results, with real ImageNet backbones only.

The model comes from :func:`harness.metrics.lpips_weights.load_lpips`, which never falls back on a
random backbone: when no verified weights exist the metric raises MetricUnavailable carrying the
loader's reason and fix, and the engine reports the column as unavailable. Torch is imported on
first use, not when the plugin registers.
"""

from __future__ import annotations

import functools

import numpy as np

from harness.hookspecs import hookimpl
from harness.metrics import ImageBatch, Metric, MetricUnavailable

NETS = ("alex", "vgg")
# Images per forward pass: on a CPU larger batches stop paying off and cost memory (vgg holds
# ~60 MB of activations per 256x256 image); a GPU takes a whole engine batch at once.
BATCH_SIZE = {"cpu": 16, "cuda": 64}


def lpips_model(net: str, context):
    """The LPIPS model for ``net`` on ``context.device``, cached in ``context.cache``.

    Raises MetricUnavailable with the loader's reason when no real backbone weights exist.
    """
    key = f"lpips-{net}@{context.device}"
    if key not in context.cache:
        from harness.metrics import lpips_weights

        try:
            context.cache[key] = lpips_weights.load_lpips(net, context.device)
        except lpips_weights.LpipsUnavailable as exc:
            raise MetricUnavailable(f"LPIPS ({net}) unavailable: {exc.reason}") from exc
    return context.cache[key]


def lpips_scores(net: str, batch: ImageBatch) -> np.ndarray:
    """Per-image LPIPS distance (N,) between ``batch.rgb_pred`` and ``batch.rgb_true``.

    d(x, y) = sum_l mean_hw || w_l * (phi_l(x) - phi_l(y)) ||^2 over the backbone's layers l
    with unit-normalised channels phi_l (Zhang et al. 2018, eq. 1); 0 for identical images.
    The ground truth's phi_l are computed once per scoring context, for every model.
    """
    model = lpips_model(net, batch.context)
    kind = str(batch.context.device).split(":")[0]
    size = BATCH_SIZE.get(kind, 16)
    from harness.metrics import lpips_weights

    truth = batch.from_truth(f"lpips-{net}", lambda: lpips_weights.lpips_features(
        model, batch.rgb_true, batch_size=size))
    return lpips_weights.lpips_to_features(model, batch.rgb_pred, truth, batch_size=size)


_CITATION = (
    "Zhang, Isola, Efros, Shechtman & Wang, The Unreasonable Effectiveness of Deep Features "
    "as a Perceptual Metric, CVPR 2018 (lpips v0.1)"
)
_BACKBONE = {"alex": "AlexNet", "vgg": "VGG16"}
METRICS = tuple(
    Metric(
        f"lpips-{net}",
        functools.partial(lpips_scores, net),
        higher_is_better=False,
        unit="",
        citation=_CITATION,
        summary=f"Learned perceptual distance to the ground truth ({_BACKBONE[net]} features)",
        framework="torch",
    )
    for net in NETS
)


@hookimpl
def harness_register_metrics(register):
    for metric in METRICS:
        register(metric)
