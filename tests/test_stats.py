"""Tests for jtex.stats: golden Grams, parity with numpy/scipy, SPD calculus, joins."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from jtex import stats

# One image, 2x2 positions, 2 channels; channel vectors at the 4 positions are
# (1, 2), (3, 0), (0, 1), (2, 2). By hand: FᵀF = [[14, 6], [6, 9]].
F_HAND = np.array([[[[1, 2], [3, 0]], [[0, 1], [2, 2]]]], np.float32)
FTF_HAND = np.array([[14, 6], [6, 9]], np.float32)


def _rand(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _spd(c, seed=0, batch=()):
    x = np.random.default_rng(seed).normal(size=batch + (c, c + 2))
    return (x @ np.swapaxes(x, -1, -2) / (c + 2) + 0.3 * np.eye(c)).astype(np.float32)


@pytest.mark.parametrize("norm,scale", [("none", 1.0), ("gatys", 1 / 4), ("snelgrove", 1 / 8)])
def test_gram_golden(norm, scale):
    g = stats.gram(F_HAND, norm=norm)
    assert g.shape == (1, 2, 2)
    np.testing.assert_allclose(g[0], FTF_HAND * scale, rtol=1e-7)


def test_gram_matches_numpy_and_is_per_batch():
    f = _rand((3, 5, 6, 7), seed=1)
    want = np.einsum("bhwc,bhwd->bcd", f.astype(np.float64), f) / 30
    got = stats.gram(f)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stats.gram(f[1:2])[0], got[1], rtol=1e-6)
    np.testing.assert_allclose(got, np.swapaxes(got, 1, 2), rtol=1e-6)


def test_gram_invariant_to_position_permutation():
    f = _rand((2, 6, 5, 4), seed=2)
    perm = np.random.default_rng(0).permutation(30)
    shuffled = f.reshape(2, 30, 4)[:, perm].reshape(2, 5, 6, 4)  # also a different H, W
    np.testing.assert_allclose(stats.gram(shuffled), stats.gram(f), rtol=1e-5, atol=1e-6)
    # ...but not to mixing channels (the test can fail).
    assert not np.allclose(stats.gram(f[..., ::-1]), stats.gram(f), atol=1e-3)


def test_gram_distance_golden_and_broadcast():
    g = np.array([[3.5, 1.5], [1.5, 2.25]], np.float32)
    t = np.array([[1.5, 1.5], [0.5, 2.25]], np.float32)  # difference [[2, 0], [1, 0]]: Σ = 5
    assert float(stats.gram_distance(g, t, norm="gatys")) == pytest.approx(5 / 16)
    assert float(stats.gram_distance(g, t, norm="snelgrove")) == pytest.approx(5.0)
    assert float(stats.gram_distance(g, t, norm="none")) == pytest.approx(5.0)
    gb = np.stack([g, t, g])
    d = stats.gram_distance(gb, t, norm="snelgrove")
    assert d.shape == (3,)
    np.testing.assert_allclose(d, [5.0, 0.0, 5.0])
    np.testing.assert_allclose(stats.gram_distance(gb, gb), 0.0)
    with pytest.raises(ValueError):
        stats.gram_distance(g, t, norm="l2")


def test_gram_distance_grad_finite_and_correct():
    f = jnp.asarray(_rand((2, 4, 4, 3), seed=3))
    target = stats.gram(jnp.asarray(_rand((1, 6, 6, 3), seed=4)))

    def loss(x):
        return jnp.sum(stats.gram_distance(stats.gram(x), target))

    g = jax.jit(jax.grad(loss))(f)
    assert bool(jnp.all(jnp.isfinite(g))) and float(jnp.abs(g).max()) > 0
    # d/dF (1/(4N²)) ||FᵀF/M − T||² = (1/(4N²)) 4/M F (G − T) (G, T symmetric).
    m, n = 16, 3
    gram = stats.gram(f)
    fm = f.reshape(2, m, n)
    want = (fm @ (gram - target)) / (m * n * n)
    np.testing.assert_allclose(g.reshape(2, m, n), want, rtol=1e-4, atol=1e-7)


def test_jit_and_vmap_match_batched():
    f = _rand((4, 5, 5, 3), seed=5)
    batched = stats.gram(f, norm="snelgrove")
    mapped = jax.vmap(lambda x: stats.gram(x[None], norm="snelgrove")[0])(f)
    np.testing.assert_allclose(mapped, batched, rtol=1e-6)
    m = _spd(4, seed=6, batch=(3,))
    np.testing.assert_allclose(jax.vmap(stats.spd_log)(m), stats.spd_log(m), atol=1e-5)
    t = batched[0]
    np.testing.assert_allclose(
        jax.vmap(lambda g: stats.gram_distance(g, t))(batched), stats.gram_distance(batched, t), rtol=1e-6
    )


def test_channel_mean_cov_matches_numpy():
    f = _rand((2, 4, 5, 3), seed=7) + 5.0  # large mean: centring matters
    mean, cov = stats.channel_mean_cov(f)
    flat = f.reshape(2, 20, 3).astype(np.float64)
    np.testing.assert_allclose(mean, flat.mean(1), rtol=1e-6)
    for b in range(2):
        np.testing.assert_allclose(cov[b], np.cov(flat[b].T, bias=True), rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------- SPD calculus


def test_spd_log_exp_vs_scipy_and_inverse():
    m = _spd(5, seed=8, batch=(2,))
    log = stats.spd_log(m)
    for b in range(2):
        np.testing.assert_allclose(log[b], scipy.linalg.logm(m[b].astype(np.float64)).real, atol=2e-5)
        np.testing.assert_allclose(stats.spd_exp(log)[b], m[b], rtol=1e-4, atol=1e-5)
    s = np.asarray(log[0])
    np.testing.assert_allclose(stats.spd_exp(s), scipy.linalg.expm(s.astype(np.float64)), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(stats.spd_log(stats.spd_exp(s)), s, atol=2e-5)


def test_spd_sqrt_and_power():
    m = _spd(6, seed=9)
    r = stats.spd_sqrt(m)
    np.testing.assert_allclose(r @ r, m, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(stats.spd_power(m, 0.5), r, atol=1e-5)
    np.testing.assert_allclose(stats.spd_power(m, -1.0) @ m, np.eye(6), atol=1e-4)
    np.testing.assert_allclose(stats.spd_power(m, 1.0), m, atol=1e-5)


def test_spd_functions_symmetrise_and_stay_finite_when_singular():
    f = _rand((1, 3, 3, 12), seed=10)  # 9 positions < 12 channels: rank-deficient Gram
    g = stats.gram(f)[0]
    assert np.linalg.matrix_rank(np.asarray(g, np.float64), tol=1e-4) <= 9
    for fn in (stats.spd_log, stats.spd_sqrt, lambda m: stats.spd_power(m, -0.5)):
        out = fn(g)
        assert bool(jnp.all(jnp.isfinite(out)))
    a = _spd(3, seed=11)
    skew = np.array([[0, 1, 0], [-1, 0, 0], [0, 0, 0]], np.float32) * 0.1
    np.testing.assert_allclose(stats.spd_log(a + skew), stats.spd_log(a), atol=1e-6)


def test_spd_gradients_at_repeated_eigenvalues():
    # At M = I every eigenvalue is repeated; differentiating through eigh alone
    # gives NaN. d/dM Σ W ∘ log(M) at I is sym(W) (log'(1) = 1 on every pair).
    w = _rand((4, 4), seed=12)
    g = jax.grad(lambda m: jnp.sum(w * stats.spd_log(m)))(jnp.eye(4))
    np.testing.assert_allclose(g, (w + w.T) / 2, atol=1e-5)
    g = jax.grad(lambda m: jnp.sum(w * stats.spd_sqrt(m)))(4 * jnp.eye(4))
    np.testing.assert_allclose(g, (w + w.T) / 2 / 4, atol=1e-5)  # sqrt'(4) = 1/4


@pytest.mark.parametrize("name", ["log", "exp", "sqrt", "power"])
def test_spd_gradients_match_finite_differences(name):
    fn = {
        "log": stats.spd_log,
        "exp": stats.spd_exp,
        "sqrt": stats.spd_sqrt,
        "power": lambda m: stats.spd_power(m, -0.5),
    }[name]
    rng = np.random.default_rng(13)
    a = _spd(4, seed=14).astype(np.float64)
    e = rng.normal(size=(4, 4))
    e = e + e.T
    w = rng.normal(size=(4, 4))
    f = lambda t: jnp.sum(w * fn(jnp.asarray(a + t * e, jnp.float32)))
    got = float(jax.grad(f)(0.0))
    # Central difference of the float64 reference via scipy.
    ref = {
        "log": scipy.linalg.logm,
        "exp": scipy.linalg.expm,
        "sqrt": scipy.linalg.sqrtm,
        "power": lambda m: scipy.linalg.fractional_matrix_power(m, -0.5),
    }[name]
    h = 1e-5
    want = np.sum(w * (ref(a + h * e).real - ref(a - h * e).real)) / (2 * h)
    assert got == pytest.approx(want, rel=2e-3, abs=1e-4)


# ----------------------------------------------------------------------------- joins


def test_join_average_and_max_golden():
    g = np.array([[[1, 2], [2, 8]], [[3, -1], [-1, 4]]], np.float32)
    np.testing.assert_allclose(stats.join_grams(g, "average"), [[2, 0.5], [0.5, 6]])
    np.testing.assert_allclose(stats.join_grams(g, "max"), [[3, 2], [2, 8]])
    with pytest.raises(ValueError):
        stats.join_grams(g, "median")


def test_join_log_euclidean():
    m = _spd(4, seed=15)
    same = np.stack([m, m, m])
    np.testing.assert_allclose(stats.join_grams(same, "log_euclidean", eps=0.0), m, rtol=1e-4, atol=1e-5)
    # Snelgrove's default loads the diagonal with 0.05 I before the logs.
    np.testing.assert_allclose(stats.join_grams(same, "log_euclidean"), m + 0.05 * np.eye(4), rtol=1e-4, atol=1e-5)
    # Commuting (diagonal) matrices: the geometric mean of the diagonals.
    a, b = np.diag([1.0, 4.0, 9.0]), np.diag([4.0, 1.0, 1.0])
    got = stats.join_grams(np.stack([a, b]).astype(np.float32), "log_euclidean", eps=0.0)
    np.testing.assert_allclose(got, np.diag([2.0, 2.0, 3.0]), rtol=1e-5, atol=1e-6)


def test_join_affine_invariant_diagonal_golden():
    a, b = np.diag([1.0, 4.0, 0.0]), np.diag([4.0, 1.0, 2.0])
    got = stats.join_grams(np.stack([a, b]).astype(np.float32), "affine_invariant")
    want = np.diag(np.sqrt((np.diag(a) + 0.05) * (np.diag(b) + 0.05)))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_join_affine_invariant_properties():
    a, b = _spd(4, seed=16), _spd(4, seed=17)
    mid = np.asarray(stats.join_grams(np.stack([a, b]), "affine_invariant", eps=0.0), np.float64)
    # The geometric mean G = A # B is the SPD solution of G A⁻¹ G = B ...
    np.testing.assert_allclose(mid @ np.linalg.inv(a) @ mid, b, rtol=1e-3, atol=1e-4)
    # ... symmetric in its arguments ...
    mid_ba = stats.join_grams(np.stack([b, a]), "affine_invariant", eps=0.0)
    np.testing.assert_allclose(mid_ba, mid, rtol=1e-4, atol=1e-5)
    # ... and congruence invariant: (X A Xᵀ) # (X B Xᵀ) = X (A # B) Xᵀ.
    x = _rand((4, 4), seed=18) + 2 * np.eye(4, dtype=np.float32)
    congr = stats.join_grams(np.stack([x @ a @ x.T, x @ b @ x.T]), "affine_invariant", eps=0.0)
    np.testing.assert_allclose(congr, x @ mid @ x.T, rtol=2e-3, atol=2e-3)
    with pytest.raises(ValueError, match="exactly 2"):
        stats.join_grams(np.stack([a, b, a]), "affine_invariant")


# ----------------------------------------------------------------------------- sliced Wasserstein


def test_sliced_wasserstein():
    key = jax.random.PRNGKey(0)
    f = _rand((2, 6, 6, 5), seed=19)
    loss = stats.sliced_wasserstein(f, f, key)
    assert loss.shape == (2,)
    np.testing.assert_allclose(loss, 0.0, atol=1e-10)
    # Only the distribution of channel vectors matters: a spatial shuffle is free.
    perm = np.random.default_rng(1).permutation(36)
    shuffled = f.reshape(2, 36, 5)[:, perm].reshape(2, 4, 9, 5)
    np.testing.assert_allclose(stats.sliced_wasserstein(shuffled, f, key), 0.0, atol=1e-10)
    # A target with each position twice (M̂ = 2M) has the same quantiles.
    tiled = np.concatenate([f, f[:, ::-1]], axis=1)
    np.testing.assert_allclose(stats.sliced_wasserstein(f, tiled, key, n_projections=16), 0.0, atol=1e-10)
    # Different distributions cost something; shift by 1 along every direction
    # costs exactly (d·1)² on average, and the key decides the directions.
    other = stats.sliced_wasserstein(f, f[:1] + 1.0, key, n_projections=8)
    assert other.shape == (2,) and float(other[0]) > 0.05
    assert float(stats.sliced_wasserstein(f, f + 1.0, key)[0]) > 0.0
    a = stats.sliced_wasserstein(f, f[::-1], key)
    np.testing.assert_array_equal(a, stats.sliced_wasserstein(f, f[::-1], key))
    assert not np.allclose(a, stats.sliced_wasserstein(f, f[::-1], jax.random.PRNGKey(1)))
    g = jax.grad(lambda x: jnp.sum(stats.sliced_wasserstein(x, f[::-1], key)))(jnp.asarray(f))
    assert bool(jnp.all(jnp.isfinite(g))) and float(jnp.abs(g).max()) > 0


def test_sliced_wasserstein_1d_golden():
    # One channel: the direction is ±1, so the loss is the squared difference of
    # the sorted values: sort(3, 1) = (1, 3) vs (0, 5) -> (1 + 4) / 2 = 2.5.
    f = np.array([3.0, 1.0], np.float32).reshape(1, 1, 2, 1)
    t = np.array([5.0, 0.0], np.float32).reshape(1, 2, 1, 1)
    loss = stats.sliced_wasserstein(f, t, jax.random.PRNGKey(3))
    np.testing.assert_allclose(loss, [2.5], rtol=1e-6)
    # Target of 4 positions: mid-point quantiles at 0.25, 0.75 interpolate
    # sorted (0, 2, 4, 6) at indices 0.5 and 2.5 -> (1, 5); vs (1, 3): (0 + 4) / 2.
    t4 = np.array([6.0, 0.0, 4.0, 2.0], np.float32).reshape(1, 2, 2, 1)
    np.testing.assert_allclose(stats.sliced_wasserstein(f, t4, jax.random.PRNGKey(3)), [2.0], rtol=1e-6)
