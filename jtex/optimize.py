"""One ``minimize`` over the optimisers texture synthesis uses.

The objective is a per-image loss ``fun(x, batched, shared) -> scalar`` for
one image ``x`` (H, W, 3); ``batched`` holds per-image arguments (targets,
leading axis B) and ``shared`` the rest (the VGG params). A batch of B images
is optimised by

* ``lbfgs-b``: scipy's L-BFGS-B (Byrd et al. 1995) on the host, with pixel
  bounds -- what Gatys' and Snelgrove's code used. Each evaluation is one
  jitted call of the vmapped loss and its gradient; the batch is one vector
  (the loss is a sum of independent terms, so gradients stay per image).
  jaxopt.ScipyMinimize wraps exactly this call; we call scipy directly to get
  per-iteration callbacks and bounds without a deprecated layer in between.
* ``lbfgs``: L-BFGS on the device, vmapped so that each image has its own
  memory and line search: optax's two-loop recursion (``scale_by_lbfgs``)
  for the direction, and an Armijo backtracking search written as a state
  machine that spends exactly one evaluation per step -- the unit step is
  accepted almost always, so an iteration costs about one evaluation.
* ``lbfgs-zoom``: optax.lbfgs with its default zoom (strong Wolfe) search,
  several evaluations per iteration.
* ``jaxopt-lbfgs``: jaxopt.LBFGS, jitted and vmapped the same way.
* ``adam``: optax.adam with a learning rate (per image when ``batched`` is a
  dict holding ``"lr"``, so a sweep over rates is one program).

Device-side methods touch the host only every ``chunk`` steps (for the
progress bar, snapshots and checkpoints); per-iteration losses are collected
on the device and handed back with each chunk.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jtex import lbfgsb, methods, sharding
from jtex.choices import OPTIMIZERS as METHODS


class Progress(NamedTuple):
    """What a callback sees after each iteration (host) or chunk (device)."""

    iteration: int  # iterations done so far, counting resumed ones
    losses: np.ndarray  # (k, B): per-iteration, per-image losses since the last call
    x: Any  # (B, H, W, 3), current images (a device array for device methods)
    state: Any  # optimiser state to checkpoint (None for lbfgs-b)
    evaluations: int  # loss+gradient evaluations since the start of this call


class Result(NamedTuple):
    x: np.ndarray  # (B, H, W, 3)
    loss: np.ndarray  # (B,)
    iterations: int
    evaluations: int
    converged: bool
    state: Any
    message: str = ""  # why the optimiser stopped (scipy's own message for lbfgs-b)


# --------------------------------------------------------------------------
# scipy L-BFGS-B (host loop)
# --------------------------------------------------------------------------


# L-BFGS-B's first trial on a box is x - g: with a texture loss's tiny per-pixel
# gradient it barely moves the image and the line search spends evaluations
# extrapolating. jtex makes the first trial move pixels by this much (RMS, in
# [0, 1] units) whatever the loss's units (lbfgsb.minimize_box's first_step).
FIRST_STEP = 0.02


def _minimize_scipy(fun, x0, batched, shared, *, max_iter, tol, bounds, callback, start_iter, plan):
    shape = x0.shape
    _, batched, shared, _ = sharding.lay_out(None, batched, shared, None, plan)  # x is laid out per call
    compiled = _compiled(fun, "lbfgs-b", 0.0, tol, bounds).value_and_grad

    def value_and_grad(x, batched, shared):  # the real images' losses and gradient (padded ones dropped)
        return sharding.trim(compiled(sharding.lay_out(x, None, None, None, plan)[0], batched, shared), plan)

    last = {}

    def fg(flat):
        x = np.asarray(flat.reshape(shape), np.float32)
        losses, g = value_and_grad(x, batched, shared)
        losses = np.asarray(losses, np.float64)
        last.update(x=flat, losses=losses)
        return float(losses.sum()), np.asarray(g, np.float64).ravel()

    evals = [0]
    iteration = [start_iter]

    def cb(x, f):
        iteration[0] += 1
        if callback is not None:
            # The accepted point's loss is the last evaluation (L-BFGS-B evaluates it last).
            callback(Progress(iteration[0], last["losses"][None], x.reshape(shape), None, evals[0]))

    def counted(flat):
        evals[0] += 1
        return fg(flat)

    lo, hi = bounds if bounds is not None else (-np.inf, np.inf)
    res = lbfgsb.minimize_box(
        counted, np.asarray(x0), lo, hi, maxiter=max_iter - start_iter, ftol=tol, first_step=FIRST_STEP, callback=cb
    )
    x = res.x.reshape(shape).astype(np.float32)
    if np.array_equal(last.get("x"), res.x):
        losses = last["losses"].astype(np.float32)
    else:  # the value_and_grad already compiled, rather than compiling the loss alone
        losses = np.asarray(value_and_grad(x, batched, shared)[0])
    message = res.message
    if not res.success and "ITERATIONS REACHED LIMIT" not in message.upper():
        message = f"abnormal stop: {message}"
    return Result(x, losses, iteration[0], evals[0], res.success, None, message)


class _Compiled(NamedTuple):
    init: Callable | None  # vmapped, jitted (device methods)
    step: Callable | None
    value_and_grad: Callable  # batch -> (per-image losses, gradient of their sum)
    per_image: Callable  # batch -> per-image losses


@functools.lru_cache(maxsize=32)
def _compiled(fun, method, lr, tol, bounds) -> _Compiled:
    """Jitted functions for one objective and method, kept so that repeated runs
    (batches of calls, coarse-to-fine stages, parameter sweeps) compile once.
    ``fun`` should be hashable by value (jtex's objectives are NamedTuples)."""
    per_image = jax.vmap(fun, in_axes=(0, 0, None))

    def value_and_grad(x, batched, shared):
        def total(x):
            losses = per_image(x, batched, shared)
            return jnp.sum(losses), losses

        (_, losses), g = jax.value_and_grad(total, has_aux=True)(x)
        return losses, g

    init = step = None
    if method != "lbfgs-b":
        m = methods.device_method(fun, method, lr=lr, tol=tol, bounds=bounds)
        init = jax.jit(jax.vmap(m.init, in_axes=(0, 0, None)))
        step = jax.jit(jax.vmap(m.step, in_axes=(0, 0, None, None)))
    return _Compiled(init, step, jax.jit(value_and_grad), jax.jit(per_image))


def init_device_state(fun, method, lr, x0, batched, shared, *, tol=1e-9, bounds=(0.0, 1.0)):
    """The (vmapped) start state of a device method, also the shape to restore checkpoints into."""
    return _compiled(fun, method, lr, tol, bounds).init(jnp.asarray(x0, jnp.float32), batched, shared)


def _minimize_device(
    fun, x0, batched, shared, *, method, max_iter, tol, lr, bounds, chunk, callback, start_iter, state, plan
):
    compiled = _compiled(fun, method, lr, tol, bounds)
    step = compiled.step
    x0 = np.asarray(x0 if x0 is not None else state.x, np.float32)
    n = len(x0)
    x0, batched, shared, state = sharding.lay_out(x0, batched, shared, state, plan)  # `real` drops any padding
    real = functools.partial(sharding.trim, p=plan)
    s = state if state is not None else compiled.init(jnp.asarray(x0), batched, shared)
    evals0 = int(jnp.sum(real(s.evals)))
    iteration = start_iter
    while not bool(jnp.all(s.done | (s.k >= max_iter))):
        # Run every image to exactly `until` iterations, so that snapshots and
        # checkpoints fall on multiples of `chunk`. A step adds at most one
        # iteration, so `until - min(k)` steps are dispatched before looking.
        until = min(max_iter, (iteration // chunk + 1) * chunk)
        ks, fs = [], []
        while True:
            behind = np.asarray(~s.done & (s.k < until))
            if not behind.any():
                break
            for _ in range(until - int(np.asarray(s.k)[behind].min())):
                s = step(s, batched, shared, until)  # dispatched asynchronously
                ks.append(s.k)
                fs.append(s.f)
        if not ks:
            break
        ks, fs = np.asarray(jnp.stack(ks))[:, :n], np.asarray(jnp.stack(fs))[:, :n]  # (steps, B)
        # Row j: each image's loss at the first step where it reached iteration j.
        levels = np.arange(iteration + 1, until + 1)
        first = np.argmax(ks[None] >= levels[:, None, None], axis=1)  # (rows, B)
        rows = np.take_along_axis(fs, first, axis=0)
        rows = np.where((ks[-1] >= levels[:, None]), rows, fs[-1])  # converged early: its last loss
        iteration = until
        if callback is not None:
            callback(Progress(iteration, rows, real(s.x), real(s), int(jnp.sum(real(s.evals))) - evals0))
    # jtex's L-BFGS keeps the loss at its accepted point; the wrapped optimisers' `f` is a step behind.
    final = real(s.f if isinstance(s, methods.LbfgsState) else compiled.per_image(s.x, batched, shared))
    s = real(s)
    converged = bool(jnp.all(s.done))
    return Result(
        np.asarray(s.x),
        np.asarray(final),
        int(jnp.max(s.k)),
        int(jnp.sum(s.evals)) - evals0,
        converged,
        s,
        "converged (relative decrease below tol)" if converged else "iteration limit reached",
    )


def minimize(
    fun: Callable,
    x0,
    batched,
    shared,
    *,
    method: str = "lbfgs-b",
    max_iter: int = 500,
    tol: float = 1e-9,
    lr: float = 0.02,
    bounds: tuple[float, float] | None = (0.0, 1.0),
    chunk: int = 50,
    callback: Callable[[Progress], None] | None = None,
    start_iter: int = 0,
    state: Any = None,
    shard: bool = True,
) -> Result:
    """Minimise ``sum_b fun(x[b], batched[b], shared)`` over a batch of images.

    Args:
      fun: per-image loss, ``(H, W, 3), batched_b, shared -> ()``; jittable.
      x0: (B, H, W, 3) start.
      batched: pytree with leading axis B (per-image targets).
      shared: pytree passed unbatched (VGG params).
      method: one of ``METHODS``.
      max_iter: total iterations, counting ``start_iter`` already done.
      tol: relative decrease of the loss below which an image has converged
        (scipy's ``ftol``).
      lr: Adam's learning rate (ignored by the L-BFGS methods).
      bounds: pixel box for ``lbfgs-b``; device methods clip at the end.
      chunk: device iterations between host callbacks.
      callback: called with a :class:`Progress`.
      start_iter, state: resume a device run from a checkpointed
        :class:`DeviceState` (for ``lbfgs-b``, pass the image as ``x0``).
      shard: lay the batch out over the local devices (:mod:`jtex.sharding`)
        when there are several; results are the same as on one device.

    Returns:
      :class:`Result`; ``x`` is clipped to ``bounds``.
    """
    if method not in METHODS:
        raise ValueError(f"unknown optimizer {method!r}; choose one of {', '.join(METHODS)}")
    bounds = None if bounds is None else (float(bounds[0]), float(bounds[1]))
    shape = np.shape(x0) if x0 is not None else np.shape(state.x)  # a resumed device run may pass only its state
    plan = sharding.plan(shape) if shard else None
    if method == "lbfgs-b":
        res = _minimize_scipy(
            fun,
            x0,
            batched,
            shared,
            max_iter=max_iter,
            tol=tol,
            bounds=bounds,
            callback=callback,
            start_iter=start_iter,
            plan=plan,
        )
    else:
        res = _minimize_device(
            fun,
            x0,
            batched,
            shared,
            method=method,
            max_iter=max_iter,
            tol=tol,
            lr=lr,
            bounds=bounds,
            chunk=max(1, chunk),
            callback=callback,
            start_iter=start_iter,
            state=state,
            plan=plan,
        )
    if bounds is not None:
        res = res._replace(x=np.clip(res.x, *bounds))
    return res
