"""Tests for jtex.pyramid: golden kernel, sizes, parity with scipy.ndimage, invariances."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

from jtex import pyramid
from jtex.errors import JtexError

PADDED = ("same", "reflect", "circular")
# numpy's 'reflect' padding (edge sample not repeated) is scipy.ndimage's 'mirror'.
SCIPY_MODE = {"same": "constant", "reflect": "mirror", "circular": "wrap"}


def _rand(shape, seed=0):
    return np.random.default_rng(seed).uniform(size=shape).astype(np.float32)


def _scipy_reduce(x, padding, a=0.4):
    """REDUCE written independently: scipy correlate1d, then subsample, per axis."""
    w = np.array([0.25 - a / 2, 0.25, a, 0.25, 0.25 - a / 2])
    out = np.asarray(x, np.float64)
    for axis in (1, 2):
        n = out.shape[axis]
        full = ndimage.correlate1d(out, w, axis=axis, mode=SCIPY_MODE.get(padding, "constant"))
        # correlate1d centres the kernel: full[k] = sum_j w[j] x[k + j - 2].
        if padding == "valid":
            idx = np.arange(2, n - 2, 2)  # only outputs whose support is inside
        else:
            idx = np.arange(0, n, 2)
        out = np.take(full, idx, axis=axis)
    return out


def test_kernel_golden_sum_symmetry():
    k = pyramid.kernel_1d(0.4)
    np.testing.assert_allclose(k, [0.05, 0.25, 0.4, 0.25, 0.05], atol=1e-15)
    for a in (0.3, 0.375, 0.4, 0.6):
        k = pyramid.kernel_1d(a)
        assert k.shape == (5,)
        assert k.sum() == pytest.approx(1.0, abs=1e-15)
        np.testing.assert_array_equal(k, k[::-1])
        # Burt & Adelson's "equal contribution": even and odd taps each sum to 1/2.
        assert k[0::2].sum() == pytest.approx(0.5) and k[1::2].sum() == pytest.approx(0.5)


def test_level_sizes_golden():
    assert pyramid.level_sizes(37, 40, 3, "valid") == [(37, 40), (17, 18), (7, 7)]
    assert pyramid.level_sizes(37, 40, 3, "same") == [(37, 40), (19, 20), (10, 10)]
    assert pyramid.level_sizes(512, 512, 4, "valid") == [(512, 512), (254, 254), (125, 125), (61, 61)]
    # Too small for 'valid': the level is reported as 0, not negative.
    assert pyramid.level_sizes(12, 12, 3, "valid") == [(12, 12), (4, 4), (0, 0)]
    with pytest.raises(ValueError):
        pyramid.level_sizes(8, 8, 2, "bogus")


@pytest.mark.parametrize("padding", pyramid.PADDINGS)
@pytest.mark.parametrize("hw", [(29, 30), (32, 33)])
def test_gaussian_shapes_match_level_sizes(padding, hw):
    x = _rand((2,) + hw + (3,))
    pyr = pyramid.gaussian(x, 3, padding=padding)
    assert len(pyr) == 3
    np.testing.assert_array_equal(pyr[0], x)
    sizes = pyramid.level_sizes(*hw, 3, padding)
    assert [p.shape for p in pyr] == [(2, h, w, 3) for h, w in sizes]


@pytest.mark.parametrize("padding", pyramid.PADDINGS)
def test_min_size_is_tight(padding):
    for levels, coarsest in [(1, 1), (4, 1), (4, 8), (3, 5)]:
        n = pyramid.min_size(levels, padding, coarsest)
        assert pyramid.level_sizes(n, n, levels, padding)[-1][0] >= coarsest
        if n > 1:
            assert pyramid.level_sizes(n - 1, n - 1, levels, padding)[-1][0] < coarsest
    assert pyramid.min_size(4, "valid") == 29


def test_too_small_raises_jtex_error():
    with pytest.raises(JtexError, match="too small"):
        pyramid.gaussian(np.zeros((1, 20, 20, 3), np.float32), 4, padding="valid")
    with pytest.raises(JtexError):
        pyramid.reduce(np.zeros((1, 4, 9, 3), np.float32), padding="valid")


@pytest.mark.parametrize("padding", ["valid", "reflect", "circular"])
def test_constant_image_pyramid_is_constant(padding):
    x = np.full((1, 32, 29, 2), 0.7, np.float32)
    for level in pyramid.gaussian(x, 3, padding=padding):
        np.testing.assert_allclose(level, 0.7, rtol=1e-6)


def test_constant_image_same_padding_constant_inside_dark_border():
    x = np.full((1, 32, 32, 1), 0.7, np.float32)
    g = pyramid.gaussian(x, 3, padding="same")
    np.testing.assert_allclose(g[1][:, 1:-1, 1:-1], 0.7, rtol=1e-6)
    np.testing.assert_allclose(g[2][:, 2:-2, 2:-2], 0.7, rtol=1e-6)
    # Zero padding darkens the border (documented Keras behaviour).
    assert float(g[1][0, 0, 5, 0]) < 0.7 - 0.05


@pytest.mark.parametrize("padding", pyramid.PADDINGS)
@pytest.mark.parametrize("hw", [(16, 16), (15, 18)])
def test_reduce_matches_scipy(padding, hw):
    x = _rand((2,) + hw + (3,), seed=1)
    for a in (0.4, 0.375):
        got = np.asarray(pyramid.reduce(x, padding=padding, a=a))
        np.testing.assert_allclose(got, _scipy_reduce(x, padding, a), atol=2e-6)


@pytest.mark.parametrize("padding", ["reflect", "circular", "same", "valid"])
def test_expand_interpolates_linear_ramp(padding):
    # Symmetric, equal-contribution kernel => EXPAND reproduces affine images
    # exactly away from the border; a grid misalignment would break this.
    hh, ww = 24, 21
    yy, xx = np.meshgrid(np.arange(hh), np.arange(ww), indexing="ij")
    ramp = (0.3 * yy - 0.2 * xx + 1.0).astype(np.float32)[None, :, :, None]
    coarse = pyramid.reduce(ramp, padding=padding)
    up = np.asarray(pyramid.expand(coarse, (hh, ww), padding=padding))
    assert up.shape == ramp.shape
    np.testing.assert_allclose(up[:, 5:-5, 5:-5], ramp[:, 5:-5, 5:-5], atol=1e-5)


@pytest.mark.parametrize("padding", ["reflect", "valid"])
def test_expand_constant_everywhere(padding):
    c = np.ones((1, 9, 10, 2), np.float32)
    for shape in [(18, 20), (17, 19)] if padding == "reflect" else [(21, 23), (22, 24)]:
        np.testing.assert_allclose(pyramid.expand(c, shape, padding=padding), 1.0, rtol=1e-6)


def test_expand_rejects_incompatible_shape():
    with pytest.raises(ValueError):
        pyramid.expand(np.ones((1, 9, 9, 1), np.float32), (20, 18), padding="reflect")
    with pytest.raises(ValueError):
        pyramid.expand(np.ones((1, 9, 9, 1), np.float32), (18, 18), padding="valid")


def test_circular_pyramid_commutes_with_even_shifts():
    x = _rand((1, 16, 20, 3), seed=2)
    g = pyramid.gaussian(x, 3, padding="circular")
    g2 = pyramid.gaussian(np.roll(x, (2, 2), axis=(1, 2)), 3, padding="circular")
    np.testing.assert_allclose(g2[1], np.roll(g[1], (1, 1), axis=(1, 2)), atol=1e-6)
    g4 = pyramid.gaussian(np.roll(x, (4, -4), axis=(1, 2)), 3, padding="circular")
    np.testing.assert_allclose(g4[1], np.roll(g[1], (2, -2), axis=(1, 2)), atol=1e-6)
    np.testing.assert_allclose(g4[2], np.roll(g[2], (1, -1), axis=(1, 2)), atol=1e-6)
    # 'reflect' is not periodic: the same shift does not commute (the test can fail).
    r = pyramid.gaussian(x, 2, padding="reflect")[1]
    r2 = pyramid.gaussian(np.roll(x, (2, 2), axis=(1, 2)), 2, padding="reflect")[1]
    assert np.abs(np.asarray(r2) - np.roll(r, (1, 1), axis=(1, 2))).max() > 1e-3


@pytest.mark.parametrize("padding", PADDED)
def test_laplacian_collapse_reconstructs(padding):
    x = _rand((2, 27, 32, 3), seed=3)  # odd H and even W
    lap = pyramid.laplacian(x, 4, padding=padding)
    assert [l.shape for l in lap] == [g.shape for g in pyramid.gaussian(x, 4, padding=padding)]
    np.testing.assert_allclose(pyramid.collapse(lap, padding=padding), x, atol=1e-6)
    # The band-pass levels are not trivially the input (guards a degenerate expand).
    assert float(jnp.abs(lap[0]).mean()) < float(np.abs(x).mean()) / 2


def test_laplacian_of_constant_is_zero_bandpass():
    x = np.full((1, 24, 24, 1), 0.3, np.float32)
    lap = pyramid.laplacian(x, 3, padding="reflect")
    for band in lap[:-1]:
        np.testing.assert_allclose(band, 0.0, atol=1e-6)
    np.testing.assert_allclose(lap[-1], 0.3, rtol=1e-6)


def test_laplacian_valid_raises():
    x = np.zeros((1, 32, 32, 1), np.float32)
    with pytest.raises(ValueError, match="valid"):
        pyramid.laplacian(x, 3, padding="valid")
    with pytest.raises(ValueError, match="valid"):
        pyramid.collapse([x], padding="valid")


def test_jit_vmap_unbatched_and_grad():
    x = _rand((3, 20, 22, 2), seed=4)
    batched = pyramid.gaussian(x, 3, padding="reflect")
    mapped = jax.vmap(lambda im: pyramid.gaussian(im, 3, padding="reflect"))(x)
    for b, m in zip(batched, mapped):
        np.testing.assert_allclose(b, m, atol=1e-6)
    single = pyramid.gaussian(x[1], 3, padding="reflect")  # (H, W, C) works too
    np.testing.assert_allclose(single[2], batched[2][1], atol=1e-6)

    def loss(im):
        return sum(jnp.sum(l**2) for l in pyramid.laplacian(im, 2, padding="circular"))

    g = jax.jit(jax.grad(loss))(jnp.asarray(x))
    assert g.shape == x.shape and bool(jnp.all(jnp.isfinite(g)))
    # REDUCE is linear, so its VJP is its adjoint: <R x, y> == <x, Rᵀ y>.
    y = jnp.asarray(_rand((3, 10, 11, 2), seed=5))
    rx, vjp = jax.vjp(lambda im: pyramid.reduce(im, padding="same"), jnp.asarray(x))
    assert float(jnp.vdot(rx, y)) == pytest.approx(float(jnp.vdot(x, vjp(y)[0])), rel=1e-5)


def test_integer_input_and_bad_padding():
    x = np.full((1, 9, 9, 1), 2, np.uint8)
    r = pyramid.reduce(x, padding="reflect")
    assert r.dtype == jnp.float32
    np.testing.assert_allclose(r, 2.0, rtol=1e-6)
    with pytest.raises(ValueError):
        pyramid.reduce(x, padding="zeros")
