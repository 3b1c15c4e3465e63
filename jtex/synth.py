"""Gatys and Snelgrove texture synthesis: exemplars -> targets -> optimise -> images.

Objective (Snelgrove 2017, with Gatys 2015 as ``octaves=1``): for the image
x being synthesised and its Gaussian pyramid x_o (o = 0 .. octaves-1),

    L(x) = sum_o sum_l w_l * d(G(F_l(x_o)), T_{o,l})

where F_l are VGG activations, G the Gram matrix (``gatys``: F^T F / M with
d = sum (G - T)^2 / (4 N^2); ``snelgrove``: F^T F / (M N) with d = sum (G -
T)^2) and T_{o,l} the exemplars' Grams at the same octave, joined across
sources (average, max, log-Euclidean or affine-invariant mean), times ``mul``.

Everything for one image -- pyramid, VGG at every octave, every Gram -- is one
jitted function; a batch (independent seeds, or one synthesis per source with
``separate``) is ``jax.vmap`` of it, optimised together.

Padding: with ``padding="valid"`` (Snelgrove's default) both the pyramid and
the VGG use no padding, so borders never enter the statistics. Otherwise the
VGG uses the padding named and the pyramid reflects (zero padding would
darken every octave's border). With ``tile=True`` the synthesised image uses
circular padding in both, so its statistics see no seam and the output tiles.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from jtex import image, optimize, pyramid, stats, vgg, weights
from jtex.config import SynthConfig
from jtex.errors import JtexError


class Spec(NamedTuple):
    """The static (hashable) part of the objective."""

    layers: tuple[str, ...]
    weights: tuple[float, ...]
    octaves: int
    gram: str
    vgg_padding: str
    pyr_padding: str
    pooling: str
    grey: bool = False  # every source is greyscale: synthesise a greyscale image


def exemplar_spec(cfg: SynthConfig) -> Spec:
    layers = vgg.resolve_layers(cfg.layers)
    w = tuple(float(v) for v in cfg.layer_weights) if cfg.layer_weights else (1.0,) * len(layers)
    pyr = "valid" if cfg.padding == "valid" else ("circular" if cfg.padding == "circular" else "reflect")
    return Spec(layers, w, cfg.octaves, cfg.gram, cfg.padding, pyr, cfg.pooling)


def output_spec(cfg: SynthConfig) -> Spec:
    spec = exemplar_spec(cfg)
    if cfg.tile:
        return spec._replace(vgg_padding="circular", pyr_padding="circular")
    return spec


# --------------------------------------------------------------------------
# Statistics and the loss
# --------------------------------------------------------------------------


def grams(params, x, spec: Spec) -> list[list[jax.Array]]:
    """Grams of every (octave, layer) for images x (N, H, W, 3): [[(N, C, C)]]."""
    out = []
    for level in pyramid.gaussian(x, spec.octaves, padding=spec.pyr_padding):
        feats = vgg.features(params, level, spec.layers, padding=spec.vgg_padding, pooling=spec.pooling)
        out.append([stats.gram(feats[name], norm=spec.gram) for name in spec.layers])
    return out


@functools.partial(jax.jit, static_argnames="spec")
def _exemplar_grams(params, x, spec):
    return grams(params, x, spec)


def texture_loss(x, targets, params, spec: Spec):
    """Per-image loss: x (N, H, W, 3) -> (N,), targets [[(C, C)]] or [[(N, C, C)]].

    With ``spec.grey`` the image is seen through its channel mean: a grey
    exemplar's Grams constrain colour only weakly, and left free the
    optimiser paints coloured patches into a grey texture.
    """
    if spec.grey:
        x = jnp.broadcast_to(jnp.mean(x, axis=-1, keepdims=True), x.shape)
    total = 0.0
    for o, per_layer in enumerate(grams(params, x, spec)):
        for l, g in enumerate(per_layer):
            total = total + spec.weights[l] * stats.gram_distance(g, targets[o][l], norm=spec.gram)
    return total


# --------------------------------------------------------------------------
# Sizes, memory and sources
# --------------------------------------------------------------------------


def min_side(spec: Spec, octaves: int | None = None) -> int:
    """Smallest square side for which the deepest layer exists at the coarsest octave."""
    octaves = spec.octaves if octaves is None else octaves
    deepest = vgg.deepest(spec.layers)
    for n in range(1, 1 << 16):
        h, _ = pyramid.level_sizes(n, n, octaves, spec.pyr_padding)[-1]
        if h >= 1 and vgg.output_size(h, h, deepest, spec.vgg_padding)[0] >= 1:
            return n
    raise AssertionError("unreachable")


def _check_size(what: str, h: int, w: int, spec: Spec, octaves: int, fix: str):
    need = min_side(spec, octaves)
    if min(h, w) < need:
        raise JtexError(
            f"{what} is {w}x{h} px, but {octaves} octave(s) with layer {vgg.deepest(spec.layers)} and "
            f"'{spec.vgg_padding}' padding need at least {need} px per side; {fix}"
        )


def estimate_bytes(h: int, w: int, n_images: int, spec: Spec) -> int:
    """Rough peak memory of one loss+gradient evaluation (activations kept for backprop)."""
    seq = vgg.layer_sequence("vgg19")
    deepest = seq.index(vgg.deepest(spec.layers))
    total = 0
    for lh, lw in pyramid.level_sizes(h, w, spec.octaves, spec.pyr_padding):
        for name in seq[: deepest + 1]:
            oh, ow = vgg.output_size(lh, lw, name, spec.vgg_padding)
            total += max(oh, 0) * max(ow, 0) * vgg.channels(name)
    # conv + relu outputs and their cotangents, float32, plus XLA temporaries.
    return int(total * 4 * 4 * n_images + 150e6)


def available_bytes() -> int:
    dev = jax.devices()[0]
    if dev.platform != "cpu":
        limit = (dev.memory_stats() or {}).get("bytes_limit")
        if limit:
            return int(limit)
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))
    except (ValueError, OSError):
        return 1 << 40


def load_sources(cfg: SynthConfig) -> tuple[list[Path], list[np.ndarray]]:
    if not cfg.sources:
        raise JtexError("no source image: pass -s/--source FILE_OR_DIR")
    paths = image.expand_sources(cfg.sources)
    imgs = [image.load(p, width=cfg.source_width, scale=cfg.source_scale) for p in paths]
    return paths, imgs


def compute_targets(params, sources: list[np.ndarray], cfg: SynthConfig, *, separate: bool):
    """Target Grams [[(S or 1, C, C)]] per octave and layer.

    Joined across sources (``cfg.join``) unless ``separate``; times ``cfg.mul``.
    """
    spec = exemplar_spec(cfg)
    # Sources of one size go through the network together, as one batch.
    by_shape: dict[tuple, list[int]] = {}
    for i, s in enumerate(sources):
        by_shape.setdefault(s.shape, []).append(i)
    per_source: list = [None] * len(sources)
    for idx in by_shape.values():
        g = _exemplar_grams(params, jnp.stack([jnp.asarray(sources[i]) for i in idx]), spec)
        for j, i in enumerate(idx):
            per_source[i] = [[t[j:j + 1] for t in row] for row in g]
    targets = []
    for o in range(spec.octaves):
        row = []
        for l in range(len(spec.layers)):
            stack = jnp.concatenate([g[o][l] for g in per_source])  # (S, C, C)
            if not separate:
                try:
                    stack = stats.join_grams(stack, cfg.join)[None]
                except ValueError as e:
                    raise JtexError(f"--join-mode {cfg.join}: {e}") from None
            row.append(stack * cfg.mul)
        targets.append(row)
    return targets


# --------------------------------------------------------------------------
# Initialisation
# --------------------------------------------------------------------------


def is_grey(img: np.ndarray) -> bool:
    """True when all three channels are equal (an L-mode file, or a grey RGB one)."""
    return bool(np.all(np.abs(img[..., 0] - img[..., 1]) < 1e-6) and np.all(np.abs(img[..., 1] - img[..., 2]) < 1e-6))


def colour_mixing(pixels: np.ndarray) -> np.ndarray:
    """(3, 3) matrix giving white noise the exemplar's colour correlations.

    sqrt(C) / sqrt(tr(C) / 3) for the pixels' colour covariance C: noise
    stays at unit strength per channel on average, and is grey for a grey
    exemplar (independent per-channel noise would leave colour casts that the
    Gram loss removes only slowly).
    """
    cov = np.cov(pixels.reshape(-1, 3).T.astype(np.float64))
    power = np.trace(cov) / 3
    if power < 1e-10:
        return np.eye(3, dtype=np.float32)
    w, v = np.linalg.eigh(cov)
    return ((v * np.sqrt(np.clip(w, 0, None))) @ v.T / np.sqrt(power)).astype(np.float32)


def init_images(key, n: int, h: int, w: int, mean, *, mode: str = "noise", scale: float = 0.1,
                colour=None) -> jax.Array:
    """Start images (n, h, w, 3): noise around the exemplar's mean colour.

    ``noise``: mean + scale * N(0, 1) per pixel (Snelgrove: noise shifted near
    the mean colour; starting from black leaves dark borders), mixed across
    channels by ``colour`` ((n, 3, 3) from :func:`colour_mixing`; default
    independent channels).
    ``symmetric``: Snelgrove's variant, noise mirrored in x and y and blurred.
    Image i uses ``fold_in(key, i)``, so it does not depend on n.
    """
    mean = jnp.broadcast_to(jnp.asarray(mean, jnp.float32), (n, 3))
    colour = jnp.broadcast_to(jnp.eye(3) if colour is None else jnp.asarray(colour, jnp.float32), (n, 3, 3))

    def one(i, m, c):
        k = jax.random.fold_in(key, i)
        if mode == "symmetric":
            q = jax.random.normal(k, ((h + 1) // 2, (w + 1) // 2, 3))
            q = jnp.concatenate([q, q[::-1]], axis=0)[:h]
            q = jnp.concatenate([q, q[:, ::-1]], axis=1)[:, :w]
            q = pyramid.expand(pyramid.reduce(q[None], padding="reflect"), (h, w), padding="reflect")[0]
            q = q / (jnp.std(q) + 1e-8)
        else:
            q = jax.random.normal(k, (h, w, 3))
        return jnp.clip(m + scale * q @ c.T, 0.0, 1.0)

    return jnp.stack([one(i, mean[i], colour[i]) for i in range(n)])


# --------------------------------------------------------------------------
# Running a synthesis
# --------------------------------------------------------------------------


@dataclass
class SynthResult:
    images: np.ndarray  # (B, H, W, 3) in [0, 1]
    losses: np.ndarray  # (B,) final loss per image (before histogram matching)
    iterations: int
    evaluations: int
    seconds: float
    config: SynthConfig


class NonFiniteLoss(JtexError):
    pass


def _check_finite(losses, when: str, run_dir) -> None:
    """Stop with one line when a loss is NaN/Inf; the run folder keeps its last good snapshot."""
    if np.all(np.isfinite(losses)):
        return
    where = ""
    if run_dir is not None:
        run_dir.note_nonfinite()
        where = f"; the last good snapshot is in {run_dir.snapshots}"
    raise NonFiniteLoss(f"the loss became NaN/Inf {when}{where}; check the sources and --mul, "
                        "or try another --seed, --optimizer or a lower --lr")


def _plan_stages(cfg: SynthConfig) -> list[tuple[int, int, int]]:
    """(first octave, height, width) per stage: coarse-to-fine or one stage."""
    if not cfg.coarse_to_fine or cfg.octaves == 1:
        return [(0, cfg.output_height, cfg.output_width)]
    return [
        (k, max(1, round(cfg.output_height / 2**k)), max(1, round(cfg.output_width / 2**k)))
        for k in range(cfg.octaves - 1, -1, -1)
    ]


def prepare(cfg: SynthConfig):
    """Validate, load sources and weights, check sizes and memory; no optimisation."""
    cfg.validate()
    paths, sources = load_sources(cfg)
    spec = exemplar_spec(cfg)
    for p, s in zip(paths, sources):
        _check_size(f"source {p}", s.shape[0], s.shape[1], spec, cfg.octaves,
                    "use a larger --source-width, fewer --octaves or --padding-mode same")
    out = output_spec(cfg)
    for k, h, w in _plan_stages(cfg):
        _check_size("the output" if k == 0 else f"coarse-to-fine stage {k} ({w}x{h})", h, w, out, cfg.octaves - k,
                    "ask for a larger output, fewer --octaves or --padding-mode same")
    if cfg.tile:
        seq = vgg.layer_sequence("vgg19")
        pools = sum(1 for n in seq[: seq.index(vgg.deepest(out.layers)) + 1] if n.startswith("pool"))
        step = 2 ** (cfg.octaves - 1 + pools)
        if cfg.output_width % step or cfg.output_height % step:
            raise JtexError(
                f"--tile needs output sides divisible by {step} ({cfg.octaves} octaves, {pools} poolings) "
                f"to wrap exactly; try {max(step, round(cfg.output_width / step) * step)}x"
                f"{max(step, round(cfg.output_height / step) * step)}"
            )
    n_images = (len(sources) if cfg.separate else 1) * cfg.batch * cfg.count
    need = estimate_bytes(cfg.output_height, cfg.output_width, n_images, out)
    have = available_bytes()
    if need > have:
        raise JtexError(
            f"{cfg.output_width}x{cfg.output_height} x {n_images} image(s) needs about {need / 2**30:.1f} GiB, "
            f"only {have / 2**30:.1f} GiB is free; use a smaller output or --batch, or --coarse-to-fine"
        )
    params, meta = weights.resolve(cfg.weights)
    return paths, sources, params, meta


def _prune(params, spec: Spec):
    """Only the convs the deepest layer needs (less to transfer and trace)."""
    seq = vgg.layer_sequence(params)
    last = seq.index(vgg.deepest(spec.layers))
    keep = {"input"} | {n for n in seq[: last + 1] if n.startswith("conv")}
    return {k: jax.tree.map(jnp.asarray, v) for k, v in params.items() if k in keep}


def objective(cfg: SynthConfig, spec: Spec, sources):
    """The per-batch-element loss ``fun(x (F, H, W, 3), targets, params) -> ()``.

    F = 1 for a still image; F = ``count`` frames for an animation, which adds
    Snelgrove's inter-frame term (see :mod:`jtex.animation`).
    """
    if cfg.count > 1:
        from jtex import animation

        return animation.make_loss(cfg, spec, sources)
    return StillObjective(spec)


class StillObjective(NamedTuple):
    """Sum of the texture losses of F images (H, W, 3); hashable, so compiled once."""

    spec: Spec

    def __call__(self, x, targets, params):
        return jnp.sum(texture_loss(x, targets, params, self.spec))


def run(cfg: SynthConfig, output_dir: str | os.PathLike | None = None, *, progress: bool = True) -> SynthResult:
    """Synthesise according to ``cfg``; with ``output_dir``, write and resume a run folder.

    Returns:
      :class:`SynthResult` with ``images`` (B, H, W, 3): B = batch (times the
      number of sources with ``separate``), or ``count`` frames.
    """
    from jtex import rundir

    paths, sources, params, meta = prepare(cfg)
    run_dir = rundir.RunDir(output_dir, cfg, meta) if output_dir is not None else None
    if run_dir is not None and run_dir.finished:
        print(f"jtex: {run_dir.path} already holds a finished run; nothing to do", file=sys.stderr)
        return run_dir.load_result()

    init_key, _ = jax.random.split(jax.random.key(cfg.seed))
    grey = all(is_grey(s) for s in sources)
    spec = output_spec(cfg)._replace(grey=grey)
    params = _prune(params, spec)
    targets = compute_targets(params, sources, cfg, separate=cfg.separate)

    # Batch layout: B elements, each F = count frames; with `separate`,
    # element i uses source i // batch.
    n_src = len(sources) if cfg.separate else 1
    b, f = n_src * cfg.batch, cfg.count
    src_index = np.repeat(np.arange(n_src), cfg.batch)
    batched = [[t[src_index] if cfg.separate else jnp.broadcast_to(t, (b,) + t.shape[1:]) for t in row]
               for row in targets]
    means = np.stack([s.reshape(-1, 3).mean(0) for s in sources])
    mean = means[src_index] if cfg.separate else np.broadcast_to(means.mean(0), (b, 3))
    colour = np.stack([colour_mixing(sources[i]) for i in src_index]) if cfg.separate else np.broadcast_to(
        colour_mixing(np.concatenate([s.reshape(-1, 3) for s in sources])), (b, 3, 3))

    stages = _plan_stages(cfg)

    def like_state(x_like, stage_no):
        k = stages[stage_no][0]
        fun = objective(cfg, spec._replace(octaves=cfg.octaves - k), sources)
        return optimize.init_device_state(fun, cfg.optimizer, cfg.lr, x_like, batched[k:], params, tol=cfg.tol)

    start = run_dir.restore(like_state) if run_dir is not None else None
    seconds_before = start.seconds if start else 0.0
    t0 = time.perf_counter()
    elapsed = lambda: seconds_before + time.perf_counter() - t0  # noqa: E731
    bar = tqdm(total=cfg.max_iter * len(stages), disable=not progress, unit="it", dynamic_ncols=True,
               desc="synth", file=sys.stderr)
    x, result, iters, evals = None, None, 0, 0
    try:
        for stage_no, (k, h, w) in enumerate(stages):
            resuming = start is not None and stage_no == start.stage
            if start is not None and stage_no < start.stage:
                bar.update(cfg.max_iter)
                continue
            if resuming:
                x0 = start.x
            elif x is None:
                x0 = _initial(cfg, init_key, b, h, w, mean, colour).reshape((b, f, h, w, 3))
            else:  # coarse-to-fine: the previous stage, upsampled, starts this one
                x0 = jax.image.resize(jnp.asarray(x), (b, f, h, w, 3), "bicubic").clip(0.0, 1.0)
            if len(stages) > 1:
                bar.set_description(f"synth {w}x{h}")
            resume_it = start.iteration if resuming else 0
            bar.update(resume_it)

            def callback(p: optimize.Progress, stage_no=stage_no):
                losses = np.asarray(p.losses)
                _check_finite(losses, f"at iteration {p.iteration}", run_dir)
                bar.update(len(losses))
                bar.set_postfix(loss=f"{float(losses[-1].sum()):.4g}", refresh=False)
                if run_dir is not None:
                    run_dir.log(stage_no, p.iteration, losses, elapsed())
                    every = cfg.save_every
                    if every and p.iteration // every > (p.iteration - len(losses)) // every:
                        run_dir.checkpoint(stage_no, p.iteration, p.x, p.state, elapsed(), cfg)

            result = optimize.minimize(
                objective(cfg, spec._replace(octaves=cfg.octaves - k), sources),
                x0, batched[k:], params, method=cfg.optimizer, max_iter=cfg.max_iter, tol=cfg.tol, lr=cfg.lr,
                bounds=(0.0, 1.0), chunk=cfg.save_every or 50, callback=callback,
                start_iter=resume_it, state=start.state if resuming else None,
            )
            _check_finite(result.loss, f"after {result.iterations} iterations", run_dir)
            x = result.x
            iters += result.iterations
            evals += result.evaluations
    finally:
        bar.close()

    images = np.asarray(x, np.float32).reshape((b * f, cfg.output_height, cfg.output_width, 3))
    if grey:
        images = np.repeat(images.mean(axis=-1, keepdims=True), 3, axis=-1)
    if cfg.match_histogram:
        refs = [sources[i] for i in np.repeat(src_index, f)] if cfg.separate else [np.concatenate(
            [s.reshape(-1, 3) for s in sources])[:, None]] * (b * f)
        images = np.stack([image.match_histogram(im, ref) for im, ref in zip(images, refs)])
    res = SynthResult(images, np.asarray(result.loss), iters, evals, elapsed(), cfg)
    if run_dir is not None:
        run_dir.finish(res, sources, paths)
    return res


def _initial(cfg: SynthConfig, key, b: int, h: int, w: int, mean, colour) -> jax.Array:
    n = b * cfg.count
    if cfg.init in ("noise", "symmetric"):
        m = np.repeat(np.asarray(mean), cfg.count, axis=0)
        c = np.repeat(np.asarray(colour), cfg.count, axis=0)
        return init_images(key, n, h, w, m, mode=cfg.init, colour=c)
    start = image.resize(image.load(cfg.init), width=w, height=h)
    return jnp.broadcast_to(jnp.asarray(start), (n, h, w, 3))


def synthesize(sources, **config: Any) -> np.ndarray:
    """Synthesise textures like ``sources``; returns (B, H, W, 3) float32 in [0, 1].

    Args:
      sources: an image path, a directory, or a list of them.
      **config: any :class:`jtex.config.SynthConfig` field (``output_width``,
        ``octaves``, ``layers``, ``max_iter``, ``seed``, ``batch``, ``tile``,
        ...), plus ``output_dir`` for a run folder and ``progress``.

    Example:
      >>> import jtex
      >>> imgs = jtex.synthesize("examples/brick.png", output_width=256,
      ...                        output_height=256, padding="same", max_iter=100)
    """
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    output_dir = config.pop("output_dir", None)
    progress = config.pop("progress", True)
    try:
        cfg = SynthConfig(sources=tuple(str(s) for s in sources), **config)
    except TypeError as e:
        raise JtexError(f"bad setting: {e}") from None
    return run(cfg, output_dir, progress=progress).images
