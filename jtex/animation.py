"""Looping texture animations: Snelgrove's inter-frame loss.

``count`` frames x_0 .. x_{F-1} are synthesised jointly. Each matches the
exemplar's multi-scale Grams, and frame t is tied to frames t+1 .. t+order,
cyclically (frame F-1 leads back to frame 0, so the animation loops):

    L = sum_t L_texture(x_t)
        + if_weight * F * mean_{t, k} ((d(x_t, x_{(t+k) mod F}) - D_k) / D_k)^2

The objective itself is :class:`jtex.objective.AnimationObjective`; this
module holds what animations add: frame distances, their targets, outputs.

d is a distance between two frames over their first ``if_octaves`` octaves:

* ``l2``: root-mean-square difference, averaged over the Gaussian octaves;
* ``lap1``: mean absolute difference of Laplacian-pyramid levels, level i
  (1-based) scaled by 2^-(i-1).

D_k is the distance the *exemplar* shows between itself and a copy shifted by
k x ``if_shift`` pixels (linear interpolation between whole-pixel shifts for
a fractional one; the mean of a horizontal and a vertical shift): frames move
apart as the texture would if slid by ``if_shift`` px per frame, and D_1 is
the target of consecutive frames. We shift by k x if_shift rather than
multiplying D_1 by k: distances between shifted copies saturate within a few
pixels (brick: D(5) = 0.114, D(10) = 0.126, two unrelated samples 0.144), so
k D_1 would ask frames two steps apart to differ more than unrelated images
can, and the optimiser would make them anti-correlated. The deviation is
taken relative to its target and squared, which keeps the term
dimensionless: the same ``if_weight`` works whatever the Gram normalisation
or the exemplar's contrast.

Reference: X. Snelgrove, "High-Resolution Multi-Scale Neural Texture
Synthesis", SIGGRAPH Asia 2017, and its code's inter-frame options
(``--if-weight``, ``--if-shift``, ``--if-order``, ``--if-distance-type``,
``--if-octaves``).
"""

from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp
import numpy as np

from jtex import figures, image, pyramid
from jtex.config import SynthConfig


def frame_distance(a, b, *, octaves: int, kind: str, padding: str):
    """Distance between images a, b (..., H, W, 3) over their first ``octaves`` octaves."""
    if kind == "l2":
        pa = pyramid.gaussian(a, octaves, padding=padding)
        pb = pyramid.gaussian(b, octaves, padding=padding)
        return sum(jnp.sqrt(jnp.mean((x - y) ** 2, axis=(-3, -2, -1)) + 1e-12) for x, y in zip(pa, pb)) / octaves
    pad = "reflect" if padding == "valid" else padding  # a Laplacian pyramid needs a padded mode
    pa = pyramid.laplacian(a, octaves, padding=pad)
    pb = pyramid.laplacian(b, octaves, padding=pad)
    return sum(2.0**-i * jnp.mean(jnp.abs(x - y), axis=(-3, -2, -1)) for i, (x, y) in enumerate(zip(pa, pb)))


def exemplar_shift_distance(src: np.ndarray, shift: float, *, octaves: int, kind: str, padding: str) -> float:
    """D(shift): the distance between the exemplar and itself shifted by ``shift`` px."""

    def whole(n: int) -> float:
        if n == 0:
            return 0.0
        h, w = src.shape[:2]
        dx = frame_distance(src[None, :, n:], src[None, :, : w - n], octaves=octaves, kind=kind, padding=padding)
        dy = frame_distance(src[None, n:], src[None, : h - n], octaves=octaves, kind=kind, padding=padding)
        return float((dx[0] + dy[0]) / 2)

    lo = int(np.floor(shift))
    frac = shift - lo
    d = whole(lo)
    return d if frac == 0 else (1 - frac) * d + frac * whole(lo + 1)


def shift_targets(cfg: SynthConfig, sources, padding: str) -> tuple[float, ...]:
    """D_k for k = 1..if_order: the exemplars' mean distance to themselves shifted by k * if_shift."""
    return tuple(
        float(
            np.mean(
                [
                    exemplar_shift_distance(
                        s, k * cfg.if_shift, octaves=cfg.if_octaves, kind=cfg.if_distance_type, padding=padding
                    )
                    for s in sources
                ]
            )
        )
        for k in range(1, cfg.if_order + 1)
    )


def pair_distances(x, *, order, octaves, kind, padding):
    """(order, F): distance from frame t to frame (t + k) mod F, k = 1..order."""
    return jnp.stack(
        [
            frame_distance(x, jnp.roll(x, -k, axis=0), octaves=octaves, kind=kind, padding=padding)
            for k in range(1, order + 1)
        ]
    )


def save_outputs(path: Path, frames: np.ndarray, cfg: SynthConfig):
    """frame_000.png ..., animation.gif and animation.webp, looping forever at cfg.fps."""
    for i, f in enumerate(frames):
        image.save(path / f"frame_{i:03d}.png", f)
    figures.save_animation(path / "animation.gif", list(frames), fps=cfg.fps)
    figures.save_animation(path / "animation.webp", list(frames), fps=cfg.fps)
