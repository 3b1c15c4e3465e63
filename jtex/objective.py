"""The texture objective: per-octave statistics, the texture loss, still and animation objectives.

Snelgrove (2017), with Gatys (2015) as ``octaves=1``: for the image x being
synthesised and its Gaussian pyramid x_o (o = 0 .. octaves-1),

    L(x) = sum_o sum_l sum_k w_l * v_k * d_k(F_l(x_o), T_{o,l,k})  (+ tv * TV(x))

where F_l are VGG activations (NHWC), d_k the distance of statistic k (the
Gram matrix by default: ``gatys``: F^T F / M with d = sum (G - T)^2 / (4 N^2);
``snelgrove``: F^T F / (M N) with d = sum (G - T)^2; M positions, N channels;
others in :mod:`jtex.losses`) and T_{o,l,k} the exemplars' statistics at the
same octave (joined across sources: see :func:`targets`). The weights w_l,
v_k, ``mul`` and tv are traced arrays (:func:`knobs`), so a sweep over them
compiles once.

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

from jtex import animation, losses, pyramid, stats, tiling, vgg
from jtex.choices import SWD_PROJECTIONS
from jtex.config import SynthConfig, layer_schedule
from jtex.errors import JtexError


class Spec(NamedTuple):
    """The static (hashable) part of the objective; weights are traced (:func:`knobs`)."""

    layers: tuple[str, ...]
    octaves: int
    gram: str
    vgg_padding: str
    pyr_padding: str
    pooling: str
    grey: bool = False  # every source is greyscale: synthesise a greyscale image
    kinds: tuple[str, ...] = ("gram",)  # statistics matched (jtex.losses), weighted by knobs["stat_w"]
    tv: bool = False  # a total-variation term, weighted by knobs["tv"]
    gram_tile: int = 0  # tile side for Grams of large levels (jtex.tiling); 0: whole
    dtype: str = "float32"  # the VGG's convolutions (jtex.vgg.features); Grams accumulate in float32
    swd_projections: int = SWD_PROJECTIONS  # sliced Wasserstein directions per channel (jtex.losses.distance)


def exemplar_spec(cfg: SynthConfig) -> Spec:
    """How the exemplars are seen: the configured padding, a reflecting pyramid unless 'valid'."""
    layers = vgg.resolve_layers(cfg.layers)
    pyr = "valid" if cfg.padding == "valid" else ("circular" if cfg.padding == "circular" else "reflect")
    kinds = tuple(k for k, _ in cfg.loss)
    return Spec(layers, cfg.octaves, cfg.gram, cfg.padding, pyr, cfg.pooling, kinds=kinds, tv=cfg.tv_weight > 0,
                gram_tile=cfg.gram_tile, dtype=cfg.compute_dtype, swd_projections=cfg.swd_projections)  # fmt: skip


def output_spec(cfg: SynthConfig) -> Spec:
    """How the synthesised image is seen: as the exemplars, or on a torus with ``tile``."""
    spec = exemplar_spec(cfg)
    if cfg.tile:
        return spec._replace(vgg_padding="circular", pyr_padding="circular")
    return spec


def layer_weights(cfg: SynthConfig) -> np.ndarray:
    """(L,) weights of the layers, from numbers or a schedule (:func:`jtex.config.layer_schedule`)."""
    return np.asarray(layer_schedule(cfg.layer_weights, len(cfg.layers)), np.float32)


def knobs(cfg: SynthConfig, kinds: tuple[str, ...] | None = None) -> dict:
    """The objective's traced settings of one synthesis: values a sweep may vary inside one program.

    ``layer_w`` (L,), ``stat_w`` (K,) over ``kinds`` (a statistic not in
    ``cfg.loss`` weighs 0), ``mul``, ``tv``, ``lr`` (Adam's) and ``seed``
    (of the sliced Wasserstein directions).
    """
    given = dict(cfg.loss)
    kinds = tuple(given) if kinds is None else kinds
    return {
        "layer_w": layer_weights(cfg),
        "stat_w": np.asarray([given.get(k, 0.0) for k in kinds], np.float32),
        "mul": np.float32(cfg.mul),
        "tv": np.float32(cfg.tv_weight),
        "lr": np.float32(cfg.lr),
        "seed": np.int32(cfg.seed),
    }


def _features(params, level, spec: Spec) -> dict:
    """The maps of spec.layers; in spec.dtype, float32 for every statistic but the Gram (which accumulates
    bfloat16 products in float32 itself)."""
    dtype = None if spec.dtype == "float32" else spec.dtype
    feats = vgg.features(params, level, spec.layers, padding=spec.vgg_padding, pooling=spec.pooling, dtype=dtype)
    if dtype is None or spec.kinds == ("gram",):
        return feats
    return {n: f.astype(jnp.float32) for n, f in feats.items()}


def _tiled(spec: Spec, level) -> bool:
    return tiling.applies(spec.kinds, spec.vgg_padding, spec.gram_tile, level.shape[-3], level.shape[-2])


def _tiled_grams(params, level, spec: Spec):
    lead = level.shape[:-3]
    flat = level.reshape((-1,) + level.shape[-3:])
    gs = tiling.grams(
        params, flat, spec.layers, norm=spec.gram, pooling=spec.pooling, core=spec.gram_tile, dtype=spec.dtype
    )
    return [g.reshape(lead + g.shape[-2:]) for g in gs]


def summaries(params, x, spec: Spec) -> list[list[dict]]:
    """Every statistic of every (octave, layer) for images x (S, H, W, 3): ``[[{kind: {...}}]]``."""
    out = []
    key = jax.random.key(0)  # swd's subsample of positions: fixed, so targets do not depend on the seed
    for o, level in enumerate(pyramid.gaussian(x, spec.octaves, padding=spec.pyr_padding)):
        if _tiled(spec, level):
            out.append([{"gram": {"gram": g}} for g in _tiled_grams(params, level, spec)])
            continue
        feats = _features(params, level, spec)
        out.append(
            [
                {
                    k: losses.summary(k, feats[n], norm=spec.gram, key=jax.random.fold_in(key, 16 * o + l))
                    for k in spec.kinds
                }
                for l, n in enumerate(spec.layers)
            ]
        )
    return out


exemplar_summaries = jax.jit(summaries, static_argnames="spec")


def targets(params, sources: list[np.ndarray], cfg: SynthConfig, *, separate: bool):
    """Target statistics ``[[{kind: {name: (S or 1, ...)}}]]`` per octave and layer.

    Joined across sources (``cfg.join`` for Grams) unless ``separate``. Not
    multiplied by ``cfg.mul``: the loss applies it (``knobs["mul"]``).
    """
    spec = exemplar_spec(cfg)
    # Sources of one size go through the network together, as one batch.
    by_shape: dict[tuple, list[int]] = {}
    for i, s in enumerate(sources):
        by_shape.setdefault(s.shape, []).append(i)
    per_source: list = [None] * len(sources)
    for idx in by_shape.values():
        g = exemplar_summaries(params, jnp.stack([jnp.asarray(sources[i]) for i in idx]), spec)
        for j, i in enumerate(idx):
            per_source[i] = jax.tree.map(lambda t: t[j : j + 1], g)
    stacked = jax.tree.map(lambda *t: jnp.concatenate(t), *per_source)  # leading axis S
    if separate:
        return stacked
    key = jax.random.key(1)
    out = []
    for o, row in enumerate(stacked):
        joined = []
        for l, by_kind in enumerate(row):
            try:
                joined.append(
                    {
                        k: losses.join(k, v, mode=cfg.join, key=jax.random.fold_in(key, 16 * o + l))
                        for k, v in by_kind.items()
                    }
                )
            except ValueError as e:
                raise JtexError(f"--join-mode {cfg.join}: {e}") from None
        out.append(joined)
    return out


def total_variation(x) -> jax.Array:
    """Mean absolute difference of neighbouring pixels, per image: x (..., H, W, 3) -> (...)."""
    dy = jnp.mean(jnp.abs(x[..., 1:, :, :] - x[..., :-1, :, :]), axis=(-3, -2, -1))
    dx = jnp.mean(jnp.abs(x[..., :, 1:, :] - x[..., :, :-1, :]), axis=(-3, -2, -1))
    return dx + dy


def texture_loss(x, targets, params, spec: Spec, knobs: dict | None = None):
    """Per-image loss: x (N, H, W, 3) -> (N,); targets ``[[{kind: {...}}]]`` (shared or with leading N).

    ``knobs`` as :func:`knobs` (unbatched; default: every weight and ``mul``
    1, no TV); the sliced Wasserstein directions come from ``knobs["seed"]``,
    the same at every iteration. With ``spec.grey`` the image is seen
    through its channel mean: a grey exemplar's statistics constrain colour
    only weakly, and left free the optimiser paints coloured patches into a
    grey texture.
    """
    if knobs is None:
        knobs = {"layer_w": jnp.ones(len(spec.layers)), "stat_w": jnp.ones(len(spec.kinds)), "mul": 1.0, "tv": 0.0,
                 "seed": 0}  # fmt: skip
    tv_x = x
    if spec.grey:
        x = jnp.broadcast_to(jnp.mean(x, axis=-1, keepdims=True), x.shape)
    # One set of directions for the whole run: redrawn every iteration (Heitz et al.), the loss changes under
    # the line search, and L-BFGS-B stopped after 26 of 200 iterations, device L-BFGS after 40 (128² brick).
    key = jax.random.key(knobs["seed"]) if "swd" in spec.kinds else None
    total = 0.0
    for o, level in enumerate(pyramid.gaussian(x, spec.octaves, padding=spec.pyr_padding)):
        if _tiled(spec, level):
            for l, g in enumerate(_tiled_grams(params, level, spec)):
                d = stats.gram_distance(g, knobs["mul"] * targets[o][l]["gram"]["gram"], norm=spec.gram)
                total = total + (knobs["layer_w"][l] * knobs["stat_w"][0]) * d
            continue
        feats = _features(params, level, spec)
        for l, name in enumerate(spec.layers):
            for k, kind in enumerate(spec.kinds):
                sub = None if key is None else jax.random.fold_in(key, 64 * o + l)
                d = losses.distance(kind, feats[name], targets[o][l][kind], norm=spec.gram, mul=knobs["mul"], key=sub,
                                    projections=spec.swd_projections)  # fmt: skip
                total = total + (knobs["layer_w"][l] * knobs["stat_w"][k]) * d
    if spec.tv:
        total = total + knobs["tv"] * total_variation(tv_x)
    return total


class StillObjective(NamedTuple):
    """Sum of the texture losses of F images (F, H, W, 3) -> ()."""

    spec: Spec

    def __call__(self, x, batched, shared):
        return jnp.sum(texture_loss(x, batched["t"], shared["vgg"], self.spec, batched["k"]))


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

    def __call__(self, x, batched, shared):
        texture = jnp.sum(texture_loss(x, batched["t"], shared["vgg"], self.spec, batched["k"]))
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
