"""Seeded noise images, the inputs of a feed-forward "noise -> texture" generator.

Li & Wand's MGAN can decode a noise image into a texture instead of a photo:

* ``brown``: white Gaussian noise shaped in the Fourier domain to a power
  spectrum falling as 1/f^2 (amplitude 1/f, no DC term), the noise the
  paper's abstract names. Its structure spans every scale, so the decoder has
  variation to turn into texture at all of them.
* ``perlin``: fractal gradient (Perlin) noise, octaves of classic gradient
  noise with the cell halving and the amplitude shrinking each octave, the
  noise of the paper's figures. Smooth at pixel scale, with blobs of a few
  chosen sizes.

:func:`field` normalises every channel to mean 0.5 and std 0.15 (clipped to
[0, 1]) so the two kinds have comparable contrast. Everything is pure numpy
and deterministic given the seed: :func:`batch` draws sample i from
``np.random.default_rng([seed, i])``, so no sample depends on the batch size.
"""

from __future__ import annotations

import numpy as np

from jtex.errors import JtexError

KINDS = ("perlin", "brown")
MEAN = 0.5
STD = 0.15


def _gradient_noise(rng: np.random.Generator, height: int, width: int, cell: float) -> np.ndarray:
    """One octave of classic 2-D Perlin noise on a lattice of ``cell``-pixel cells.

    Pixel (y, x) sits at lattice coordinates (y / cell, x / cell); random unit
    gradients live on the lattice points, where the noise is therefore 0.
    """
    ys = np.arange(height) / cell
    xs = np.arange(width) / cell
    y0 = np.floor(ys).astype(np.int64)
    x0 = np.floor(xs).astype(np.int64)
    fy = (ys - y0)[:, None]
    fx = (xs - x0)[None, :]
    angles = rng.uniform(0.0, 2.0 * np.pi, size=(y0[-1] + 2, x0[-1] + 2))
    gy, gx = np.sin(angles), np.cos(angles)

    def corner(dy: int, dx: int) -> np.ndarray:
        """The noise of the (dy, dx) lattice corner of each pixel's cell: g . (offset from the corner)."""
        rows, cols = y0 + dy, x0 + dx
        a = gy.take(rows, 0).take(cols, 1)  # a row gather, then a column gather: 3x faster than np.ix_
        a *= fy - dy
        b = gx.take(rows, 0).take(cols, 1)
        b *= fx - dx
        a += b
        return a

    def fade(t: np.ndarray) -> np.ndarray:
        return t * t * t * (t * (t * 6.0 - 15.0) + 10.0)

    # Bilinear blend of the four corners by the faded offsets, in place (the same numbers as
    # top = c00 + v (c01 - c00), bottom = c10 + v (c11 - c10), top + u (bottom - top)).
    u, v = fade(fy), fade(fx)
    top, c01 = corner(0, 0), corner(0, 1)
    c01 -= top
    c01 *= v
    top += c01
    bottom, c11 = corner(1, 0), corner(1, 1)
    c11 -= bottom
    c11 *= v
    bottom += c11
    bottom -= top
    bottom *= u
    top += bottom
    return top


def perlin(
    rng: np.random.Generator,
    height: int,
    width: int,
    *,
    cell: int = 32,
    octaves: int = 4,
    persistence: float = 0.5,
) -> np.ndarray:
    """Fractal Perlin noise, unnormalised.

    Args:
        rng: the random generator the gradients are drawn from.
        height: rows of the image (any positive size, not only multiples of ``cell``).
        width: columns of the image.
        cell: lattice cell size in pixels of the first (coarsest) octave.
        octaves: number of octaves summed; octave k has cells of ``cell / 2**k`` px.
        persistence: amplitude factor from one octave to the next.

    Returns:
        (height, width) float32. With ``octaves=1`` it is 0 at every lattice
        point (pixels whose row and column are multiples of ``cell``).
    """
    _check_size(height, width)
    if cell <= 0 or octaves < 1:
        raise JtexError(f"perlin noise needs cell > 0 and octaves >= 1, got cell={cell}, octaves={octaves}")
    out = np.zeros((height, width), np.float64)
    amplitude = 1.0
    for k in range(octaves):
        out += amplitude * _gradient_noise(rng, height, width, cell / 2**k)
        amplitude *= persistence
    return out.astype(np.float32)


def brown(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Brown noise: white Gaussian noise with its spectrum shaped to power 1/f^2.

    Returns:
        (height, width) float32, unnormalised, mean 0 (the DC term is zeroed).
    """
    _check_size(height, width)
    spectrum = np.fft.rfft2(rng.standard_normal((height, width)))
    f = np.hypot(np.fft.fftfreq(height)[:, None], np.fft.rfftfreq(width)[None, :])
    amplitude = np.divide(1.0, f, out=np.zeros_like(f), where=f > 0)
    return np.fft.irfft2(spectrum * amplitude, s=(height, width)).astype(np.float32)


def field(kind: str, rng: np.random.Generator, height: int, width: int, channels: int = 3) -> np.ndarray:
    """``channels`` independent noise fields of ``kind``, each normalised to mean 0.5, std 0.15.

    Returns:
        (height, width, channels) float32 in [0, 1].

    Raises:
        JtexError: ``kind`` is not one of :data:`KINDS`.
    """
    _check_kind(kind)
    if channels < 1:
        raise JtexError(f"noise images need at least one channel, got {channels}")
    make = perlin if kind == "perlin" else brown
    planes = []
    for _ in range(channels):
        plane = make(rng, height, width).astype(np.float64)
        plane -= plane.mean()
        std = plane.std()
        plane = plane * (STD / std) if std > 0 else plane
        planes.append(np.clip(plane + MEAN, 0.0, 1.0))
    return np.stack(planes, axis=-1).astype(np.float32)


def batch(kind: str, seed: int, count: int, height: int, width: int, channels: int = 3) -> np.ndarray:
    """``count`` noise images; sample i comes from ``np.random.default_rng([seed, i])``.

    Returns:
        (count, height, width, channels) float32 in [0, 1]; the first n samples
        of a batch equal a batch of n with the same seed.
    """
    _check_kind(kind)
    out = np.empty((count, height, width, channels), np.float32)
    for i in range(count):
        out[i] = field(kind, np.random.default_rng([seed, i]), height, width, channels)
    return out


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise JtexError(f"--noise must be one of {', '.join(KINDS)}, got {kind!r}")


def _check_size(height: int, width: int) -> None:
    if height < 1 or width < 1:
        raise JtexError(f"noise images need a positive size, got {height}x{width}")
