"""Deep-feature distributions of images under a fixed network, and their distances.

The machinery under :mod:`jtex.metrics`: images area-averaged by a scale go
through a network as trained (max pooling, 'same' padding); each layer's
positions are a sample of a distribution, summarised by its projections on
fixed random directions, sorted (for the sliced Wasserstein distance of Heitz
et al. 2021), its spread and its Gram matrix. Computed in numpy after the
network: its sort is far faster than XLA:CPU's at these sizes.
"""

from __future__ import annotations

import functools

import numpy as np

from jtex.errors import JtexError

NETWORKS = {"vgg16": "vgg16", "vgg19": "vgg19-normalized"}  # --network -> weights source
# The last ReLU of blocks 1-4: maps at 1, 1/2, 1/4 and 1/8 of the input's side.
LAYERS = {"vgg16": ("relu1_2", "relu2_2", "relu3_3", "relu4_3"), "vgg19": ("relu1_2", "relu2_2", "relu3_4", "relu4_4")}
MIN_MAP = 8  # a layer counts where its map is at least this many positions on each side (64 in all)
PROJECTIONS = 128
MAX_QUANTILES = 65536  # maps with more positions are compared through this many quantiles


def layers_at(side: int, scale: int, network: str = "vgg16") -> tuple[str, ...]:
    """The layers measured at ``scale`` when the shortest side of the images compared is ``side`` px.

    With 'same' padding the map of block k (0-based) is ``side // scale // 2^k``
    positions across; a layer counts when that is at least :data:`MIN_MAP`, so
    deeper layers drop out first (a 96 px image keeps relu1 and relu2 at scale
    1/4: 24 and 12 positions; a scale under 8 px keeps none).
    """
    s = side // scale
    return tuple(name for k, name in enumerate(network_layers(network)) if s >> k >= MIN_MAP)


def network_layers(network: str) -> tuple[str, ...]:
    if network not in NETWORKS:
        raise JtexError(f"network {network!r}: choose one of {', '.join(NETWORKS)}")
    return LAYERS[network]


@functools.cache
def _network(network: str):
    """(params on the device, jitted features): loaded once; jit compiles once per (layers, shape)."""
    import jax

    from jtex import vgg, weights

    network_layers(network)
    params, _ = weights.resolve(NETWORKS[network])

    def features(params, x, layers):  # as trained: max pooling; 'same' padding keeps every position
        return vgg.features(params, x, layers, pooling="max")

    return jax.device_put(params), jax.jit(features, static_argnames=("layers",))


@functools.cache
def _directions(network: str, layer: str, key: int, c: int, projections: int) -> np.ndarray:
    """(C, P) unit directions: those ``stats.sliced_wasserstein`` draws from ``fold_in(key(key), layer index)``."""
    import jax

    k = jax.random.fold_in(jax.random.key(key), network_layers(network).index(layer))
    d = np.asarray(jax.random.normal(k, (c, projections), np.float32))
    return d / np.linalg.norm(d, axis=0, keepdims=True)


def _quantiles(s: np.ndarray, m: int) -> np.ndarray:
    """Sorted (..., M) -> the m mid-point quantiles, linearly interpolated (as ``stats._resample_sorted``)."""
    mt = s.shape[-1]
    if mt == m:
        return s
    pos = np.clip((np.arange(m) + 0.5) / m * mt - 0.5, 0.0, mt - 1.0)
    lo = np.floor(pos).astype(np.int64)
    frac = (pos - lo).astype(np.float32)
    return s[..., lo] * (1 - frac) + s[..., np.minimum(lo + 1, mt - 1)] * frac


def _sorted_projections(f: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    """(P, m): the (M, C) features projected on each direction, sorted, as m = min(M, MAX_QUANTILES) quantiles.

    In numpy: its sort is ~100x faster than XLA:CPU's on these sizes (26 s for
    a 512² relu1_2 map and 128 directions); 32 directions at a time bound memory.
    """
    out = np.empty((dirs.shape[1], min(len(f), MAX_QUANTILES)), np.float32)
    for j in range(0, dirs.shape[1], 32):
        out[j : j + 32] = _quantiles(np.sort(dirs[:, j : j + 32].T @ f.T, axis=-1), out.shape[1])
    return out


def layer_stats(f, network: str, layer: str, key: int, projections: int) -> tuple:
    """(sorted projections, spread, Gram) of one (1, h, w, C) map; spread = tr Cov / C, the variance along an
    average unit direction; Gram = Fᵀ F / M."""
    f = np.asarray(f, np.float32).reshape(-1, f.shape[-1])
    sp = _sorted_projections(f, _directions(network, layer, key, f.shape[1], projections))
    return sp, float(np.mean(np.var(f, axis=0, dtype=np.float64))), (f.T @ f).astype(np.float64) / len(f)


def _downsample(img: np.ndarray, s: int) -> np.ndarray:
    """Area average over s x s blocks (the last rows and columns that do not fill a block are dropped)."""
    if s == 1:
        return img
    h, w = img.shape[0] // s * s, img.shape[1] // s * s
    return img[:h, :w].reshape(h // s, s, w // s, s, 3).mean(axis=(1, 3))


def features(img: np.ndarray, network: str, scale: int, layers: tuple[str, ...]) -> dict:
    params, f = _network(network)
    return f(params, _downsample(img, scale)[None], layers=layers)


class Ref:
    """An exemplar with its per-layer statistics, computed once per (scale, layers, key, projections)."""

    def __init__(self, img: np.ndarray, network: str):
        self.img, self.network, self._cache = img, network, {}

    def stats(self, scale: int, layers: tuple[str, ...], key: int, projections: int, fe: dict | None = None) -> dict:
        """Per-layer :func:`layer_stats`; ``fe``: the exemplar's :func:`features` there, if the caller has them."""
        k = (scale, layers, key, projections)
        if k not in self._cache:
            fe = features(self.img, self.network, scale, layers) if fe is None else fe
            self._cache[k] = {n: layer_stats(fe[n], self.network, n, key, projections) for n in layers}
        return self._cache[k]


def compare(pairs: list) -> tuple:
    """(SWD over the reference's spread, relative Gram distance), means over (stats, reference stats) pairs."""
    if not pairs:
        return None, None
    swd = [
        np.mean((sx - _quantiles(se, sx.shape[1])) ** 2) / max(spread, 1e-12) for (sx, _, _), (se, spread, _) in pairs
    ]
    rel = [np.sum((gx - ge) ** 2) / max(np.sum(ge**2), 1e-30) for (_, _, gx), (_, _, ge) in pairs]
    return float(np.mean(swd)), float(np.mean(rel))


def per_scale(pairs_at, side: int, scales, network: str) -> dict:
    """``swd_s<s>`` for each scale and ``gram`` (scale 1) from ``pairs_at(scale, layers)`` (see :func:`compare`)."""
    out = {}
    for s in sorted(set(scales) | {1}):
        layers = layers_at(side, s, network)
        d, g = compare(pairs_at(s, layers) if layers else [])
        if s in scales:
            out[f"swd_s{s}"] = d
        if s == 1:
            out["gram"] = g
    return out
