"""The exemplar's real neural patches for a Markovian discriminator: augmented copies, their maps, seeded draws.

As MDAN's data preparation (``MDAN_wrapper.lua``, ``lib/helper.lua``): the
exemplar, and its mirror image, are rotated by -10, 0 and +10 degrees (each
rotation cropped to the largest upright rectangle that holds no corner
filled in) and scaled by 1.1^-1, 1 and 1.1 — 18 copies, made once
(bilinear, ``scipy.ndimage``). Every copy goes through the frozen VGG once;
its relu3_1 map is kept, and a patch is a ``size`` x ``size`` window of one
map at a position of :func:`jtex.discriminators.patch_grid` (every 4 cells,
the last flush with the edge). The authors kept every patch itself; keeping
the maps and the positions holds 4x less memory and draws the same patches.

:class:`PatchBank` is a pytree of arrays, so a jitted step takes it as an
argument (not as a constant baked into the program) and draws from it with
the step's key.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np

from jtex.discriminators import patch_grid

ROTATIONS = (-10.0, 0.0, 10.0)  # degrees (the authors' pi / 18 steps)
SCALES = (1 / 1.1, 1.0, 1.1)
ORIGINAL = ROTATIONS.index(0.0) * len(SCALES) + SCALES.index(1.0)  # the unchanged exemplar among augmented_copies


def inscribed_size(w: int, h: int, degrees: float) -> tuple[int, int]:
    """The largest upright rectangle (w', h') inside a w x h rectangle rotated by ``degrees``, centred."""
    a = math.radians(abs(degrees))
    if a == 0:
        return w, h
    s, c = math.sin(a), math.cos(a)
    long, short = max(w, h), min(w, h)
    if short <= 2 * s * c * long:  # thin: the rectangle touches two sides only
        x = 0.5 * short
        wr, hr = (x / s, x / c) if w >= h else (x / c, x / s)
    else:
        c2 = c * c - s * s
        wr, hr = (w * c - h * s) / c2, (h * c - w * s) / c2
    return max(1, int(wr) - 2), max(1, int(hr) - 2)  # 1 px in from each side: no blend with the fill


def augmented_copies(image: np.ndarray, *, flip: bool = True) -> list[np.ndarray]:
    """The exemplar (H, W, 3) in [0, 1] rotated, scaled and mirrored: 18 copies (9 without ``flip``)."""
    from scipy import ndimage

    out = []
    for img in (image, image[:, ::-1]) if flip else (image,):
        h, w = img.shape[:2]
        for deg in ROTATIONS:
            r = ndimage.rotate(img, deg, axes=(1, 0), reshape=False, order=1, mode="constant") if deg else img
            cw, ch = inscribed_size(w, h, deg)
            top, left = (h - ch) // 2, (w - cw) // 2
            r = r[top : top + ch, left : left + cw]
            for s in SCALES:
                z = ndimage.zoom(r, (s, s, 1), order=1, mode="nearest") if s != 1.0 else r
                out.append(np.clip(z, 0.0, 1.0).astype(np.float32))
    return out


def crops(copies: list[np.ndarray], size: int, per_copy: int, seed: int, *, side: int | None = None) -> np.ndarray:
    """``per_copy`` seeded random square crops of every copy wide enough: (K, S, S, 3), S = ``side`` or ``size``.

    ``side`` (at least ``size``) is lowered to the smallest copy's shorter side where that is still ``size``
    or more; copies shorter than ``size`` are left out.

    Raises:
        ValueError: no copy is ``size`` px on its shorter side.
    """
    wide = [c for c in copies if min(c.shape[:2]) >= size]
    if not wide:
        longest = max(min(c.shape[:2]) for c in copies)
        raise ValueError(f"the exemplar's copies are at most {longest} px on their shorter side, under {size}")
    s = min([side or size] + [min(c.shape[:2]) for c in wide])
    rng = np.random.default_rng([seed, 17])
    out = []
    for c in wide:
        for _ in range(per_copy):
            top, left = rng.integers(0, c.shape[0] - s + 1), rng.integers(0, c.shape[1] - s + 1)
            out.append(c[top : top + s, left : left + s])
    return np.stack(out).astype(np.float32)


class PatchBank(NamedTuple):
    """Maps (K, H, W, C) (each copy's relu3_1 map, zero-padded to the largest), positions (M, 3) = (copy, y, x)."""

    maps: np.ndarray
    positions: np.ndarray

    @property
    def count(self) -> int:
        return int(self.positions.shape[0])

    def sample(self, key, n: int, size: int):
        """``n`` patches (n, size, size, C) drawn uniformly with replacement (jittable)."""
        import jax
        import jax.numpy as jnp

        pos = jnp.asarray(self.positions)[jax.random.randint(key, (n,), 0, self.positions.shape[0])]
        c = self.maps.shape[-1]

        def one(p):
            return jax.lax.dynamic_slice(self.maps, (p[0], p[1], p[2], 0), (1, size, size, c))[0]

        return jax.vmap(one)(pos)

    def patch(self, i: int, size: int) -> np.ndarray:
        """Patch ``i`` of :attr:`positions`, (size, size, C), on the host."""
        k, y, x = (int(v) for v in self.positions[i])
        return np.asarray(self.maps[k, y : y + size, x : x + size])


@functools.lru_cache(maxsize=8)
def map_fn(layer: str, pooling: str):
    """Jitted ``(vgg_params, images) -> layer map``, shared by every run (one compilation per image size)."""
    import jax

    from jtex import vgg

    return jax.jit(lambda params, x: vgg.features(params, x, (layer,), pooling=pooling)[layer])


def build(vgg_params, copies: list[np.ndarray], layer: str, size: int = 8, stride: int = 4, pooling: str = "avg"):
    """A :class:`PatchBank`: each copy's ``layer`` map ('same' padding) and every patch position in it."""
    run = map_fn(layer, pooling)
    maps = [np.asarray(run(vgg_params, c[None]))[0] for c in copies]
    maps = [m for m in maps if min(m.shape[:2]) >= size]
    if not maps:
        raise ValueError(f"no copy of the exemplar has a {layer} map of {size} cells or more")
    hm, wm = max(m.shape[0] for m in maps), max(m.shape[1] for m in maps)
    padded = np.zeros((len(maps), hm, wm, maps[0].shape[-1]), np.float32)
    positions = []
    for k, m in enumerate(maps):
        padded[k, : m.shape[0], : m.shape[1]] = m
        ys, xs = patch_grid(m.shape[0], size, stride), patch_grid(m.shape[1], size, stride)
        positions += [(k, y, x) for y in ys for x in xs]
    return PatchBank(padded, np.asarray(positions, np.int32))
