"""Li & Wand's (2016) Markovian patch discriminators on VGG-19 relu3_1 maps, as Flax modules, and their loss.

Both classify *neural patches* — windows of the frozen VGG-19's relu3_1 map
(256 channels, 1/4 of the image's side) — as real (from the exemplar) or
fake (from the image being made), with a max-margin (hinge) criterion.
Arrays are NHWC. As in the authors' code (``chuanli11/MGANs``):

* :class:`PatchDiscriminator`, the MDAN form (``MDAN_wrapper.lua``): 8x8
  patches (cut by :func:`extract_patches`, stride 4) each pass
  LeakyReLU(0.2), conv 3x3 (256 -> 256, zero padding inside the patch),
  BatchNorm, LeakyReLU(0.2) and a conv 8x8 (256 -> 1) that gives one score.
* :class:`ConvDiscriminator`, the MGAN form (``MGAN_wrapper.lua``): fully
  convolutional over a whole map, LeakyReLU(0.2), conv 4x4 stride 2 pad 1
  (256 -> 256), BN, LeakyReLU(0.2), conv 4x4 stride 2 pad 1 (256 -> 512), BN,
  LeakyReLU(0.2), conv 1x1 (512 -> 1): a score map at 1/4 of the feature
  map's side (8x8 for a 128² image), each score seeing 10x10 relu3_1 cells.
  :func:`mask_ring` then hides the map's outer ring from the loss.

Initialisation is the authors' ``weights_init``: conv kernels N(0, 0.02), BN
scale N(1, 0.02), BN offset 0. Their code zeroes every conv bias before
each use, so the convolutions here have none. BatchNorm (eps 1e-5, Torch's
momentum 0.1) uses the batch's statistics when ``train=True`` and its
running statistics (``batch_stats``) otherwise — so in inference mode a
patch's score does not depend on the other patches of its batch (the
authors never switched their networks to inference mode).

:func:`hinge_loss` is Torch's ``nn.MarginCriterion(1)``: ``mean(max(0, 1 - y s))``
with labels y = +1 (real) and -1 (fake); no sigmoid.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

LEAK = 0.2
REAL, FAKE = 1.0, -1.0


def conv_init():
    """The authors' conv init: N(0, 0.02)."""
    return nn.initializers.normal(0.02)


def _bn_scale_init(key, shape, dtype=jnp.float32):
    return 1.0 + 0.02 * jax.random.normal(key, shape, dtype)


def batch_norm(train: bool, momentum: float):
    """Torch-like BatchNorm (eps 1e-5) with the authors' init: scale N(1, 0.02), offset 0."""
    return nn.BatchNorm(use_running_average=not train, momentum=momentum, epsilon=1e-5, scale_init=_bn_scale_init)


class PatchDiscriminator(nn.Module):
    """MDAN's D: neural patches (P, size, size, C) -> one score per patch (P,).

    Attributes:
      features: width of the 3x3 conv (the authors': the patches' 256 channels).
      size: the patch side in feature cells (8); the last conv is size x size.
      momentum: BatchNorm running-average momentum (Flax convention; Torch's 0.1 is 0.9).
    """

    features: int = 256
    size: int = 8
    momentum: float = 0.9

    @nn.compact
    def __call__(self, patches: jax.Array, *, train: bool = False) -> jax.Array:
        if patches.shape[1:3] != (self.size, self.size):
            raise ValueError(f"patches must be (P, {self.size}, {self.size}, C), got {patches.shape}")
        x = nn.leaky_relu(patches, LEAK)
        x = nn.Conv(self.features, (3, 3), padding=1, use_bias=False, kernel_init=conv_init())(x)
        x = nn.leaky_relu(batch_norm(train, self.momentum)(x), LEAK)
        x = nn.Conv(1, (self.size, self.size), padding="VALID", use_bias=False, kernel_init=conv_init())(x)
        return x.reshape(x.shape[0])


