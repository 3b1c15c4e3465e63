"""Seed 004's VGG-16 studies and Snelgrove's octave claim, each a jtex sweep, scored by jtex.metrics.

    python experiments/seed004_studies.py                       # brick and gravel, ~2.3 h on 2 cores (q4: ~35 min each)
    python experiments/seed004_studies.py --exemplars a.png --size 128 --iters 200 --studies q3 q5
    python experiments/seed004_studies.py --markdown            # reprint the tables of the results file

Seed 004 (a course exercise on Gatys with VGG-16) matched Grams (FᵀF/(HWC), summed squared differences:
jtex's `--gram snelgrove`) of all 13 VGG-16 conv layers (post-ReLU), single scale. Its questions here:

* q1 + q3: all 13 layers with weight 1, then each conv block ablated (weight 0), then weights rising
  (10..50 by block) and falling (50..10) with depth. Seed 004: dropping conv1 hurts most, rising weights win.
* q4: Gram against EMD (sorted per-channel activations) and jtex's sliced Wasserstein, all 13 layers; swd
  with one direction per channel (Heitz et al.'s count; jtex's default of 4 costs about twice as much).
  Seed 004: EMD kept structure and lost colour.
* q5: conv5 dropped, the other 10 layers weighted geometrically (q = 2, 2.5, 3, 3.5) or linearly
  (1, 1+d, ..., d = 1..128), each list scaled to mean 1 over the 13 layers so that only its shape differs.
  Seed 004: the steeper the rise, the better; geometric better than linear.
* octaves: Snelgrove's claim, his defaults (pool1 + relu3_2, 'valid', normalised VGG-19) on the exemplar at
  full resolution, synthesised at max(2·SIZE, 288)² with 1, 2 and 4 octaves: more octaves, larger structure.

Each study is one `jtex.sweep` (q1..q5: one compiled program; octaves changes shapes and loops). Outputs at
SIZE² from the exemplar resized to SIZE wide, ITERS iterations of device L-BFGS. Scored by jtex.metrics with a
network not optimised (normalised VGG-19 for the VGG-16 studies, ImageNet VGG-16 for the octaves); tables give
each point's numbers over the study's first point (below 1: closer to the exemplar), and the same ratio for
jtex.metrics' crop baseline (pieces of the exemplar itself: what copying it would score). Writes
experiments/results/seed004_studies.json, docs/seed004_<study>_<exemplar>.png (labelled sheets) and
runs/seed004/<exemplar>/<study>/ (the sweeps).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import results_file  # noqa: E402

import jtex  # noqa: E402
from jtex import figures, image  # noqa: E402

RESULTS = ROOT / "experiments" / "results" / "seed004_studies.json"
RUNS = ROOT / "runs" / "seed004"
DOCS = ROOT / "docs"
BUNDLED = ["examples/brick.png", "examples/gravel.png"]
KEYS = ("swd_s1", "swd_s2", "swd_s4", "spectrum", "colour", "gram")
BLOCKS = (2, 2, 3, 3, 3)  # conv layers per VGG-16 block
LAYERS16 = tuple(f"relu{b + 1}_{i + 1}" for b, n in enumerate(BLOCKS) for i in range(n))
STUDIES = ("q3", "q4", "q5", "octaves")


def per_block(values) -> list[float]:
    return [float(v) for v, n in zip(values, BLOCKS) for _ in range(n)]


def mean_one(ws) -> list[float]:
    return [round(13 * w / sum(ws), 6) for w in ws]


def points(study: str) -> list[tuple[str, object]]:
    """(label, value) of the swept key, the reference point first."""
    if study == "q3":
        out = [("all 13", per_block([1] * 5))]
        out += [(f"-conv{b + 1}", per_block([0 if i == b else 1 for i in range(5)])) for b in range(5)]
        return out + [("rising", per_block([10, 20, 30, 40, 50])), ("falling", per_block([50, 40, 30, 20, 10]))]
    if study == "q4":
        return [("gram", (("gram", 1.0),)), ("emd", (("emd", 1.0),)), ("swd", (("swd", 1.0),))]
    if study == "q5":
        geo = [(f"q={q:g}", mean_one([q**i for i in range(10)] + [0, 0, 0])) for q in (2, 2.5, 3, 3.5)]
        lin = [(f"d={d}", mean_one([1 + d * i for i in range(10)] + [0, 0, 0])) for d in (1, 2, 4, 8, 16, 32, 64, 128)]
        return [("uniform", mean_one([1] * 10 + [0, 0, 0]))] + geo + lin
    return [(f"{o} octave{'s' if o > 1 else ''}", o) for o in (4, 2, 1)]


def settings(study: str, size: int, iters: int) -> tuple[str, dict]:
    """The swept key and the sweep's fixed settings."""
    side = max(2 * size, 288)  # 4 octaves of relu3_2 with 'valid' padding need 277 px
    run = dict(max_iter=iters, tol=0.0, save_every=0, progress=False, seed=0)
    if study == "octaves":
        return "octaves", run | dict(output_width=side, output_height=side)
    vgg16 = dict(weights="vgg16", layers=LAYERS16, octaves=1, padding="same", gram="snelgrove", pooling="max")
    run |= vgg16 | dict(output_width=size, output_height=size, source_width=size)
    if study == "q4":  # Heitz et al.'s one direction per channel, as the committed table (jtex's default: 4)
        return "loss", run | dict(swd_projections=1)
    return "layer_weights", run


