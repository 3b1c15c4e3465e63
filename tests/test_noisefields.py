"""Tests of jtex.noisefields: seeded Perlin and brown noise images."""

import subprocess
import sys

import numpy as np
import pytest

from jtex import noisefields
from jtex.errors import JtexError


def _neighbour_diff(a):
    return 0.5 * (np.abs(np.diff(a, axis=0)).mean() + np.abs(np.diff(a, axis=1)).mean())


@pytest.mark.parametrize("kind", noisefields.KINDS)
def test_field_shape_dtype_range_and_normalisation(kind):
    out = noisefields.field(kind, np.random.default_rng(0), 96, 80, channels=4)
    assert out.shape == (96, 80, 4)
    assert out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    np.testing.assert_allclose(out.mean(axis=(0, 1)), 0.5, atol=0.01)
    np.testing.assert_allclose(out.std(axis=(0, 1)), 0.15, atol=0.01)
    # The channels are independent fields, not copies.
    assert abs(np.corrcoef(out[..., 0].ravel(), out[..., 1].ravel())[0, 1]) < 0.9
    assert not np.allclose(out[..., 0], out[..., 1])


@pytest.mark.parametrize("kind", noisefields.KINDS)
def test_batch_is_deterministic_and_prefix_stable(kind):
    four = noisefields.batch(kind, 7, 4, 40, 48)
    assert four.shape == (4, 40, 48, 3) and four.dtype == np.float32
    np.testing.assert_array_equal(four, noisefields.batch(kind, 7, 4, 40, 48))
    np.testing.assert_array_equal(four[:2], noisefields.batch(kind, 7, 2, 40, 48))
    np.testing.assert_array_equal(four[1], noisefields.field(kind, np.random.default_rng([7, 1]), 40, 48))
    # Samples of one batch differ from each other, and other seeds give other images.
    assert not np.allclose(four[0], four[1])
    other = noisefields.batch(kind, 8, 2, 40, 48)
    assert np.abs(other - four[:2]).mean() > 0.02


@pytest.mark.parametrize("kind", noisefields.KINDS)
def test_odd_sizes(kind):
    out = noisefields.batch(kind, 0, 2, 37, 53, channels=1)
    assert out.shape == (2, 37, 53, 1)
    assert np.isfinite(out).all() and out.std() > 0.1
    raw = getattr(noisefields, kind)(np.random.default_rng(0), 37, 53)
    assert raw.shape == (37, 53) and raw.dtype == np.float32


def test_brown_power_spectrum_slope_is_minus_two():
    size = 256
    power = np.zeros((size, size))
    for seed in range(4):
        img = noisefields.brown(np.random.default_rng(seed), size, size).astype(np.float64)
        power += np.abs(np.fft.fft2(img)) ** 2
    k = np.fft.fftfreq(size) * size
    radius = np.rint(np.hypot(k[:, None], k[None, :])).astype(int)
    radial = np.bincount(radius.ravel(), power.ravel()) / np.bincount(radius.ravel())
    r = np.arange(4, 64)
    slope = np.polyfit(np.log(r), np.log(radial[r]), 1)[0]
    assert -2.4 <= slope <= -1.6, slope
    # The DC term is zero: the raw field has mean 0.
    assert abs(img.mean()) < 1e-4 * img.std()


def test_brown_is_not_white():
    img = noisefields.brown(np.random.default_rng(0), 128, 128)
    white = np.random.default_rng(1).standard_normal((128, 128)) * img.std()
    # Brown noise is rough (about half of white noise's pixel-to-pixel change), but much less than white.
    assert _neighbour_diff(img) < 0.8 * _neighbour_diff(white)


def test_perlin_is_smooth_at_pixel_scale_and_not_constant():
    img = noisefields.perlin(np.random.default_rng(0), 128, 128)
    assert img.std() > 0.05
    white = np.random.default_rng(1).standard_normal((128, 128)) * img.std()
    assert _neighbour_diff(img) < 0.3 * _neighbour_diff(white)


def test_perlin_single_octave_is_zero_on_the_lattice():
    img = noisefields.perlin(np.random.default_rng(3), 65, 97, cell=16, octaves=1)
    np.testing.assert_allclose(img[::16, ::16], 0.0, atol=1e-6)
    # ... and not elsewhere: cell centres are far from 0 on average.
    assert np.abs(img[8::16, 8::16]).mean() > 0.05
    # Bounded as classic 2-D Perlin noise with unit gradients (|n| <= sqrt(2)/2).
    assert np.abs(img).max() <= np.sqrt(0.5) + 1e-6


def test_perlin_octaves_add_finer_detail():
    rng_seed = 5
    one = noisefields.perlin(np.random.default_rng(rng_seed), 128, 128, octaves=1)
    four = noisefields.perlin(np.random.default_rng(rng_seed), 128, 128, octaves=4)
    # The first octave is drawn first, so the extra octaves are what differs.
    assert not np.allclose(one, four)
    assert _neighbour_diff(four) / four.std() > _neighbour_diff(one) / one.std()


def test_unknown_kind_raises_with_choices():
    with pytest.raises(JtexError, match=r"perlin, brown.*'x'") as info:
        noisefields.field("x", np.random.default_rng(0), 8, 8)
    assert "\n" not in str(info.value)
    with pytest.raises(JtexError, match="perlin, brown"):
        noisefields.batch("white", 0, 1, 8, 8)


def test_import_does_not_load_jax():
    code = "import sys, jtex.noisefields; assert 'jax' not in sys.modules, 'jax imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
