"""Benchmark of Texture Networks: sampling speed and memory, training time, quality against optimisation.

    python experiments/bench_texnet.py                          # sample + train parts
    python experiments/bench_texnet.py --parts quality --model runs/brick-texnet --source examples/brick.png
    python experiments/bench_texnet.py --markdown               # README tables from the results file

Parts (each in its own process, so its peak memory is its own):
  sample   seconds for one sample at 256, 512, 1024 (after compilation, median of
           5) and the first call's seconds; the paper's generator (6 scales, batch
           norm, inference mode); the weights do not change the time
  speedup  optimisation-based synthesis at 512² with jtex's defaults (Snelgrove's
           objective, L-BFGS-B, 500 iterations: seconds per iteration measured over
           iterations 2..6, times 500) over the 512² sample time
  train    seconds per training step of the quick and paper presets (steps 2..6,
           real VGG-19), and the time to train each preset at that rate
  quality  with --model DIR (trained by jtex train-texnet) and --source: four
           256² samples against jtex's optimisation-based synthesis of the same size
           (defaults but 'same' padding, 200 L-BFGS-B iterations, 2 images), scored by the sliced
           Wasserstein distance of VGG-16 features (a network the generator was
           not trained against) at relu1_2, relu2_2, relu3_3 and relu4_3, the
           finest-band spectrum ratio, and the wrap-around seam
Writes experiments/results/bench_texnet.json, one entry per device kind.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "experiments"))
from bench_synth import peak_mb  # noqa: E402

RESULTS = ROOT / "experiments" / "results" / "bench_texnet.json"
BRICK = str(ROOT / "examples" / "brick.png")
SIZES = (256, 512, 1024)


def _paper_generator():
    import jax

    from jtex import generators, texture_net

    cfg = texture_net.TexNetConfig(source=BRICK)
    z = generators.draw_noise(jax.random.key(0), 1, 32, 32, scales=cfg.scales, depth=cfg.noise_depth)
    return texture_net.TexNet(cfg, cfg.generator().init(jax.random.key(1), z))


def sample_one(size: int, model_dir: str | None):
    import jax

    from jtex import texture_net

    net = texture_net.load(model_dir) if model_dir else _paper_generator()
    t = time.perf_counter()
    texture_net.sample(net, jax.random.key(0), (1, size, size))
    first = time.perf_counter() - t
    times = []
    for i in range(5):
        t = time.perf_counter()
        texture_net.sample(net, jax.random.key(i + 1), (1, size, size))
        times.append(time.perf_counter() - t)
    return {"size": size, "first_call_s": first, "sample_s": statistics.median(times), "peak_mb": peak_mb()}


def part_sample(args):
    return {"rows": [_sub(f"sample:{s}", args) for s in SIZES]}


def part_speedup(args):
    import bench_synth

    from jtex.config import SynthConfig

    d = SynthConfig()
    model = dict(octaves=d.octaves, layers=d.layers, gram=d.gram, padding=d.padding)
    it = bench_synth._jtex_s_per_iter(512, model, 6)
    sample = _sub("sample:512", args)
    synth_s = it["s_per_iter"] * d.max_iter
    return {
        "size": 512,
        "optimisation_s_per_iter": it["s_per_iter"],
        "optimisation_iterations": d.max_iter,
        "optimisation_s": synth_s,
        "sample_s": sample["sample_s"],
        "speedup": synth_s / sample["sample_s"],
    }


def part_train(args):
    import jax

    from jtex import texture_net, weights

    vgg_params, _ = weights.resolve(weights.DEFAULT)
    rows = []
    for preset in ("quick", "paper"):
        cfg = texture_net.TexNetConfig.preset(preset, source=BRICK)
        ex = texture_net.load_exemplar(cfg)
        step, tx = texture_net.make_step(cfg, vgg_params, ex)
        state = texture_net.init_state(cfg, tx)
        key = jax.random.key(0)
        t = time.perf_counter()
        state, m = step(state, key)
        jax.block_until_ready(m)
        first = time.perf_counter() - t
        times = []
        for i in range(5):
            t = time.perf_counter()
            state, m = step(state, jax.random.fold_in(key, i))
            jax.block_until_ready(m)
            times.append(time.perf_counter() - t)
        s = statistics.median(times)
        rows.append(
            {
                "preset": preset,
                "size": cfg.size,
                "batch": cfg.batch,
                "steps": cfg.steps,
                "first_step_s": first,
                "s_per_step": s,
                "train_minutes": s * cfg.steps / 60,
                "peak_mb": peak_mb(),
            }
        )
    return {"rows": rows}


def _vgg16_swd(images: np.ndarray, exemplar: np.ndarray) -> dict:
    import jax

    from jtex import stats, vgg, weights

    params, _ = weights.resolve("vgg16")
    layers = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
    f = jax.jit(lambda x: vgg.features(params, x, layers))
    fe = f(exemplar[None])
    out = {}
    for name in layers:
        fx = f(images)[name]
        d = [float(stats.sliced_wasserstein(fx, fe[name], jax.random.key(k)).mean()) for k in range(4)]
        out[name] = float(np.mean(d))
    return out


def optimisation_baseline(source: str, ex: np.ndarray, work: str):
    """The quality part's optimisation settings for an exemplar, and where its images are kept in ``work``.

    The baseline depends on the exemplar and these settings only, so it is kept, keyed by both, and
    reused: it takes minutes, and a study of several models of one exemplar runs it once.
    """
    from jtex.config import SynthConfig

    cfg = SynthConfig(sources=(source,), output_width=256, output_height=256, padding="same", max_iter=200,
                      batch=2, save_every=0, source_width=ex.shape[1])  # fmt: skip
    digest = hashlib.sha256(ex.tobytes() + repr(cfg).encode()).hexdigest()[:16]
    return cfg, Path(work) / f"optimisation-{digest}.npz"


def part_quality(args):
    import jax

    from jtex import metrics, synth, texture_net

    if not args.model:
        return {"skipped": "needs --model DIR (jtex train-texnet) and --source"}
    net = texture_net.load(args.model)
    ex = texture_net.load_exemplar(dataclasses.replace(net.config, source=args.source))
    samples = texture_net.sample(net, jax.random.key(123), (4, 256, 256))
    cfg, cached = optimisation_baseline(args.source, ex, args.work)
    if cached.exists():
        with np.load(cached) as z:
            opt_images, opt_s = z["images"], float(z["seconds"])
    else:
        t = time.perf_counter()
        res = synth.run(cfg, cached.with_suffix(""), progress=False, overwrite=True)  # own folder: studies run at once
        opt_images, opt_s = np.asarray(res.images, np.float32), time.perf_counter() - t
        cached.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cached, images=opt_images, seconds=opt_s)
    rows = []
    for name, imgs in (("texture network", samples), ("optimisation (jtex defaults, 'same', 200 it)", opt_images)):
        swd = _vgg16_swd(np.asarray(imgs, np.float32), ex)
        rows.append(
            {
                "method": name,
                "vgg16_swd": swd,
                "fine_ratio": float(np.mean([metrics.spectrum_report(ex, im)["fine_ratio"] for im in imgs])),
                "seam": float(np.mean([metrics.seam(im) for im in imgs])),
            }
        )
    ratio = {k: rows[0]["vgg16_swd"][k] / rows[1]["vgg16_swd"][k] for k in rows[0]["vgg16_swd"]}
    # jtex.metrics (its own VGG-16 SWD at image scales 1, 1/2, 1/4, spectrum, colour, Gram): mean over each
    # method's images, and the crop / noise baselines of that size.
    rep = metrics.report(ex, [*np.asarray(samples), *opt_images])
    keys = [k for k in rep[0] if k not in ("image", "baseline_crop", "baseline_noise")]
    split = {"texture network": rep[: len(samples)], "optimisation": rep[len(samples) :]}
    table = {m: {k: float(np.mean([r[k] for r in rs])) for k in keys} for m, rs in split.items()}
    table["baseline: crop"], table["baseline: noise"] = rep[0]["baseline_crop"], rep[0]["baseline_noise"]
    out = {"model": args.model, "source": args.source, "rows": rows, "swd_ratio": ratio, "optimisation_s": opt_s}
    out["steps"] = net.config.steps
    return out | {
        "metrics": table,
        "metrics_ratio": {k: table["texture network"][k] / table["optimisation"][k] for k in keys},
    }


PARTS = {"sample": part_sample, "speedup": part_speedup, "train": part_train, "quality": part_quality}


def _sub(part, args):
    cmd = [sys.executable, __file__, "--child", part]
    if args.model:
        cmd += ["--model", args.model]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode:
        raise SystemExit(f"part {part} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def markdown(results: dict) -> str:
    out = []
    for device, e in results.items():
        out.append(f"Machine: {e['machine']}, jax {e['jax']}.\n")
        if "sample" in e:
            out.append("| sample size | first call s (compiles) | s per sample | peak MB |\n|---|---|---|---|")
            for r in e["sample"]["rows"]:
                out.append(f"| {r['size']}² | {r['first_call_s']:.2f} | {r['sample_s']:.3f} | {r['peak_mb']:.0f} |")
            out.append("")
        if "speedup" in e:
            s = e["speedup"]
            out.append(
                f"512²: optimisation with jtex's defaults {s['optimisation_s']:.0f} s ({s['optimisation_iterations']} "
                f"iterations × {s['optimisation_s_per_iter']:.2f} s) against one sample in {s['sample_s']:.3f} s: "
                f"**{s['speedup']:.0f}× faster**.\n"
            )
        if "train" in e:
            out.append("| preset | size | batch | steps | s per step | training minutes |\n|---|---|---|---|---|---|")
            for r in e["train"]["rows"]:
                out.append(
                    f"| {r['preset']} | {r['size']}² | {r['batch']} | {r['steps']} | {r['s_per_step']:.2f} | "
                    f"{r['train_minutes']:.0f} |"
                )
            out.append("")
        quality = e.get("quality", {})
        for stem, q in ({quality["source"]: quality} if "rows" in quality else quality).items():
            layers = list(q["rows"][0]["vgg16_swd"])
            steps = f", {q['steps']} training steps" if q.get("steps") else ""
            out.append(f"Quality, {stem} ({q['model']}{steps}), per-layer VGG-16 SWD at 256²:\n")
            out.append("| method | " + " | ".join(f"SWD {k}" for k in layers) + " | fine-band ratio | seam |")
            out.append("|---" * (len(layers) + 3) + "|")
            for r in q["rows"]:
                cells = " | ".join(f"{r['vgg16_swd'][k]:.3g}" for k in layers)
                out.append(f"| {r['method']} | {cells} | {r['fine_ratio']:.2f} | {r['seam']:.2f} |")
            out.append("")
            if "metrics" in q:
                keys = list(q["metrics_ratio"])
                out.append(f"`jtex.metrics` for {stem}, mean over each method's images:\n")
                out.append("| | " + " | ".join(keys) + " |\n" + "|---" * (len(keys) + 1) + "|")
                for name, row in q["metrics"].items():
                    out.append(f"| {name} | " + " | ".join(f"{row[k]:.3g}" for k in keys) + " |")
                ratio = q["metrics_ratio"]
                out.append("| texture network / optimisation | " + " | ".join(f"{ratio[k]:.2f}" for k in keys) + " |")
                out.append("")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", nargs="+", default=["sample", "speedup", "train"], choices=tuple(PARTS))
    ap.add_argument("--model", default=None, help="a trained run folder (sample timing and quality)")
    ap.add_argument("--source", default=BRICK, help="the exemplar the --model was trained on")
    ap.add_argument("--name", default=None, help="the quality part's entry (default: the source's stem)")
    ap.add_argument("--work", default="/tmp/jtex-bench-texnet", help="scratch folder for the quality part")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    if args.markdown:
        print(markdown(json.loads(RESULTS.read_text())))
        return
    if args.child:
        if args.child.startswith("sample:"):
            print(json.dumps(sample_one(int(args.child.split(":")[1]), args.model)))
        return
    import jax

    import jtex  # noqa: F401  (sets jtex's XLA:CPU flag, read when the backend starts: before jax.devices())

    dev = jax.devices()[0]
    device = f"{dev.platform}: {dev.device_kind}"
    for part in args.parts:
        t = time.perf_counter()
        value = PARTS[part](args)
        # read the file again after the part's minutes: another study may have written an entry meanwhile
        results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
        entry = results.get(device, {})
        entry["machine"] = f"{device}, {__import__('os').cpu_count()} CPU cores"
        entry["jax"] = jax.__version__
        if part == "quality":  # one entry per exemplar
            q = entry.get("quality", {})
            q = {Path(q["source"]).stem: q} if "rows" in q else q
            entry["quality"] = q | {args.name or Path(args.source).stem: value}
        else:
            entry[part] = value
        print(f"[{part}: {time.perf_counter() - t:.0f} s]", flush=True)
        results[device] = entry
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(markdown({device: entry}))


if __name__ == "__main__":
    main()
