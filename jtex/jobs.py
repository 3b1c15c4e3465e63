"""A resumable runner of many syntheses: ``jtex batch JOBS.jsonl --output-dir DIR``.

Each line of the jobs file is one synthesis, a JSON object of
:class:`jtex.config.SynthConfig` fields (``{"sources": ["a.png"],
"output_width": 512, "seed": 3}``); blank lines and lines starting with ``#``
are skipped. Job ``N`` (its line number) is written to ``DIR/job_NNNN/``, a run
folder laid out as a synthesis, built in ``DIR/.job_NNNN.partial`` and renamed
when complete, so a folder named ``job_NNNN`` is always whole.

Jobs whose problems compile to the same program (same sizes, octaves, layers,
statistics, optimiser and iteration count; any exemplar, seed, weights of the
layers and statistics, ``mul``, TV weight, learning rate) run together as one
vmapped batch (:mod:`jtex.sharding` lays it out over the local devices), up to
``max_group`` images and what memory allows. As in a sweep, the runner's
default optimiser is device L-BFGS, where each image keeps its own line search
and a job's images do not depend on the jobs it shares a batch with; a job
asking for ``lbfgs-b`` (one joint vector) runs alone.

A job that cannot run (bad JSON, an unknown or bad setting, a missing file, a
NaN) is recorded in ``DIR/failures.jsonl`` (``line``, ``reason``) and the others
go on. A rerun skips jobs already written with the same settings, and a batch
that was killed resumes from its checkpoint (``DIR/groups/<id>/``, removed
once its jobs are written). ``DIR/summary.json`` counts the jobs done and failed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from jtex.config import SynthConfig
from jtex.errors import JtexError

MAX_GROUP = 16  # images per batch, at most


@dataclasses.dataclass
class Job:
    line: int
    cfg: SynthConfig | None = None
    problem: object = None
    reason: str = ""

    @property
    def name(self) -> str:
        return f"job_{self.line:04d}"


def read(path, defaults: dict | None = None) -> list[Job]:
    """The jobs of a JSONL file (or a list of dicts), each with its config or the reason it has none."""
    if isinstance(path, (str, os.PathLike)):
        try:
            lines = Path(path).read_text().splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise JtexError(f"jobs file {path}: cannot read it ({e.__class__.__name__}); give a JSONL file") from None
        entries = [(i + 1, s) for i, s in enumerate(lines) if s.strip() and not s.lstrip().startswith("#")]
    else:
        entries = [(i + 1, d) for i, d in enumerate(path)]
    jobs = []
    for line, entry in entries:
        job = Job(line)
        try:
            d = json.loads(entry) if isinstance(entry, str) else entry
            if not isinstance(d, dict):
                raise JtexError('a job is a JSON object of settings, like {"sources": ["a.png"], "seed": 3}')
            d = {"optimizer": "lbfgs", **(defaults or {}), **d}
            if isinstance(d.get("sources"), str):
                d["sources"] = [d["sources"]]
            if not d.get("sources"):
                raise JtexError('no "sources": give the exemplar file(s) as a list')
            job.cfg = SynthConfig.from_dict(d).validate()
        except json.JSONDecodeError as e:
            job.reason = f"not JSON ({e.msg} at column {e.colno})"
        except (JtexError, TypeError, ValueError) as e:
            job.reason = str(e).splitlines()[0] if str(e) else e.__class__.__name__
        jobs.append(job)
    return jobs


def _key(p) -> tuple:
    """Jobs with equal keys run as one program: the objective of every stage, the shapes, the optimiser."""
    import jax

    cfg = p.cfg
    shapes = tuple(np.shape(t)[1:] for t in jax.tree.leaves(p.targets))
    alone = id(p) if cfg.optimizer == "lbfgs-b" else None  # one joint vector: never shared
    return (
        tuple(p.objective(st) for st in p.stages),
        tuple(p.stages),
        tuple(np.shape(p.x0)[1:]),
        str(jax.tree.structure(p.targets)),
        shapes,
        (cfg.weights, cfg.optimizer, cfg.max_iter, cfg.tol, cfg.save_every, cfg.coarse_to_fine, cfg.count),
        alone,
    )


def _groups(jobs: list[Job], max_group: int) -> list[list[Job]]:
    """Runnable jobs in batches of one program, in line order, each within ``max_group`` images and memory."""
    from jtex import sizes

    by: dict = {}
    for j in jobs:
        by.setdefault(_key(j.problem), []).append(j)
    have = sizes.available_bytes()
    out = []
    for members in by.values():
        group: list[Job] = []
        for j in members:
            n = sum(g.problem.batch for g in group) + j.problem.batch
            c = j.problem.cfg
            need = sizes.need_bytes(c, j.problem.sources, j.problem.canvas, n * c.count)
            if group and (n > max_group or need > have):
                out.append(group)
                group = []
            group.append(j)
        out.append(group)
    return sorted(out, key=lambda g: g[0].line)


def _stack(group: list[Job]):
    """One batched problem of the group's jobs: their starts, targets and knobs concatenated."""
    import jax
    import jax.numpy as jnp

    first = group[0].problem
    cat = lambda *t: jnp.concatenate([jnp.asarray(a) for a in t])  # noqa: E731
    n = sum(j.problem.batch for j in group)
    return dataclasses.replace(
        first,
        cfg=first.cfg.replace(batch=n, separate=False),
        x0=cat(*[j.problem.x0 for j in group]),
        targets=jax.tree.map(cat, *[j.problem.targets for j in group]),
        knobs=jax.tree.map(cat, *[j.problem.knobs for j in group]),
        src_index=np.zeros(n, int),
    )


