"""Colour statistics of images as arrays: histogram matching, greyness, mixing.

Images are float arrays (H, W, 3), RGB, values in [0, 1] (as
:func:`jtex.image.load` returns them); :func:`match_histogram` also takes
greyscale (H, W) or any channel count C. Nothing here reads or writes files.
"""

from __future__ import annotations

import numpy as np

__all__ = ["colour_mixing", "is_grey", "match_histogram", "to_grey"]


def match_histogram(image: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Gives each colour channel of ``image`` exactly the histogram of ``reference``.

    Rank-based: the k-th smallest value of a channel of ``image`` becomes the
    k-th smallest value of that channel of ``reference`` (like
    ``skimage.exposure.match_histograms``). When the images differ in size,
    the reference's sorted values are linearly interpolated at the matching
    quantiles. Ties in ``image`` are broken by pixel order, so with equal
    sizes the output holds exactly the reference's values, each once.

    Gatys et al. use this as a post-process after texture synthesis
    (``histogram_matching`` in DeepImageSynthesis/Misc.py of
    github.com/leongatys/DeepTextures); they invert a 100-bin histogram of
    the reference, this is the exact, binless version.

    Args:
        image: float array (H, W, C) or (H, W).
        reference: float array (H2, W2, C) or (H2, W2), same number of
            channels; the size may differ.

    Returns:
        float32 array shaped like ``image``, non-decreasing in ``image``
        within each channel.

    Raises:
        ValueError: The two arrays differ in their number of channels.
    """
    image = np.asarray(image)
    reference = np.asarray(reference)
    if image.ndim != reference.ndim or image.shape[2:] != reference.shape[2:]:
        raise ValueError(
            f"match_histogram needs the same number of channels, got shapes {image.shape} and {reference.shape}"
        )
    channels = 1 if image.ndim == 2 else image.shape[-1]
    source = image.reshape(-1, channels)
    targets = np.sort(reference.reshape(-1, channels).astype(np.float32), axis=0)
    n, m = len(source), len(targets)
    if n == m:
        values = targets
    else:
        # Sample the reference's quantile function at the centre of each
        # source rank's interval, so both ends map symmetrically.
        positions = (np.arange(n) + 0.5) * (m / n) - 0.5
        grid = np.arange(m)
        values = np.stack([np.interp(positions, grid, targets[:, c]) for c in range(channels)], axis=-1)
    order = np.argsort(source, axis=0, kind="stable")
    out = np.empty((n, channels), dtype=np.float32)
    np.put_along_axis(out, order, values.astype(np.float32), axis=0)
    return out.reshape(image.shape)


def is_grey(img: np.ndarray) -> bool:
    """True when all three channels are equal (an L-mode file, or a grey RGB one).

    ``img`` is a float array (..., 3); "equal" means within 1e-6.
    """
    return bool(np.all(np.abs(img[..., 0] - img[..., 1]) < 1e-6) and np.all(np.abs(img[..., 1] - img[..., 2]) < 1e-6))


def to_grey(img: np.ndarray) -> np.ndarray:
    """Every pixel's channel mean in all three channels: an exactly grey (..., 3) image."""
    return np.repeat(img.mean(axis=-1, keepdims=True), 3, axis=-1)


def match_exemplar(image: np.ndarray, exemplar: np.ndarray) -> np.ndarray:
    """:func:`match_histogram` to the exemplar, greyed first when the exemplar is grey.

    Per-channel matching would keep an output's local colour specks where the exemplar has none.
    """
    if is_grey(exemplar):
        image = to_grey(image)
    return match_histogram(image, exemplar)


def colour_mixing(pixels: np.ndarray) -> np.ndarray:
    """(3, 3) matrix giving white noise the exemplar's colour correlations.

    sqrt(C) / sqrt(tr(C) / 3) for the pixels' colour covariance C: noise
    stays at unit strength per channel on average, and is grey for a grey
    exemplar (independent per-channel noise would leave colour casts that the
    Gram loss removes only slowly).

    ``pixels`` is any float array whose last axis is RGB ((H, W, 3) or
    (N, 3)); the result is float32 (3, 3), symmetric, applied to noise ``q``
    of shape (..., 3) as ``q @ M.T``. A flat exemplar (total variance below
    1e-10) gives the identity.
    """
    cov = np.cov(pixels.reshape(-1, 3).T.astype(np.float64))
    power = np.trace(cov) / 3
    if power < 1e-10:
        return np.eye(3, dtype=np.float32)
    w, v = np.linalg.eigh(cov)
    return ((v * np.sqrt(np.clip(w, 0, None))) @ v.T / np.sqrt(power)).astype(np.float32)
