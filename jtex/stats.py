"""Texture statistics of feature maps: Gram matrices, SPD calculus, sliced Wasserstein.

Feature maps are ``(..., H, W, C)`` (usually ``(B, H, W, C)``, NHWC); every
statistic keeps the leading batch axes, so one call serves a batch of images and
the functions also compose with ``jax.vmap``. Matrix products use
``Precision.HIGHEST``: on GPUs the default float32 matmul may run in TF32
(10-bit mantissa), which is too coarse for Gram differences that are small
relative to the Grams themselves.

References:
  L. A. Gatys, A. S. Ecker, M. Bethge, "Texture Synthesis Using Convolutional
  Neural Networks", NeurIPS 2015.
  X. Snelgrove, "High-Resolution Multi-Scale Neural Texture Synthesis",
  SIGGRAPH Asia 2017 Technical Briefs (and his code, ``subjective-functions``).
  V. Arsigny, P. Fillard, X. Pennec, N. Ayache, "Geometric Means in a Novel
  Vector Space Structure on Symmetric Positive-Definite Matrices", SIAM J.
  Matrix Anal. Appl. 29(1), 2007.
  E. Heitz, K. Vanhoey, T. Chambon, L. Belcour, "A Sliced Wasserstein Loss for
  Neural Texture Synthesis", CVPR 2021.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jtex import sorting
from jtex.choices import GRAM_NORMS, JOIN_MODES  # noqa: F401  (re-exported)

_HIGHEST = jax.lax.Precision.HIGHEST


def _mm(a: jax.Array, b: jax.Array) -> jax.Array:
    return jnp.matmul(a, b, precision=_HIGHEST)


def _flatten_positions(features: jax.Array) -> jax.Array:
    """``(..., H, W, C)`` -> ``(..., M, C)`` with ``M = H W``."""
    f = jnp.asarray(features)
    if f.ndim < 3:
        raise ValueError(f"expected features of shape (..., H, W, C), got shape {f.shape}")
    if not jnp.issubdtype(f.dtype, jnp.floating):
        f = f.astype(jnp.float32)
    return f.reshape(f.shape[:-3] + (f.shape[-3] * f.shape[-2], f.shape[-1]))


def _check_norm(norm: str) -> None:
    if norm not in GRAM_NORMS:
        raise ValueError(f"norm must be one of {GRAM_NORMS}, got {norm!r}")


# ----------------------------------------------------------------------------- Gram


@functools.partial(jax.jit, static_argnames=("norm",))
def gram(features: jax.Array, *, norm: str = "gatys") -> jax.Array:
    """Gram matrix of a feature map, per batch element.

    With ``F`` the ``M x N`` matrix of features (``M = H W`` positions, ``N = C``
    channels):

    * ``"gatys"``: ``G = Fᵀ F / M`` — Gatys et al. 2015 eq. 1 with the ``1/M`` of
      the authors' code (the paper's eq. 4 puts that factor into the loss).
    * ``"snelgrove"``: ``G = Fᵀ F / (M N)`` — Snelgrove 2017, "to make it size and
      layer agnostic".
    * ``"none"``: ``G = Fᵀ F``.

    Args:
      features: ``(..., H, W, C)`` activations.
      norm: one of ``GRAM_NORMS``.

    Returns:
      ``(..., C, C)`` symmetric positive semi-definite matrices.
    """
    _check_norm(norm)
    f = _flatten_positions(features)
    m, n = f.shape[-2], f.shape[-1]
    acc = jnp.promote_types(f.dtype, jnp.float32)  # bfloat16 maps: products accumulated in float32
    g = jnp.einsum("...mc,...md->...cd", f, f, precision=_HIGHEST, preferred_element_type=acc)
    if norm == "gatys":
        g = g / m
    elif norm == "snelgrove":
        g = g / (m * n)
    return g


@functools.partial(jax.jit, static_argnames=("norm",))
def gram_distance(g: jax.Array, target: jax.Array, *, norm: str = "gatys") -> jax.Array:
    """Squared Frobenius distance between Gram matrices, per batch element.

    * ``"gatys"``: ``E = 1 / (4 N²) Σ_ij (G_ij − Ĝ_ij)²`` — Gatys' per-layer loss
      ``E_l`` for Grams from ``gram(..., norm="gatys")`` (equal to the paper's
      ``1 / (4 N² M²) Σ (FᵀF − F̂ᵀF̂)²``).
    * ``"snelgrove"`` and ``"none"``: ``E = Σ_ij (G_ij − Ĝ_ij)²`` (Snelgrove's
      loss for Grams from ``gram(..., norm="snelgrove")``).

    Args:
      g: ``(..., C, C)`` Grams of the image being synthesised.
      target: Grams broadcastable to ``g``: ``(C, C)`` or ``(B, C, C)``.
      norm: one of ``GRAM_NORMS``; picks the prefactor, not the Gram.

    Returns:
      ``(...)`` distances, e.g. ``(B,)``.
    """
    _check_norm(norm)
    d = jnp.asarray(g) - jnp.asarray(target)
    e = jnp.sum(d * d, axis=(-2, -1))
    if norm == "gatys":
        n = d.shape[-1]
        e = e / (4.0 * n * n)
    return e


@jax.jit
def channel_mean_cov(features: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Per-channel mean and (biased, ``1/M``) covariance of a feature map.

    ``μ = (1/M) Σ_m f_m`` and ``Σ = (1/M) Σ_m (f_m − μ)(f_m − μ)ᵀ``, computed
    from centred features (not ``E[ffᵀ] − μμᵀ``, which cancels badly when the
    mean dominates, as it does for post-ReLU activations).

    Args:
      features: ``(..., H, W, C)``.

    Returns:
      ``(mean (..., C), cov (..., C, C))``.
    """
    f = _flatten_positions(features)
    mean = jnp.mean(f, axis=-2)
    c = f - mean[..., None, :]
    cov = jnp.einsum("...mc,...md->...cd", c, c, precision=_HIGHEST) / f.shape[-2]
    return mean, cov


