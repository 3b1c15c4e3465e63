"""The whitening and colouring transform of VGG features (Li et al., NeurIPS 2017, *Universal Style Transfer via
Feature Transforms*), for MGAN's ``method="wct"``.

    s = exemplar_stats(feature_maps(vgg_params, copies))    # the exemplar's relu4_1 mean and covariance root
    f = vgg.features(vgg_params, noise, ("relu4_1",))["relu4_1"]
    g = transform(f, s.mean, s.colour)                # each map whitened, then given the exemplar's statistics

A decoder that has learnt to invert relu4_1 on the exemplar (pixels back from their features) turns ``g``
into a texture: the noise decides where things go, the exemplar's second-order feature statistics what they
look like. Each map is transformed with its own statistics only, so a sample never depends on its batch.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

EPS = 1e-3  # ridge on a map's covariance before whitening, as a fraction of its mean eigenvalue
FLOOR = 1e-6  # absolute ridge: a constant map (zero covariance) whitens to zero, not to NaN


class Stats(NamedTuple):
    """Feature statistics to colour with: the mean (C,) and the covariance's symmetric square root (C, C)."""

    mean: np.ndarray
    colour: np.ndarray


def stats(features) -> Stats:
    """The mean and covariance root of feature vectors (..., C), in float64 then float32.

    Raises:
        ValueError: fewer than two vectors, or a value that is not finite.
    """
    x = np.asarray(features, np.float64)
    x = x.reshape(-1, x.shape[-1])
    if len(x) < 2 or not np.isfinite(x).all():
        raise ValueError(f"feature statistics need two or more finite vectors, got {len(x)}")
    mean = x.mean(axis=0)
    cov = np.cov(x, rowvar=False)
    w, e = np.linalg.eigh(cov)
    colour = (e * np.sqrt(np.clip(w, 0.0, None))) @ e.T
    return Stats(mean.astype(np.float32), colour.astype(np.float32))


def feature_maps(vgg_params, copies, layer: str = "relu4_1", pooling: str = "max") -> list[np.ndarray]:
    """The ``layer`` map (h, w, C) of every image in ``copies`` (each (H, W, 3) in [0, 1])."""
    from jtex.patchbank import map_fn

    run = map_fn(layer, pooling)
    return [np.asarray(run(vgg_params, jnp.asarray(c, jnp.float32)[None]))[0] for c in copies]


def exemplar_stats(maps) -> Stats:
    """:func:`stats` over every position of every map in ``maps`` (each (h, w, C))."""
    return stats(np.concatenate([m.reshape(-1, m.shape[-1]) for m in maps]))


def transform(feats: jax.Array, mean: jax.Array, colour: jax.Array, eps: float = EPS) -> jax.Array:
    """One map (h, w, C) whitened by its own covariance (plus ``eps`` x its mean eigenvalue), then coloured.

    The result has ``mean`` and, up to the ridge, the covariance ``colour @ colour``. Jittable; vmap it
    over a batch.
    """
    h, w, c = feats.shape
    x = feats.reshape(h * w, c).astype(jnp.float32)
    xc = x - x.mean(axis=0)
    cov = xc.T @ xc / max(1, h * w - 1)
    cov = cov + (eps * jnp.trace(cov) / c + FLOOR) * jnp.eye(c, dtype=cov.dtype)
    lam, e = jnp.linalg.eigh(cov)
    white = (e * jax.lax.rsqrt(lam)) @ e.T
    return (xc @ (white @ colour) + mean).reshape(h, w, c)
