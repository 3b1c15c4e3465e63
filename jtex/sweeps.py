"""Parameter studies: every point of a grid of settings, sharing one compiled program where shapes allow.

``jtex sweep [synth flags] --grid KEY=V1,V2,... [--grid ...] --output-dir DIR``
and :func:`sweep`. The grid's points are the product of its keys' values.

* Keys that leave every array's shape alone -- ``TRACED``: layer weights,
  statistic weights (``loss``), ``mul``, TV weight, Adam's ``lr``, ``seed``
  and the start's ``init_scale`` -- become per-element arrays of one batched
  problem: the objective reads them as traced values (:func:`jtex.objective.knobs`),
  so all those points are optimised together by one vmapped, compiled program
  (each with its own L-BFGS memory and line search).
* Other keys (size, octaves, layers, padding, ...) change shapes or the
  program itself: their values are looped over in Python, one *group* (one
  compiled program) each, and the sweep says so.

Results: ``DIR/point_NNN/`` run folders laid out as a synthesis (config.json of
that point's settings, output.png, metrics.jsonl, result.json),
``DIR/sweep.csv`` and ``DIR/sweep.json`` (one row per point: the values, final
loss, seconds, and :mod:`jtex.metrics` numbers), ``DIR/sheet.png`` (rows: the
first key's values; columns: the other keys' combinations). Each group
checkpoints into ``DIR/groups/NN/``; a rerun of the same command resumes it
and skips the groups whose points are written.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

from jtex.config import SynthConfig, parse_loss
from jtex.errors import JtexError

TRACED = ("layer_weights", "loss", "mul", "tv_weight", "lr", "seed", "init_scale")
_NOT_SWEPT = ("sources", "arrays", "extra", "save_every", "batch", "separate")
_METRIC_KEYS = ("swd_s1", "swd_s2", "swd_s4", "spectrum", "colour", "gram")
BASELINES = ("baseline_crop", "baseline_noise")


def _field_types() -> dict[str, str]:
    from jtex import config

    kinds = {f.name: "str" for f in dataclasses.fields(SynthConfig)}
    kinds |= {n: "int" for n in config._INTS} | {n: "float" for n in config._FLOATS}
    kinds |= {n: "bool" for n in config._BOOLS} | {"layers": "layers", "layer_weights": "weights", "loss": "loss"}
    return kinds


def _value(key: str, kind: str, text: str):
    text = text.strip()
    try:
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
        if kind == "bool":
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return text.lower() in ("true", "1", "yes")
        if kind == "layers":
            return tuple(int(v) if v.strip().lstrip("-").isdigit() else v.strip() for v in text.split(","))
        if kind == "weights":
            try:
                return tuple(float(v) for v in text.split(","))
            except ValueError:
                return text  # a schedule: uniform, linear, geometric:Q
        if kind == "loss":
            return parse_loss(text)
    except ValueError:
        raise JtexError(f"--grid {key}: {text!r} is not a valid {kind} value") from None
    return text


def parse_grid(items) -> dict[str, list]:
    """``["mul=0.5,1,2", "layer_weights=1,0;linear"]`` -> ``{"mul": [0.5, 1.0, 2.0], "layer_weights": [...]}``.

    Values are separated by ``,``, or by ``;`` when the text holds one (for
    values that are lists themselves: layers, layer weights, losses).
    """
    kinds = _field_types()
    grid: dict[str, list] = {}
    for item in items:
        key, eq, values = str(item).partition("=")
        key = key.strip().replace("-", "_")
        if not eq or not values.strip():
            raise JtexError(f"--grid {item!r}: write KEY=V1,V2,... e.g. --grid mul=0.5,1,2")
        if key not in kinds or key in _NOT_SWEPT:
            raise JtexError(
                f"--grid {key}: not a setting a sweep can vary; e.g. mul, seed, layer_weights, loss, octaves"
            )
        if key in grid:
            raise JtexError(f"--grid {key} is given twice; list all its values in one --grid")
        parts = values.split(";") if ";" in values else values.split(",")
        grid[key] = [_value(key, kinds[key], p) for p in parts if p.strip()]
    return grid


def _normalise(key: str, v):
    """API grid values as the command line's: a loss as pairs, lists as tuples."""
    if key == "loss" and isinstance(v, str):
        return parse_loss(v)
    if isinstance(v, list):
        return tuple(tuple(x) if isinstance(x, list) else x for x in v)
    return v


def _jsonable(v):
    return list(_jsonable(x) for x in v) if isinstance(v, tuple) else v


def _label(key: str, v) -> str:
    if key == "loss":
        return " + ".join(f"{k}={w:g}" for k, w in v)
    if isinstance(v, tuple):
        return ",".join(f"{x:g}" if isinstance(x, float) else str(x) for x in v)
    return f"{v:g}" if isinstance(v, float) else str(v)


def _points(base: SynthConfig, grid: dict) -> list[tuple[dict, SynthConfig]]:
    keys = list(grid)
    out = []
    for combo in itertools.product(*(grid[k] for k in keys)):
        values = dict(zip(keys, combo))
        try:
            cfg = base.replace(**values).validate()
        except JtexError as e:
            shown = ", ".join(f"{k}={_label(k, v)}" for k, v in values.items())
            raise JtexError(f"sweep point {shown}: {e}") from None
        out.append((values, cfg))
    return out