# ----------------------------------------------------------------------------- SPD calculus
#
# A spectral function F(M) = V diag(f(λ)) Vᵀ is computed from one `eigh`. Its
# derivative is the Daleckii–Krein formula dF = V (D ∘ (Vᵀ dM V)) Vᵀ with the
# divided differences D_ij = (f(λ_i) − f(λ_j)) / (λ_i − λ_j) (D_ii = f'(λ_i)).
# JAX's own `eigh` derivative divides by λ_i − λ_j and returns NaN for repeated
# eigenvalues (any multiple of the identity, any Gram + ε I with a null space),
# so we give the spectral functions a custom JVP that uses D directly, with
# divided differences written to avoid cancellation when λ_i ≈ λ_j.


def _sym(m: jax.Array) -> jax.Array:
    return 0.5 * (m + jnp.swapaxes(m, -1, -2))


def _order(a, b):
    return jnp.minimum(a, b), jnp.abs(a - b)


def _safe(d):
    return jnp.where(d == 0, 1.0, d)


def _spectral_fns(kind: tuple):
    """``(f, dd)`` for a spectral function; ``dd(a, b)`` = divided difference."""
    name = kind[0]
    if name == "exp":

        def dd(a, b):
            # exp(hi) (1 − e^{−δ}) / δ: no cancellation, no overflow beyond exp(hi).
            hi, d = jnp.maximum(a, b), jnp.abs(a - b)
            return jnp.exp(hi) * jnp.where(d == 0, 1.0, -jnp.expm1(-d) / _safe(d))

        return jnp.exp, dd
    if name == "log":

        def dd(a, b):
            lo, d = _order(a, b)  # log(hi) − log(lo) = log1p(δ / lo)
            return jnp.where(d == 0, 1.0 / lo, jnp.log1p(d / lo) / _safe(d))

        return jnp.log, dd
    if name == "sqrt":
        return jnp.sqrt, lambda a, b: 1.0 / (jnp.sqrt(a) + jnp.sqrt(b))
    if name == "power":
        p = kind[1]

        def dd(a, b):
            lo, d = _order(a, b)  # hi^p − lo^p = lo^p expm1(p log1p(δ / lo))
            return jnp.where(d == 0, p * lo ** (p - 1), lo**p * jnp.expm1(p * jnp.log1p(d / lo)) / _safe(d))

        return (lambda w: w**p), dd
    raise ValueError(kind)


