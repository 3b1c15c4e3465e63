"""Benchmark of the synthesis engine: speed, batching, coarse-to-fine, memory, PyTorch ratio.

    python experiments/bench_synth.py                 # everything (about 40 min on 2 CPU cores)
    python experiments/bench_synth.py --parts eval batch
    python experiments/bench_synth.py --quick         # smaller sizes, for a smoke run

Each part runs in its own subprocess, so its peak resident memory is its own.
Prints tables and writes experiments/results/bench_synth.json (per device
kind: a GPU run adds its own entry beside the CPU one).

Parts:
  eval     one loss+gradient evaluation, jtex vs PyTorch (same .pth, same
           objective), Gatys' full model and Snelgrove's default, 256 and 512
  iter     seconds per optimiser iteration (and evaluations per iteration),
           beside PyTorch's L-BFGS and, with --snelgrove-code, Snelgrove's own
           Keras code (experiments/snelgrove_peer.py)
  optim    time to the loss PyTorch's L-BFGS reaches in 60 iterations:
           Snelgrove's objective, 256x256 from the 512-wide brick, 4 octaves,
           'same' padding, every optimiser from the same start
  startup  command to first iteration, first run (empty compilation cache)
           and second run (warm cache), Snelgrove's defaults
  batch    per-image time for batch 1, 4, 8
  c2f      wall time to a loss at 1024x1024, with and without coarse-to-fine,
           and the peak memory of Snelgrove's default there
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "experiments"))
RESULTS = ROOT / "experiments" / "results" / "bench_synth.json"
BRICK = str(ROOT / "examples" / "brick.png")

GATYS = dict(octaves=1, layers=("conv1_1", "pool1", "pool2", "pool3", "pool4"), gram="gatys", padding="same")
SNELGROVE = dict(octaves=4, layers=(2, 7), gram="snelgrove")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _setup(size, model, **extra):
    """The problem jtex solves (margin 0: the very objective the PyTorch reference computes)."""
    from jtex import synth
    from jtex.config import SynthConfig

    cfg = SynthConfig(sources=(BRICK,), output_width=size, output_height=size, margin=0, **{**model, **extra})
    return synth.build(cfg)


def _interleaved(fns: dict, reps: int) -> dict:
    """Median seconds per call of each fn, the calls taken in turn (a, b, a, b, ...).

    This machine's speed drifts by 20% over a minute; timing one contender after
    the other puts that drift into the ratio, alternating spreads it over both.
    """
    for fn in fns.values():
        fn()  # compile / warm up
    times = {k: [] for k in fns}
    for _ in range(reps):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def torch_objective(size, model, sources, padding):
    import torch

    from jtex import vgg, weights

    import torch_reference as tr

    torch.set_num_threads(2)
    net = tr.load(weights.source_path("vgg19-normalized"))
    layers = list(vgg.resolve_layers(model["layers"]))
    src = torch.from_numpy(np.ascontiguousarray(sources[0].transpose(2, 0, 1)[None]))
    with torch.no_grad():
        targets = tr.grams(net, src, layers, model["octaves"], padding, model["gram"])
    x = torch.rand(1, 3, size, size)

    def loss_and_grad(x=x):
        x = x.detach().requires_grad_(True)
        loss = tr.loss(net, x, targets, layers, model["octaves"], padding, model["gram"])
        loss.backward()
        return float(loss), x.grad

    return net, targets, layers, loss_and_grad


def _eval_one(name, size):
    """One loss+gradient evaluation of one model at one size, jtex and PyTorch."""
    import jax

    model = GATYS if name == "gatys" else SNELGROVE
    padding = "valid" if (name == "snelgrove" and size >= 512) else "same"
    model_p = {**model, "padding": padding}
    p = _setup(size, model_p)
    args = p.element()
    vg = jax.jit(jax.value_and_grad(p.objective(p.stages[0])))
    fns = {"jtex": lambda: jax.block_until_ready(vg(p.x0[0], *args))}
    try:
        *_, fns["torch"] = torch_objective(size, model_p, p.sources, padding)
    except ImportError:
        pass
    t = _interleaved(fns, reps=7)
    row = {"model": name, "size": size, "padding": padding, "jtex_s": t["jtex"], "reps": 7, "interleaved": True}
    if "torch" in t:
        row["torch_s"] = t["torch"]
        row["ratio_jtex_over_torch"] = t["jtex"] / t["torch"]
    return row | {"peak_mb": peak_mb()}


def part_eval(quick):
    # Each configuration in a fresh process: a 512x512 run leaves the allocator
    # in a state that slows the next, smaller one (seen here: 0.46 s -> 0.75 s).
    sizes = (128, 256) if quick else (256, 512)
    return {"rows": [_sub(f"eval:{name}:{size}", quick) for name in ("gatys", "snelgrove") for size in sizes]}


def _jtex_s_per_iter(size, model, n, **extra):
    """Median seconds per iteration over iterations 2..n (as snelgrove_peer measures its peer), compile excluded."""
    import tempfile

    from jtex.config import SynthConfig

    cfg = SynthConfig(
        sources=(BRICK,), output_width=size, output_height=size, max_iter=n, tol=0.0, save_every=0, **model, **extra
    )
    tmp = Path(tempfile.mkdtemp())
    _run_metrics(cfg.replace(max_iter=2), tmp / "warm")  # compile outside the timing (same jit cache key)
    m = _run_metrics(cfg, tmp / "run")
    steps = np.diff([r["seconds"] for r in m])  # iteration 2..n, each its own wall time
    result = json.loads((tmp / "run" / "result.json").read_text())
    return {
        "s_per_iter": float(np.median(steps)),
        "evals_per_iter": result["evaluations"] / result["iterations"],
        "s_first_iter": m[0]["seconds"],
    }


def part_iter(quick):
    """Seconds per L-BFGS iteration: jtex (defaults, and margin 0), PyTorch, Snelgrove's own code.

    Snelgrove's code runs when JTEX_BENCH_SNELGROVE="CODE_DIR:TF_PYTHON[:DATA_DIR]" is set (see
    experiments/snelgrove_peer.py); each peer runs in its own process, one after the other.
    """
    import os

    import snelgrove_peer

    from jtex import synth
    from jtex.config import SynthConfig

    rows = []
    n = 5 if quick else 15
    configs = [(320, "valid"), (256, "same")] if quick else [(512, "valid"), (256, "same")]
    peer = os.environ.get("JTEX_BENCH_SNELGROVE", "").split(":")
    for size, padding in configs:
        model = {**SNELGROVE, "padding": padding}
        base = {"model": "snelgrove", "size": size, "padding": padding}
        margin, (tb, tr) = synth.frame(SynthConfig(padding=padding, output_width=size, output_height=size))
        label = f"jtex lbfgs-b (defaults, margin {margin} + {tb} below/right)"  # the canvas the synthesis runs
        rows.append(base | {"code": label} | _jtex_s_per_iter(size, model, n))
        rows.append(base | {"code": "jtex lbfgs-b (margin 0)"} | _jtex_s_per_iter(size, model, n, margin=0))
        try:
            p = _setup(size, model)
            r = _torch_lbfgs(size, model, n, np.asarray(p.x0[0, 0]))
            rows.append(
                base | {"code": r["optimizer"], "s_per_iter": r["s_per_iter"], "evals_per_iter": r["evals_per_iter"]}
            )
        except ImportError:
            pass
        if len(peer) >= 2:
            m = snelgrove_peer.measure(
                peer[0], peer[1], size, padding, n + 5, BRICK, 512, data_dir=peer[2] if len(peer) > 2 else None
            )
            rows.append(
                base
                | {
                    "code": "Snelgrove's subjective-functions",
                    "s_per_iter": m["s_per_iter"],
                    "evals_per_iter": m["evals_per_iter"],
                    "startup_s": m.get("startup_s"),
                }
            )
    for size, padding in configs:
        same = [r for r in rows if r["size"] == size]
        for r in same:
            for ref, key in (("Snelgrove", "vs_snelgrove"), ("torch", "vs_torch")):
                peer_row = next((q for q in same if ref in q["code"]), None)
                if peer_row and r["code"].startswith("jtex"):
                    r[key] = r["s_per_iter"] / peer_row["s_per_iter"]
    return {"rows": rows, "peak_mb": peak_mb()}


def _torch_lbfgs(size, model, iters, x0, trace=False, source=None, with_image=False):
    """PyTorch's L-BFGS (strong Wolfe, as in pystiche and neural-style-pt) on the same objective from x0 (H, W, 3).

    source: the exemplar as an (H, W, 3) array (default: the bundled brick);
    with_image: also return the final x as "image".
    """
    import torch

    from jtex import image

    import torch_reference as tr

    sources = [image.load(BRICK) if source is None else source]
    net, targets, layers, _ = torch_objective(size, model, sources, model["padding"])
    x = torch.from_numpy(np.ascontiguousarray(np.asarray(x0, np.float32).transpose(2, 0, 1)[None]))
    x.requires_grad_(True)
    opt = torch.optim.LBFGS(
        [x], lr=1, max_iter=iters, history_size=10, line_search_fn="strong_wolfe", tolerance_grad=0, tolerance_change=0
    )
    evals, t0, curve = [0], time.perf_counter(), []

    def closure():
        opt.zero_grad()
        loss = tr.loss(net, x, targets, layers, model["octaves"], model["padding"], model["gram"])
        loss.backward()
        evals[0] += 1
        if trace:
            curve.append((evals[0], float(loss), time.perf_counter() - t0))
        return loss

    opt.step(closure)
    dt = time.perf_counter() - t0
    with torch.no_grad():
        final = float(tr.loss(net, x, targets, layers, model["octaves"], model["padding"], model["gram"]))
    it = opt.state[opt._params[0]]["n_iter"]
    out = {
        "optimizer": "torch.optim.LBFGS (strong Wolfe)",
        "s_per_iter": dt / it,
        "evals_per_iter": evals[0] / it,
        "iterations": it,
        "seconds": dt,
        "final_loss": final,
    }
    if with_image:
        out["image"] = x.detach().numpy()[0].transpose(1, 2, 0).clip(0, 1)
    if trace:
        out["curve"] = curve
    return out


def _run_metrics(cfg, out_dir):
    import shutil

    from jtex import synth

    shutil.rmtree(out_dir, ignore_errors=True)
    synth.run(cfg, out_dir, progress=False)
    return [json.loads(line) for line in (Path(out_dir) / "metrics.jsonl").read_text().splitlines()]


def _time_to(metrics, target, stage=None):
    for m in metrics:
        if (stage is None or m["stage"] == stage) and m["loss"] <= target:
            return m["seconds"]
    return None


def part_optim(quick):
    """Time to the loss PyTorch's L-BFGS reaches in `peer_iters` iterations, from the same start."""
    import tempfile

    iters, peer_iters = (30, 10) if quick else (150, 60)
    size = 128 if quick else 256
    model = {**SNELGROVE, "padding": "same"}
    p = _setup(size, model)
    x0 = np.asarray(p.x0[0, 0])
    try:
        peer = _torch_lbfgs(size, model, peer_iters, x0)
    except ImportError:
        return {"skipped": "needs torch (pip install torch==2.13.0)"}
    target = peer["final_loss"]
    tmp = Path(tempfile.mkdtemp())
    base = p.cfg.replace(max_iter=iters, tol=0.0, save_every=25)

    def jtex_row(opt):
        _run_metrics(base.replace(optimizer=opt, max_iter=2), tmp / f"{opt}-warm")  # compile outside the timing
        m = _run_metrics(base.replace(optimizer=opt), tmp / opt)
        hit = next((r for r in m if r["loss"] <= target), None)
        return {
            "optimizer": opt,
            "iterations": m[-1]["iteration"],
            "final_loss": m[-1]["loss"],
            "seconds": m[-1]["seconds"],
            "seconds_to_peer_loss": hit and hit["seconds"],
            "iterations_to_peer_loss": hit and hit["iteration"],
        }

    # PyTorch before and after jtex's default: the machine's speed drifts, so the
    # ratio uses the mean of the two PyTorch runs (both listed).
    rows = [jtex_row("lbfgs-b")]
    again = _torch_lbfgs(size, model, peer_iters, x0)
    rows.append(jtex_row("lbfgs"))
    peer_s = (peer["seconds"] + again["seconds"]) / 2
    rows.insert(
        0,
        {
            "optimizer": peer["optimizer"],
            "iterations": peer["iterations"],
            "final_loss": target,
            "seconds": peer_s,
            "seconds_to_peer_loss": peer_s,
            "seconds_before_and_after": [peer["seconds"], again["seconds"]],
        },
    )
    for r in rows:
        r["ratio_to_peer"] = r["seconds_to_peer_loss"] / peer_s if r["seconds_to_peer_loss"] else None
    return {"size": size, "peer_iterations": peer_iters, "peer_loss": target, "rows": rows, "peak_mb": peak_mb()}


