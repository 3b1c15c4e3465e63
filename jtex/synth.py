"""Gatys and Snelgrove texture synthesis: exemplars -> targets -> optimise -> images.

    problem = build(cfg)          # sources, weights, targets, start images, stages
    result = run(cfg, "runs/x")   # build, optimise stage by stage, write the run folder

The objective is :mod:`jtex.objective`'s; a batch (independent seeds, or one
synthesis per source with ``separate``) is ``jax.vmap`` of the per-element
objective, optimised together by :func:`jtex.optimize.minimize`.

Borders: a synthesised pixel near the edge sits in fewer conv windows than
one inside, so it gets less gradient and stays near its start colour (a flat
frame). Unless the output tiles, jtex synthesises a canvas ``margin`` pixels
larger on every side and crops it: the frame falls in the margin.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jtex import colour, figures, image, initial, metrics, objective, optimize, runtime, sizes, vgg, weights
from jtex.choices import INIT_MODES, MARGIN
from jtex.config import SynthConfig
from jtex.errors import JtexError
from jtex.objective import Spec


class Stage(NamedTuple):
    """One optimisation stage: the first octave matched, and the canvas size (margin included)."""

    octave: int
    height: int
    width: int


@dataclass(frozen=True)
class Problem:
    """Everything a synthesis needs before optimising; see :func:`build`.

    ``targets`` are batched: ``[[(B, C, C)]]`` per octave and layer, B the
    number of batch elements; each element holds F = ``count`` frames.
    """

    cfg: SynthConfig
    paths: list[Path]
    sources: list[np.ndarray]  # (h, w, 3) each, in [0, 1]
    spec: Spec  # how the synthesised image is seen
    params: dict  # the VGG, pruned to the deepest layer used
    weights_meta: dict
    targets: list[list[jax.Array]]
    x0: jax.Array  # (B, F, H, W, 3): the first stage's start
    stages: list[Stage]
    margin: int
    src_index: np.ndarray  # (B,): the source each element follows (all 0 unless ``separate``)

    @property
    def batch(self) -> int:
        return len(self.src_index)

    def objective(self, stage: Stage):
        """The per-element objective of a stage (coarse-to-fine stages skip the finest octaves)."""
        spec = self.spec._replace(octaves=self.cfg.octaves - stage.octave)
        return objective.make(self.cfg, spec, self.sources)

    def targets_for(self, stage: Stage):
        return self.targets[stage.octave:]

    def crop(self, x) -> np.ndarray:
        """(..., H + 2m, W + 2m, 3) canvas -> (..., H, W, 3) output."""
        m = self.margin
        x = np.asarray(x, np.float32)
        return x[..., m:x.shape[-3] - m, m:x.shape[-2] - m, :] if m else x


@dataclass
class SynthResult:
    images: np.ndarray  # (B, H, W, 3) in [0, 1]
    losses: np.ndarray  # (B,) final loss per image (before histogram matching)
    iterations: int
    evaluations: int
    seconds: float
    config: SynthConfig
    message: str = ""  # the optimiser's own word on why it stopped


class NonFiniteLoss(JtexError):
    pass


# --------------------------------------------------------------------------
# Sources, stages, targets and the start
# --------------------------------------------------------------------------


def load_sources(cfg: SynthConfig) -> tuple[list[Path], list[np.ndarray]]:
    """The exemplars as float32 (h, w, 3) in [0, 1]; file paths, or arrays passed in the config."""
    if cfg.arrays is not None:
        return [Path(f"<array {i}>") for i in range(len(cfg.arrays))], list(cfg.arrays)
    if not cfg.sources:
        raise JtexError("no source image: pass -s/--source FILE_OR_DIR")
    paths = image.expand_sources(cfg.sources)
    return paths, [image.load(p, width=cfg.source_width, scale=cfg.source_scale) for p in paths]


def plan_stages(cfg: SynthConfig, margin: int) -> list[Stage]:
    """Coarse-to-fine: one stage per octave, coarsest first; else one stage."""
    h, w = cfg.output_height + 2 * margin, cfg.output_width + 2 * margin
    if not cfg.coarse_to_fine or cfg.octaves == 1:
        return [Stage(0, h, w)]
    return [Stage(k, max(1, round(h / 2**k)), max(1, round(w / 2**k))) for k in range(cfg.octaves - 1, -1, -1)]


def default_margin(cfg: SynthConfig) -> int:
    """Pixels added on every side and cropped: none for tiles (a torus has no border)."""
    if cfg.margin is not None:
        return cfg.margin
    return 0 if cfg.tile or cfg.padding == "circular" else MARGIN


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
    margin = default_margin(cfg)
    stages = plan_stages(cfg, margin)
    sizes.check(cfg, sources, paths, margin, stages)
    if params is None:
        params, meta = weights.resolve(cfg.weights)
    else:
        meta = {"name": "custom", "arch": vgg.arch_of(params)}
    spec = objective.output_spec(cfg)._replace(grey=all(colour.is_grey(s) for s in sources))
    params = prune(params, spec)
    targets = objective.targets(params, sources, cfg, separate=cfg.separate)
    # Batch layout: B elements of F = count frames; with `separate`, element i follows source i // batch.
    n_src = len(sources) if cfg.separate else 1
    src_index = np.repeat(np.arange(n_src), cfg.batch)
    b = len(src_index)
    batched = [[t[src_index] if cfg.separate else jnp.broadcast_to(t, (b,) + t.shape[1:]) for t in row]
               for row in targets]
    return Problem(cfg, paths, sources, spec, params, meta, batched, start_images(cfg, sources, src_index, stages[0]),
                   stages, margin, src_index)


# --------------------------------------------------------------------------
# Running a synthesis
# --------------------------------------------------------------------------


def _check_finite(losses, when: str, run_dir) -> None:
    """Stop with one line when a loss is NaN/Inf; the run folder keeps its last good snapshot."""
    if np.all(np.isfinite(losses)):
        return
    where = ""
    if run_dir is not None:
        run_dir.note_failed("the loss became NaN/Inf; see the last snapshot")
        where = f"; the last good snapshot is in {run_dir.path / 'snapshots'}"
    raise NonFiniteLoss(f"the loss became NaN/Inf {when}{where}; check the sources and --mul, "
                        "or try another --seed, --optimizer or a lower --lr")


class _Reporter:
    """The optimiser's callback for one stage: NaN check, progress bar, metrics, snapshots, checkpoints."""

    def __init__(self, problem: Problem, run_dir, bar, stage_no: int, clock):
        self.problem, self.run_dir, self.bar, self.stage_no, self.clock = problem, run_dir, bar, stage_no, clock

    def __call__(self, p: optimize.Progress):
        losses = np.asarray(p.losses)
        _check_finite(losses, f"at iteration {p.iteration}", self.run_dir)
        self.bar.update(len(losses))
        self.bar.set_postfix(loss=f"{float(losses[-1].sum()):.4g}", refresh=False)
        if self.run_dir is None:
            return
        seconds = self.clock()
        first = p.iteration - len(losses) + 1
        now = round(time.time(), 3)
        self.run_dir.log([dict(stage=self.stage_no, iteration=first + i, loss=float(np.nansum(row)),
                               seconds=round(seconds, 4), time=now,
                               **({"losses": row.tolist()} if row.size > 1 else {}))
                          for i, row in enumerate(np.asarray(losses, np.float64))])
        every = self.problem.cfg.save_every
        if every and p.iteration // every > (p.iteration - len(losses)) // every:
            x = np.asarray(p.x)
            self.run_dir.save_image(f"snapshots/iter_{p.iteration:06d}.png", _sheet(self.problem.crop(x)))
            meta = {"stage": self.stage_no, "iteration": p.iteration, "seconds": seconds,
                    "has_state": p.state is not None, "x_shape": list(x.shape)}
            arrays = {"x": x, "state": p.state} if p.state is not None else {"x": x}
            self.run_dir.checkpoint(self.stage_no * self.problem.cfg.max_iter + p.iteration, meta, arrays)


