"""MGAN at use: a trained decoder's textures from noise and its stylised photos (:mod:`jtex.mgan` trains and loads).

    model = jtex.mgan.load("runs/gravel-mgan")
    imgs = generate(model, jax.random.key(0), (4, 512, 512))     # a wct model: swapped spot noise, tiling
    imgs = generate(model, jax.random.key(0), (4, 512, 512), noise="perlin")
    out = stylize(model, photo)

How a noise field becomes a texture depends on the model's method and the noise kind:

* ``spot``: a Gaussian relu4_1 field with the exemplar's relu4_1 auto-covariances (:mod:`jtex.spotnoise`),
  wrapped by :data:`SPOT_PAD` cells a side, decoded, the wrap cropped: no encoder pass, and the texture tiles.
* ``swap`` (a ``wct`` model's default): the same field, its 3 x 3 windows first swapped twice for the
  exemplar's relu4_1 windows of best correlation (:func:`jtex.spotnoise.swap`, on the torus: it still tiles).
* ``perlin`` / ``brown`` with a ``wct`` model: the noise image (:data:`MARGIN` px larger a side) through the
  VGG to relu4_1, whitened and coloured to the exemplar's relu4_1 (:mod:`jtex.wct`), decoded, the margin
  cropped. A ``mdan`` model decodes the noise image's relu4_1 as it is.

A ``wct`` model's outputs then take the exemplar's colour histogram (:func:`jtex.colour.match_exemplar`).
BatchNorm runs in inference mode, so a sample never depends on the others of its batch.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jtex.decoders import ENCODER_LAYER, STRIDE, Decoder
from jtex.errors import JtexError
from jtex.mdan import to_unit
from jtex.mgan_config import SPOT, SWAP, MGANConfig

MARGIN = 16  # px a wct model decodes beyond each side of an encoded image, then crops: the zero-padding frame
SPOT_PAD = 2  # relu4_1 cells of a periodic field wrapped onto each side: the decoder's reach, so outputs tile
SPOT_TRIM = 1  # relu4_1 cells cut from each side of the exemplar's map: VGG's zero-padding frame
CHUNK = 4  # spot textures decoded per call


class MGAN(NamedTuple):
    """A trained decoder: its settings, its variables (inference BatchNorm statistics) and the encoder's VGG.

    A ``wct`` model also carries the exemplar's relu4_1 statistics (:class:`jtex.wct.Stats`), its relu4_1
    map as spot-noise kernels (:class:`jtex.spotnoise.Spots`) and the exemplar (H, W, 3) whose colour
    histogram its outputs are given.
    """

    config: MGANConfig
    variables: dict
    vgg_params: dict
    stats: Any = None
    exemplar: np.ndarray | None = None
    spots: Any = None


def wct_model(cfg: MGANConfig, variables: dict, vgg_params, exemplar: np.ndarray) -> MGAN:
    """A ``wct`` MGAN: the exemplar's relu4_1 statistics over its augmented copies and its spot kernels."""
    from jtex import patchbank, spotnoise, wct

    maps = wct.feature_maps(vgg_params, patchbank.augmented_copies(exemplar), ENCODER_LAYER, cfg.pooling)
    m = maps[patchbank.ORIGINAL]
    t = SPOT_TRIM if min(m.shape[:2]) > 2 * SPOT_TRIM + 1 else 0
    spots = spotnoise.spots([m[t : m.shape[0] - t, t : m.shape[1] - t]])
    return MGAN(cfg, variables, vgg_params, wct.exemplar_stats(maps), exemplar, spots)


@functools.partial(jax.jit, static_argnames=("pooling", "upsample"))
def _decode_jit(variables, vgg_params, images, pooling, upsample, stats=None):
    from jtex import vgg, wct

    enc = vgg.features(vgg_params, images, (ENCODER_LAYER,), pooling=pooling)[ENCODER_LAYER]
    if stats is not None:
        enc = jax.vmap(wct.transform, in_axes=(0, None, None))(enc, stats.mean, stats.colour)
    return jnp.clip(to_unit(Decoder(upsample=upsample).apply(variables, enc, train=False)), 0.0, 1.0)


def decode(variables, vgg_params, images, cfg: MGANConfig, stats=None) -> np.ndarray:
    """Images (N, H, W, 3) in [0, 1] (sides multiples of 8) through encoder (its relu4_1 transformed to ``stats``
    when given) and decoder: (N, H, W, 3) in [0, 1]."""
    x = jnp.asarray(images, jnp.float32)
    return np.asarray(_decode_jit(variables, vgg_params, x, cfg.pooling, cfg.decoder, stats))