def _write(out: Path, job: Job, sl: slice, x, result, seconds, logged, mesh) -> None:
    """The job's run folder, built aside and renamed into place."""
    from jtex import outputs
    from jtex.problem import SynthResult

    final, tmp = out / job.name, out / f".{job.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    run_dir = outputs.open_run_dir(tmp, job.problem, overwrite=True, mesh=mesh)
    try:
        rows = [
            {**{k: r[k] for k in ("stage", "iteration", "seconds", "time")},
             "loss": float(sum(r.get("losses", [r["loss"]])[sl]))} for r in logged
        ]  # fmt: skip
        run_dir.log(rows)
        res = SynthResult(outputs.finalise(job.problem, x[sl]), np.asarray(result.loss)[sl], result.iterations,
                          result.evaluations, seconds, job.cfg, result.message)  # fmt: skip
        outputs.write_outputs(run_dir, job.problem, res)
    finally:
        run_dir.close()
    (tmp / ".lock").unlink(missing_ok=True)
    if final.exists():  # an older run of this line with other settings
        shutil.rmtree(final)
    os.replace(tmp, final)


def run(jobs_file, output_dir, *, progress: bool = True, max_group: int = MAX_GROUP, defaults=None, params=None):
    """Run every job of ``jobs_file`` (a JSONL path or a list of dicts) into ``output_dir``; see the module doc.

    Args:
      defaults: settings every job starts from (a job's own keys win).
      params: a VGG params dict instead of each job's ``weights`` (tests).

    Returns:
      The summary written to ``DIR/summary.json``.
    """
    from tqdm.auto import tqdm

    from jtex import distributed, driver, files, outputs, rundir, sharding, synth

    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        raise JtexError(f"--output-dir {out} is a file; name a folder")
    rank, world = distributed.rank(), distributed.world()
    out.mkdir(parents=True, exist_ok=True)
    lock = rundir.lock_folder(out) if rank == 0 else None  # one runner (of any number of processes) per folder
    t0 = time.perf_counter()
    jobs = read(jobs_file, defaults)
    if not jobs:
        raise JtexError(f"{jobs_file}: no jobs; write one JSON object of settings per line")
    failed = {j.line: j.reason for j in jobs if j.reason}
    unfinished = [j for j in jobs if not j.reason and not outputs.finished(out / j.name, j.cfg)]
    left = {j.line for j in unfinished}
    skipped = [j.line for j in jobs if not j.reason and j.line not in left]
    distributed.barrier("jtex-batch-scanned")  # every process has seen the same finished jobs
    todo = []
    for j in unfinished[rank::world]:  # this process's share (distributed)
        try:
            j.problem = synth.build(j.cfg, params=params)
            todo.append(j)
        except (JtexError, OSError, ValueError, TypeError) as e:
            failed[j.line] = str(e).splitlines()[0] or e.__class__.__name__
    groups = _groups(todo, max_group) if todo else []
    bar = tqdm(
        total=len(jobs) if world == 1 else len(unfinished[rank::world]),
        initial=len(skipped) + len(failed) if world == 1 else 0,
        disable=not progress,
        unit="job",
        desc="jobs" if world == 1 else f"jobs of process {rank}/{world}",
        file=sys.stderr,
    )
    done, record = list(skipped), []
    try:
        for group in groups:
            problem = _stack(group)
            lines = [j.line for j in group]
            digest = hashlib.sha256(
                json.dumps([[j.line, j.cfg.to_dict(), outputs.content_digests(j.problem)] for j in group]).encode()
            ).hexdigest()[:12]
            gpath = out / "groups" / digest
            mesh = sharding.describe(np.shape(problem.x0))
            gdir = rundir.RunDir(gpath, {"lines": lines, "id": digest}, seed=group[0].cfg.seed,
                                 weights=problem.weights_meta, manifest={"mesh": mesh})  # fmt: skip
            try:
                x, results, seconds, _ = driver.optimise(problem, gdir, progress=progress)
                logged = gdir.metrics()
            except (JtexError, OSError, ValueError) as e:
                for line in lines:
                    failed[line] = f"its batch (lines {', '.join(map(str, lines))}) failed: {str(e).splitlines()[0]}"
                bar.update(len(group))
                continue
            finally:
                gdir.close()
            start = 0
            for j in group:
                sl = slice(start, start + j.problem.batch)
                start = sl.stop
                _write(out, j, sl, x, results[-1], seconds, logged, mesh)
                done.append(j.line)
                bar.update(1)
            shutil.rmtree(gpath, ignore_errors=True)
            record.append({"lines": lines, "images": problem.batch, "seconds": round(seconds, 3), "mesh": mesh})
    finally:
        bar.close()
        try:
            (out / "groups").rmdir()  # only when empty
        except OSError:
            pass
        if world == 1:
            summary = _summary(out, jobs, done, failed, skipped, record, t0)
            if lock is not None:
                lock.close()
        else:  # this process's share; process 0 joins them once every process has written its own
            files.atomic_write_text(out / f".process_{rank}.json", json.dumps([done, failed, record]))
    if world == 1:
        return summary
    distributed.barrier("jtex-batch-done")
    if rank != 0:
        return {"process": rank, "done": len(done) - len(skipped), "failed": len(failed), "groups": record}
    for k in range(1, world):
        d, f, r = json.loads((out / f".process_{k}.json").read_text())
        done, record = sorted(set(done) | set(d)), record + r
        failed.update({int(a): b for a, b in f.items()})
    for k in range(world):
        (out / f".process_{k}.json").unlink(missing_ok=True)
    summary = _summary(out, jobs, done, failed, skipped, record, t0, processes=world)
    if lock is not None:
        lock.close()
    return summary


def _summary(out: Path, jobs, done, failed, skipped, record, t0, **extra) -> dict:
    """Write DIR/failures.jsonl and DIR/summary.json."""
    from jtex import files

    rows = "".join(
        json.dumps({"line": k, "job": f"job_{k:04d}", "reason": v}) + "\n" for k, v in sorted(failed.items())
    )
    files.atomic_write_text(out / "failures.jsonl", rows)
    summary = {
        "jobs": len(jobs),
        "done": len(done),
        "failed": len(failed),
        "skipped_finished": len(skipped),
        "ran_now": len(done) - len(skipped),
        "groups": record,
        "seconds": round(time.perf_counter() - t0, 3),
        **extra,
    }
    files.atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary
