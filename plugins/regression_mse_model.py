"""regression-mse: an encoder-decoder regressing ab from L, the desaturated baseline.

Both seeds describe it: a per-pixel Euclidean loss in ab predicts the mean of the plausible
colours, so results come out greyish; the classification methods are measured against it.
"""

from __future__ import annotations

from harness.train.keras_trainer import (
    ABLoss,
    DenormalizeAB,
    KerasColorizer,
    NormalizeL,
    channels,
    conv_block,
    keras,
    layers,
)
from harness_plugins.regression_mse import RegressionOptions

# (channels at width 1, stride) of the encoder: three halvings, 1/8 of the input at the end.
ENCODER = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1))
DECODER = (256, 128, 64)  # each after a x2 bilinear upsampling


def build_regression_net(width: float = 1.0) -> keras.Model:
    """L (B, H, W, 1) in [0, 100] -> ab (B, H, W, 2) = 110 tanh(.); H, W multiples of 8."""
    L = keras.Input((None, None, 1), name="L")
    x = NormalizeL()(L)
    for n, stride in ENCODER:
        x = conv_block(x, channels(n, width), strides=stride)  # B x H/8 x W/8 x 512w at the end
    for n in DECODER:
        x = layers.UpSampling2D(2, interpolation="bilinear")(x)
        x = conv_block(x, channels(n, width))  # B x H x W x 64w after the third
    x = layers.Conv2D(2, 1, activation="tanh")(x)
    return keras.Model(L, DenormalizeAB(name="ab")(x), name="regression_mse")


class RegressionColorizer(KerasColorizer):
    """Encoder-decoder trained with mean squared (or Huber) error in ab."""

    Options = RegressionOptions
    options: RegressionOptions

    def build_model(self, n_classes: int) -> keras.Model:
        return build_regression_net(self.options.width)

    def loss(self, n_classes: int) -> tuple[ABLoss, None]:
        return ABLoss(self.options.loss, delta=self.options.huber_delta), None