def part_startup(quick):
    """Command to first iteration, with an empty and then a warm compilation cache (Snelgrove's defaults)."""
    import os
    import shutil
    import tempfile

    tmp = Path(tempfile.mkdtemp())
    size = 320 if quick else 512
    env = dict(os.environ, JTEX_CACHE_DIR=str(tmp / "cache"))
    rows = []
    for run in ("first (empty cache)", "second (warm cache)"):
        out = tmp / run.split()[0]
        shutil.rmtree(out, ignore_errors=True)
        t = time.time()
        subprocess.run(
            [
                sys.executable,
                str(ROOT / "run.py"),
                "-s",
                BRICK,
                "-ow",
                str(size),
                "-oh",
                str(size),
                "-m",
                "1",
                "--quiet",
                "--output-dir",
                str(out),
            ],
            env=env,
            check=True,
            capture_output=True,
        )
        first = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
        started = json.loads((out / "result.json").read_text())["optimiser_started_at"]
        rows.append(
            {"run": run, "startup_s": started - t, "first_iteration_s": first["time"] - t, "command_s": time.time() - t}
        )
    return {"size": size, "rows": rows}


def part_batch(quick):
    import jtex
    from jtex import synth
    from jtex.config import SynthConfig

    size = 128 if quick else 256
    n = 10
    rows = []
    for batch in (1, 4, 8):
        kw = dict(output_width=size, output_height=size, padding="same", max_iter=n, tol=0.0, batch=batch, **SNELGROVE)
        jtex.synthesize(BRICK, progress=False, **{**kw, "max_iter": 2})  # compile (same cache key: same tol)
        t = time.perf_counter()
        res = synth.run(SynthConfig(sources=(BRICK,), **kw), progress=False)
        dt = time.perf_counter() - t
        rows.append({"batch": batch, "seconds": dt, "per_image_s": dt / batch, "iterations": res.iterations})
    for r in rows:
        r["per_image_vs_batch1"] = r["per_image_s"] / rows[0]["per_image_s"]
    return {"size": size, "rows": rows, "peak_mb": peak_mb()}


