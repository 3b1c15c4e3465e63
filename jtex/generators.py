"""Ulyanov et al.'s multi-scale texture generator (Texture Networks, ICML 2016) as Flax modules.

The network of the authors' ``texture_nets_v1:models/pyramid.lua``: K scales
(default 6, pool ratios 2^(K-1) .. 1) of i.i.d. U[0, 1) noise, coarsest first.
Each scale's noise ``z_k`` (N, H / r_k, W / r_k, D) passes a block of convs
3x3 -> 3x3 -> 1x1 (``channels`` = 8 each), every conv followed by a
normalisation and LeakyReLU(0.01). The stream from the coarser scales is
upsampled x2 (nearest; ``upsample="bilinear"`` is jtex's option), both
streams are normalised and concatenated along channels (8 k channels at
scale k), and a block of that width follows. A final 1x1 conv gives 3
channels, with no output non-linearity.

Every conv pads circularly, so the network is a function on the torus and its
samples tile. With ``noise_depth=3``, ``channels=8`` and 6 scales it has 34
convolutions and 43 normalisations, as the released checkpoints do, and
116,915 parameters (the checkpoints count 116,755; the 160 apart were not
traced without the .t7 files).

Normalisation:

* ``"batch"`` (the paper's): batch statistics while training, running
  statistics (``batch_stats`` collection) at inference, so a sample never
  depends on the other samples of its batch. (The original code sampled with
  batch statistics, its outputs depended on the batch.)
* ``"instance"`` (Ulyanov et al. 2017, Improved Texture Networks): per sample
  and channel over space, the same in training and at inference.

Stylisation: ``content`` (N, H, W, 3) is average-pooled to every scale and
concatenated before that scale's noise (the v1 stylisation network's input).

Arrays are NHWC. The output is in "VGG pixel units" (``255 * image - 127.5``,
the frozen network's input space, like the original's preprocessed space):
see :func:`to_image`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn

from jtex.choices import NORMS, UPSAMPLES  # noqa: F401  (re-exported)

LEAK = 0.01  # Torch's default LeakyReLU slope, as in the released checkpoints


def to_image(out: jax.Array) -> jax.Array:
    """Generator output (VGG pixel units) -> RGB image units (0.5 at an output of 0), unclipped."""
    return 0.5 + out / 255.0


def circular_pad(x: jax.Array, p: int) -> jax.Array:
    """Wrap-around padding of ``p`` pixels on both spatial axes of (N, H, W, C)."""
    return jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), mode="wrap") if p else x


def upsample2(x: jax.Array, mode: str = "nearest") -> jax.Array:
    """x2 upsampling of (N, H, W, C) on the torus: ``nearest`` (the paper's) or ``bilinear``.

    ``bilinear`` puts output pixel 2i at 0.75 x[i] + 0.25 x[i - 1] and 2i + 1
    at 0.75 x[i] + 0.25 x[i + 1] on each axis (half-pixel centres, as
    ``jax.image.resize``'s "linear" in the interior), the neighbours taken
    with wrap-around, so the generator stays a function on the torus.
    """
    if mode == "nearest":
        return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
    if mode != "bilinear":
        raise ValueError(f"upsample must be one of {UPSAMPLES}, got {mode!r}")
    for axis in (1, 2):
        near = 0.75 * x
        pair = (near + 0.25 * jnp.roll(x, 1, axis), near + 0.25 * jnp.roll(x, -1, axis))
        shape = list(x.shape)
        shape[axis] *= 2
        x = jnp.stack(pair, axis + 1).reshape(shape)
    return x


class CircularConv(nn.Module):
    """A k x k convolution with wrap-around padding ("same" size), kernel (k, k, C_in, C_out) and bias."""

    features: int
    size: int = 3

    @nn.compact
    def __call__(self, x):
        k, c = self.size, x.shape[-1]
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (k, k, c, self.features))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        if k == 1:
            return jnp.einsum("nhwc,cd->nhwd", x, kernel[0, 0]) + bias
        p = circular_pad(x, (k - 1) // 2)
        y = jax.lax.conv_general_dilated(p, kernel, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return y + bias


class Norm(nn.Module):
    """Batch norm (running statistics at inference) or instance norm; eps 1e-5 as in Torch."""

    kind: str = "batch"
    momentum: float = 0.9  # Torch's momentum 0.1 in Flax's convention

    @nn.compact
    def __call__(self, x, train: bool):
        if self.kind == "batch":
            return nn.BatchNorm(use_running_average=not train, momentum=self.momentum, epsilon=1e-5)(x)
        return nn.InstanceNorm(epsilon=1e-5)(x)


class Block(nn.Module):
    """Convs (circular padding) of the given kernel sizes, each followed by normalisation and LeakyReLU."""

    features: int
    kernels: tuple[int, ...] = (3, 3, 1)
    norm: str = "batch"
    momentum: float = 0.9

    @nn.compact
    def __call__(self, x, train: bool):
        for k in self.kernels:
            x = CircularConv(self.features, k)(x)
            x = nn.leaky_relu(Norm(self.norm, self.momentum)(x, train), LEAK)
        return x


class PyramidGenerator(nn.Module):
    """noise (coarsest first) [+ content image] -> (N, H, W, 3) in VGG pixel units.

    Attributes:
      scales: K, the number of noise scales (pool ratios 2^(K-1) .. 1).
      channels: conv width per scale (the stream at scale k has ``channels * k``).
      kernels: kernel sizes of each block's convs ((3, 3, 1) in the texture
        model, (3, 3) in the released stylisation models).
      norm: ``"batch"`` or ``"instance"``.
      momentum: batch-norm running-average momentum (Flax convention).
      upsample: ``"nearest"`` (the paper's) or ``"bilinear"`` (:func:`upsample2`).
    """

    scales: int = 6
    channels: int = 8
    kernels: tuple[int, ...] = (3, 3, 1)
    norm: str = "batch"
    momentum: float = 0.9
    upsample: str = "nearest"

    @nn.compact
    def __call__(self, noise: list[jax.Array], content: jax.Array | None = None, *, train: bool = False):
        if len(noise) != self.scales:
            raise ValueError(f"expected {self.scales} noise arrays (coarsest first), got {len(noise)}")
        x = None
        for k, z in enumerate(noise):
            if content is not None:
                r = 2 ** (self.scales - 1 - k)
                c = nn.avg_pool(content, (r, r), (r, r)) if r > 1 else content
                z = jnp.concatenate([c, z], axis=-1)
            b = Block(self.channels, self.kernels, self.norm, self.momentum)(z, train)
            if x is None:
                x = b
            else:
                x = upsample2(x, self.upsample)
                x = Norm(self.norm, self.momentum)(x, train)
                b = Norm(self.norm, self.momentum)(b, train)
                x = Block(self.channels * (k + 1), self.kernels, self.norm, self.momentum)(
                    jnp.concatenate([x, b], axis=-1), train
                )
        return CircularConv(3, 1)(x)


def noise_shapes(scales: int, height: int, width: int, depth: int) -> list[tuple[int, int, int]]:
    """Per-sample noise shapes (H / r, W / r, depth), coarsest first; H and W multiples of 2^(scales-1)."""
    m = 2 ** (scales - 1)
    if height % m or width % m or height < m or width < m:
        raise ValueError(f"sizes must be positive multiples of {m} for {scales} scales, got {width}x{height}")
    return [(height // 2 ** (scales - 1 - k), width // 2 ** (scales - 1 - k), depth) for k in range(scales)]


def draw_noise(key: jax.Array, count: int, height: int, width: int, *, scales: int, depth: int) -> list[jax.Array]:
    """U[0, 1) noise for ``count`` samples; sample i draws from ``fold_in(key, i)`` alone.

    So the first n samples of a batch do not depend on how many follow.
    Returns one (count, H / r, W / r, depth) array per scale, coarsest first.
    """
    shapes = noise_shapes(scales, height, width, depth)

    def one(i):
        keys = jax.random.split(jax.random.fold_in(key, i), scales)
        return [jax.random.uniform(k, s, jnp.float32) for k, s in zip(keys, shapes)]

    return jax.vmap(one)(jnp.arange(count))
