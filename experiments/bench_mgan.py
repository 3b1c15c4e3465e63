"""Benchmark of the Markovian GANs: MGAN generation speed and memory, training step times of the presets.

    python experiments/bench_mgan.py                         # generate + train parts, the authors' decoder
    python experiments/bench_mgan.py --model runs/gravel-mgan --parts generate
    python experiments/bench_mgan.py --markdown              # README tables from the results file

Parts (each size in its own process, so its peak memory is its own):
  generate  seconds for one texture from noise at 256², 512², 1024² with a wct model (a noise model's default),
            median of 5 after the first call, and the first call's seconds, for three noises: ``swap`` (the
            default: a relu4_1 spot-noise field, its windows swapped twice for the exemplar's, decoder,
            colour histogram), ``spot`` (the same without the swaps) and ``perlin`` (numpy's Perlin
            image through the encoder to relu4_1, whitening and colouring, decoder, colour histogram; the
            noise's drawing included, as a user sees it). The paper: 512² in 40 ms on a Titan X.
  train     seconds per decoder step of the quick and paper presets with each method (steps 2..6, real
            VGG-19), one MDAN teacher step at the teacher size (method mdan), and each training's time
Writes experiments/results/bench_mgan.json, one entry per device kind.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "experiments"))

from bench_synth import peak_mb  # noqa: E402

RESULTS = ROOT / "experiments" / "results" / "bench_mgan.json"
GRAVEL = str(ROOT / "examples" / "gravel.png")
SIZES = (256, 512, 1024)
NOISES = ("swap", "spot", "perlin")


def _untrained():
    """A wct model with the authors' decoder's fresh weights (the speed does not depend on them)."""
    import jax
    import jax.numpy as jnp

    from jtex import decoders, mdan, mgan, weights

    cfg = mgan.MGANConfig(source=GRAVEL).validate()
    vgg_params, _ = weights.resolve(cfg.weights)
    vgg_params = jax.tree.map(jnp.asarray, vgg_params)
    v = decoders.Decoder().init(jax.random.key(0), jnp.zeros((1, 16, 16, 512)))
    return mgan.wct_model(cfg, v, vgg_params, mdan.load_style(cfg.teacher(0)))


def generate_one(size: int, noise: str, model_dir: str | None) -> dict:
    import jax

    from jtex import mgan

    model = mgan.load(model_dir) if model_dir else _untrained()
    t = time.perf_counter()
    mgan.generate(model, jax.random.key(0), (1, size, size), noise=noise)
    first = time.perf_counter() - t
    times = []
    for i in range(5):
        t = time.perf_counter()
        mgan.generate(model, jax.random.key(i + 1), (1, size, size), noise=noise)
        times.append(time.perf_counter() - t)
    return {"size": size, "noise": noise, "first_call_s": first, "generate_s": statistics.median(times),
            "peak_mb": peak_mb()}  # fmt: skip


def _timed(fn, state, key, n=5):
    import jax

    t = time.perf_counter()
    state, m = fn(state, key)
    jax.block_until_ready(m)
    first, times = time.perf_counter() - t, []
    for i in range(n):
        t = time.perf_counter()
        state, m = fn(state, jax.random.fold_in(key, i))
        jax.block_until_ready(m)
        times.append(time.perf_counter() - t)
    return first, statistics.median(times)


def train_one(preset: str, method: str) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jtex import mdan, mgan, weights

    vgg_params, _ = weights.resolve(weights.DEFAULT)
    vgg_params = jax.tree.map(jnp.asarray, vgg_params)
    cfg = mgan.MGANConfig.preset(preset, source=GRAVEL, method=method).validate()
    style = mdan.load_style(cfg.teacher(0))
    inputs = mgan.teacher_inputs(cfg)[:2]
    t_first = t_s = 0.0
    if method == "mdan":  # one MDAN teacher step at the teacher size
        tcfg = cfg.teacher(0)
        t_state = mdan.init_state(tcfg, style, mdan.load_content(tcfg, inputs[0]), 256)
        t_step = mdan._prepare(tcfg, vgg_params, style, mdan.load_content(tcfg, inputs[0]), 256)
        t_first, t_s = _timed(t_step, t_state, jax.random.key(0), 3)
    # decoder steps (the targets' values do not change the time)
    step = mgan.make_step(mgan._step_settings(cfg), 256)
    x = jnp.asarray(inputs)
    state = mgan.init_state(cfg, 512, 256)
    g_first, g_s = _timed(lambda s, k: step(s, k, vgg_params, x, x), state, jax.random.key(1))
    teachers = cfg.teachers if method == "mdan" else 0
    minutes = (teachers * cfg.teacher_steps * t_s + cfg.steps * g_s) / 60
    return {
        "preset": preset, "method": method, "size": cfg.size, "teacher_size": cfg.teacher_size, "teachers": teachers,
        "teacher_steps": cfg.teacher_steps, "batch": cfg.batch, "steps": cfg.steps,
        "teacher_s_per_step": t_s, "teacher_first_step_s": t_first, "s_per_step": g_s, "first_step_s": g_first,
        "train_minutes": minutes, "peak_mb": peak_mb(), "decoder_parameters": int(
            sum(np.size(a) for a in jax.tree.leaves(state.g_params))),
    }  # fmt: skip


def _sub(part: str, args) -> dict:
    cmd = [sys.executable, __file__, "--child", part] + (["--model", args.model] if args.model else [])
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode:
        raise SystemExit(f"part {part} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


PARTS = {
    "generate": lambda args: {
        "model": args.model or "untrained",
        "rows": [_sub(f"gen:{s}:{n}", args) for n in NOISES for s in SIZES],
    },  # fmt: skip
    "train": lambda args: {"rows": [_sub(f"train:{p}:{m}", args) for p in ("quick", "paper") for m in ("wct", "mdan")]},
}


def markdown(results: dict) -> str:
    out = []
    for e in results.values():
        out.append(f"Machine: {e['machine']}, jax {e['jax']}.\n")
        if "generate" in e:
            out.append(
                "| noise | generate size | first call s (compiles) | s per texture | peak MB |\n|---|---|---|---|---|"
            )
            for r in e["generate"]["rows"]:
                noise = r.get("noise", "brown")  # entries from before spot noise timed the model's first kind
                out.append(f"| {noise} | {r['size']}² | {r['first_call_s']:.2f} | {r['generate_s']:.3f} | "
                           f"{r['peak_mb']:.0f} |")  # fmt: skip
            out.append("")
        if "train" in e:
            out.append(
                "| preset | method | teachers | MDAN s per step | crops | batch | decoder steps | s per step | "
                "train minutes |\n|---|---|---|---|---|---|---|---|---|"
            )
            for r in e["train"]["rows"]:
                method = r.get("method", "mdan")  # entries from before wct were all mdan
                teachers = (
                    f"{r['teachers']} × {r['teacher_size']}², {r['teacher_steps']} steps" if r["teachers"] else "-"
                )
                mdan_s = f"{r['teacher_s_per_step']:.2f}" if r["teachers"] else "-"
                out.append(
                    f"| {r['preset']} | {method} | {teachers} | {mdan_s} | {r['size']}² | {r['batch']} | {r['steps']} "
                    f"| {r['s_per_step']:.2f} | {r['train_minutes']:.0f} |"
                )
            out.append("")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", nargs="+", default=list(PARTS), choices=tuple(PARTS))
    ap.add_argument("--model", default=None, help="a trained run folder to time instead of an untrained decoder")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    if args.markdown:
        print(markdown(json.loads(RESULTS.read_text())))
        return
    if args.child:
        kind, *arg = args.child.split(":")
        print(json.dumps(generate_one(int(arg[0]), arg[1], args.model) if kind == "gen" else train_one(*arg)))
        return
    import jax

    dev = jax.devices()[0]
    device = f"{dev.platform}: {dev.device_kind}"
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    entry = results.get(device, {})
    entry.update(machine=f"{device}, {os.cpu_count()} CPU cores", jax=jax.__version__)
    for part in args.parts:
        t = time.perf_counter()
        entry[part] = PARTS[part](args)
        print(f"[{part}: {time.perf_counter() - t:.0f} s]", flush=True)
        results[device] = entry
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=2))
    print(markdown(results))


if __name__ == "__main__":
    main()
