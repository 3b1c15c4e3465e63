"""Gaussian textures of feature maps: spot noise (ADSN: Galerne, Gousseau & Morel 2011, *Random Phase Textures*)
in VGG feature space, the default noise of MGAN's ``wct`` models.

    s = spots(maps)                                # maps: the exemplar copies' relu4_1 maps, each (h_k, w_k, C)
    f = field(s, key, 64, 64)                      # (64, 64, C) on the 64 x 64 torus

Each map less its mean, divided by the square root of its area, is a kernel t_k; the field is
``mean + sum_k t_k (*) W_k / sqrt(K)`` with W_k white Gaussian noise and (*) circular convolution on the
field's grid. The field is a stationary Gaussian whose auto- and cross-covariances at every lag, between
every pair of channels, are the maps' (averaged over them): where things go and how they look at relu4_1's
receptive field and beyond, up to the map's size, drawn from the exemplar itself, not from a noise image
through the encoder. It is periodic on its grid, so a texture decoded from it tiles; a map larger than the
grid is cut to it first. No encoder pass: generating a texture costs the decoder only.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class Spots(NamedTuple):
    """The exemplar's feature maps, each (h_k, w_k, C) float32, and their common mean (C,)."""

    maps: tuple
    mean: np.ndarray


def spots(maps) -> Spots:
    """:class:`Spots` of feature maps (each (h, w, C), C alike).

    Raises:
        ValueError: no map, channels that differ, or a value that is not finite.
    """
    maps = tuple(np.asarray(m, np.float32) for m in maps)
    if not maps or len({m.shape[-1] for m in maps}) != 1 or any(m.ndim != 3 for m in maps):
        raise ValueError("spot noise needs one or more (h, w, C) feature maps with the same C")
    if not all(np.isfinite(m).all() for m in maps):
        raise ValueError("spot noise needs finite feature maps")
    total = sum(m.shape[0] * m.shape[1] for m in maps)
    mean = sum(m.sum(axis=(0, 1), dtype=np.float64) for m in maps) / total
    return Spots(maps, mean.astype(np.float32))


def field(s: Spots, key: jax.Array, h: int, w: int) -> jax.Array:
    """One field (h, w, C) float32 drawn from ``key``; jittable with ``h``, ``w`` static."""
    keys = jax.random.split(key, len(s.maps))
    acc = 0.0
    for k, m in zip(keys, s.maps):
        m = jnp.asarray(m)[:h, :w]  # a map larger than the grid is cut to it
        t = (m - m.mean(axis=(0, 1))) / np.sqrt(m.shape[0] * m.shape[1])
        noise = jax.random.normal(k, (h, w), jnp.float32)
        acc = acc + jnp.fft.rfft2(t, s=(h, w), axes=(0, 1)) * jnp.fft.rfft2(noise)[..., None]
    out = jnp.fft.irfft2(acc, s=(h, w), axes=(0, 1)) / np.sqrt(len(s.maps))
    return out.astype(jnp.float32) + jnp.asarray(s.mean)
