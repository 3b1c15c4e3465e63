"""The texture objective: per-octave statistics, the texture loss, still and animation objectives.

Snelgrove (2017), with Gatys (2015) as ``octaves=1``: for the image x being
synthesised and its Gaussian pyramid x_o (o = 0 .. octaves-1),

    L(x) = sum_o sum_l w_l * d(G(F_l(x_o)), T_{o,l})

where F_l are VGG activations (NHWC), G the Gram matrix (``gatys``: F^T F / M
with d = sum (G - T)^2 / (4 N^2); ``snelgrove``: F^T F / (M N) with
d = sum (G - T)^2; M positions, N channels) and T_{o,l} the exemplars' Grams at
the same octave (joined across sources, times ``mul``: see :func:`targets`).

Padding: with ``padding="valid"`` (Snelgrove's default) the pyramid and the
VGG use no padding, so borders never enter the statistics. Otherwise the VGG
uses the padding named and the pyramid reflects (zero padding would darken
every octave's border). With ``tile=True`` the synthesised image uses circular
padding in both, so its statistics see no seam and the output tiles.

Objectives are hashable NamedTuples, so :mod:`jtex.optimize` compiles each
one once however often it is called.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jtex import animation, pyramid, stats, vgg
from jtex.config import SynthConfig
from jtex.errors import JtexError


class Spec(NamedTuple):
    """The static (hashable) part of the objective."""

    layers: tuple[str, ...]
    weights: tuple[float, ...]
    octaves: int
    gram: str
    vgg_padding: str
    pyr_padding: str
    pooling: str
    grey: bool = False  # every source is greyscale: synthesise a greyscale image


def exemplar_spec(cfg: SynthConfig) -> Spec:
    """How the exemplars are seen: the configured padding, a reflecting pyramid unless 'valid'."""
    layers = vgg.resolve_layers(cfg.layers)
    w = tuple(float(v) for v in cfg.layer_weights) if cfg.layer_weights else (1.0,) * len(layers)
    pyr = "valid" if cfg.padding == "valid" else ("circular" if cfg.padding == "circular" else "reflect")
    return Spec(layers, w, cfg.octaves, cfg.gram, cfg.padding, pyr, cfg.pooling)


def output_spec(cfg: SynthConfig) -> Spec:
    """How the synthesised image is seen: as the exemplars, or on a torus with ``tile``."""
    spec = exemplar_spec(cfg)
    if cfg.tile:
        return spec._replace(vgg_padding="circular", pyr_padding="circular")
    return spec


def grams(params, x, spec: Spec) -> list[list[jax.Array]]:
    """Grams of every (octave, layer) for images x (N, H, W, 3): ``[[(N, C, C)]]``."""
    out = []
    for level in pyramid.gaussian(x, spec.octaves, padding=spec.pyr_padding):
        feats = vgg.features(params, level, spec.layers, padding=spec.vgg_padding, pooling=spec.pooling)
        out.append([stats.gram(feats[name], norm=spec.gram) for name in spec.layers])
    return out


exemplar_grams = jax.jit(grams, static_argnames="spec")


def targets(params, sources: list[np.ndarray], cfg: SynthConfig, *, separate: bool):
    """Target Grams ``[[(S or 1, C, C)]]`` per octave and layer.

    Joined across sources (``cfg.join``) unless ``separate``; times ``cfg.mul``.
    """
    spec = exemplar_spec(cfg)
    # Sources of one size go through the network together, as one batch.
    by_shape: dict[tuple, list[int]] = {}
    for i, s in enumerate(sources):
        by_shape.setdefault(s.shape, []).append(i)
    per_source: list = [None] * len(sources)
    for idx in by_shape.values():
        g = exemplar_grams(params, jnp.stack([jnp.asarray(sources[i]) for i in idx]), spec)
        for j, i in enumerate(idx):
            per_source[i] = [[t[j : j + 1] for t in row] for row in g]
    out = []
    for o in range(spec.octaves):
        row = []
        for l in range(len(spec.layers)):
            stack = jnp.concatenate([g[o][l] for g in per_source])  # (S, C, C)
            if not separate:
                try:
                    stack = stats.join_grams(stack, cfg.join)[None]
                except ValueError as e:
                    raise JtexError(f"--join-mode {cfg.join}: {e}") from None
            row.append(stack * cfg.mul)
        out.append(row)
    return out


def texture_loss(x, targets, params, spec: Spec):
    """Per-image loss: x (N, H, W, 3) -> (N,); targets ``[[(C, C)]]`` or ``[[(N, C, C)]]``.

    With ``spec.grey`` the image is seen through its channel mean: a grey
    exemplar's Grams constrain colour only weakly, and left free the
    optimiser paints coloured patches into a grey texture.
    """
    if spec.grey:
        x = jnp.broadcast_to(jnp.mean(x, axis=-1, keepdims=True), x.shape)
    total = 0.0
    for o, per_layer in enumerate(grams(params, x, spec)):
        for l, g in enumerate(per_layer):
            total = total + spec.weights[l] * stats.gram_distance(g, targets[o][l], norm=spec.gram)
    return total


class StillObjective(NamedTuple):
    """Sum of the texture losses of F images (F, H, W, 3) -> ()."""

    spec: Spec

    def __call__(self, x, targets, params):
        return jnp.sum(texture_loss(x, targets, params, self.spec))


class AnimationObjective(NamedTuple):
    """Texture loss of every frame plus Snelgrove's inter-frame term (see :mod:`jtex.animation`).

    ``if_weight * F * mean_{t,k} ((d(x_t, x_{t+k mod F}) - D_k) / D_k)^2`` over
    k = 1..order, with D_k the exemplar's distance to itself shifted by
    k * if_shift pixels.
    """

    spec: Spec
    count: int
    order: int
    weight: float
    targets: tuple[float, ...]  # D_k for k = 1..order
    octaves: int
    kind: str
    padding: str

    def __call__(self, x, targets, params):
        texture = jnp.sum(texture_loss(x, targets, params, self.spec))
        d = animation.pair_distances(x, order=self.order, octaves=self.octaves, kind=self.kind, padding=self.padding)
        goal = jnp.asarray(self.targets, d.dtype)[:, None]
        return texture + self.weight * self.count * jnp.mean(((d - goal) / goal) ** 2)


def make(cfg: SynthConfig, spec: Spec, sources) -> StillObjective | AnimationObjective:
    """The per-batch-element loss ``fun(x (F, H, W, 3), targets, params) -> ()``.

    F = 1 for a still image; F = ``count`` frames for an animation.
    """
    if cfg.count == 1:
        return StillObjective(spec)
    ex_pad = "valid" if cfg.padding == "valid" else "reflect"
    return AnimationObjective(
        spec,
        cfg.count,
        cfg.if_order,
        cfg.if_weight,
        animation.shift_targets(cfg, sources, ex_pad),
        cfg.if_octaves,
        cfg.if_distance_type,
        "circular" if cfg.tile else ex_pad,
    )
