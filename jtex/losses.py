"""Texture statistics as losses: what of an exemplar's deep features a synthesis must match.

Each statistic is an exemplar-side summary (:func:`summary`, computed once per
exemplar, octave and layer), a way to pool several exemplars' summaries
(:func:`join`), and a distance from a synthesised image's features to it
(:func:`distance`). They combine with weights (``--loss gram=1,swd=0.5``):

* ``gram``: the Gram matrix (Gatys 2015; normalisation and distance as
  :func:`jtex.stats.gram`). Second moments only: it says which channels fire
  together, not how their values are distributed.
* ``meancov``: per-channel mean and covariance, ``|mu - mu'|^2 / N +
  |Sigma - Sigma'|^2 / N^2``. The Gram with the mean taken out, so a mean
  colour/brightness shift and a contrast change are told apart.
* ``emd``: seed 004's earth mover's distance: sort each channel's activations
  and compare the sorted vectors (the 1-D optimal transport, i.e. the
  Wasserstein-2 distance of each channel's marginal), summed over channels:
  ``sum_c mean_i (sort(F)_ic - sort(F')_ic)^2``. Seed 004 summed over
  positions too; the mean keeps the loss from growing with the image, and the
  sum over channels weighs a layer by its width as Gram's distance does. (With
  the mean over channels, pool1 and relu3_2 weighed the same, and on gravel the
  finest scale came out at 1.65x Gram's VGG-16 ``swd_s1`` in the loss study;
  summed, 1.49x. With many wide layers, seed 004's 13, the mean did better:
  layer weights of 1/C give it back.)
  Output and exemplar of different sizes are compared at the output's
  quantiles (the exemplar keeps at most ``QUANTILES`` of them). Matches every
  channel's whole histogram, but each channel on its own: which channels fire
  *together* (what carries colour through the first layers) is not
  constrained. (Seed 004's code lost colour for another reason: it sorted each
  position's channels; see ``experiments/seed004_emd_axis.py``.)
* ``hist``: a per-channel histogram loss after Risser et al. 2017: each
  channel's values are binned into ``HIST_BINS`` bins spanning the
  exemplar's range (linear weights between neighbouring bins, so the
  histogram is differentiable) and the cumulative histograms compared,
  ``sum_b w (CDF(b) - CDF'(b))^2`` per channel (w the bin width: the squared
  L2 distance of the two CDFs), plus a quadratic penalty on values outside the
  exemplar's range; both averaged over channels. (Summed over channels, as
  ``emd``, it scored worse at every exemplar's finest scale in the loss study.)
  Risser et al. remap the activations onto the exemplar's histogram and hold
  the remap constant in the gradient; that gradient is not the derivative of
  the loss's value, and jtex's L-BFGS line search stalled on it (a 96² brick
  stayed noise), so jtex compares the CDFs, whose gradient is exact. Like
  ``emd`` it constrains each channel on its own.
* ``swd``: the sliced Wasserstein distance (Heitz et al. 2021): the channel
  vectors are projected on ``projections x C`` random unit directions
  (``--swd-projections``, default 4 per channel), drawn once per run from its
  seed, and each projection's sorted values compared. Heitz et al. use C
  directions redrawn every iteration; under a line search that changes the
  objective between trial points, and jtex's L-BFGS runs stopped after a
  fifth of their iterations. Drawn once, C directions constrain the joint
  distribution along C axes only, and the finest scale suffered (gravel,
  128²: 1.66x Gram's ``swd_s1``, 1.12x with 4 per channel, 0.84x with 8).
  Unlike ``emd`` the projections mix channels, so the joint distribution
  (colour included) is matched; the exemplar keeps at most ``SWD_POSITIONS``
  positions (a seeded random subset). Sorting goes through
  :func:`jtex.sorting.sort` (numpy's argsort on the CPU).

``mul`` scales every statistic as if the exemplar's features were
``sqrt(mul)`` times larger (Grams and covariances by ``mul``, values by
``sqrt(mul)``): Snelgrove's target multiplier, for all statistics alike.

References:
  E. Risser, P. Wilmot, C. Barnes, "Stable and Controllable Neural Texture
  Synthesis and Style Transfer Using Histogram Losses", arXiv:1701.08893, 2017.
  E. Heitz, K. Vanhoey, T. Chambon, L. Belcour, "A Sliced Wasserstein Loss for
  Neural Texture Synthesis", CVPR 2021.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jtex import sorting, stats
from jtex.choices import STATISTICS, SWD_PROJECTIONS

QUANTILES = 4096  # per channel, the most quantiles an exemplar keeps for ``emd``
HIST_BINS = 256  # Risser et al.'s histogram resolution
SWD_POSITIONS = 16384  # the most positions an exemplar keeps for ``swd``


def _positions(f) -> jax.Array:
    """(..., h, w, C) -> (..., M, C)."""
    return f.reshape(f.shape[:-3] + (f.shape[-3] * f.shape[-2], f.shape[-1]))


def _quantiles(sorted_values, m: int):
    """Sorted (..., M, C) -> its ``m`` mid-point quantiles (..., m, C) (identity when m == M)."""
    return sorted_values if sorted_values.shape[-2] == m else stats._resample_sorted(sorted_values, m)


def summary(kind: str, f, *, norm: str, key) -> dict:
    """The exemplar-side statistic of features f (S, h, w, C), leading axis S kept."""
    if kind == "gram":
        return {"gram": stats.gram(f, norm=norm)}
    if kind == "meancov":
        mean, cov = stats.channel_mean_cov(f)
        return {"mean": mean, "cov": cov}
    p = _positions(f)
    if kind == "emd":
        return {"quantiles": _quantiles(sorting.sort(p, axis=-2), min(p.shape[-2], QUANTILES))}
    if kind == "hist":
        lo, hi = jnp.min(p, axis=-2), jnp.max(p, axis=-2)  # (S, C)
        pad = 0.05 * (hi - lo) + 1e-6
        lo, hi = lo - pad, hi + pad
        return {"lo": lo, "hi": hi, "cdf": _soft_cdf(p, lo, hi)}
    if kind == "swd":
        if p.shape[-2] > SWD_POSITIONS:
            idx = jax.random.choice(key, p.shape[-2], (SWD_POSITIONS,), replace=False)
            p = jnp.take(p, jnp.sort(idx), axis=-2)
        return {"positions": p}
    raise ValueError(f"unknown statistic {kind!r}; choose from {', '.join(STATISTICS)}")


def join(kind: str, s: dict, *, mode: str, key) -> dict:
    """Pool S exemplars' summaries (leading axis S) into one (leading axis 1).

    Grams are joined by ``mode`` (:func:`jtex.stats.join_grams`); means and
    covariances, and the distributions of ``emd``, ``hist`` and ``swd``, are
    pooled with equal weight per exemplar.
    """
    if kind == "gram":
        return {"gram": stats.join_grams(s["gram"], mode)[None]}
    if kind == "meancov":
        return {"mean": jnp.mean(s["mean"], 0, keepdims=True), "cov": jnp.mean(s["cov"], 0, keepdims=True)}
    if kind == "hist":  # the sources' CDFs, read at the union range's bin centres, averaged
        lo, hi = jnp.min(s["lo"], 0, keepdims=True), jnp.max(s["hi"], 0, keepdims=True)
        at = _centres(lo, hi)[0]  # (BINS, C)

        def one(cdf, l, h):  # (BINS, C) on [l, h]
            return jax.vmap(lambda a, x, y: jnp.interp(a, x, y, left=0.0, right=1.0), in_axes=(1, 1, 1), out_axes=1)(
                at, _centres(l, h), cdf
            )

        return {"lo": lo, "hi": hi, "cdf": jnp.mean(jax.vmap(one)(s["cdf"], s["lo"], s["hi"]), 0, keepdims=True)}
    if kind == "emd":
        q = s["quantiles"]
        pooled = jnp.sort(q.reshape((1, -1, q.shape[-1])), axis=-2)
        return {"quantiles": _quantiles(pooled, q.shape[-2])}
    p = s["positions"].reshape((1, -1, s["positions"].shape[-1]))
    if p.shape[1] > SWD_POSITIONS:
        idx = jax.random.choice(key, p.shape[1], (SWD_POSITIONS,), replace=False)
        p = jnp.take(p, jnp.sort(idx), axis=1)
    return {"positions": p}


def _centres(lo, hi):
    """Bin centres (..., BINS, C) of ranges lo, hi (..., C)."""
    u = jnp.asarray((np.arange(HIST_BINS) + 0.5) / HIST_BINS, lo.dtype)[:, None]
    return lo[..., None, :] + u * (hi - lo)[..., None, :]


def _soft_cdf(p, lo, hi):
    """Cumulative histogram (..., BINS, C) of values p (..., M, C) at the bin centres of [lo, hi] (..., C).

    Each value adds weight to its two nearest bin centres, linearly, so the
    CDF is a continuous, piecewise-linear function of the values.
    """
    width = (hi - lo)[..., None, :] / HIST_BINS
    pos = jnp.clip((p - lo[..., None, :]) / width - 0.5, 0.0, HIST_BINS - 1.0)
    i0 = jnp.minimum(jnp.floor(jax.lax.stop_gradient(pos)).astype(jnp.int32), HIST_BINS - 2)
    frac = pos - i0
    lead, (m, c) = p.shape[:-2], p.shape[-2:]
    flat_i = i0.reshape((-1, m, c))
    flat_f = frac.reshape((-1, m, c))
    chan = jnp.arange(c)[None, :]

    def one(i, f):  # (M, C) -> (BINS, C)
        h = jax.ops.segment_sum((1.0 - f).ravel(), (i * c + chan).ravel(), num_segments=HIST_BINS * c)
        h = h + jax.ops.segment_sum(f.ravel(), ((i + 1) * c + chan).ravel(), num_segments=HIST_BINS * c)
        return jnp.cumsum(h.reshape(HIST_BINS, c), axis=0) / m

    return jax.vmap(one)(flat_i, flat_f).reshape(lead + (HIST_BINS, c))


def distance(kind: str, f, target: dict, *, norm: str, mul, key, projections: int = SWD_PROJECTIONS) -> jax.Array:
    """Distance of features f (..., h, w, C) to one exemplar statistic: (...).

    ``projections``: ``swd``'s directions per channel (``projections * C`` in all).
    """
    if kind == "gram":
        return stats.gram_distance(stats.gram(f, norm=norm), mul * target["gram"], norm=norm)
    root = jnp.sqrt(mul)
    if kind == "meancov":
        mean, cov = stats.channel_mean_cov(f)
        n = f.shape[-1]
        dm = mean - root * target["mean"]
        dc = cov - mul * target["cov"]
        return jnp.sum(dm * dm, axis=-1) / n + jnp.sum(dc * dc, axis=(-2, -1)) / (n * n)
    p = _positions(f)
    if kind == "emd":
        want = root * _quantiles(target["quantiles"], p.shape[-2])
        d = sorting.sort(p, axis=-2) - want
        return jnp.sum(jnp.mean(d * d, axis=-2), axis=-1)  # each channel's W2², summed over channels
    if kind == "hist":
        lo, hi = root * target["lo"], root * target["hi"]  # (C,)
        cdf = _soft_cdf(p, jnp.broadcast_to(lo, p.shape[:-2] + lo.shape), jnp.broadcast_to(hi, p.shape[:-2] + hi.shape))
        d = cdf - target["cdf"]
        width = (hi - lo) / HIST_BINS
        tails = jnp.maximum(lo - p, 0.0) ** 2 + jnp.maximum(p - hi, 0.0) ** 2
        return jnp.mean(jnp.sum(d * d, axis=-2) * width, axis=-1) + jnp.mean(tails, axis=(-2, -1))
    if kind == "swd":
        t = root * target["positions"]
        return stats.sliced_wasserstein(f, t[..., :, None, :], key, n_projections=projections * f.shape[-1])
    raise ValueError(f"unknown statistic {kind!r}; choose from {', '.join(STATISTICS)}")
