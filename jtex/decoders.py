"""MGAN's generator (Li & Wand 2016): a decoder of frozen VGG-19 relu4_1 features into pixels, as a Flax module.

The authors' ``MGAN_wrapper.lua`` netG (arrays NHWC here): transposed convs
3x3 stride 1 (512 -> 512), 4x4 stride 2 (512 -> 256), 4x4 stride 2
(256 -> 128), each followed by BatchNorm and ReLU, then 4x4 stride 2
(128 -> 3) and tanh — relu4_1's 1/8 side back to the image's, RGB in
[-1, 1]. About 4.99 M parameters. Init as the authors' (conv N(0, 0.02), BN
scale N(1, 0.02)); no conv biases (their code zeroed them before every use).
Fully convolutional: an (N, h, w, 512) map gives an (N, 8h, 8w, 3) image.
``upsample="resize"`` replaces each 4x4 transposed conv by a nearest x2
upsampling then a 3x3 conv (Odena et al. 2016's resize-convolution): every
output pixel then sums the same number of kernel taps, so a constant input
stays constant — no 2-px checkerboard for training to undo.
``train=False`` uses BatchNorm's running statistics, so a sample does not
depend on the others of its batch (the authors never switched to inference
mode).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from jtex.discriminators import batch_norm, conv_init

WIDTHS = (512, 256, 128)  # the authors' nf = 64: 8 nf, 4 nf, 2 nf
ENCODER_LAYER = "relu4_1"  # the frozen encoder's output: VGG-19 layers 1-21
STRIDE = 8  # image side / relu4_1 side


_DN = ("NHWC", "HWIO", "NHWC")
_TAPS = ((3, 1), (2, 0))  # output phase a: the kernel rows that meet input rows (m - 1, m) [a = 0] or (m, m + 1)


def up2(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """Torch's ``ConvTranspose2d(kernel_size=4, stride=2, padding=1)`` of (N, h, w, I) by (4, 4, I, O): (N, 2h, 2w, O).

    Written as its four output phases, each a 2x2 convolution of the input,
    computed as one 2x2 convolution with the four phases' kernels side by side
    (4 O outputs) and interleaved: the same numbers as ``lax.conv_transpose``
    (tested), but XLA:CPU runs the gradients of plain convolutions about 10x
    faster than those of a transposed one (5.9 s against 0.6 s for the
    decoder's forward and backward pass at batch 4, 128²), and one convolution
    of 4 O channels faster than four of O (the 128 -> 3 output layer at 256²:
    14 ms against 89 ms).
    """
    n, h, w, _ = x.shape
    o = kernel.shape[-1]
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    taps = [kernel[np.array(_TAPS[a])][:, np.array(_TAPS[b])] for a in (0, 1) for b in (0, 1)]
    y = jax.lax.conv_general_dilated(xp, jnp.concatenate(taps, -1), (1, 1), "VALID", dimension_numbers=_DN)
    # phase (a, b) is y[a : a + h, b : b + w] of its channel group (N, h + 1, w + 1, 4 O)
    rows = [jnp.stack([y[:, a : a + h, b : b + w, (2 * a + b) * o : (2 * a + b + 1) * o] for b in (0, 1)], 3)
            for a in (0, 1)]  # fmt: skip
    return jnp.stack(rows, 2).reshape(n, 2 * h, 2 * w, o)  # (N, h, 2, w, 2, O) interleaved


# Nearest x2 then a 3x3 conv, per axis, is a 4x4 stride-2 transposed conv whose taps t' sum the 3x3 taps
# (2 - t', 3 - t'): K = M k Mᵀ on both axes.
_RESIZE = np.array([[0, 0, 1], [0, 1, 1], [1, 1, 0], [1, 0, 0]], np.float32)


def resize_up2(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """Nearest x2 upsampling of (N, h, w, I), then a 3x3 'same' conv by (3, 3, I, O): (N, 2h, 2w, O).

    Computed as :func:`up2` of the equivalent 4x4 kernel (the same numbers as
    ``jnp.repeat`` + ``lax.conv``, tested) at the transposed conv's cost, not
    the 2.25x of convolving the upsampled map.
    """
    m = jnp.asarray(_RESIZE, kernel.dtype)
    return up2(x, jnp.einsum("ta,abio,sb->tsio", m, kernel, m))


class Up2(nn.Module):
    """A 4x4 stride-2 transposed convolution without bias (:func:`up2`), kernel init N(0, 0.02)."""

    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param("kernel", conv_init(), (4, 4, x.shape[-1], self.features))
        return up2(x, kernel)


class ResizeUp2(nn.Module):
    """Nearest x2 upsampling then a 3x3 convolution without bias (:func:`resize_up2`), kernel init N(0, 0.02)."""

    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param("kernel", conv_init(), (3, 3, x.shape[-1], self.features))
        return resize_up2(x, kernel)


UPSAMPLERS = {"transposed": Up2, "resize": ResizeUp2}


class Decoder(nn.Module):
    """relu4_1 maps (N, h, w, C) -> images (N, 8h, 8w, 3) in [-1, 1] (tanh).

    Attributes:
      widths: channels after the 3x3 and the first two 4x4 transposed convs.
      momentum: BatchNorm running-average momentum (Flax convention; Torch's 0.1 is 0.9).
      upsample: ``transposed`` (the authors' 4x4 stride-2 transposed convs) or ``resize``
        (nearest x2 + 3x3 conv).
    """

    widths: tuple[int, ...] = WIDTHS
    momentum: float = 0.9
    upsample: str = "transposed"

    @nn.compact
    def __call__(self, feats: jax.Array, *, train: bool = False) -> jax.Array:
        # A 3x3 stride-1 transposed conv with padding 1 is a 3x3 conv (kernel flipped): written as one.
        x = nn.Conv(self.widths[0], (3, 3), padding=1, use_bias=False, kernel_init=conv_init())(feats)
        x = nn.relu(batch_norm(train, self.momentum)(x))
        up = UPSAMPLERS[self.upsample]
        for width in self.widths[1:]:
            x = nn.relu(batch_norm(train, self.momentum)(up(width)(x)))
        return jnp.tanh(up(3)(x))


def parameter_count(variables) -> int:
    """Trainable parameters of a decoder's variables (the BatchNorm statistics not counted)."""
    return int(sum(a.size for a in jax.tree.leaves(variables["params"])))
