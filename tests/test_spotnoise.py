"""Spot noise in feature space: the field's mean and covariances at every lag are the exemplar map's."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jtex import spotnoise


def _circular_autocovariance(t: np.ndarray, h: int, w: int, dy: int, dx: int) -> np.ndarray:
    """sum_y t(y) t(y + lag)^T of ``t`` zero-padded onto the h x w torus: (C, C)."""
    grid = np.zeros((h, w, t.shape[-1]))
    grid[: t.shape[0], : t.shape[1]] = t
    shifted = np.roll(grid, (-dy, -dx), axis=(0, 1))
    return np.einsum("yxc,yxd->cd", grid, shifted)


def test_the_field_has_the_maps_mean_and_covariances():
    rng = np.random.default_rng(0)
    m = rng.standard_normal((5, 6, 3)).cumsum(axis=1) + np.array([1.0, -2.0, 0.5])  # correlated along x
    s = spotnoise.spots([m])
    np.testing.assert_allclose(s.mean, m.mean(axis=(0, 1)), rtol=1e-5)
    keys = jax.random.split(jax.random.key(1), 4000)
    fields = np.asarray(jax.jit(jax.vmap(lambda k: spotnoise.field(s, k, 8, 9)))(keys), np.float64)
    assert fields.shape == (4000, 8, 9, 3) and np.isfinite(fields).all()
    t = (m - m.mean(axis=(0, 1))) / np.sqrt(30)
    z = fields - s.mean
    scale = np.abs(_circular_autocovariance(t, 8, 9, 0, 0)).max()
    for dy, dx in [(0, 0), (0, 1), (1, 0), (2, 3), (7, 8)]:  # the last wraps round the torus
        got = np.einsum("nc,nd->cd", z[:, 3, 4], z[:, (3 + dy) % 8, (4 + dx) % 9]) / len(z)
        want = _circular_autocovariance(t, 8, 9, dy, dx)
        np.testing.assert_allclose(got, want, atol=0.08 * scale)
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=0.08 * np.sqrt(scale))  # the mean everywhere
    # each position is alike (stationary), and a draw is seeded
    np.testing.assert_allclose(z[:, 0, 0].var(axis=0), z[:, 5, 7].var(axis=0), rtol=0.15)
    a = spotnoise.field(s, jax.random.key(2), 8, 9)
    np.testing.assert_array_equal(a, spotnoise.field(s, jax.random.key(2), 8, 9))
    assert not np.array_equal(a, spotnoise.field(s, jax.random.key(3), 8, 9))


def test_several_maps_average_their_covariances_and_large_maps_are_cut():
    rng = np.random.default_rng(1)
    maps = [rng.standard_normal((4, 4, 2)) * 2.0, rng.standard_normal((6, 3, 2)) * 0.5]
    s = spotnoise.spots(maps)
    np.testing.assert_allclose(s.mean, np.concatenate([x.reshape(-1, 2) for x in maps]).mean(axis=0), rtol=1e-5)
    keys = jax.random.split(jax.random.key(0), 4000)
    z = np.asarray(jax.vmap(lambda k: spotnoise.field(s, k, 6, 6))(keys), np.float64) - s.mean
    ts = [(x - x.mean(axis=(0, 1))) / np.sqrt(x.shape[0] * x.shape[1]) for x in maps]
    scale = np.abs(sum(_circular_autocovariance(t, 6, 6, 0, 0) for t in ts) / 2).max()
    for dy, dx in [(0, 0), (0, 1), (3, 2)]:
        want = sum(_circular_autocovariance(t, 6, 6, dy, dx) for t in ts) / 2  # the maps' average
        got = np.einsum("nc,nd->cd", z[:, 2, 2], z[:, (2 + dy) % 6, (2 + dx) % 6]) / len(z)
        np.testing.assert_allclose(got, want, atol=0.08 * scale)
    small = spotnoise.field(s, jax.random.key(0), 3, 2)  # both maps cut to the 3 x 2 grid
    assert small.shape == (3, 2, 2) and np.isfinite(np.asarray(small)).all()


def test_bad_maps_are_refused():
    for maps in ([], [np.zeros((3, 3, 2)), np.zeros((3, 3, 4))], [np.zeros((3, 3))], [np.full((2, 2, 1), np.inf)]):
        with pytest.raises(ValueError, match="spot noise needs"):
            spotnoise.spots(maps)
    flat = spotnoise.field(spotnoise.spots([np.ones((3, 3, 2))]), jax.random.key(0), 4, 4)
    np.testing.assert_allclose(flat, 1.0)  # a constant map: its mean everywhere


def _best_windows(f: np.ndarray, m: np.ndarray, k: int) -> np.ndarray:
    """For each window of the torus (starting at each cell), the map's window of best cosine: (h, w, k, k, C)."""
    h, w, _ = f.shape
    bank = [m[a : a + k, b : b + k] for a in range(m.shape[0] - k + 1) for b in range(m.shape[1] - k + 1)]
    out = np.zeros((h, w, k, k, f.shape[-1]))
    for i in range(h):
        for j in range(w):
            win = f[np.ix_(np.arange(i, i + k) % h, np.arange(j, j + k) % w)]
            out[i, j] = max(bank, key=lambda p: float((p * win).sum()) / np.linalg.norm(p))
    return out