def _union_loss(cfgs: list[SynthConfig]) -> tuple[str, ...]:
    kinds: list[str] = []
    for c in cfgs:
        kinds += [k for k, _ in c.loss if k not in kinds]
    return tuple(kinds)


def _check(base: SynthConfig, points):
    if base.separate:
        raise JtexError("sweep: --separate is not supported; sweep one source (or the joined sources) at a time")
    if base.optimizer == "lbfgs-b" and len(points) > 1:
        raise JtexError(
            "sweep: --optimizer lbfgs-b optimises one joint vector, so the points would share a line search; "
            "use --optimizer lbfgs (the sweep's default) or adam"
        )


def _group_problem(cfgs: list[SynthConfig], params):
    """One batched problem for the points of one group (same shapes): their knobs and starts stacked."""
    import jax
    import jax.numpy as jnp

    from jtex import objective, synth

    kinds = _union_loss(cfgs)
    first = cfgs[0]
    given = dict(first.loss)
    build_cfg = first.replace(loss=tuple((k, given.get(k, 0.0)) for k in kinds))
    p = synth.build(build_cfg, params=params)
    b = first.batch
    knobs = [objective.knobs(c, kinds) for c in cfgs]
    knobs = jax.tree.map(lambda *v: jnp.repeat(jnp.stack([jnp.asarray(x) for x in v]), b, axis=0), *knobs)
    src = np.zeros(b, np.int64)
    x0 = jnp.concatenate([synth.start_images(c, p.sources, src, p.stages[0]) for c in cfgs])
    n = len(cfgs) * b
    targets = jax.tree.map(lambda t: jnp.broadcast_to(t[:1], (n,) + t.shape[1:]), p.targets)
    spec = p.spec._replace(tv=any(c.tv_weight > 0 for c in cfgs))
    return dataclasses.replace(
        p, cfg=build_cfg.replace(batch=n), spec=spec, x0=x0, targets=targets, knobs=knobs, src_index=np.zeros(n, int)
    )


def _write_point(path: Path, group, cfg: SynthConfig, i: int, x, result, seconds, group_metrics):
    """Point i of a finished group as a synthesis run folder; returns its images."""
    from jtex import outputs
    from jtex.problem import SynthResult

    b = cfg.batch
    sl = slice(i * b, (i + 1) * b)
    point = dataclasses.replace(
        group, cfg=cfg, x0=group.x0[sl], targets=None, knobs=None, src_index=np.zeros(b, int), spec=group.spec
    )
    run_dir = outputs.open_run_dir(path, point, overwrite=True)
    try:
        run_dir.log(
            [
                {
                    **{k: r[k] for k in ("stage", "iteration", "seconds", "time")},
                    "loss": float(sum(r.get("losses", [r["loss"]])[sl])),
                }  # fmt: skip
                for r in group_metrics
            ]
        )
        losses = np.asarray(result.loss)[sl]
        res = SynthResult(
            outputs.finalise(point, x[sl]), losses, result.iterations, result.evaluations, seconds, cfg, result.message
        )
        outputs.write_outputs(run_dir, point, res)
    finally:
        run_dir.close()
    return res


def sweep(
    sources,
    grid: dict,
    output_dir,
    *,
    progress: bool = True,
    metrics: bool = True,
    params: dict | None = None,
    overwrite: bool = False,
    **config,
) -> list[dict]:
    """Run every point of ``grid`` (``{key: [values]}``) over the settings ``config``.

    Args:
      sources: exemplar path(s) or folder(s).
      grid: setting name -> list of values (``SynthConfig`` field names; see
        :func:`parse_grid` for the command line's spelling).
      output_dir: the sweep folder (see the module docstring).
      metrics: score each output with :func:`jtex.metrics.report` for the table,
        with ImageNet VGG-16 (normalised VGG-19 when the points use ``vgg16``);
        ``sweep.json`` also keeps each point's two baselines.
      params: a VGG params dict instead of ``config["weights"]`` (tests).
      overwrite: run every group again (another sweep's checkpoints in the folder are cleared).
      **config: any other :class:`SynthConfig` field; ``optimizer`` defaults
        to ``lbfgs`` (each point its own line search).

    Returns:
      One dict per point: its index, values, final loss, seconds, group and metrics.

    Example:
      >>> rows = jtex.sweep("examples/brick.png", {"mul": [0.5, 1, 2], "seed": [0, 1]}, "runs/sweep",
      ...                   output_width=128, output_height=128, padding="same", max_iter=50)
    """
    if isinstance(sources, (str, Path)):
        sources = [sources]
    config.setdefault("optimizer", "lbfgs")
    try:
        base = SynthConfig(sources=tuple(str(s) for s in sources), **config)
    except TypeError as e:
        raise JtexError(f"bad setting: {e}") from None
    return run(base, grid, output_dir, progress=progress, metrics=metrics, params=params, overwrite=overwrite)


