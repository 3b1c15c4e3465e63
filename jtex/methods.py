"""The device-side optimisers behind :func:`jtex.optimize.minimize`, one image at a time.

Each method is a pair ``init(x, batched, shared) -> state`` and
``step(state, batched, shared, until) -> state`` for ONE image; ``minimize``
vmaps and jits them, so every image of a batch keeps its own memory and line
search. A step costs one loss+gradient evaluation (jtex's L-BFGS, Adam) or one
iteration (optax's zoom search, jaxopt), and freezes an image once it is done
or has reached ``until`` iterations.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

# --------------------------------------------------------------------------
# Device-side loops
# --------------------------------------------------------------------------
#
# Each method is a jitted, vmapped ``step(state) -> state`` that costs one
# loss+gradient evaluation per image (Adam, jtex's L-BFGS) or one iteration
# (optax's zoom search, jaxopt). The host calls it ``chunk`` times without
# waiting -- JAX dispatches asynchronously, so the device runs the steps back
# to back -- and synchronises once per chunk. We do not wrap the steps in
# ``lax.while_loop``: XLA:CPU runs convolutions inside a while body about
# 2.7x slower than outside (jax-ml/jax#12868, measured here: 1.30 s vs
# 0.48 s per evaluation at 256x256), and under ``vmap`` every ``lax.cond``
# in a line search becomes a select that evaluates both branches.


class LbfgsState(NamedTuple):
    """jtex's L-BFGS: optax's two-loop direction, a one-evaluation-per-step line search."""

    x: Any  # accepted point
    f: Any  # loss at x
    g: Any  # gradient at x
    d: Any  # search direction from x
    t: Any  # step length being tried
    memory: Any  # optax ScaleByLBFGSState
    k: Any  # accepted iterations
    evals: Any
    done: Any


class WrappedState(NamedTuple):
    """A library optimiser's state (optax Adam, optax.lbfgs, jaxopt.LBFGS) with our bookkeeping."""

    x: Any
    f: Any  # loss at the last evaluation
    opt: Any
    k: Any  # iterations
    evals: Any
    done: Any

    @classmethod
    def start(cls, x, opt):
        zero = jnp.zeros((), jnp.int32)
        return cls(x, jnp.asarray(jnp.inf, jnp.float32), opt, zero, zero, jnp.zeros((), bool))


def _ftol_done(prev, value, tol):
    # scipy's L-BFGS-B stopping rule: (f_k - f_{k+1}) / max(|f_k|, |f_{k+1}|, 1) <= ftol
    return (prev - value) / jnp.maximum(jnp.maximum(jnp.abs(prev), jnp.abs(value)), 1.0) <= tol


def _where(c, a, b):
    return jax.tree.map(lambda u, v: jnp.where(c, u, v), a, b)


def _descent(p, g, x, lo, hi):
    """The search direction from x: -p with the components that would push a
    pixel already on its bound further out set to 0 (a projected-gradient
    active set); a unit-norm steepest-descent step, masked the same way, if
    that does not descend (a bad curvature pair in the memory)."""
    free = lambda d: jnp.where(((x <= lo) & (d < 0)) | ((x >= hi) & (d > 0)), 0.0, d)  # noqa: E731
    d = free(-p)
    sd = free(-g)
    return jnp.where(jnp.vdot(g, d) < 0, d, sd / jnp.maximum(jnp.linalg.norm(sd), 1e-12))


class _Method(NamedTuple):
    init: Callable  # (x, batched, shared) -> state, one image
    step: Callable  # (state, batched, shared, until) -> state, one image; frozen once k == until


