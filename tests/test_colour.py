"""jtex.colour: histogram matching, greyness and the colour mixing of start noise."""

import numpy as np

from jtex import colour


def test_match_histogram():
    rng = np.random.default_rng(3)
    img = rng.random((16, 16, 3), dtype=np.float32)
    ref = rng.random((16, 16, 3), dtype=np.float32) ** 3
    out = colour.match_histogram(img, ref)
    for c in range(3):
        np.testing.assert_array_equal(np.sort(out[..., c].ravel()), np.sort(ref[..., c].ravel()))
        # monotone: the order of pixels is kept
        order = np.argsort(img[..., c].ravel())
        assert np.all(np.diff(out[..., c].ravel()[order]) >= 0)
    small = colour.match_histogram(img, ref[:5, :7])
    assert small.shape == img.shape and small.min() >= ref[:5, :7].min() - 1e-6


def test_match_histogram_exact_values_and_monotone():
    rng = np.random.default_rng(7)
    img = np.round(rng.random((12, 10, 3)) * 8) / 8  # many ties
    ref = rng.random((10, 12, 3)) ** 2  # same pixel count, other shape
    out = colour.match_histogram(img, ref)
    assert out.shape == img.shape and out.dtype == np.float32
    for c in range(3):
        np.testing.assert_array_equal(np.sort(out[..., c].ravel()), np.sort(ref[..., c].ravel()).astype(np.float32))
        src, res = img[..., c].ravel(), out[..., c].ravel()
        smaller = src[:, None] < src[None, :]  # pairs (i, j) with src[i] < src[j] ...
        assert np.all(
            np.broadcast_to(res[:, None], smaller.shape)[smaller] <= np.broadcast_to(res, smaller.shape)[smaller]
        )
    # Different sizes: output spans the reference's range, in order.
    big = colour.match_histogram(rng.random((30, 30, 3)), ref)
    assert big.min() >= ref.min() - 1e-6 and big.max() <= ref.max() + 1e-6
    assert colour.match_histogram(img[..., 0], ref[..., 0]).shape == (12, 10)


def test_is_grey():
    grey = np.repeat(np.random.default_rng(8).random((5, 6, 1)), 3, axis=-1)
    assert colour.is_grey(grey)
    assert colour.is_grey(grey + np.array([0, 5e-7, 0]))  # within 1e-6
    tinted = grey.copy()
    tinted[2, 3, 2] += 0.01
    assert not colour.is_grey(tinted)


def test_colour_mixing_gives_noise_the_exemplar_covariance():
    rng = np.random.default_rng(9)
    mix = np.array([[0.3, 0.0, 0.0], [0.2, 0.1, 0.0], [0.1, 0.0, 0.05]])
    pixels = (rng.normal(size=(20000, 3)) @ mix.T).reshape(100, 200, 3)
    m = colour.colour_mixing(pixels)
    assert m.shape == (3, 3) and m.dtype == np.float32
    np.testing.assert_allclose(m, m.T, atol=1e-6)
    cov = np.cov(pixels.reshape(-1, 3).T)
    # Mixed unit noise has covariance M M^T = C / (tr(C) / 3): the exemplar's, at unit power.
    np.testing.assert_allclose(m @ m.T, cov / (np.trace(cov) / 3), atol=1e-5)
    grey = np.repeat(rng.random((10, 10, 1)), 3, axis=-1)
    np.testing.assert_allclose(
        colour.colour_mixing(grey), np.full((3, 3), 3**-0.5), atol=1e-5
    )  # sqrt(1 1^T): all noise grey
    np.testing.assert_array_equal(colour.colour_mixing(np.full((4, 4, 3), 0.5)), np.eye(3))  # flat: identity