def part_c2f_one(quick, coarse_to_fine):
    import tempfile

    from jtex.config import SynthConfig

    size = 512 if quick else 1024
    iters = 10 if quick else 20
    cfg = SynthConfig(
        sources=(BRICK,),
        output_width=size,
        output_height=size,
        max_iter=iters,
        tol=0.0,
        save_every=10,
        coarse_to_fine=coarse_to_fine,
        **SNELGROVE,
    )
    m = _run_metrics(cfg, Path(tempfile.mkdtemp()) / "run")
    final_stage = max(r["stage"] for r in m)
    return {
        "metrics": [(r["stage"], r["iteration"], r["loss"], r["seconds"]) for r in m],
        "final_stage": final_stage,
        "peak_mb": peak_mb(),
        "size": size,
        "iterations": iters,
    }


def part_c2f(quick):
    plain = _sub("c2f_plain", quick)
    c2f = _sub("c2f_c2f", quick)
    target = plain["metrics"][-1][2]
    t_plain = plain["metrics"][-1][3]
    t_c2f = next((s for st, _, loss, s in c2f["metrics"] if st == c2f["final_stage"] and loss <= target), None)
    return {
        "size": plain["size"],
        "iterations_per_stage": plain["iterations"],
        "target_loss": target,
        "plain_seconds": t_plain,
        "c2f_seconds_to_target": t_c2f,
        "c2f_final_loss": c2f["metrics"][-1][2],
        "c2f_seconds_total": c2f["metrics"][-1][3],
        "peak_mb_plain": plain["peak_mb"],
        "peak_mb_c2f": c2f["peak_mb"],
    }


