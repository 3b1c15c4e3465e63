"""Where an image's power sits: octave band shares, their comparison with an exemplar, and border contrast.

A Gram loss after pooling barely sees per-pixel grain: a synthesis can reach a
low loss and still carry several times the exemplar's high-frequency power.
:func:`spectrum_report` compares how an image and its exemplar share their
power among octave frequency bands, so that grain (or blur) shows as a number;
:func:`ring_contrast` shows a flat frame. Both go into every run's result.json
(and :mod:`jtex.metrics` re-exports them).

Spectra are of the luminance (mean of R, G, B), mean removed, under a Hann
window (so the image's borders do not add a cross of spurious power),
in cycles per pixel: band k holds frequencies in (0.5 / 2^(k+1), 0.5 / 2^k],
band 0 being the finest (period 2 to 4 pixels). Shares are fractions of the
image's total (non-DC) power, so a contrast difference does not count, only
where the power sits.
"""

from __future__ import annotations

import numpy as np

BANDS = 5


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
        "distance": round(share_distance(ex, im), 4),
    }


def share_distance(reference: np.ndarray, shares: np.ndarray) -> float:
    """Mean |log2| of the ratio of two band-share vectors (0: the same; 1: off by 2x on average).

    A band empty on both sides (too coarse for a small image) counts as equal.
    """
    ratio = (np.asarray(shares) + 1e-12) / (np.asarray(reference) + 1e-12)
    return float(np.mean(np.abs(np.log2(np.maximum(ratio, 1e-12)))))


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
