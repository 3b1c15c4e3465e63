"""Start images for a synthesis: low-amplitude noise around the exemplar's colour, or a given image.

Why low amplitude: L-BFGS moves a pixel only as far as the Gram loss asks it
to, and Grams after pooling barely see per-pixel grain; noise of sigma 0.1
(in [0, 1] units) survives as grain several times stronger than the
exemplar's. Snelgrove's start was even fainter (about 0.004). See
``init_scale`` in :class:`jtex.config.SynthConfig` and the measurements in
the README.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from jtex import pyramid


def noise(key, n: int, h: int, w: int, mean, *, mode: str = "noise", scale: float = 0.01, colour=None) -> jax.Array:
    """Start images (n, h, w, 3): noise around the exemplar's mean colour.

    ``noise``: mean + scale * N(0, 1) per pixel (Snelgrove: noise shifted near
    the mean colour; starting from black leaves dark borders), mixed across
    channels by ``colour`` ((n, 3, 3) from :func:`jtex.colour.colour_mixing`; default
    independent channels).
    ``symmetric``: Snelgrove's variant, noise mirrored in x and y and blurred
    with the symmetric 5-tap Burt-Adelson kernel (so it stays mirrored),
    rescaled to the same standard deviation.
    Image i uses ``fold_in(key, i)``, so it does not depend on n.
    """
    mean = jnp.broadcast_to(jnp.asarray(mean, jnp.float32), (n, 3))
    colour = jnp.broadcast_to(jnp.eye(3) if colour is None else jnp.asarray(colour, jnp.float32), (n, 3, 3))
    return _noise(key, jnp.arange(n), mean, colour, jnp.float32(scale), h=h, w=w, mode=mode)


@functools.partial(jax.jit, static_argnames=("h", "w", "mode"))
def _noise(key, index, mean, colour, scale, *, h: int, w: int, mode: str):
    """One start image per index (one compiled program, cached across runs)."""

    def one(i, m, c):
        k = jax.random.fold_in(key, i)
        if mode == "symmetric":
            q = jax.random.normal(k, ((h + 1) // 2, (w + 1) // 2, 3))
            q = jnp.concatenate([q, q[::-1]], axis=0)[:h]
            q = jnp.concatenate([q, q[:, ::-1]], axis=1)[:, :w]
            q = _blur(q)
            q = q / (jnp.std(q) + 1e-8)
        else:
            q = jax.random.normal(k, (h, w, 3))
        return jnp.clip(m + scale * q @ c.T, 0.0, 1.0)

    return jax.vmap(one)(index, mean, colour)


def _blur(q: jax.Array) -> jax.Array:
    """(h, w, 3) -> same size, blurred by the 5-tap kernel along both axes, reflecting at the edges."""
    taps = pyramid.kernel_1d()
    for axis in (0, 1):
        n = q.shape[axis]
        padded = jnp.pad(q, [(2, 2) if a == axis else (0, 0) for a in range(3)], mode="reflect")
        q = sum(float(t) * jax.lax.slice_in_dim(padded, j, j + n, axis=axis) for j, t in enumerate(taps))
    return q
