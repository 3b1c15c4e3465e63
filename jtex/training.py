"""The training loop every trained generator shares: one run folder, orbax checkpoints, resume, checks.

A trainer hands :func:`fit` a jitted ``step(state, key) -> (state, metrics)``,
its initial state and how to preview it; :func:`fit` runs the steps with a
progress bar, writes ``metrics.jsonl`` (one line per step), a checkpoint, a
sample sheet and the loss curve every ``save_every`` steps, and resumes from
the latest checkpoint when the same command runs again (the run folder
refuses other settings; see :class:`jtex.rundir.RunDir`).

The step's key is ``fold_in(key, step)``: a resumed run draws the same noise
as an uninterrupted one, so it ends on the same weights.

Failures a user can act on end the run with one line, the last good
checkpoint kept: a loss that is not finite (the state is not saved), and a
collapse to a constant image (``pixel_std`` in the metrics below
``COLLAPSE_STD`` for ``COLLAPSE_STEPS`` steps running, once the first
``warmup`` steps are over) — the failure users of the original Texture
Networks code reported most.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from jtex import figures
from jtex.errors import JtexError

COLLAPSE_STD = 2e-3  # pixel standard deviation (image units) below which a batch is "constant"
COLLAPSE_STEPS = 25


class TrainingFailed(JtexError):
    """Training stopped on a non-finite loss or a collapse; the run folder keeps the last good checkpoint."""


def fit(
    run_dir,
    *,
    state: Any,
    step_fn: Callable,
    key: jax.Array,
    steps: int,
    save_every: int,
    preview: Callable[[Any], np.ndarray] | None = None,
    meta: dict | None = None,
    warmup: int = 100,
    lr: Callable[[int], float] | None = None,
    progress: bool = True,
    desc: str = "train",
    preview_dir: str = "samples",
):
    """Run ``step_fn`` from the run folder's latest checkpoint (or ``state``) up to ``steps``.

    Args:
      run_dir: a :class:`jtex.rundir.RunDir`.
      state: the initial state, a pytree whose ``step`` field counts steps done.
      step_fn: jitted ``(state, key) -> (state, metrics)``; metrics are scalars
        and include ``loss`` (and ``pixel_std`` for the collapse check).
      key: the run's training key; step s uses ``fold_in(key, s)``.
      steps: train until ``state.step == steps``.
      save_every: checkpoint, sheet and curve every this many steps (and at the end).
      preview: state -> the sample sheet, an (H, W, 3) image (e.g. :func:`jtex.figures.contact_sheet`).
      meta: JSON-able metadata stored with every checkpoint (e.g. the config).
      warmup: steps before the collapse check starts (outputs start near constant).
      lr: step -> learning rate, logged beside the metrics.
      preview_dir: the folder of the run folder the previews go to (``step_000100.png``, ...).

    Returns:
      ``(state, seconds)``: the final state and the seconds of training this call.
    """
    restored = run_dir.restore(lambda m: blank_like(state) if m.get("kind") == (meta or {}).get("kind") else None)
    if restored is not None:
        state = jax.tree.map(lambda like, a: np.asarray(a, np.asarray(like).dtype), state, restored[1])
    start = int(state.step)
    run_dir.keep_metrics(lambda r: r.get("step", 0) <= start)
    if start >= steps:
        return state, 0.0

    from tqdm.auto import tqdm

    bar = tqdm(total=steps, initial=start, desc=desc, disable=not progress, unit="step", dynamic_ncols=True)
    t0, low, records = time.perf_counter(), 0, []
    saved_at = start
    try:
        while int(state.step) < steps:
            s = int(state.step)
            new, metrics = step_fn(state, jax.random.fold_in(key, s))
            m = {k: float(v) for k, v in metrics.items()}
            if not all(math.isfinite(v) for v in m.values()):
                bad = ", ".join(k for k, v in m.items() if not math.isfinite(v))
                raise TrainingFailed(
                    f"training diverged at step {s + 1}: {bad} not finite; the checkpoint of step {saved_at} is "
                    f"kept in {run_dir.path}; lower the learning rate and start again with --overwrite"
                )
            state = new
            low = low + 1 if s >= warmup and m.get("pixel_std", 1.0) < COLLAPSE_STD else 0
            rec = {"step": s + 1, **m, "seconds": round(time.perf_counter() - t0, 4)}
            if lr is not None:
                rec["lr"] = float(lr(s))
            records.append(rec)
            bar.set_postfix(loss=f"{m['loss']:.4g}", refresh=False)
            bar.update(1)
            if low >= COLLAPSE_STEPS:
                _save(run_dir, state, meta, records, preview, preview_dir)
                raise TrainingFailed(
                    f"training collapsed to a constant image at step {s + 1} (pixel std {m['pixel_std']:.2g} for "
                    f"{COLLAPSE_STEPS} steps); lower the learning rate or change the seed, then --overwrite"
                )
            if (s + 1) % save_every == 0 or s + 1 == steps:
                _save(run_dir, state, meta, records, preview, preview_dir)
                records, saved_at = [], s + 1
    except TrainingFailed as e:
        run_dir.log(records)
        run_dir.note_failed(str(e))
        raise
    finally:
        bar.close()
    return state, time.perf_counter() - t0


def session_seconds(records: list[dict]) -> float:
    """Seconds of stepping over every session of a run's ``metrics.jsonl`` (``seconds`` restarts at 0 on resume)."""
    total = 0.0
    for a, b in zip(records, records[1:] + [None]):
        if b is None or b["seconds"] < a["seconds"]:
            total += a["seconds"]
    return round(total, 2)


def array_sha256(x) -> str:
    """SHA-256 of an array's values as float32 (what run folders record of exemplars given as arrays)."""
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(x, np.float32).tobytes()).hexdigest()


def blank_like(state):
    """Zeros of the same tree, shapes and dtypes: the target orbax restores a checkpoint into."""
    return jax.tree.map(lambda a: np.zeros(np.shape(a), np.asarray(a).dtype), state)


def _save(run_dir, state, meta, records, preview, preview_dir):
    step = int(state.step)
    run_dir.log(records)
    arrays = jax.tree.map(np.asarray, state)
    run_dir.checkpoint(step, {**(meta or {}), "step": step}, arrays)
    if preview is not None:
        run_dir.save_image(f"{preview_dir}/step_{step:06d}.png", preview(state))
    figures.plot_loss(run_dir.path / "loss.png", run_dir.metrics())