def _eig(m: jax.Array, kind: tuple, rel_floor: float):
    w, v = jnp.linalg.eigh(m)
    if kind[0] == "exp":
        return w, w, v, None  # exp is defined on all symmetric matrices: no clamp
    # Clamp tiny/negative eigenvalues (rank deficiency, fp32 eigh noise of order
    # 1e-7 ‖M‖) so log and negative powers stay finite. The floor is a constant
    # for differentiation.
    top = jnp.max(w, axis=-1, keepdims=True)
    floor = jax.lax.stop_gradient(jnp.maximum(rel_floor * top, jnp.finfo(w.dtype).tiny))
    return w, jnp.maximum(w, floor), v, floor


def _recompose(v: jax.Array, fw: jax.Array) -> jax.Array:
    return _mm(v * fw[..., None, :], jnp.swapaxes(v, -1, -2))


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1))
def _spectral(kind: tuple, rel_floor: float, m: jax.Array) -> jax.Array:
    f, _ = _spectral_fns(kind)
    _, wc, v, _ = _eig(m, kind, rel_floor)
    return _recompose(v, f(wc))


@_spectral.defjvp
def _spectral_jvp(kind, rel_floor, primals, tangents):
    (m,), (dm,) = primals, tangents
    f, dd = _spectral_fns(kind)
    w, wc, v, floor = _eig(m, kind, rel_floor)
    out = _recompose(v, f(wc))
    a, b = wc[..., :, None], wc[..., None, :]
    d = dd(a, b)
    if floor is not None:
        # Divided differences of g(λ) = f(max(λ, floor)) at the true λ: 0 where
        # both are clamped, rescaled where exactly one is.
        ca, cb = (w < floor)[..., :, None], (w < floor)[..., None, :]
        den = w[..., :, None] - w[..., None, :]
        ratio = (a - b) / _safe(den)
        d = d * jnp.where(ca & cb, 0.0, jnp.where(ca | cb, ratio, 1.0))
    vt = jnp.swapaxes(v, -1, -2)
    dout = _mm(_mm(v, d * _mm(_mm(vt, dm), v)), vt)
    return out, dout


def _spd_apply(m: jax.Array, kind: tuple, rel_floor: float) -> jax.Array:
    m = jnp.asarray(m)
    if m.ndim < 2 or m.shape[-1] != m.shape[-2]:
        raise ValueError(f"expected square matrices (..., C, C), got shape {m.shape}")
    if not jnp.issubdtype(m.dtype, jnp.floating):
        m = m.astype(jnp.float32)
    return _spectral(kind, float(rel_floor), _sym(m))


@functools.partial(jax.jit, static_argnames=("rel_floor",))
def spd_log(m: jax.Array, *, rel_floor: float = 1e-10) -> jax.Array:
    """Matrix logarithm of symmetric positive (semi-)definite matrices.

    ``log M = V diag(log max(λ, ε)) Vᵀ`` for ``M = V diag(λ) Vᵀ`` (after
    symmetrising ``M``), ``ε = rel_floor · max λ``: singular Grams give large
    negative but finite logs. Differentiable, also at repeated eigenvalues.

    Args:
      m: ``(..., C, C)``.
      rel_floor: eigenvalue floor relative to the largest eigenvalue.

    Returns:
      ``(..., C, C)`` symmetric.
    """
    return _spd_apply(m, ("log",), rel_floor)


