"""jtex.optimize: every method on small problems with known optima; batching and resume."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jtex import optimize


def quadratic(x, target, shared):
    """Per-image convex quadratic with an ill-conditioned diagonal; optimum at target."""
    scale = shared["scale"]
    return jnp.sum(scale * (x - target) ** 2)


def problem(b=2, n=16, seed=0):
    rng = np.random.default_rng(seed)
    target = jnp.asarray(rng.uniform(0.2, 0.8, (b, n, n, 3)), jnp.float32)
    scale = jnp.asarray(np.logspace(0, 2, n * n * 3).reshape(n, n, 3), jnp.float32)
    x0 = jnp.full((b, n, n, 3), 0.5, jnp.float32)
    return x0, target, {"scale": scale}


@pytest.mark.parametrize(
    "method,iters,factor",
    [
        ("lbfgs-b", 60, 1e-6),
        ("lbfgs", 60, 1e-6),
        ("lbfgs-zoom", 40, 1e-6),
        ("jaxopt-lbfgs", 40, 1e-6),
        ("adam", 200, 1e-2),
    ],
)
def test_methods_reach_the_optimum(method, iters, factor):
    x0, target, shared = problem()
    start = np.asarray(jax.vmap(quadratic, in_axes=(0, 0, None))(x0, target, shared))
    res = optimize.minimize(quadratic, x0, target, shared, method=method, max_iter=iters, tol=0.0, lr=0.05, chunk=7)
    assert res.x.shape == x0.shape and res.loss.shape == (2,)
    assert np.all(res.loss < factor * start), (method, res.loss, start)
    assert 0 < res.iterations <= iters


def test_bounds_are_respected():
    # The optimum (1.5) lies outside the box: both L-BFGS variants stop on the bound.
    x0, target, shared = problem(b=1)
    target = target + 1.0
    for method in ("lbfgs-b", "lbfgs"):
        res = optimize.minimize(quadratic, x0, target, shared, method=method, max_iter=50, bounds=(0.0, 1.0))
        assert res.x.max() <= 1.0 and res.x.min() >= 0.0
        np.testing.assert_allclose(res.x, 1.0, atol=1e-3)


def test_device_lbfgs_batch_elements_are_independent():
    # Each image has its own memory and line search: a batch of two gives
    # the same result as two runs of one.
    x0, target, shared = problem(b=2)
    both = optimize.minimize(quadratic, x0, target, shared, method="lbfgs", max_iter=15, tol=0.0)
    for i in range(2):
        one = optimize.minimize(
            quadratic, x0[i : i + 1], target[i : i + 1], shared, method="lbfgs", max_iter=15, tol=0.0
        )
        np.testing.assert_allclose(one.x[0], both.x[i], rtol=1e-5, atol=1e-6)


def test_lbfgs_costs_about_one_evaluation_per_iteration():
    x0, target, shared = problem(b=1)
    res = optimize.minimize(quadratic, x0, target, shared, method="lbfgs", max_iter=30, tol=0.0)
    assert res.evaluations <= 1.5 * res.iterations + 2


@pytest.mark.parametrize("method", ["lbfgs", "adam"])
def test_device_resume_is_exact(method):
    x0, target, shared = problem(b=2)
    full = optimize.minimize(quadratic, x0, target, shared, method=method, max_iter=20, tol=0.0, chunk=5)
    states = []
    half = optimize.minimize(
        quadratic,
        x0,
        target,
        shared,
        method=method,
        max_iter=10,
        tol=0.0,
        chunk=5,
        callback=lambda p: states.append(p.state),
    )
    assert half.iterations == 10
    rest = optimize.minimize(
        quadratic, None, target, shared, method=method, max_iter=20, tol=0.0, chunk=5, start_iter=10, state=states[-1]
    )
    np.testing.assert_array_equal(rest.x, full.x)


def test_tolerance_stops_early():
    x0, target, shared = problem(b=1)
    res = optimize.minimize(quadratic, x0, target, shared, method="lbfgs", max_iter=500, tol=1e-3)
    assert res.converged and res.iterations < 100


def test_progress_reports_every_iteration_once():
    x0, target, shared = problem(b=1)
    seen = []
    optimize.minimize(
        quadratic,
        x0,
        target,
        shared,
        method="lbfgs-b",
        max_iter=12,
        tol=0.0,
        callback=lambda p: seen.append(p.iteration),
    )
    assert seen == list(range(1, 13))
    seen.clear()
    rows = []

    def cb(p):
        seen.append(p.iteration)
        rows.append(len(p.losses))

    optimize.minimize(quadratic, x0, target, shared, method="adam", max_iter=12, tol=0.0, chunk=5, callback=cb)
    assert seen == [5, 10, 12] and sum(rows) == 12


def test_unknown_method():
    x0, target, shared = problem(b=1)
    with pytest.raises(ValueError, match="unknown optimizer"):
        optimize.minimize(quadratic, x0, target, shared, method="newton")


def test_fast_lbfgsb_driver_matches_scipy_exactly():
    # jtex drives scipy's compiled L-BFGS-B itself (no per-variable Python bounds setup);
    # the iterates must be scipy.optimize.minimize's, bit for bit.
    import scipy.optimize as so

    from jtex import lbfgsb

    assert lbfgsb._setulb() is not None  # the fast path is the one in use with this scipy
    rng = np.random.default_rng(0)
    a, c = rng.normal(size=3000), rng.uniform(-0.5, 1.5, 3000)

    def fg(x):
        return float((a**2 * (x - c) ** 2).sum() + 0.1 * np.sin(x).sum()), 2 * a**2 * (x - c) + 0.1 * np.cos(x)

    x0 = rng.uniform(0, 1, 3000)
    ours, theirs = [], []
    r = lbfgsb.minimize_box(fg, x0, 0.0, 1.0, maxiter=25, ftol=1e-12, callback=lambda x, f: ours.append(f))
    s = so.minimize(
        fg,
        x0,
        jac=True,
        method="L-BFGS-B",
        bounds=so.Bounds(0, 1),
        callback=lambda intermediate_result: theirs.append(intermediate_result.fun),
        options={"maxiter": 25, "ftol": 1e-12, "gtol": 0, "maxcor": 10, "maxls": 20},
    )
    assert ours == theirs and (r.nit, r.nfev) == (s.nit, s.nfev)
    np.testing.assert_array_equal(r.x, s.x)
    assert r.message == s.message and not r.success
    fallback = lbfgsb._with_scipy(fg, x0, 0.0, 1.0, maxiter=25, ftol=1e-12, maxcor=10, maxls=20, callback=None)
    np.testing.assert_array_equal(fallback.x, s.x)


def test_lbfgsb_first_step_sets_the_first_trial_and_keeps_the_optimum():
    # first_step: the first trial moves the variables by that much (RMS) whatever the
    # units of f (here scaled by 1e-4); the box and the minimiser stay the same.
    from jtex import lbfgsb

    rng = np.random.default_rng(1)
    a, c = rng.uniform(0.5, 2.0, 2000), rng.uniform(0.2, 0.8, 2000)
    x0 = rng.uniform(0.3, 0.7, 2000)

    def run(first_step, units):
        seen = []

        def fg(x):
            seen.append(x.copy())
            return units * float((a * (x - c) ** 2).sum()), units * 2 * a * (x - c)

        r = lbfgsb.minimize_box(fg, x0, 0.0, 1.0, maxiter=80, ftol=0.0, first_step=first_step)
        return r, seen

    for units in (1.0, 1e-4):
        r, seen = run(0.01, units)
        assert np.sqrt(np.mean((seen[1] - seen[0]) ** 2)) == pytest.approx(0.01, rel=1e-6)
        assert r.nfev == len(seen)  # the evaluation at x0 is reused, not repeated
        np.testing.assert_allclose(r.x, c, atol=1e-5)
        assert all(s.min() >= -1e-12 and s.max() <= 1 + 1e-12 for s in seen)
    r_plain, seen_plain = run(None, 1e-4)  # scipy's first trial, x - g: a tiny move at these units
    assert np.sqrt(np.mean((seen_plain[1] - seen_plain[0]) ** 2)) < 1e-4
