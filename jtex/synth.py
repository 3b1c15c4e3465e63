"""Gatys and Snelgrove texture synthesis: exemplars -> targets -> optimise -> images.

    problem = build(cfg)          # sources, weights, targets, start images, stages
    result = run(cfg, "runs/x")   # build, optimise stage by stage, write the run folder

The objective is :mod:`jtex.objective`'s; a batch (independent seeds, or one
synthesis per source with ``separate``) is ``jax.vmap`` of the per-element
objective, optimised together by :func:`jtex.optimize.minimize`.

Borders: a synthesised pixel near the edge sits in fewer conv windows than
one inside, so it gets less gradient and stays near its start colour (a flat
frame). Unless the output tiles, jtex synthesises a canvas ``margin`` pixels
larger on every side and crops it: the frame falls in the margin. The objective
sees the bottom and right ends of the canvas later than the top and left ones
(:func:`jtex.sizes.edge_lag`), so those sides get a few pixels more
(:func:`frame`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jtex import colour, image, initial, objective, outputs, runtime, sizes, vgg, weights
from jtex.choices import INIT_MODES, MARGIN, VALID_MARGIN
from jtex.config import SynthConfig
from jtex.driver import optimise
from jtex.errors import JtexError
from jtex.objective import Spec
from jtex.outputs import finalise
from jtex.problem import NonFiniteLoss, Problem, Stage, SynthResult

# --------------------------------------------------------------------------
# Sources, stages, targets and the start
# --------------------------------------------------------------------------


__all__ = [
    "NonFiniteLoss",
    "Problem",
    "Stage",
    "SynthResult",
    "build",
    "finalise",
    "load_sources",
    "optimise",
    "plan_stages",
    "run",
    "start_images",
    "synthesize",
]


def load_sources(cfg: SynthConfig) -> tuple[list[Path], list[np.ndarray]]:
    """The exemplars as float32 (h, w, 3) in [0, 1]; file paths, or arrays passed in the config."""
    if cfg.arrays is not None:
        return [Path(f"<array {i}>") for i in range(len(cfg.arrays))], list(cfg.arrays)
    if not cfg.sources:
        raise JtexError("no source image: pass -s/--source FILE_OR_DIR")
    paths = image.expand_sources(cfg.sources)
    return paths, [image.load(p, width=cfg.source_width, scale=cfg.source_scale) for p in paths]


def coarse_to_fine(cfg: SynthConfig) -> bool:
    """Whether a run goes coarse-to-fine: asked for, or a still image of at least ``coarse_to_fine_above`` px
    (at 2048² and up a plain start spends most of its iterations, each costly, on the large-scale layout)."""
    above = cfg.coarse_to_fine_above > 0 and max(cfg.output_width, cfg.output_height) >= cfg.coarse_to_fine_above
    return cfg.octaves > 1 and (cfg.coarse_to_fine or (above and cfg.count == 1))


def plan_stages(cfg: SynthConfig, margin: int, trail: tuple[int, int] = (0, 0)) -> list[Stage]:
    """Coarse-to-fine (:func:`coarse_to_fine`): one stage per octave, coarsest first; else one stage.
    The canvas is the output plus ``margin`` on every side plus ``trail`` (below, to the right)."""
    h, w = cfg.output_height + 2 * margin + trail[0], cfg.output_width + 2 * margin + trail[1]
    if not coarse_to_fine(cfg):
        return [Stage(0, h, w)]
    return [Stage(k, max(1, round(h / 2**k)), max(1, round(w / 2**k))) for k in range(cfg.octaves - 1, -1, -1)]


def default_margin(cfg: SynthConfig) -> int:
    """Pixels added on every side and cropped: none for tiles (a torus has no border), more for 'valid'."""
    if cfg.margin is not None:
        return cfg.margin
    if cfg.tile or cfg.padding == "circular":
        return 0
    return VALID_MARGIN if cfg.padding == "valid" else MARGIN


def frame(cfg: SynthConfig, arch: str = "vgg19") -> tuple[int, tuple[int, int]]:
    """``(margin, (bottom, right))``: the px added on every side, and the extra px below and to the right
    that give the last rows and columns the objective's coverage of the first (:func:`jtex.sizes.edge_lag`;
    without them a 'valid' output grows a row of dots along its bottom and right edges); (0, (0, 0)) with no margin."""
    margin = default_margin(cfg)
    if not margin:
        return 0, (0, 0)
    spec = objective.output_spec(cfg)
    n = [cfg.output_height + 2 * margin, cfg.output_width + 2 * margin]
    return margin, (sizes.trailing_margin(n[0], spec, arch), sizes.trailing_margin(n[1], spec, arch))


def prune(params, spec: Spec):
    """Only the convs the deepest layer needs (less to transfer and trace), as device arrays."""
    seq = vgg.layer_sequence(params)
    last = seq.index(vgg.deepest(spec.layers))
    keep = {"input"} | {n for n in seq[: last + 1] if n.startswith("conv")}
    return {k: jax.tree.map(jnp.asarray, v) for k, v in params.items() if k in keep}


def start_images(cfg: SynthConfig, sources, src_index, stage: Stage) -> jax.Array:
    """(B, F, H, W, 3) start of the first stage: noise near each element's exemplar colour, or an image."""
    b, f = len(src_index), cfg.count
    if cfg.init not in INIT_MODES:
        start = image.resize(image.load(cfg.init), width=stage.width, height=stage.height)
        return jnp.broadcast_to(jnp.asarray(start), (b, f, stage.height, stage.width, 3))
    if cfg.separate:
        pixels = [sources[i] for i in src_index]
    else:
        pixels = [np.concatenate([s.reshape(-1, 3) for s in sources])] * b
    mean = np.repeat(np.stack([p.reshape(-1, 3).mean(0) for p in pixels]), f, axis=0)
    mixing = np.repeat(np.stack([colour.colour_mixing(p) for p in pixels]), f, axis=0)
    key, _ = jax.random.split(jax.random.key(cfg.seed))
    mode = "symmetric" if cfg.init == "symmetric" else "noise"
    x = initial.noise(key, b * f, stage.height, stage.width, mean, mode=mode, scale=cfg.init_scale, colour=mixing)
    return x.reshape((b, f, stage.height, stage.width, 3))


