"""scipy's L-BFGS-B routine (Byrd, Lu, Nocedal & Zhu 1995) driven without its per-variable Python setup.

``scipy.optimize.minimize(method="L-BFGS-B")`` turns box bounds into a Python
list of one tuple per variable and back, then fills its bound arrays in a
Python loop: for an image of n = H x W x 3 pixels that is about 6 s at 512x512
and 25 s at 1024x1024 on this project's 2-core CPU, paid again at every call
(every coarse-to-fine stage, every resume), before the first evaluation. jtex's
bounds are one box for every pixel, so the arrays are made with numpy here and
the very same compiled routine, ``scipy.optimize._lbfgsb.setulb``, is driven
by the loop scipy itself uses. The iterates are identical to scipy's
(``tests/test_optimize.py`` checks this). Where the private routine's signature
differs (another scipy version), :func:`minimize_box` falls back to
``scipy.optimize.minimize``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import NamedTuple

import numpy as np


class BoxResult(NamedTuple):
    x: np.ndarray
    fun: float
    nit: int
    nfev: int
    success: bool  # converged (ftol/gtol), not stopped by the iteration limit
    message: str


@functools.lru_cache(maxsize=1)
def _setulb():
    """The compiled routine, when it has the 17-argument form of scipy >= 1.15; else None."""
    try:
        from scipy.optimize import _lbfgsb, _lbfgsb_py

        src = inspect.getsource(_lbfgsb_py._minimize_lbfgsb)
        _lbfgsb_py.status_messages, _lbfgsb_py.task_messages  # noqa: B018  (used for the stop message)
    except (ImportError, AttributeError, OSError, TypeError):
        return None
    call = (
        "setulb(m, x, low_bnd, upper_bnd, nbd, f, g, factr, pgtol, wa, iwa, task, lsave, isave, dsave, maxls, ln_task)"
    )
    return (_lbfgsb, _lbfgsb_py) if call in " ".join(src.split()) else None


def minimize_box(
    fg: Callable[[np.ndarray], tuple[float, np.ndarray]],
    x0: np.ndarray,
    lo: float,
    hi: float,
    *,
    maxiter: int,
    ftol: float,
    maxcor: int = 10,
    maxls: int = 20,
    first_step: float | None = None,
    callback: Callable[[np.ndarray, float], None] | None = None,
) -> BoxResult:
    """Minimise ``fg(x) -> (f, grad)`` over ``lo <= x <= hi`` (the same box for every variable).

    ``callback(x, f)`` runs after each iteration with the accepted point.
    Stops after ``maxiter`` iterations, or when
    ``(f_k - f_{k+1}) / max(|f_k|, |f_{k+1}|, 1) <= ftol`` (scipy's rule);
    the projected-gradient test is off (``gtol = 0``), as jtex always ran it.

    ``first_step``: the root-mean-square change of the variables that the
    first iteration tries; None: scipy's. On a box, L-BFGS-B's first trial is
    ``x - g`` (projected), so it depends on the units of ``f``: for a texture
    loss whose gradient is tiny per pixel it barely moves, and the line search
    then spends evaluations extrapolating. With ``first_step`` the problem is
    solved in ``y = x / s``, ``s² = first_step / rms(g(x0))``, which makes the
    first trial ``first_step`` long per variable; the later iterates do not
    depend on ``s`` (the initial inverse Hessian is rescaled by ``sᵀy / yᵀy``
    at every iteration), except through rounding.
    """
    if first_step is not None:
        opts = dict(maxiter=maxiter, ftol=ftol, maxcor=maxcor, maxls=maxls, callback=callback)
        return _scaled(fg, x0, lo, hi, first_step, **opts)
    found = _setulb()
    x = np.clip(np.array(x0, np.float64).ravel(), lo, hi)
    if found is None:
        return _with_scipy(fg, x, lo, hi, maxiter=maxiter, ftol=ftol, maxcor=maxcor, maxls=maxls, callback=callback)
    _lbfgsb, py = found
    n, m = x.size, maxcor
    nbd = np.full(n, 2, np.int32)  # 2: bounded below and above
    low, up = np.full(n, lo, np.float64), np.full(n, hi, np.float64)
    f = np.array(0.0, np.float64)
    g = np.zeros(n, np.float64)
    wa = np.zeros(2 * m * n + 5 * n + 11 * m * m + 8 * m, np.float64)
    iwa = np.zeros(3 * n, np.int32)
    task, ln_task = np.zeros(2, np.int32), np.zeros(2, np.int32)
    lsave, isave, dsave = np.zeros(4, np.int32), np.zeros(44, np.int32), np.zeros(29, np.float64)
    factr = ftol / np.finfo(float).eps
    nit = nfev = 0
    while True:
        _lbfgsb.setulb(m, x, low, up, nbd, f, g, factr, 0.0, wa, iwa, task, lsave, isave, dsave, maxls, ln_task)
        if task[0] == 3:  # wants f and g at x
            value, grad = fg(x.copy())
            nfev += 1
            f = np.array(value, np.float64)
            g = np.asarray(grad, np.float64).ravel()
        elif task[0] == 1:  # a new iterate
            nit += 1
            if callback is not None:
                callback(x.copy(), float(f))
            if nit >= maxiter:
                task[0], task[1] = 5, 504
        else:
            break
    message = f"{py.status_messages[task[0]]}: {py.task_messages[task[1]]}"
    return BoxResult(x, float(f), nit, nfev, bool(task[0] == 4), message)


def _scaled(fg, x0, lo, hi, first_step, *, callback, **options) -> BoxResult:
    x0 = np.clip(np.array(x0, np.float64).ravel(), lo, hi)
    first = fg(x0)
    g0 = np.asarray(first[1], np.float64).ravel()
    rms = float(np.sqrt(np.mean(g0 * g0)))
    scale = float(np.sqrt(first_step / rms)) if rms > 0 and np.isfinite(rms) else 1.0
    y0, cached = x0 / scale, [first]

    def fg_y(y):
        f, g = cached.pop() if cached and np.array_equal(y, y0) else fg(y * scale)
        cached.clear()  # the first call is at y0: its evaluation is reused, once
        return f, np.asarray(g, np.float64).ravel() * scale

    cb = None if callback is None else (lambda y, f: callback(y * scale, f))
    r = minimize_box(fg_y, y0, lo / scale, hi / scale, callback=cb, **options)
    return r._replace(x=r.x * scale)  # exactly the point last evaluated


def _with_scipy(fg, x, lo, hi, *, maxiter, ftol, maxcor, maxls, callback) -> BoxResult:
    import scipy.optimize

    cb = (
        None
        if callback is None
        else (lambda intermediate_result: callback(intermediate_result.x.copy(), float(intermediate_result.fun)))
    )
    res = scipy.optimize.minimize(
        fg,
        x,
        jac=True,
        method="L-BFGS-B",
        bounds=scipy.optimize.Bounds(lo, hi),
        callback=cb,
        options={"maxiter": maxiter, "ftol": ftol, "gtol": 0.0, "maxcor": maxcor, "maxls": maxls},
    )
    message = res.message if isinstance(res.message, str) else str(res.message)
    return BoxResult(
        res.x, float(res.fun), int(res.nit), int(res.nfev), bool(res.success and res.nit < maxiter), message
    )