def row_names(study: str, path: str) -> list[str]:
    return ["geometric", "linear"] if study == "q5" else [Path(path).stem]


def ratio(r: dict, ref: dict) -> dict:
    return {m: r[m] / ref[m] if r[m] is not None and ref[m] else None for m in KEYS}


def cell(v) -> str:
    return "–" if v is None else f"{v:.2f}"


def markdown(res: dict) -> str:
    out = [f"Machine: {res['machine']}, jax {res['jax']}; {res['size']}² ({max(2 * res['size'], 288)}² for octaves), "
           f"{res['iters']} iterations of device L-BFGS; numbers over each study's first point."]  # fmt: skip
    for study in STUDIES:
        have = [(stem, e[study]) for stem, e in res["exemplars"].items() if study in e]
        if not have:
            continue
        out += [
            "",
            f"**{study}**",
            "",
            "| exemplar | point | " + " | ".join(KEYS) + " |",
            "|---|---|" + "---|" * len(KEYS),
        ]
        for stem, s in have:
            for label, r in list(s["over_first"].items()) + [("exemplar crop", s["crop_over_first"])]:
                out.append(f"| {stem} | {label} | " + " | ".join(cell(r[k]) for k in KEYS) + " |")
    return "\n".join(out)


def study(path: str, name: str, size: int, iters: int) -> dict:
    pts = points(name)
    key, fixed = settings(name, size, iters)
    out = RUNS / Path(path).stem / name
    rows = jtex.sweep(path, {key: [v for _, v in pts]}, out, **fixed)
    base = json.loads((out / "sweep.json").read_text())["baselines"][0]["baseline_crop"]
    ref = rows[0]
    labels = [lab for lab, _ in pts]
    imgs = [image.load(out / f"point_{i:03d}" / "output.png") for i in range(len(pts))]
    rows_of = [(0, 5), (5, len(imgs))] if name == "q5" else [(0, len(imgs))]  # q5: geometric, then linear
    parts = [
        figures.labelled_grid(imgs[a:b], rows=1, columns=b - a, row_labels=[row], column_labels=labels[a:b])
        for (a, b), row in zip(rows_of, row_names(name, path))
    ]
    width = max(p.shape[1] for p in parts)
    sheet = np.concatenate([np.pad(p, ((0, 0), (0, width - p.shape[1]), (0, 0)), constant_values=1.0) for p in parts])
    image.save(DOCS / f"seed004_{name}_{Path(path).stem}.png", sheet)
    return {
        "key": key,
        "points": {lab: {m: r[m] for m in KEYS} | {"final_loss": r["final_loss"]} for lab, r in zip(labels, rows)},
        "over_first": {lab: ratio(r, ref) for lab, r in zip(labels, rows)},
        "crop_over_first": ratio(base, ref),
        "seconds": sum({r["group"]: r["seconds"] for r in rows}.values()),
    }


def main():
    started = results_file.study(
        RESULTS, markdown, BUNDLED, lambda ap: ap.add_argument("--studies", nargs="+", default=list(STUDIES),
                                                               choices=STUDIES)
    )  # fmt: skip
    if started is None:
        return
    args, res = started
    for path in args.exemplars:
        for name in args.studies:
            r = study(path, name, args.size, args.iters)
            res["exemplars"].setdefault(Path(path).stem, {})[name] = r
            RESULTS.write_text(json.dumps(res, indent=2))
            print(f"[{path} {name}: {r['seconds']:.0f} s]", flush=True)
    print(markdown(res))


if __name__ == "__main__":
    main()
