"""Grams of very large images, tile by tile: the activations of a 4096² image are never all alive.

A Gram is a sum over positions, ``G = sum_p f_p f_pᵀ / M``, so it can be
accumulated over spatial tiles. With 'valid' padding (Snelgrove's default)
every feature position depends only on a window of the input, so each tile is
cut from the image with a halo -- the receptive field beyond its core -- and
the features of its core are exactly those of the whole image: nothing changes
at the seams (``tests/test_tiling.py`` compares losses and gradients). Tile
starts are multiples of the deepest layer's stride (2 per pooling before it),
so tile position ``k`` of layer ``l`` is global position ``start / s_l + k``;
each tile keeps ``core / s_l`` positions per side of each layer, masked where
they fall past the image's own map.

The tiles run in a ``lax.scan`` whose body is rematerialised
(``jax.checkpoint``): backpropagation keeps only the Gram accumulators and the
image, and recomputes one tile's activations at a time. Peak memory is then
set by one tile (``core + halo`` px per side) and the image-sized buffers of
the pyramid, not by the image's VGG activations.

Only Gram statistics with 'valid' padding are tiled; other statistics and
paddings are computed whole (:func:`applies`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jtex import stats, vgg

DEFAULT_CORE = 1024  # px per tile side; a level is tiled when a side exceeds 2 * core (2048² and up)


class Tiles(NamedTuple):
    core: tuple[int, int]  # input px per tile core (rows, columns)
    halo: int  # input px added past the core (receptive field)
    ny: int
    nx: int
    strides: tuple[int, ...]  # per layer: input px per position
    sizes: tuple[tuple[int, int], ...]  # per layer: (h, w) of the whole image's map


def applies(kinds, padding: str, core: int, h: int, w: int) -> bool:
    """Whether a level of h x w px is computed in tiles."""
    return core > 0 and tuple(kinds) == ("gram",) and padding == "valid" and max(h, w) > 2 * core


def _stride(layer: str, arch: str) -> int:
    seq = vgg.layer_sequence(arch)
    return 2 ** sum(1 for n in seq[: seq.index(layer) + 1] if n.startswith("pool"))


def plan(h: int, w: int, layers, core: int, arch: str = "vgg19") -> Tiles:
    """The tiles of an h x w level for ``layers`` (names): as few as cores of at most ``core`` px allow, their
    cores evened out (multiples of the deepest stride) so the last tile is not mostly padding."""
    strides = tuple(_stride(n, arch) for n in layers)
    step = max(strides)
    sizes = tuple(vgg.output_size(h, w, n, "valid") for n in layers)
    cores, counts = [], []
    for axis in (0, 1):
        extent = max(sz[axis] * s for sz, s in zip(sizes, strides))  # input px whose positions must be covered
        n = max(1, math.ceil(extent / core))
        c = -(-math.ceil(extent / n) // step) * step
        cores.append(c)
        counts.append(max(math.ceil(sz[axis] * s / c) for sz, s in zip(sizes, strides)))
    big = max(cores)
    halo = 0
    while any(vgg.output_size(big + halo, big + halo, n, "valid")[0] < big // s for n, s in zip(layers, strides)):
        halo += step
    return Tiles((cores[0], cores[1]), halo, counts[0], counts[1], strides, sizes)


def grams(
    params, x, layers, *, norm: str, pooling: str, core: int = DEFAULT_CORE, dtype: str = "float32"
) -> list[jax.Array]:
    """Grams (N, C, C) of each layer of images x (N, H, W, 3), 'valid' padding, accumulated over tiles.

    Equal to ``stats.gram(vgg.features(params, x, layers, padding="valid"), norm=norm)``
    up to float summation order; differentiable in x with one tile's activations alive at a time.
    ``dtype`` is the convolutions' (:func:`jtex.vgg.features`); the Grams accumulate in float32.
    """
    stats._check_norm(norm)
    names = vgg.resolve_layers(layers, vgg.arch_of(params))
    t = plan(x.shape[1], x.shape[2], names, core, vgg.arch_of(params))
    (kh, kw), n = t.core, x.shape[0]
    side_h, side_w = t.ny * kh + t.halo, t.nx * kw + t.halo
    xp = jnp.pad(x, ((0, 0), (0, max(0, side_h - x.shape[1])), (0, max(0, side_w - x.shape[2])), (0, 0)))

    def body(acc, i):
        ty, tx = i // t.nx, i % t.nx
        tile = jax.lax.dynamic_slice(xp, (0, ty * kh, tx * kw, 0), (n, kh + t.halo, kw + t.halo, x.shape[3]))
        feats = vgg.features(params, tile, names, padding="valid", pooling=pooling, dtype=dtype)
        out = []
        for a, name, s, (sh, sw) in zip(acc, names, t.strides, t.sizes):
            ch, cw = kh // s, kw // s
            f = feats[name][:, :ch, :cw]
            rows = (ty * ch + jnp.arange(ch)) < sh
            cols = (tx * cw + jnp.arange(cw)) < sw
            f = f * (rows[:, None] & cols[None, :]).astype(f.dtype)[None, :, :, None]
            f = f.reshape(n, ch * cw, f.shape[-1])
            out.append(a + jnp.einsum("nmc,nmd->ncd", f, f, precision=jax.lax.Precision.HIGHEST,
                                      preferred_element_type=a.dtype))  # fmt: skip
        return tuple(out), None

    arch = vgg.arch_of(params)
    acc_dtype = jnp.promote_types(x.dtype, jnp.float32)
    zeros = tuple(jnp.zeros((n, vgg.channels(m, arch), vgg.channels(m, arch)), acc_dtype) for m in names)
    acc, _ = jax.lax.scan(jax.checkpoint(body, prevent_cse=False), zeros, jnp.arange(t.ny * t.nx))
    out = []
    for g, name, (sh, sw) in zip(acc, names, t.sizes):
        m, c = sh * sw, g.shape[-1]
        out.append(g / m if norm == "gatys" else g / (m * c) if norm == "snelgrove" else g)
    return out