class ConvDiscriminator(nn.Module):
    """MGAN's D: feature maps (N, h, w, C) -> score maps (N, h / 4, w / 4); h and w multiples of 4.

    Attributes:
      features: width of the first strided conv; the second has twice as many (256, 512).
      momentum: BatchNorm running-average momentum (Flax convention).
    """

    features: int = 256
    momentum: float = 0.9

    @nn.compact
    def __call__(self, feats: jax.Array, *, train: bool = False) -> jax.Array:
        x = nn.leaky_relu(feats, LEAK)
        for width in (self.features, 2 * self.features):
            x = nn.Conv(width, (4, 4), strides=2, padding=1, use_bias=False, kernel_init=conv_init())(x)
            x = nn.leaky_relu(batch_norm(train, self.momentum)(x), LEAK)
        x = nn.Conv(1, (1, 1), use_bias=False, kernel_init=conv_init())(x)
        return x[..., 0]


def hinge_loss(scores: jax.Array, label: float) -> jax.Array:
    """``mean(max(0, 1 - label * scores))`` over every score (Torch's ``nn.MarginCriterion(1)``)."""
    return jnp.mean(jax.nn.relu(1.0 - label * scores))


def mask_ring(scores: jax.Array, label: float, border: int = 1) -> jax.Array:
    """Score maps (N, h, w) with the outer ``border`` ring set to ``label`` (MGAN's ``netS_flag_mask``).

    A score equal to its label gives :func:`hinge_loss` zero and no gradient,
    so only the inner (h - 2 border) x (w - 2 border) positions train D and
    the image; they still count in the mean, as in the authors' code (for an
    8x8 map the loss is the inner 36 positions' sum over 64).
    """
    h, w = scores.shape[-2:]
    inner = np.zeros((h, w), bool)
    inner[border : h - border, border : w - border] = True
    return jnp.where(inner, scores, jnp.asarray(label, scores.dtype))


def patch_grid(length: int, size: int = 8, stride: int = 4) -> np.ndarray:
    """Start positions of patches along one axis: every ``stride``, plus the last one flush with the end.

    The authors' ``computegrid(..., flag_all=1)``: no cell is left out.
    """
    if length < size:
        raise ValueError(f"a map of {length} cells is smaller than a {size}-cell patch")
    starts = list(range(0, length - size + 1, stride))
    if starts[-1] != length - size:
        starts.append(length - size)
    return np.asarray(starts)


def overlap_counts(h: int, w: int, size: int = 8, stride: int = 4) -> np.ndarray:
    """(h, w): how many patches of :func:`extract_patches` cover each cell."""
    count = np.zeros((h, w), np.float32)
    for y in patch_grid(h, size, stride):
        for x in patch_grid(w, size, stride):
            count[y : y + size, x : x + size] += 1
    return count


@jax.custom_vjp
def _average_overlaps(feats, count):
    return feats


_average_overlaps.defvjp(lambda f, c: (f, c), lambda c, g: (g / c[None, :, :, None], None))


def extract_patches(feats: jax.Array, size: int = 8, stride: int = 4, *, average_overlaps: bool = False) -> jax.Array:
    """All ``size`` x ``size`` patches of (N, h, w, C) maps on :func:`patch_grid`: (N * P, size, size, C).

    Patches run row by row within a map, maps one after another. With
    ``average_overlaps`` the gradient a cell receives is the mean over the
    patches that hold it rather than their sum (MDAN's ``cdiv`` by the overlap
    count), so border cells, held by fewer patches, are not starved; the
    patches' values are the same.
    """
    n, h, w, c = feats.shape
    ys, xs = patch_grid(h, size, stride), patch_grid(w, size, stride)
    if average_overlaps:
        feats = _average_overlaps(feats, jnp.asarray(overlap_counts(h, w, size, stride)))
    rows = ys[:, None] + np.arange(size)  # (ny, size)
    cols = xs[:, None] + np.arange(size)  # (nx, size)
    p = feats[:, rows][:, :, :, cols]  # (N, ny, size, nx, size, C)
    return p.transpose(0, 1, 3, 2, 4, 5).reshape(n * len(ys) * len(xs), size, size, c)