def build(cfg: SynthConfig, *, params: dict | None = None) -> Problem:
    """Validate ``cfg``, load sources and weights, check sizes and memory, compute targets and the start.

    Args:
      params: a VGG params dict to use instead of ``cfg.weights`` (e.g. a
        small random net from :func:`jtex.vgg.init_params` in tests).
    """
    cfg.validate()
    runtime.configure()
    paths, sources = load_sources(cfg)
    if params is None:
        params, meta = weights.resolve(cfg.weights)
    else:
        meta = {"name": "custom", "arch": vgg.arch_of(params)}
    margin, trail = frame(cfg, vgg.arch_of(params))
    stages = plan_stages(cfg, margin, trail)
    memory = sizes.check(cfg, sources, paths, stages)
    spec = objective.output_spec(cfg)._replace(grey=all(colour.is_grey(s) for s in sources))
    params = prune(params, spec)
    targets = objective.targets(params, sources, cfg, separate=cfg.separate)
    # Batch layout: B elements of F = count frames; with `separate`, element i follows source i // batch.
    n_src = len(sources) if cfg.separate else 1
    src_index = np.repeat(np.arange(n_src), cfg.batch)
    b = len(src_index)
    batched = jax.tree.map(lambda t: t[src_index] if cfg.separate else jnp.broadcast_to(t, (b,) + t.shape[1:]), targets)
    knobs = jax.tree.map(lambda v: jnp.broadcast_to(jnp.asarray(v), (b,) + np.shape(v)), objective.knobs(cfg))
    return Problem(
        cfg,
        paths,
        sources,
        spec,
        params,
        meta,
        batched,
        start_images(cfg, sources, src_index, stages[0]),
        stages,
        margin,
        trail,
        src_index,
        knobs,
        memory,
    )


def run(
    cfg: SynthConfig,
    output_dir: str | os.PathLike | None = None,
    *,
    progress: bool = True,
    params: dict | None = None,
    overwrite: bool = False,
) -> SynthResult:
    """Synthesise according to ``cfg``; with ``output_dir``, write and resume a run folder.

    ``overwrite`` clears a run folder holding another run (other settings or
    other file contents) instead of refusing it.

    Returns:
      :class:`SynthResult` with ``images`` (B, H, W, 3): B = batch (times the
      number of sources with ``separate``), or ``count`` frames.
    """
    problem = build(cfg, params=params)
    run_dir = outputs.open_run_dir(output_dir, problem, overwrite=overwrite) if output_dir is not None else None
    try:
        if run_dir is not None and run_dir.finished:
            print(f"jtex: {run_dir.path} already holds a finished run; nothing to do", file=sys.stderr)
            return outputs.load_finished(run_dir, cfg)
        return _run(problem, run_dir, progress)
    finally:
        if run_dir is not None:
            run_dir.close()


def _run(problem: Problem, run_dir, progress: bool) -> SynthResult:
    cfg = problem.cfg
    x, results, seconds, started_at = optimise(problem, run_dir, progress=progress)
    last = results[-1] if results else None
    res = SynthResult(
        finalise(problem, x),
        np.asarray(last.loss) if last else np.full(problem.batch, np.nan),
        sum(r.iterations for r in results),
        sum(r.evaluations for r in results),
        seconds,
        cfg,
        last.message if last else "",
        started_at,
    )
    if run_dir is not None:
        outputs.write_outputs(run_dir, problem, res)
    return res


def synthesize(sources, **config: Any) -> np.ndarray:
    """Synthesise textures like ``sources``; returns (B, H, W, 3) float32 in [0, 1].

    Args:
      sources: an image path, a directory, a numpy array (h, w, 3) in [0, 1],
        or a list of them.
      **config: any :class:`jtex.config.SynthConfig` field (``output_width``,
        ``octaves``, ``layers``, ``max_iter``, ``seed``, ``batch``, ``tile``,
        ...), plus ``output_dir`` for a run folder, ``progress`` and
        ``params`` (a VGG params dict instead of ``weights``).

    Example:
      >>> import jtex
      >>> imgs = jtex.synthesize("examples/brick.png", output_width=256,
      ...                        output_height=256, padding="same", max_iter=100)
    """
    if isinstance(sources, (str, os.PathLike, np.ndarray)):
        sources = [sources]
    output_dir = config.pop("output_dir", None)
    progress = config.pop("progress", True)
    overwrite = config.pop("overwrite", False)
    params = config.pop("params", None)
    arrays = [s for s in sources if isinstance(s, np.ndarray)]
    if arrays and len(arrays) != len(sources):
        raise JtexError("pass either image files or numpy arrays as sources, not both")
    try:
        if arrays:
            cfg = SynthConfig(arrays=tuple(image.from_array(a) for a in arrays), **config)
        else:
            cfg = SynthConfig(sources=tuple(str(s) for s in sources), **config)
    except TypeError as e:
        raise JtexError(f"bad setting: {e}") from None
    return run(cfg, output_dir, progress=progress, params=params, overwrite=overwrite).images