def _sheet(x: np.ndarray) -> np.ndarray:
    imgs = x.reshape((-1,) + x.shape[-3:])
    return imgs[0] if len(imgs) == 1 else figures.contact_sheet(list(imgs))


def _restore(problem: Problem, run_dir):
    """The latest checkpoint as (stage, iteration, x, state, seconds), or None."""
    if run_dir is None:
        return None
    cfg = problem.cfg

    def target(meta):
        like = {"x": np.zeros(meta["x_shape"], np.float32)}
        if meta["has_state"]:
            stage = problem.stages[meta["stage"]]
            like["state"] = optimize.init_device_state(
                problem.objective(stage), cfg.optimizer, cfg.lr, like["x"], problem.targets_for(stage),
                problem.params, tol=cfg.tol)
        return like

    found = run_dir.restore(target)
    if found is None:
        return None
    meta, arrays = found
    run_dir.keep_metrics(lambda r: (r["stage"], r["iteration"]) <= (meta["stage"], meta["iteration"]))
    return meta["stage"], meta["iteration"], np.asarray(arrays["x"]), arrays.get("state"), meta["seconds"]


def optimise(problem: Problem, run_dir=None, *, progress: bool = True):
    """Run every stage (resuming from the run folder's checkpoint); returns (x, optimize.Result, seconds)."""
    from tqdm.auto import tqdm

    cfg = problem.cfg
    start = _restore(problem, run_dir)
    t0 = time.perf_counter()
    clock = lambda: (start[4] if start else 0.0) + time.perf_counter() - t0  # noqa: E731
    bar = tqdm(total=cfg.max_iter * len(problem.stages), disable=not progress, unit="it", dynamic_ncols=True,
               desc="synth", file=sys.stderr)
    x, results = problem.x0, []
    try:
        for stage_no, stage in enumerate(problem.stages):
            first_iter, state = 0, None
            if start is not None and stage_no < start[0]:
                bar.update(cfg.max_iter)
                continue
            if start is not None and stage_no == start[0]:
                _, first_iter, x, state, _ = start
            elif stage_no > 0:  # coarse-to-fine: the previous stage, upsampled, starts this one
                x = jax.image.resize(jnp.asarray(x), x.shape[:2] + (stage.height, stage.width, 3), "bicubic")
                x = x.clip(0.0, 1.0)
            if len(problem.stages) > 1:
                bar.set_description(f"synth {stage.width}x{stage.height}")
            bar.update(first_iter)
            res = optimize.minimize(
                problem.objective(stage), x, problem.targets_for(stage), problem.params, method=cfg.optimizer,
                max_iter=cfg.max_iter, tol=cfg.tol, lr=cfg.lr, bounds=(0.0, 1.0), chunk=cfg.save_every or 50,
                callback=_Reporter(problem, run_dir, bar, stage_no, clock), start_iter=first_iter, state=state,
            )
            _check_finite(res.loss, f"after {res.iterations} iterations", run_dir)
            x = res.x
            results.append(res)
    finally:
        bar.close()
    return x, results, clock()


