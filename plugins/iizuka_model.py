"""iizuka: Iizuka, Simo-Serra & Ishikawa (SIGGRAPH 2016), global and local priors fused.

Shared low-level convolutions feed a mid-level branch at 1/8 of the input and a global branch
that always sees a fixed-size rescaled copy, so any input size works. The global branch ends in
a vector that is tiled over the mid-level map and mixed in by a 1x1 convolution (the fusion
layer); an upsampling decoder outputs ab through a sigmoid at half resolution, upsampled to
the input's. On a labelled training set a classifier on the global features trains jointly,
its loss weighted by ``alpha``. Choices beyond the paper: the shared trainer's AdamW (the
paper: ADADELTA) and bilinear rather than nearest-neighbour upsampling. At width 1 the network
has 42.2M parameters with ``global_size`` 224, 18.6M with 64.
"""

from __future__ import annotations

import logging

import numpy as np

from harness.resize import resize_l
from harness.train.keras_trainer import (
    BN_MOMENTUM,
    ABLoss,
    DenormalizeAB,
    KerasColorizer,
    NormalizeL,
    channels,
    conv_block,
    keras,
    layers,
)
from harness_plugins.iizuka import IizukaOptions

# (channels at width 1, stride): the paper's layers.
LOW_LEVEL = ((64, 2), (128, 1), (128, 2), (256, 1), (256, 2), (512, 1))
MID_LEVEL = (512, 256)
GLOBAL_CONV = ((512, 2), (512, 1), (512, 2), (512, 1))
GLOBAL_FC = (1024, 512, 256)  # the classifier branches off after the 512
CLASS_FC = 256
FUSION = 256
DECODER = ((128,), (64, 64), (32,))  # groups of convolutions, x2 upsampling between them

log = logging.getLogger(__name__)


@keras.saving.register_keras_serializable(package="harness")
class FuseGlobal(layers.Layer):
    """Tile a global vector over a feature map and concatenate:
    (B, h, w, C), (B, D) -> (B, h, w, C + D)."""

    def call(self, inputs):
        local, glob = inputs
        ops = keras.ops
        tiled = ops.ones_like(local[..., :1]) * ops.expand_dims(ops.expand_dims(glob, 1), 1)
        return ops.concatenate([local, tiled], axis=-1)


def dense_sizes(width: float) -> tuple[int, ...]:
    """Units of the global branch's three dense layers and the classifier's hidden one: the
    paper's, scaled by ``width`` below 1 only (they are not convolution channels)."""
    return tuple(channels(n, min(width, 1.0)) for n in (*GLOBAL_FC, CLASS_FC))


def build_iizuka_net(width: float = 1.0, global_size: int = 64, n_classes: int = 0):
    """L (B, H, W, 1) in [0, 100] -> ab (B, H, W, 2) = 220 sigmoid(.) - 110, H and W multiples
    of 8; with ``n_classes`` > 0 a dict ``{"ab": ab, "label": logits (B, n_classes)}``."""
    fc1024, fc512, fc256, class_fc = dense_sizes(width)
    L = keras.Input((None, None, 1), name="L")
    x = NormalizeL()(L)

    low_level = keras.Sequential(name="low_level")  # shared by the local and global paths
    for n, stride in LOW_LEVEL:
        low_level.add(layers.Conv2D(channels(n, width), 3, strides=stride, padding="same",
                                    use_bias=False))
        low_level.add(layers.BatchNormalization(momentum=BN_MOMENTUM))
        low_level.add(layers.ReLU())

    local = low_level(x)  # B x H/8 x W/8 x 512w
    for n in MID_LEVEL:
        local = conv_block(local, channels(n, width))  # B x H/8 x W/8 x 256w

    g = layers.Resizing(global_size, global_size, interpolation="bilinear")(x)
    g = low_level(g)  # B x S/8 x S/8 x 512w
    for n, stride in GLOBAL_CONV:
        g = conv_block(g, channels(n, width), strides=stride)  # B x S/32 x S/32 x 512w
    g = layers.Flatten()(g)
    g = layers.Dense(fc1024, activation="relu")(g)
    g512 = layers.Dense(fc512, activation="relu")(g)
    g = layers.Dense(fc256, activation="relu")(g512)  # B x 256

    x = FuseGlobal()([local, g])  # B x H/8 x W/8 x (256w + 256)
    x = conv_block(x, channels(FUSION, width), kernel=1)
    for i, group in enumerate(DECODER):
        if i:
            x = layers.UpSampling2D(2, interpolation="bilinear")(x)
        for n in group:
            x = conv_block(x, channels(n, width))
    x = layers.Conv2D(2, 3, padding="same", activation="sigmoid")(x)  # B x H/2 x W/2 x 2
    x = layers.UpSampling2D(2, interpolation="bilinear")(x)
    ab = DenormalizeAB(name="ab")(layers.Rescaling(2.0, offset=-1.0)(x))
    if not n_classes:
        return keras.Model(L, ab, name="iizuka")
    c = layers.Dense(class_fc, activation="relu")(g512)
    logits = layers.Dense(n_classes, name="label", dtype="float32")(c)
    return keras.Model(L, {"ab": ab, "label": logits}, name="iizuka")


class IizukaColorizer(KerasColorizer):
    """Global and local image priors fused; a joint classifier when classes are known."""

    Options = IizukaOptions
    options: IizukaOptions
    uses_labels = True

    def build_model(self, n_classes: int) -> keras.Model:
        o = self.options
        return build_iizuka_net(o.width, o.global_size, n_classes)

    def loss(self, n_classes: int):
        ab = ABLoss("mse", scale=0.5)  # [0, 1] units, the sigmoid's, as in the paper
        if not n_classes:
            return ab, None
        label = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        return {"ab": ab, "label": label}, {"ab": 1.0, "label": self.options.alpha}

    def fit(self, train, val, budget, ctx) -> None:
        if not train.has_labels:
            ctx.log.info("%s: the training set has no class labels; training without the "
                         "classification branch", ctx.model_dir.name)
        super().fit(train, val, budget, ctx)

    def extra_results(self, test) -> dict[str, float]:
        """``class_accuracy`` of the classification branch on ``test`` ({} without one)."""
        if not self.class_names or not test.has_labels:
            why = "the model has no classification branch (it was trained without labels)" \
                if not self.class_names else "the test images have no class labels"
            log.info("iizuka: no class accuracy: %s", why)
            return {}
        index = {name: i for i, name in enumerate(self.class_names)}
        ours = np.array([index.get(name, -1) for name in test.class_names])  # by class name
        hits = total = 0
        for L, _, labels in test.iter_batches(self.options.batch_size):
            truth = ours[labels]
            # At the training size, as the host's protocol gives L to predict; a new spatial
            # size would make Keras retrace with unknown sides, which UpSampling2D refuses.
            guess = self.outputs(resize_l(L, self.input_size or L.shape[1]))["label"].argmax(-1)
            hits += int((guess == truth)[truth >= 0].sum())
            total += int((truth >= 0).sum())
        return {"class_accuracy": hits / total} if total else {}
