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

    g = swap(f, s)                                 # the field's 3 x 3 windows swapped for the exemplar's

:func:`swap` (MGAN's default ``swap`` noise) keeps the Gaussian field's layout and replaces what it draws
locally by the exemplar's own relu4_1 windows: a Gaussian field has the right covariances but not the
exemplar's shapes, which the decoder then renders as blurred, smaller versions.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

SWAP_WINDOW = 3  # cells a side of the windows swapped (Chen & Schmidt's 3 x 3)
SWAP_ROUNDS = 2  # swaps in a row: the second takes the first's averaged overlaps back to the exemplar's windows
SWAP_DIMS = 128  # the match's channels: relu4_1's 512 projected on their 128 leading directions (97-99% of
# the energy on three exemplars; the same window as the full match at 94-97% of the cells), 4x less work
SWAP_BANK = 4096  # at most this many exemplar windows (a larger map is strided): the match is (cells x windows)


class Spots(NamedTuple):
    """The exemplar's feature maps, each (h_k, w_k, C) float32, their common mean (C,), and the (C, d) leading
    eigenvectors of their uncentred second moment (:func:`swap` matches windows in that subspace)."""

    maps: tuple
    mean: np.ndarray
    basis: np.ndarray


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
    second = sum(m.reshape(-1, m.shape[-1]).T.astype(np.float64) @ m.reshape(-1, m.shape[-1]) for m in maps)
    _, vectors = np.linalg.eigh(second)
    basis = vectors[:, ::-1][:, : min(SWAP_DIMS, second.shape[0])]
    return Spots(maps, mean.astype(np.float32), np.ascontiguousarray(basis, np.float32))


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


def windows(m: jax.Array, k: int) -> jax.Array:
    """The k x k windows of a map (h, w, C) on its torus: (h, w, k, k, C), the window at (i, j) starting at
    cell (i, j)."""
    h, w, _ = m.shape
    g = jnp.pad(m, ((0, k - 1), (0, k - 1), (0, 0)), mode="wrap")
    return jnp.stack([jnp.stack([g[a : a + h, b : b + w] for b in range(k)], 2) for a in range(k)], 2)


def swap_window(s: Spots) -> int:
    """The swap's window side for these maps: :data:`SWAP_WINDOW`, less where a map is smaller."""
    return max(1, min(SWAP_WINDOW, *(min(m.shape[:2]) for m in s.maps)))


def bank(s: Spots, k: int | None = None) -> jax.Array:
    """The maps' k x k windows (P, k, k, C), k = :func:`swap_window` unless given, each map's window corners
    strided to share :data:`SWAP_BANK` between them (only the kept windows are gathered)."""
    k, out = k or swap_window(s), []
    for m in s.maps:
        hh, ww = m.shape[0] - k + 1, m.shape[1] - k + 1
        step = int(np.ceil(np.sqrt(hh * ww * len(s.maps) / SWAP_BANK)))
        m = jnp.asarray(m)
        rows = [jnp.stack([m[a : a + hh : step, b : b + ww : step] for b in range(k)], 2) for a in range(k)]
        out.append(jnp.stack(rows, 2).reshape(-1, k, k, m.shape[-1]))
    return jnp.concatenate(out)


def swap(f: jax.Array, s: Spots, rounds: int = SWAP_ROUNDS) -> jax.Array:
    """A field (h, w, C) style-swapped to the exemplar's windows (Chen & Schmidt 2016, *Fast Patch-based Style
    Transfer of Arbitrary Style*), on the torus: every k x k window of the field is replaced by the exemplar's
    window of highest normalised cross-correlation with it (both projected on ``s.basis``), and each cell
    becomes the mean of the k² windows that cover it; ``rounds`` times. Where things go stays the field's;
    what they look like, up to k cells, becomes the exemplar's own. Jittable; periodic in, periodic out."""
    match = matcher(s)
    for _ in range(rounds):
        f = place(match(f))
    return f


def place(pick: jax.Array) -> jax.Array:
    """Windows (h, w, k, k, C), the one at (i, j) starting at cell (i, j) of the torus, put back on it:
    each cell the mean of the k² windows that cover it, (h, w, C)."""
    k = pick.shape[2]
    return sum(jnp.roll(pick[:, :, a, q], (a, q), axis=(0, 1)) for a in range(k) for q in range(k)) / (k * k)


def matcher(s: Spots, k: int | None = None):
    """``f (h, w, C) -> (h, w, k, k, C)``: for each k x k window of the torus (the window at (i, j) starts at
    cell (i, j)), the exemplar's window of highest normalised cross-correlation with it, both projected on
    ``s.basis`` to match (k: :func:`swap_window` unless given). Jittable."""
    b = bank(s, k)
    k = b.shape[1]
    basis = jnp.asarray(s.basis)
    norm = jnp.linalg.norm(b.reshape(len(b), -1), axis=1, keepdims=True) + 1e-12
    unit = (b @ basis).reshape(len(b), -1) / norm

    def match(f):
        h, w, c = f.shape
        score = windows(f @ basis, k).reshape(h * w, -1) @ unit.T
        return b[jnp.argmax(score, axis=1)].reshape(h, w, k, k, c)

    return match


def window_loss(s: Spots):
    """CNNMRF's term (Li & Wand 2016, *Combining Markov Random Fields and CNNs*), on the torus:
    ``f (h, w, C) -> ()`` the mean squared difference between each k x k window of ``f`` and its match
    (:func:`matcher`; the match is a constant for the gradient). Jittable and differentiable."""
    match, k = matcher(s), swap_window(s)

    def loss(f):
        want = jax.lax.stop_gradient(match(jax.lax.stop_gradient(f)))
        return jnp.mean((windows(f, k) - want) ** 2)

    return loss