def wrapped_field(spots, key, h: int, w: int, swapped: bool = False) -> jax.Array:
    """A spot-noise field on the (h, w) relu4_1 grid (``swapped``: put through :func:`jtex.spotnoise.swap`), wrapped
    :data:`SPOT_PAD` cells onto each side: the decoder's input for one texture (jittable; decode it and crop
    ``SPOT_PAD * STRIDE`` px a side)."""
    from jtex import spotnoise

    f = spotnoise.field(spots, key, h, w)
    f = spotnoise.swap(f, spots) if swapped else f
    return jnp.pad(f, ((SPOT_PAD, SPOT_PAD), (SPOT_PAD, SPOT_PAD), (0, 0)), mode="wrap")


@functools.partial(jax.jit, static_argnames=("h", "w", "upsample", "swapped"))
def _spot_jit(variables, spots, keys, h, w, upsample, swapped):
    fields = jax.vmap(lambda k: wrapped_field(spots, k, h, w, swapped))(keys)
    out = to_unit(Decoder(upsample=upsample).apply(variables, fields, train=False))
    m = SPOT_PAD * STRIDE
    return jnp.clip(out[:, m : m + h * STRIDE, m : m + w * STRIDE], 0.0, 1.0)


def _finish(model: MGAN, out: np.ndarray) -> np.ndarray:
    if model.stats is None:
        return out
    from jtex import colour

    return np.stack([colour.match_exemplar(o, model.exemplar) for o in out])


def _render(model: MGAN, images, margin: int = 0) -> np.ndarray:
    """Images (N, H, W, 3) in [0, 1] -> the model's outputs less ``margin`` px a side; a wct model's
    features transformed and its outputs colour-matched."""
    out = decode(model.variables, model.vgg_params, images, model.config, model.stats)
    return _finish(model, out[:, margin : out.shape[1] - margin, margin : out.shape[2] - margin])


def generate(model: MGAN, key: jax.Array, shape: tuple[int, int, int], *, noise: str | None = None) -> np.ndarray:
    """``shape = (N, H, W)`` textures (N, H, W, 3) float32 in [0, 1] from noise; H, W multiples of 8.

    Sample i is drawn from ``(key, i)`` alone (BatchNorm in inference mode), so it does not depend on N or
    on the other samples. ``noise``: ``spot`` or a kind the model learnt from (default its first; see the
    module docstring).
    """
    from jtex import noisefields

    cfg = model.config
    if cfg.photo_mode:
        raise JtexError("this MGAN turns photos into images (jtex generate DIR --content PHOTO), not noise")
    noise = noise or cfg.kinds[0]
    if noise not in cfg.kinds:
        raise JtexError(f"--noise {noise}: this model decodes {' and '.join(cfg.kinds)} noise; use that")
    n, h, w = (int(v) for v in shape)
    if n < 1 or min(h, w) < STRIDE or h % STRIDE or w % STRIDE:
        raise JtexError(f"size {w}x{h} (count {n}): use a count >= 1 and sides that are multiples of {STRIDE}")
    if noise in (SPOT, SWAP):
        keys = jnp.stack([jax.random.fold_in(key, i) for i in range(n)])
        hf, wf = h // STRIDE, w // STRIDE
        out = [_spot_jit(model.variables, model.spots, keys[i : i + CHUNK], hf, wf, cfg.decoder, noise == SWAP)
               for i in range(0, n, CHUNK)]  # fmt: skip
        return _finish(model, np.concatenate([np.asarray(o) for o in out]))
    words = [int(v) for v in np.ravel(np.asarray(jax.random.key_data(key))).astype(np.uint64)]
    m = MARGIN if cfg.method == "wct" else 0
    fields = [noisefields.field(noise, np.random.default_rng([*words, i]), h + 2 * m, w + 2 * m) for i in range(n)]
    return _render(model, np.stack(fields), m)


def stylize(model: MGAN, photo: np.ndarray, *, max_side: int | None = 1024) -> np.ndarray:
    """A photo (H, W, 3) in [0, 1] through a photo MGAN: (H', W', 3), sides floored to multiples of 8.

    Shrunk first when its longer side is over ``max_side`` (the authors' demo: 512).
    """
    from jtex import image

    if not (model.config.photo_mode or model.config.method == "wct"):
        raise JtexError("this MGAN decodes noise (trained without --content-dir): use jtex generate DIR --noise KIND")
    x = image.from_array(photo)
    if max_side is not None and max(x.shape[:2]) > max_side:
        x = image.resize(x, scale=max_side / max(x.shape[:2]))
    h, w = (x.shape[0] // STRIDE) * STRIDE, (x.shape[1] // STRIDE) * STRIDE
    if min(h, w) < STRIDE:
        raise JtexError(f"photo of {x.shape[1]}x{x.shape[0]} px is too small: at least {STRIDE} px a side")
    m = MARGIN if model.config.method == "wct" else 0
    return _render(model, np.pad(x[:h, :w], ((m, m), (m, m), (0, 0)), mode="reflect")[None], m)[0]