def _fmt(v, spec=".3g"):
    return "—" if v is None else format(v, spec)


def markdown(results: dict) -> str:
    """README tables, one set per device the benchmark has been run on."""
    out = []
    for device, e in results.items():
        out.append(f"Machine: {e['machine']}, jax {e['jax']}.\n")
        if "eval" in e:
            out.append(
                "One loss + gradient evaluation, median of 7 with jtex's and PyTorch's calls alternated "
                "(this machine's speed drifts by tens of percent within minutes):\n"
            )
            out.append("| objective | size | jtex s/eval | PyTorch s/eval | jtex / PyTorch |\n|---|---|---|---|---|")
            for r in e["eval"]["rows"]:
                out.append(
                    f"| {r['model']} ({r['padding']}) | {r['size']}² | {_fmt(r['jtex_s'])} | "
                    f"{_fmt(r.get('torch_s'))} | {_fmt(r.get('ratio_jtex_over_torch'), '.2f')} |"
                )
            out.append("")
        if "iter" in e and e["iter"]["rows"] and "code" in e["iter"]["rows"][0]:
            out.append(
                "Seconds per L-BFGS iteration, Snelgrove's objective from the 512-wide brick, same run "
                "(Snelgrove's code: experiments/snelgrove_peer.py, TensorFlow 2.15 CPU):\n"
            )
            out.append(
                "| size | padding | code | s/iteration | evaluations/iteration | jtex / Snelgrove | "
                "jtex / PyTorch |\n|---|---|---|---|---|---|---|"
            )
            for r in e["iter"]["rows"]:
                out.append(
                    f"| {r['size']}² | {r['padding']} | {r['code']} | {_fmt(r['s_per_iter'])} | "
                    f"{_fmt(r['evals_per_iter'], '.2f')} | {_fmt(r.get('vs_snelgrove'), '.2f')} | "
                    f"{_fmt(r.get('vs_torch'), '.2f')} |"
                )
            out.append("")
        if "optim" in e and "rows" in e["optim"]:
            o = e["optim"]
            out.append(
                f"Snelgrove's objective, {o['size']}² from the 512-wide brick, 4 octaves, 'same' padding, "
                f"one start for all; target = the loss PyTorch's L-BFGS reaches in {o['peer_iterations']} "
                f"iterations ({_fmt(o['peer_loss'], '.3e')}); PyTorch ran before and after jtex's L-BFGS-B, its "
                "time is the mean of the two:\n"
            )
            out.append(
                "| optimiser | iterations run | final loss | s to target | iterations to target | "
                "time vs PyTorch |\n|---|---|---|---|---|---|"
            )
            for r in o["rows"]:
                out.append(
                    f"| {r['optimizer']} | {r['iterations']} | {_fmt(r['final_loss'], '.3e')} | "
                    f"{_fmt(r['seconds_to_peer_loss'], '.1f')} | {_fmt(r.get('iterations_to_peer_loss'))} | "
                    f"{_fmt(r['ratio_to_peer'], '.2f')} |"
                )
            out.append("")
        if "startup" in e:
            st = e["startup"]
            out.append(
                f"Start-up, `python run.py -s examples/brick.png -ow {st['size']} -oh {st['size']} -m 1` "
                "(start-up: command to the optimiser's start; the first iteration then traces the objective, "
                "loads it from the cache and takes L-BFGS-B two or more evaluations):\n\n"
                "| run | start-up s | first iteration done s | whole command s |\n|---|---|---|---|"
            )
            for r in st["rows"]:
                out.append(
                    f"| {r['run']} | {_fmt(r['startup_s'], '.1f')} | {_fmt(r.get('first_iteration_s'), '.1f')} | "
                    f"{_fmt(r['command_s'], '.1f')} |"
                )
            out.append("")
        if "batch" in e:
            b = e["batch"]
            out.append(
                f"Batch, {b['size']}², 10 iterations, whole call:\n\n| batch | seconds | per image | "
                "per image vs batch 1 |\n|---|---|---|---|"
            )
            for r in b["rows"]:
                out.append(
                    f"| {r['batch']} | {_fmt(r['seconds'], '.1f')} | {_fmt(r['per_image_s'], '.2f')} | "
                    f"{_fmt(r['per_image_vs_batch1'], '.2f')} |"
                )
            out.append("")
        if "c2f" in e:
            c = e["c2f"]
            out.append(
                f"Coarse-to-fine, Snelgrove default at {c['size']}², {c['iterations_per_stage']} iterations "
                f"per stage (compile included):\n\n| | seconds | to loss {_fmt(c['target_loss'], '.3e')} | "
                "peak memory |\n|---|---|---|---|"
            )
            out.append(
                f"| plain | {_fmt(c['plain_seconds'], '.0f')} | {_fmt(c['plain_seconds'], '.0f')} | "
                f"{_fmt(c['peak_mb_plain'] / 1024, '.1f')} GiB |"
            )
            out.append(
                f"| coarse-to-fine | {_fmt(c['c2f_seconds_total'], '.0f')} | "
                f"{_fmt(c['c2f_seconds_to_target'], '.0f')} | {_fmt(c['peak_mb_c2f'] / 1024, '.1f')} GiB |"
            )
            out.append("")
    return "\n".join(out)