@jax.jit
def spd_exp(m: jax.Array) -> jax.Array:
    """Matrix exponential of symmetric matrices: ``V diag(exp λ) Vᵀ``.

    Inverse of ``spd_log``. No clamp: every symmetric matrix has a (SPD)
    exponential.

    Args:
      m: ``(..., C, C)`` (symmetrised first).

    Returns:
      ``(..., C, C)`` symmetric positive definite.
    """
    return _spd_apply(m, ("exp",), 0.0)


@functools.partial(jax.jit, static_argnames=("rel_floor",))
def spd_sqrt(m: jax.Array, *, rel_floor: float = 1e-10) -> jax.Array:
    """Principal square root of SPD matrices: ``V diag(√max(λ, ε)) Vᵀ``.

    Args:
      m: ``(..., C, C)`` (symmetrised first).
      rel_floor: eigenvalue floor relative to the largest eigenvalue.

    Returns:
      ``(..., C, C)`` symmetric, with ``spd_sqrt(m) @ spd_sqrt(m) ≈ m``.
    """
    return _spd_apply(m, ("sqrt",), rel_floor)


@functools.partial(jax.jit, static_argnames=("p", "rel_floor"))
def spd_power(m: jax.Array, p: float, *, rel_floor: float = 1e-10) -> jax.Array:
    """Real power of SPD matrices: ``V diag(max(λ, ε)^p) Vᵀ``.

    Args:
      m: ``(..., C, C)`` (symmetrised first).
      p: exponent, a Python number (static under ``jit``); negative powers are
        finite thanks to the floor but meaningless for singular matrices.
      rel_floor: eigenvalue floor relative to the largest eigenvalue.

    Returns:
      ``(..., C, C)`` symmetric.
    """
    return _spd_apply(m, ("power", float(p)), rel_floor)


@functools.partial(jax.jit, static_argnames=("mode",))
def join_grams(grams: jax.Array, mode: str = "average", *, eps: float = 0.05) -> jax.Array:
    """Join the Grams of several sources into one target (Snelgrove 2017 ``--join-mode``).

    ``grams`` stacks ``S`` sources on axis 0:

    * ``"average"``: ``(1/S) Σ_s G_s`` (e.g. a "place" texture from many photos).
    * ``"max"``: elementwise ``max_s G_s``.
    * ``"log_euclidean"``: ``exp((1/S) Σ_s log(G_s + ε I))`` — the log-Euclidean
      mean (Arsigny et al. 2007).
    * ``"affine_invariant"``: the midpoint of the affine-invariant geodesic
      between exactly two SPD matrices ``A = G_1 + ε I``, ``B = G_2 + ε I``:
      ``A # B = A^{1/2} (A^{-1/2} B A^{-1/2})^{1/2} A^{1/2}`` (symmetric in A, B;
      for commuting A, B it is ``(A B)^{1/2}``). The geodesic is only defined
      between two points, so ``S`` must be 2.

    ``ε I`` is added in the last two modes, as Snelgrove's code does (ε = 0.05),
    to make singular Grams (ReLU features, fewer positions than channels)
    positive definite. ε is absolute, in the units of the Grams given: 0.05 was
    chosen for Snelgrove's ``/(M N)`` Grams of 0..255 BGR VGG features. Pass
    ``eps=0.0`` for the plain means.

    Args:
      grams: ``(S, ..., C, C)``.
      mode: one of ``JOIN_MODES``.
      eps: diagonal loading for 'log_euclidean' and 'affine_invariant'.

    Returns:
      ``(..., C, C)``.

    Raises:
      ValueError: unknown ``mode``, or 'affine_invariant' with ``S != 2``.
    """
    g = jnp.asarray(grams)
    if g.ndim < 3 or g.shape[-1] != g.shape[-2]:
        raise ValueError(f"expected stacked Grams of shape (S, ..., C, C), got shape {g.shape}")
    if mode == "average":
        return jnp.mean(g, axis=0)
    if mode == "max":
        return jnp.max(g, axis=0)
    loaded = g + eps * jnp.eye(g.shape[-1], dtype=g.dtype)
    if mode == "log_euclidean":
        return spd_exp(jnp.mean(spd_log(loaded), axis=0))
    if mode == "affine_invariant":
        if g.shape[0] != 2:
            raise ValueError(
                f"join mode 'affine_invariant' is the geodesic midpoint of exactly 2 sources, "
                f"got {g.shape[0]}; use 'log_euclidean' to average more"
            )
        a, b = loaded[0], loaded[1]
        a_half, a_mhalf = spd_power(a, 0.5), spd_power(a, -0.5)
        return _sym(_mm(_mm(a_half, spd_sqrt(_mm(_mm(a_mhalf, b), a_mhalf))), a_half))
    raise ValueError(f"mode must be one of {JOIN_MODES}, got {mode!r}")


