"""Texture quality of jtex's defaults against PyTorch's L-BFGS on the same objective, by jtex.metrics.

    python experiments/quality_vs_torch.py                       # bundled exemplars, ~4 min each on 2 cores
    python experiments/quality_vs_torch.py --exemplars a.png b.jpg --size 256 --iters 150
    python experiments/quality_vs_torch.py --seeds 0 1 --margins 0   # seed spread; jtex without its margin too
    python experiments/quality_vs_torch.py --padding valid --size 320 # Snelgrove's (and jtex's) default padding

Both optimise Snelgrove's objective (4 octaves, pool1 + relu3_2, Gram/(MN), 'same' padding unless
--padding) at SIZE² from the exemplar resized to SIZE wide, for ITERS iterations: jtex with its defaults
(L-BFGS-B, start noise sigma 0.01, 8 px margin, 16 with 'valid'), PyTorch's torch.optim.LBFGS (strong Wolfe,
history 10) from jtex's margin-free start. Each output is scored with jtex.metrics (ImageNet VGG-16 SWD at
image scales 1, 1/2, 1/4, spectrum, colour, Gram; lower is better) beside the crop and noise baselines.
``--margins M ...`` adds rows for jtex with those margins; ``--seeds`` repeats everything per seed (entries
``stem@seedN``); ``--padding valid`` (entries ``stem@valid``) runs both with 'valid' convolutions, which need
SIZE >= 277.
Needs torch (pip install torch==2.13.0).
Writes experiments/results/quality_vs_torch.json and the outputs under runs/quality_vs_torch/.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "experiments"))

import results_file  # noqa: E402
from bench_synth import SNELGROVE, _torch_lbfgs  # noqa: E402

from jtex import image, metrics, synth  # noqa: E402
from jtex.config import SynthConfig  # noqa: E402

RESULTS = ROOT / "experiments" / "results" / "quality_vs_torch.json"
RUNS = ROOT / "runs" / "quality_vs_torch"
BUNDLED = ["examples/brick.png", "examples/gravel.png", "examples/grass.png", "examples/hubble_deep_field.jpg"]
KEYS = ("swd_s1", "swd_s2", "swd_s4", "spectrum", "colour", "gram")


def entry_name(path: str, seed: int, padding: str = "same") -> str:
    """The results entry (and runs/ folder) of one exemplar, seed and padding: ``stem[@valid][@seedN]``."""
    return Path(path).stem + (f"@{padding}" if padding != "same" else "") + (f"@seed{seed}" if seed else "")


def _over_pytorch(rows: dict, name: str) -> dict:
    return {k: rows[name][k] / rows["pytorch"][k] if rows["pytorch"][k] else None for k in KEYS}


def one(path: str, size: int, iters: int, seed: int, margins=(), padding: str = "same") -> dict:
    model = {**SNELGROVE, "padding": padding}
    cfg = SynthConfig(
        sources=(path,), output_width=size, output_height=size, source_width=size, max_iter=iters, tol=0.0,
        seed=seed, **model,
    )  # fmt: skip
    out = RUNS / entry_name(path, seed, padding)
    t = time.perf_counter()
    synth.run(cfg, out / "jtex", progress=False)
    jtex_s = time.perf_counter() - t
    mine = image.load(out / "jtex" / "output.png")
    extra = {}
    for m in margins:
        synth.run(cfg.replace(margin=m), out / f"jtex_margin{m}", progress=False)
        extra[f"jtex margin {m}"] = image.load(out / f"jtex_margin{m}" / "output.png")
    start = np.asarray(synth.build(cfg.replace(margin=0)).x0[0, 0])
    ex = image.load(path, width=size)
    peer = _torch_lbfgs(size, model, iters, start, source=ex, with_image=True)
    image.save(out / "torch.png", peer["image"])
    names = ["jtex", "pytorch", *extra]
    rep = metrics.report(ex, [mine, peer["image"], *extra.values()], names=names, key=seed)
    rows = {r["image"]: {k: r[k] for k in KEYS} for r in rep}
    rows["baseline: crop"] = {k: rep[0]["baseline_crop"][k] for k in KEYS}
    rows["baseline: noise"] = {k: rep[0]["baseline_noise"][k] for k in KEYS}
    settings = {"size": size, "iters": iters, "seed": seed, "padding": padding}
    return settings | {
        "rows": rows, "jtex_over_pytorch": _over_pytorch(rows, "jtex"),
        "ratios": {f"{n} / PyTorch": _over_pytorch(rows, n) for n in extra},
        "jtex_s": jtex_s, "pytorch_s": peer["seconds"],
    }  # fmt: skip


def markdown(res: dict) -> str:
    out = [
        f"Machine: {res['machine']}, jax {res['jax']}.\n",
        "| exemplar | method | " + " | ".join(KEYS) + " |",
        "|---" * (len(KEYS) + 2) + "|",
    ]
    for stem, e in res["exemplars"].items():
        for name, row in e["rows"].items():
            out.append(f"| {stem} | {name} | " + " | ".join(f"{row[k]:.3g}" for k in KEYS) + " |")
        for label, r in {"jtex / PyTorch": e["jtex_over_pytorch"], **e.get("ratios", {})}.items():
            out.append(f"| {stem} | {label} | " + " | ".join(f"{r[k]:.2f}" if r[k] else "-" for k in KEYS) + " |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--exemplars", nargs="+", default=BUNDLED)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--iters", type=int, default=150)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--margins", type=int, nargs="*", default=[], help="also run jtex with these margins")
    ap.add_argument("--padding", choices=("same", "valid"), default="same")
    ap.add_argument("--markdown", action="store_true", help="print the table of the results file and exit")
    args = ap.parse_args()
    res = results_file.start(RESULTS, markdown, args.markdown)
    if res is None:
        return
    for seed in args.seeds:
        for path in args.exemplars:
            t = time.perf_counter()
            name = entry_name(path, seed, args.padding)
            res["exemplars"][name] = one(path, args.size, args.iters, seed, args.margins, args.padding)
            RESULTS.write_text(json.dumps(res, indent=2))
            print(f"[{name}: {time.perf_counter() - t:.0f} s]", flush=True)
    print(markdown(res))


if __name__ == "__main__":
    main()
