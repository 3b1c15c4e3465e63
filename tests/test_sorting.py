"""jtex.sorting: numpy's permutation with XLA's gather must be jnp.sort, values, gradient, jit and vmap alike."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jtex import sorting


def _x(shape, seed=0):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


@pytest.mark.parametrize("axis", [-1, -2, 0])
def test_sort_equals_jnp_sort_in_value_and_gradient(axis):
    x = _x((3, 50, 7))
    w = _x((3, 50, 7), seed=1)  # a loss that weighs each sorted rank differently
    mine = jax.jit(lambda v: sorting.sort(v, axis=axis))
    np.testing.assert_array_equal(mine(x), jnp.sort(x, axis=axis))
    g = jax.grad(lambda v: jnp.sum(w * sorting.sort(v, axis=axis)))(x)
    want = jax.grad(lambda v: jnp.sum(w * jnp.sort(v, axis=axis)))(x)
    np.testing.assert_allclose(g, want, rtol=0, atol=0)


def test_sort_under_vmap_and_with_ties():
    x = jnp.asarray([[3.0, 1.0, 3.0, 2.0], [0.0, 0.0, -1.0, 5.0]])
    np.testing.assert_array_equal(jax.vmap(sorting.sort)(x), jnp.sort(x, axis=-1))
    # Tied values: the gradient reaches each input once (a permutation), summing to what jnp.sort's does.
    g = jax.grad(lambda v: jnp.sum(jnp.arange(4.0) * sorting.sort(v)))(x[0])
    assert sorted(np.asarray(g).tolist()) == [0.0, 1.0, 2.0, 3.0]


def test_large_arrays_are_split_over_threads_and_give_the_same_permutation(monkeypatch):
    a = np.random.default_rng(2).normal(size=(8, 4096)).astype(np.float32)
    monkeypatch.setattr(sorting, "PARALLEL_ABOVE", 1)
    np.testing.assert_array_equal(sorting._argsort_rows(a), np.argsort(a, axis=-1))
    assert sorting._argsort_rows(a).dtype == np.int32


def test_other_backends_use_jnp_sort(monkeypatch):
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    called = []
    monkeypatch.setattr(sorting, "host_argsort", lambda x: called.append(1))
    x = _x((5, 9))
    np.testing.assert_array_equal(sorting.sort(x), jnp.sort(x))
    assert not called