PARTS = {
    "eval": part_eval,
    "iter": part_iter,
    "optim": part_optim,
    "startup": part_startup,
    "batch": part_batch,
    "c2f": part_c2f,
    "c2f_plain": lambda q: part_c2f_one(q, False),
    "c2f_c2f": lambda q: part_c2f_one(q, True),
}


def _sub(part, quick):
    cmd = [sys.executable, __file__, "--child", part] + (["--quick"] if quick else [])
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode:
        raise SystemExit(f"part {part} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _table(title, rows, cols):
    print(f"\n{title}")
    print(" | ".join(f"{c:>14s}" for c in cols))
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c)
            cells.append(f"{v:14.4g}" if isinstance(v, float) else f"{str(v):>14s}")
        print(" | ".join(cells))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--parts",
        nargs="+",
        default=["eval", "iter", "optim", "startup", "batch", "c2f"],
        help="eval iter optim startup batch c2f",
    )
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--markdown", action="store_true", help="print the README tables from the results file")
    args = ap.parse_args()
    if not args.child and not args.markdown:
        from jtex import runtime

        runtime.restart_with_hugepages()  # as the jtex command does; every part (and a peer) inherits it
    if args.markdown:
        print(markdown(json.loads(RESULTS.read_text())))
        return
    if args.child:
        if args.child.startswith("eval:"):
            _, name, size = args.child.split(":")
            print(json.dumps(_eval_one(name, int(size))))
        else:
            print(json.dumps(PARTS[args.child](args.quick)))
        return
    import jax

    dev = jax.devices()[0]
    device = f"{dev.platform}: {dev.device_kind}"
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    entry = results.get(device, {})
    entry["machine"] = f"{device}, {__import__('os').cpu_count()} CPU cores" + (" (quick)" if args.quick else "")
    entry["jax"] = jax.__version__
    for part in args.parts:
        t = time.perf_counter()
        entry[part] = PARTS[part](args.quick) if part == "c2f" else _sub(part, args.quick)
        print(f"[{part}: {time.perf_counter() - t:.0f} s]", flush=True)
        results[device] = entry
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    e = entry
    if "eval" in e:
        _table(
            "one loss+gradient evaluation (s)",
            e["eval"]["rows"],
            ["model", "size", "padding", "jtex_s", "torch_s", "ratio_jtex_over_torch"],
        )
    if "iter" in e:
        _table(
            "seconds per iteration", e["iter"]["rows"], ["model", "size", "optimizer", "s_per_iter", "evals_per_iter"]
        )
    if "optim" in e and "rows" in e["optim"]:
        _table(
            f"time to PyTorch's {e['optim']['peer_iterations']}-iteration loss {e['optim']['peer_loss']:.4g} "
            f"({e['optim']['size']}^2, Snelgrove, 'same')",
            e["optim"]["rows"],
            ["optimizer", "iterations", "final_loss", "seconds_to_peer_loss", "ratio_to_peer"],
        )
    if "startup" in e:
        _table("start-up (s)", e["startup"]["rows"], ["run", "startup_s", "first_iteration_s", "command_s"])
    if "batch" in e:
        _table("batch", e["batch"]["rows"], ["batch", "seconds", "per_image_s", "per_image_vs_batch1"])
    if "c2f" in e:
        _table(
            "coarse-to-fine",
            [e["c2f"]],
            ["size", "target_loss", "plain_seconds", "c2f_seconds_to_target", "peak_mb_plain", "peak_mb_c2f"],
        )
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