# ----------------------------------------------------------------------------- sliced Wasserstein


def _resample_sorted(s: jax.Array, m: int) -> jax.Array:
    """Resample sorted values ``(..., Mt, P)`` to ``m`` quantiles along axis -2.

    The empirical quantile function of ``Mt`` samples, evaluated at the mid-point
    quantiles ``(i + 1/2) / m`` of the source, with linear interpolation.
    Indices are static numpy (shapes are static), so this is two gathers.
    """
    mt = s.shape[-2]
    pos = np.clip((np.arange(m) + 0.5) / m * mt - 0.5, 0.0, mt - 1.0)
    lo = np.floor(pos).astype(np.int32)
    hi = np.minimum(lo + 1, mt - 1)
    frac = jnp.asarray((pos - lo)[:, None], dtype=s.dtype)
    return jnp.take(s, lo, axis=-2) * (1.0 - frac) + jnp.take(s, hi, axis=-2) * frac


@functools.partial(jax.jit, static_argnames=("n_projections",))
def sliced_wasserstein(
    features: jax.Array, target_features: jax.Array, key: jax.Array, *, n_projections: int | None = None
) -> jax.Array:
    """Sliced Wasserstein-2 loss between the channel-vector distributions (Heitz et al. 2021).

    Each position's channel vector is projected on ``P`` random unit directions
    ``d_p``; the 1-D optimal transport between the two projected distributions
    is sorting, so ``L = (1 / (M P)) Σ_p Σ_i (sort(F d_p)_i − sort(F̂ d_p)_i)²``.
    When the target has ``M̂ ≠ M`` positions its sorted projections are resampled
    to ``M`` quantiles by linear interpolation. All batch elements share the
    same directions (one draw per ``key``); redraw per step with
    ``jax.random.fold_in(key, step)``.

    Args:
      features: ``(..., H, W, C)``, e.g. ``(B, H, W, C)``.
      target_features: ``(..., H', W', C)`` with leading axes broadcastable to
        those of ``features`` (``(B, ...)``, ``(1, ...)`` or none).
      key: PRNG key for the projection directions.
      n_projections: number of directions; default ``C`` as in Heitz et al.

    Returns:
      ``(...)`` losses, e.g. ``(B,)``.
    """
    f = _flatten_positions(features)
    t = _flatten_positions(target_features)
    c = f.shape[-1]
    if t.shape[-1] != c:
        raise ValueError(f"features have {c} channels but target has {t.shape[-1]}")
    p = c if n_projections is None else int(n_projections)
    dirs = jax.random.normal(key, (c, p), dtype=f.dtype)
    dirs = dirs / jnp.linalg.norm(dirs, axis=0, keepdims=True)
    pf = sorting.sort(_mm(f, dirs), axis=-2)
    pt = sorting.sort(_mm(t.astype(f.dtype), dirs), axis=-2)
    if pt.shape[-2] != pf.shape[-2]:
        pt = _resample_sorted(pt, pf.shape[-2])
    return jnp.mean((pf - pt) ** 2, axis=(-2, -1))