def run(
    base: SynthConfig, grid: dict, output_dir, *, progress=True, metrics=True, params=None, overwrite=False
) -> list[dict]:
    """:func:`sweep` from a base :class:`SynthConfig` (what the command line builds).

    ``overwrite`` starts every group again, clearing checkpoints of another sweep in the same folder.
    """
    from jtex import driver, figures, files, image, outputs, rundir, sharding

    base.validate()
    grid = {k.replace("-", "_"): [_normalise(k, x) for x in v] for k, v in grid.items()}
    if not grid or any(not v for v in grid.values()):
        raise JtexError("sweep: give every --grid key at least one value")
    points = _points(base, grid)
    _check(base, points)
    out = Path(output_dir)
    outer = [k for k in grid if k not in TRACED]
    groups: dict[tuple, list[int]] = {}
    for i, (values, _) in enumerate(points):
        groups.setdefault(tuple(_label(k, values[k]) for k in outer), []).append(i)
    if outer:
        print(
            f"jtex: sweep: {', '.join(outer)} change shapes or the program: {len(groups)} groups, each compiled "
            f"once; {', '.join(k for k in grid if k in TRACED) or 'nothing'} varied inside each",
            file=sys.stderr,
        )
    rows: list[dict | None] = [None] * len(points)
    images: list[np.ndarray | None] = [None] * len(points)
    for g, idx in enumerate(groups.values()):
        cfgs = [points[i][1] for i in idx]
        if not overwrite and all(outputs.finished(out / f"point_{i:03d}", c) for i, c in zip(idx, cfgs)):
            for i in idx:
                result = json.loads((out / f"point_{i:03d}" / "result.json").read_text())
                rows[i] = {"final_loss": float(sum(result["losses"])), "seconds": result["seconds"], "group": g}
                images[i] = image.load(sorted((out / f"point_{i:03d}").glob("output*.png"))[0])
            continue
        problem = _group_problem(cfgs, params)
        settings = {"points": [c.to_dict() for c in cfgs], "content_sha256": outputs.content_digests(problem)}
        gdir = rundir.RunDir(out / "groups" / f"{g:02d}", settings, seed=cfgs[0].seed, weights=problem.weights_meta,
                             cosmetic=("save_every",), overwrite=overwrite,
                             manifest={"mesh": sharding.describe(np.shape(problem.x0))})  # fmt: skip
        try:
            t = time.perf_counter()
            x, results, seconds, _ = driver.optimise(problem, gdir, progress=progress)
            logged = gdir.metrics()
        finally:
            gdir.close()
        last = results[-1]
        for j, (i, cfg) in enumerate(zip(idx, cfgs)):
            res = _write_point(out / f"point_{i:03d}", problem, cfg, j, x, last, seconds, logged)
            rows[i] = {"final_loss": float(np.sum(res.losses)), "seconds": round(seconds, 3), "group": g}
            images[i] = res.images[0]
        if progress:
            print(f"jtex: sweep group {g + 1}/{len(groups)}: {len(idx)} points in {time.perf_counter() - t:.1f} s",
                  file=sys.stderr)  # fmt: skip
    table = []
    exemplar = None
    if metrics:
        from jtex import metrics as jm
        from jtex import synth

        exemplar = synth.load_sources(base)[1][0]
        network = "vgg19" if base.weights == "vgg16" else "vgg16"  # never the network the points optimised
        names = [f"point_{i:03d}" for i in range(len(points))]
        scores = jm.report(exemplar, images, names=names, network=network, key=base.seed)
    for i, ((values, _), row) in enumerate(zip(points, rows)):
        entry = {"point": i, **{k: _jsonable(v) for k, v in values.items()}, **row}
        if metrics:
            entry |= {k: scores[i][k] for k in _METRIC_KEYS}
        table.append(entry)
    summary = {"grid": {k: [_jsonable(v) for v in vs] for k, vs in grid.items()}, "rows": table}
    if metrics:  # what the numbers mean: pieces of the exemplar itself, and colour-matched noise, at each point's size
        summary |= {
            "metrics_network": network,
            "baselines": [{k: scores[i][k] for k in BASELINES} for i in range(len(table))],
        }
    files.atomic_write_text(out / "sweep.json", json.dumps(summary, indent=2) + "\n")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(table[0]))
    writer.writeheader()
    for entry in table:
        writer.writerow({k: (_label(k, points[entry["point"]][0][k]) if k in grid else v) for k, v in entry.items()})
    files.atomic_write_text(out / "sweep.csv", buf.getvalue())
    first, rest = list(grid)[0], list(grid)[1:]
    n_cols = len(points) // len(grid[first])
    col_labels = [
        " ".join(f"{k}={_label(k, points[c][0][k])}" for k in rest) for c in range(n_cols)
    ]  # points are in row-major order of the product
    row_labels = [f"{first}={_label(first, v)}" for v in grid[first]]
    sheet = figures.labelled_grid(images, rows=len(grid[first]), columns=n_cols, row_labels=row_labels,
                                  column_labels=col_labels if rest else [])  # fmt: skip
    image.save(out / "sheet.png", sheet)
    return table