def _lbfgs_method(fun, bounds, tol) -> _Method:
    direction = optax.scale_by_lbfgs(memory_size=10)
    lo, hi = bounds if bounds is not None else (-jnp.inf, jnp.inf)

    def init(x, batched, shared):
        f, g = jax.value_and_grad(fun)(x, batched, shared)
        memory = direction.init(x)
        p, memory = direction.update(g, memory, x)  # first step: -g / max(1, |g|)
        return LbfgsState(
            x,
            f,
            g,
            _descent(p, g, x, lo, hi),
            jnp.ones(()),
            memory,
            jnp.zeros((), jnp.int32),
            jnp.ones((), jnp.int32),
            ~jnp.isfinite(f),
        )

    def step(s, batched, shared, until):
        active = ~s.done & (s.k < until)
        trial = jnp.clip(s.x + s.t * s.d, lo, hi)  # projected onto the pixel box
        f, g = jax.value_and_grad(fun)(trial, batched, shared)
        slope = jnp.vdot(s.g, trial - s.x)
        # Armijo sufficient decrease along the (projected) step.
        accept = active & jnp.isfinite(f) & (f <= s.f + 1e-4 * slope)
        p, memory = direction.update(g, s.memory, trial)
        d = _descent(p, g, trial, lo, hi)
        # On rejection: safeguarded quadratic interpolation of the step.
        dq = f - s.f - slope
        t_q = jnp.where(jnp.isfinite(dq) & (dq > 0), -slope * s.t / (2 * dq), 0.5 * s.t)
        t_next = jnp.clip(t_q, 0.1 * s.t, 0.5 * s.t)
        converged = accept & _ftol_done(s.f, f, tol)
        stalled = active & ~accept & (t_next < 1e-10)
        new = LbfgsState(trial, f, g, d, jnp.ones(()), memory, s.k + 1, s.evals, s.done | converged)
        kept = s._replace(t=jnp.where(active, t_next, s.t), done=s.done | stalled)
        out = _where(accept, new, kept)
        return out._replace(evals=s.evals + active.astype(jnp.int32))

    return _Method(init, step)


def _adam_method(fun, lr) -> _Method:
    """optax.adam, its rate read from ``batched["lr"]`` when there is one (a traced, per-image rate)."""
    opt = optax.scale_by_adam()

    def init(x, batched, shared):
        return WrappedState.start(x, opt.init(x))

    def step(s, batched, shared, until):
        active = ~s.done & (s.k < until)
        f, g = jax.value_and_grad(fun)(s.x, batched, shared)
        updates, opt_state = opt.update(g, s.opt, s.x)
        rate = batched["lr"] if isinstance(batched, dict) and "lr" in batched else lr
        updates = jax.tree.map(lambda u: -rate * u, updates)  # optax.adam's scale_by_learning_rate
        new = WrappedState(optax.apply_updates(s.x, updates), f, opt_state, s.k + 1, s.evals + 1, ~jnp.isfinite(f))
        return _where(active, new, s)

    return _Method(init, step)


def _optax_lbfgs_method(fun, tol) -> _Method:
    opt = optax.lbfgs(memory_size=10)  # optax's default zoom (strong Wolfe) line search

    def init(x, batched, shared):
        return WrappedState.start(x, opt.init(x))

    def step(s, batched, shared, until):
        active = ~s.done & (s.k < until)
        f_of = lambda x: fun(x, batched, shared)  # noqa: E731
        f, g = optax.value_and_grad_from_state(f_of)(s.x, state=s.opt)
        updates, opt_state = opt.update(g, s.opt, s.x, value=f, grad=g, value_fn=f_of)
        n = optax.tree.get(opt_state, "num_linesearch_steps")
        done = _ftol_done(s.f, f, tol) | ~jnp.isfinite(f)
        new = WrappedState(optax.apply_updates(s.x, updates), f, opt_state, s.k + 1, s.evals + n, done)
        return _where(active, new, s)

    return _Method(init, step)


def _jaxopt_method(fun, tol) -> _Method:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import jaxopt

    def solver(batched, shared):
        # maxiter bounds jaxopt's own run(); we call update() step by step.
        return jaxopt.LBFGS(fun=lambda x: fun(x, batched, shared), maxiter=1 << 30, tol=0.0, history_size=10)

    def init(x, batched, shared):
        return WrappedState.start(x, solver(batched, shared).init_state(x))

    def step(s, batched, shared, until):
        active = ~s.done & (s.k < until)
        x, st = solver(batched, shared).update(s.x, s.opt)
        done = _ftol_done(s.f, st.value, tol) | ~jnp.isfinite(st.value)
        new = WrappedState(x, st.value, st, s.k + 1, st.num_fun_eval.astype(jnp.int32), done)
        return _where(active, new, s)

    return _Method(init, step)


def device_method(fun, method, *, lr, tol, bounds) -> _Method:
    if method == "lbfgs":
        return _lbfgs_method(fun, bounds, tol)
    if method == "adam":
        return _adam_method(fun, lr)
    if method == "lbfgs-zoom":
        return _optax_lbfgs_method(fun, tol)
    return _jaxopt_method(fun, tol)
