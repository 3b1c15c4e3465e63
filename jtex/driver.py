"""Runs a built :class:`jtex.problem.Problem` through its stages.

Coarse-to-fine stages run in order, each starting from the previous one
upsampled. After every iteration (host optimiser) or chunk (device
optimisers) the reporter checks for NaN/Inf, moves the progress bar and, with
a run folder, appends the losses to ``metrics.jsonl``; every ``save_every``
iterations it writes a snapshot and an orbax checkpoint of the image(s) and
the optimiser state, from which a rerun of the same command resumes.
"""

from __future__ import annotations

import sys
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jtex import figures, optimize
from jtex.errors import JtexError
from jtex.problem import NonFiniteLoss, Problem


def _check_finite(losses, when: str, run_dir) -> None:
    """Stop with one line when a loss is NaN/Inf; the run folder keeps its last good snapshot."""
    if np.all(np.isfinite(losses)):
        return
    where = ""
    if run_dir is not None:
        run_dir.note_failed("the loss became NaN/Inf; see the last snapshot")
        where = f"; the last good snapshot is in {run_dir.path / 'snapshots'}"
    raise NonFiniteLoss(
        f"the loss became NaN/Inf {when}{where}; check the sources and --mul, "
        "or try another --seed, --optimizer or a lower --lr"
    )


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
        self.run_dir.log(
            [
                dict(
                    stage=self.stage_no,
                    iteration=first + i,
                    loss=float(np.nansum(row)),
                    seconds=round(seconds, 4),
                    time=now,
                    **({"losses": row.tolist()} if row.size > 1 else {}),
                )
                for i, row in enumerate(np.asarray(losses, np.float64))
            ]
        )
        every = self.problem.cfg.save_every
        if every and p.iteration // every > (p.iteration - len(losses)) // every:
            x = np.asarray(p.x)
            self.run_dir.save_image(f"snapshots/iter_{p.iteration:06d}.png", _sheet(self.problem.crop(x)))
            meta = {
                "stage": self.stage_no,
                "iteration": p.iteration,
                "seconds": seconds,
                "has_state": p.state is not None,
                "x_shape": list(x.shape),
            }
            arrays = {"x": x, "state": p.state} if p.state is not None else {"x": x}
            self.run_dir.checkpoint(self.stage_no * self.problem.cfg.max_iter + p.iteration, meta, arrays)


def _sheet(x: np.ndarray) -> np.ndarray:
    imgs = x.reshape((-1,) + x.shape[-3:])
    return imgs[0] if len(imgs) == 1 else figures.contact_sheet(list(imgs))


class Resume(NamedTuple):
    """Where a rerun picks up: the latest checkpoint."""

    stage: int
    iteration: int
    x: np.ndarray  # (B, F, H, W, 3) canvas
    state: Any  # the device optimiser's state, or None (L-BFGS-B)
    seconds: float  # optimisation time already spent


def _restore(problem: Problem, run_dir) -> Resume | None:
    """The latest checkpoint, or None."""
    if run_dir is None:
        return None
    cfg = problem.cfg

    def target(meta):
        stage = problem.stages[meta["stage"]] if meta["stage"] < len(problem.stages) else None
        if stage is None or tuple(meta["x_shape"][-3:-1]) != (stage.height, stage.width):
            raise JtexError(
                f"{run_dir.path}: its checkpoint holds a {meta['x_shape'][-2]}x{meta['x_shape'][-3]} canvas, but "
                "this run optimises another (made by an older jtex?); pass --overwrite or a new --output-dir"
            )
        like = {"x": np.zeros(meta["x_shape"], np.float32)}
        if meta["has_state"]:
            like["state"] = optimize.init_device_state(
                problem.objective(stage),
                cfg.optimizer,
                cfg.lr,
                like["x"],
                problem.targets_for(stage),
                problem.shared(),
                tol=cfg.tol,
            )
        return like

    found = run_dir.restore(target)
    if found is None:
        return None
    meta, arrays = found
    run_dir.keep_metrics(lambda r: (r["stage"], r["iteration"]) <= (meta["stage"], meta["iteration"]))
    return Resume(meta["stage"], meta["iteration"], np.asarray(arrays["x"]), arrays.get("state"), meta["seconds"])


def optimise(problem: Problem, run_dir=None, *, progress: bool = True):
    """Run every stage (resuming from the run folder's checkpoint).

    Returns:
      ``(x, results, seconds, started_at)``: the final canvas, one
      :class:`jtex.optimize.Result` per stage run, the optimisation's seconds
      (counting resumed ones), and the wall-clock time (epoch seconds) at which
      the optimiser started -- the end of start-up.
    """
    from tqdm.auto import tqdm

    cfg = problem.cfg
    start = _restore(problem, run_dir)
    t0, started_at = time.perf_counter(), time.time()
    clock = lambda: (start.seconds if start else 0.0) + time.perf_counter() - t0  # noqa: E731
    need, have = problem.memory
    if progress and need:
        print(f"jtex: memory estimate {need / 2**30:.2f} GiB ({have / 2**30:.1f} GiB free)", file=sys.stderr)
    if progress:
        from jtex import onednn

        if tip := onednn.hint():
            print(f"jtex: {tip}", file=sys.stderr)
    bar = tqdm(
        total=cfg.max_iter * len(problem.stages),
        disable=not progress,
        unit="it",
        dynamic_ncols=True,
        desc="synth",
        file=sys.stderr,
    )
    x, results = problem.x0, []
    try:
        for stage_no, stage in enumerate(problem.stages):
            first_iter, state = 0, None
            if start is not None and stage_no < start.stage:
                bar.update(cfg.max_iter)
                continue
            if start is not None and stage_no == start.stage:
                first_iter, x, state = start.iteration, start.x, start.state
            elif stage_no > 0:  # coarse-to-fine: the previous stage, upsampled, starts this one
                x = jax.image.resize(jnp.asarray(x), x.shape[:2] + (stage.height, stage.width, 3), "bicubic")
                x = x.clip(0.0, 1.0)
            if len(problem.stages) > 1:
                bar.set_description(f"synth {stage.width}x{stage.height}")
            bar.update(first_iter)
            res = optimize.minimize(
                problem.objective(stage),
                x,
                problem.targets_for(stage),
                problem.shared(),
                method=cfg.optimizer,
                max_iter=cfg.max_iter,
                tol=cfg.tol,
                lr=cfg.lr,
                bounds=(0.0, 1.0),
                chunk=cfg.save_every or 50,
                callback=_Reporter(problem, run_dir, bar, stage_no, clock),
                start_iter=first_iter,
                state=state,
            )
            _check_finite(res.loss, f"after {res.iterations} iterations", run_dir)
            x = res.x
            results.append(res)
    finally:
        bar.close()
    return x, results, clock(), started_at