def finalise(problem: Problem, x) -> np.ndarray:
    """Crop the margin, make grey exemplars' outputs exactly grey, match histograms: (B*F, H, W, 3)."""
    cfg = problem.cfg
    images = problem.crop(x).reshape((-1, cfg.output_height, cfg.output_width, 3))
    if problem.spec.grey:
        images = np.repeat(images.mean(axis=-1, keepdims=True), 3, axis=-1)
    if cfg.match_histogram:
        refs = [problem.sources[i] for i in np.repeat(problem.src_index, cfg.count)] if cfg.separate else [
            np.concatenate([s.reshape(-1, 3) for s in problem.sources])[:, None]] * len(images)
        images = np.stack([colour.match_histogram(im, ref) for im, ref in zip(images, refs)])
    return images


def report(problem: Problem, res: SynthResult) -> dict:
    """The numbers ``result.json`` holds: losses, work done, and how each image compares with its exemplar."""
    per_image = np.repeat(problem.src_index, problem.cfg.count)
    return {
        "losses": [float(v) for v in np.ravel(res.losses)],
        "iterations": res.iterations,
        "evaluations": res.evaluations,
        "seconds": round(res.seconds, 3),
        "optimizer_message": res.message,
        "sources": [str(p) for p in problem.paths],
        "margin": problem.margin,
        "spectrum": [metrics.spectrum_report(problem.sources[i], im) for i, im in zip(per_image, res.images)],
        "border_contrast": [round(metrics.ring_contrast(im), 4) for im in res.images],
    }