def _swap_by_hand(f: np.ndarray, m: np.ndarray, k: int) -> np.ndarray:
    """One style swap, written out: for each window of the torus the map's window of best cosine, averaged."""
    h, w, _ = f.shape
    best = _best_windows(f, m, k)
    out, count = np.zeros_like(f), np.zeros((h, w, 1))
    for i in range(h):
        for j in range(w):
            for a in range(k):
                for b in range(k):
                    out[(i + a) % h, (j + b) % w] += best[i, j, a, b]
                    count[(i + a) % h, (j + b) % w] += 1
    return out / count


def test_the_swap_puts_the_exemplars_windows_in_the_field():
    rng = np.random.default_rng(2)
    p = rng.standard_normal((4, 5, 6))  # a periodic exemplar: every window of p's torus is one of its windows
    s = spotnoise.spots([np.tile(p, (3, 3, 1))])
    assert s.basis.shape == (6, 6) and spotnoise.swap_window(s) == spotnoise.SWAP_WINDOW == 3
    np.testing.assert_allclose(spotnoise.swap(p, s), p, atol=1e-5)  # nothing to change
    m = rng.standard_normal((6, 7, 6))
    s = spotnoise.spots([m])
    f = rng.standard_normal((5, 4, 6))
    one = np.asarray(jax.jit(lambda x: spotnoise.swap(x, s, rounds=1))(f))
    np.testing.assert_allclose(one, _swap_by_hand(f, m, 3), atol=1e-5)
    two = np.asarray(spotnoise.swap(f, s))
    np.testing.assert_allclose(two, _swap_by_hand(_swap_by_hand(f, m, 3), m, 3), atol=1e-5)
    # on the torus: a shifted field swaps to the shifted result, so a decoded texture still tiles
    np.testing.assert_allclose(spotnoise.swap(np.roll(f, (2, 3), (0, 1)), s), np.roll(two, (2, 3), (0, 1)), atol=1e-5)


def test_the_swap_matches_in_a_subspace_and_keeps_its_bank_bounded(monkeypatch):
    rng = np.random.default_rng(3)
    s = spotnoise.spots([rng.standard_normal((6, 6, 200)), rng.standard_normal((5, 9, 200))])
    assert s.basis.shape == (200, spotnoise.SWAP_DIMS)
    np.testing.assert_allclose(s.basis.T @ s.basis, np.eye(spotnoise.SWAP_DIMS), atol=1e-4)
    assert spotnoise.bank(s).shape == (16 + 21, 3, 3, 200)
    monkeypatch.setattr(spotnoise, "SWAP_BANK", 10)  # maps strided to share about ten windows
    assert len(spotnoise.bank(s)) == 2 * 2 + 1 * 3  # every 2nd of 4 x 4, every 3rd of 3 x 7
    small = spotnoise.spots([rng.standard_normal((2, 4, 3))])  # smaller than a window: the window shrinks
    assert spotnoise.swap_window(small) == 2
    out = spotnoise.swap(spotnoise.field(small, jax.random.key(0), 1, 3), small)
    assert out.shape == (1, 3, 3) and np.isfinite(np.asarray(out)).all()


def test_the_window_loss_is_cnnmrfs_distance_to_the_best_windows():
    rng = np.random.default_rng(4)
    p = rng.standard_normal((4, 5, 6))
    periodic = spotnoise.spots([np.tile(p, (3, 3, 1))])
    assert float(spotnoise.window_loss(periodic)(p)) < 1e-10  # every window is the exemplar's own
    m = rng.standard_normal((6, 7, 6))
    s = spotnoise.spots([m])
    f = rng.standard_normal((5, 4, 6))
    wins = np.stack([np.stack([f[np.ix_(np.arange(i, i + 3) % 5, np.arange(j, j + 3) % 4)] for j in range(4)])
                     for i in range(5)])  # fmt: skip
    want = np.mean((wins - _best_windows(f, m, 3)) ** 2)
    loss = spotnoise.window_loss(s)
    np.testing.assert_allclose(float(loss(f)), want, rtol=1e-5)
    g = np.asarray(jax.grad(loss)(jnp.asarray(f, jnp.float32)))
    assert np.isfinite(g).all() and float(loss(f - 0.5 * g / np.abs(g).max())) < want  # downhill lowers it
