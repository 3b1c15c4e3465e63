"""MGAN's generator (Li & Wand 2016): a decoder of frozen VGG-19 relu4_1 features into pixels, as a Flax module.

The authors' ``MGAN_wrapper.lua`` netG (arrays NHWC here): transposed convs
3x3 stride 1 (512 -> 512), 4x4 stride 2 (512 -> 256), 4x4 stride 2
(256 -> 128), each followed by BatchNorm and ReLU, then 4x4 stride 2
(128 -> 3) and tanh — relu4_1's 1/8 side back to the image's, RGB in
[-1, 1]. About 4.99 M parameters. Init as the authors' (conv N(0, 0.02), BN
scale N(1, 0.02)); no conv biases (their code zeroed them before every use).
Fully convolutional: an (N, h, w, 512) map gives an (N, 8h, 8w, 3) image.
``train=False`` uses BatchNorm's running statistics, so a sample does not
depend on the others of its batch (the authors never switched to inference
mode).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn

from jtex.discriminators import batch_norm, conv_init

WIDTHS = (512, 256, 128)  # the authors' nf = 64: 8 nf, 4 nf, 2 nf
ENCODER_LAYER = "relu4_1"  # the frozen encoder's output: VGG-19 layers 1-21
STRIDE = 8  # image side / relu4_1 side


class Decoder(nn.Module):
    """relu4_1 maps (N, h, w, C) -> images (N, 8h, 8w, 3) in [-1, 1] (tanh).

    Attributes:
      widths: channels after the 3x3 and the first two 4x4 transposed convs.
      momentum: BatchNorm running-average momentum (Flax convention; Torch's 0.1 is 0.9).
    """

    widths: tuple[int, ...] = WIDTHS
    momentum: float = 0.9

    @nn.compact
    def __call__(self, feats: jax.Array, *, train: bool = False) -> jax.Array:
        x = feats
        for i, width in enumerate(self.widths):
            k, s = ((3, 3), 1) if i == 0 else ((4, 4), 2)
            x = nn.ConvTranspose(width, k, strides=(s, s), padding="SAME", use_bias=False, kernel_init=conv_init())(x)
            x = nn.relu(batch_norm(train, self.momentum)(x))
        x = nn.ConvTranspose(3, (4, 4), strides=(2, 2), padding="SAME", use_bias=False, kernel_init=conv_init())(x)
        return jnp.tanh(x)


def parameter_count(variables) -> int:
    """Trainable parameters of a decoder's variables (the BatchNorm statistics not counted)."""
    return int(sum(a.size for a in jax.tree.leaves(variables["params"])))