def write_outputs(run_dir, problem: Problem, res: SynthResult):
    """Images, sheet or animation, loss curve, and ``result.json`` last."""
    from jtex import animation

    cfg, imgs = problem.cfg, res.images
    if cfg.count > 1:
        animation.save_outputs(run_dir.path, imgs, cfg)
    elif len(imgs) == 1:
        run_dir.save_image("output.png", imgs[0])
    else:
        for i, im in enumerate(imgs):
            run_dir.save_image(f"output_{i:03d}.png", im)
        run_dir.save_image("sheet.png", figures.contact_sheet(list(imgs), exemplar=problem.sources[0]))
    figures.plot_loss(run_dir.path / "loss.png", run_dir.metrics())
    run_dir.write_result(report(problem, res))


def open_run_dir(output_dir, problem: Problem):
    from jtex import rundir

    cfg = problem.cfg
    return rundir.RunDir(output_dir, cfg.to_dict(), seed=cfg.seed, weights=problem.weights_meta,
                         cosmetic=("save_every", "fps"))


def load_finished(run_dir, cfg: SynthConfig) -> SynthResult:
    result = run_dir.read_result()
    if cfg.count > 1:
        files = sorted(run_dir.path.glob("frame_*.png"))
    elif (run_dir.path / "output.png").is_file():
        files = [run_dir.path / "output.png"]
    else:
        files = sorted(run_dir.path.glob("output_*.png"))
    return SynthResult(np.stack([image.load(f) for f in files]), np.asarray(result["losses"]), result["iterations"],
                       result["evaluations"], result["seconds"], cfg, result.get("optimizer_message", ""))


def run(cfg: SynthConfig, output_dir: str | os.PathLike | None = None, *, progress: bool = True,
        params: dict | None = None) -> SynthResult:
    """Synthesise according to ``cfg``; with ``output_dir``, write and resume a run folder.

    Returns:
      :class:`SynthResult` with ``images`` (B, H, W, 3): B = batch (times the
      number of sources with ``separate``), or ``count`` frames.
    """
    problem = build(cfg, params=params)
    run_dir = open_run_dir(output_dir, problem) if output_dir is not None else None
    if run_dir is not None and run_dir.finished:
        print(f"jtex: {run_dir.path} already holds a finished run; nothing to do", file=sys.stderr)
        return load_finished(run_dir, cfg)
    x, results, seconds = optimise(problem, run_dir, progress=progress)
    last = results[-1] if results else None
    res = SynthResult(finalise(problem, x), np.asarray(last.loss) if last else np.full(problem.batch, np.nan),
                      sum(r.iterations for r in results), sum(r.evaluations for r in results), seconds, cfg,
                      last.message if last else "")
    if run_dir is not None:
        write_outputs(run_dir, problem, res)
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
    return run(cfg, output_dir, progress=progress, params=params).images
