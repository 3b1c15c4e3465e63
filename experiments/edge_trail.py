"""The trailing margin: do the bottom and right edges look like the top and left ones?

    python experiments/edge_trail.py /path/to/held_out.png     # about 15 min on 2 CPU cores

Snelgrove's 'valid' objective sees the end of an axis later than its start: a
stride-2 op (pyramid REDUCE, 2x2 pooling) of an axis of the wrong parity leaves
its last pixel out, and at 4 octaves the coarse octaves' own edges end up to
~30 px inside the canvas' bottom and right edges (`jtex.sizes.edge_lag`).
Hubble outputs grew a row of faint dots there. jtex now adds a trailing margin
below and to the right (`jtex.synth.frame`); this script synthesises each
exemplar with it and without it ('without' replaces `synth.frame` by the
16 px margin alone), for a few seeds, and compares the sides.

The number per side: the mean luminance of each 4-px strip within 32 px of
that edge minus the interior's mean, in interior standard deviations,
averaged over seeds (a texture that is the same up to its edges: about 0
everywhere). The summary, the asymmetry the dots made: the mean over the
outer 16 px of the bottom and right sides minus that of the top and left
sides. Writes experiments/results/edge_trail.json; ``--table`` prints its
table again.
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
RESULTS = ROOT / "experiments" / "results" / "edge_trail.json"
DEPTH, BAND = 32, 4


def side_profiles(img: np.ndarray) -> dict:
    """{side: [strip mean - interior mean, in interior std, for each BAND-px strip within DEPTH px]}."""
    y = np.asarray(img, np.float64).mean(-1)
    inner = y[DEPTH:-DEPTH, DEPTH:-DEPTH]
    mu, sd = inner.mean(), max(inner.std(), 1e-12)
    sides = {"top": y, "bottom": y[::-1], "left": y.T, "right": y.T[::-1]}
    return {k: [(v[i : i + BAND].mean() - mu) / sd for i in range(0, DEPTH, BAND)] for k, v in sides.items()}


def asymmetry(profiles: dict) -> float:
    """Mean of the bottom and right sides' outer 16 px minus the top and left sides' (profile units)."""
    outer = 16 // BAND
    late = np.mean([profiles["bottom"][:outer], profiles["right"][:outer]])
    early = np.mean([profiles["top"][:outer], profiles["left"][:outer]])
    return round(float(late - early), 3)


def table(rows: list) -> None:
    print("\n| exemplar | padding | trailing margin | bottom/right minus top/left, outer 16 px | s per run |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['exemplar']} | {r['padding']} | {'yes' if r['trail'] else 'no'} | {r['asymmetry']:+.3f} | "
              f"{r['seconds_per_run']} |")  # fmt: skip


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("held_out", nargs="*", help="exemplars kept outside the repository")
    ap.add_argument("--size", type=int, default=288)
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--padding", nargs="+", default=["valid"])
    ap.add_argument("--table", action="store_true", help="print the results file's table and stop")
    args = ap.parse_args()
    if args.table:
        return table(json.loads(RESULTS.read_text())["rows"])
    from jtex import image, synth
    from jtex.config import SynthConfig

    frame = synth.frame
    exemplars = [ROOT / "examples" / "hubble_deep_field.jpg", *map(Path, args.held_out)]
    rows = []
    for path in exemplars:
        src = image.load(path, width=512)
        for padding in args.padding:
            for trail in (False, True):
                synth.frame = frame if trail else (lambda cfg, arch="vgg19": (synth.default_margin(cfg), (0, 0)))
                profiles, t = [], time.perf_counter()
                for seed in range(args.seeds):
                    cfg = SynthConfig(arrays=(src,), output_width=args.size, output_height=args.size,
                                      max_iter=args.iters, padding=padding, seed=seed)  # fmt: skip
                    out = synth.run(cfg, progress=False).images[0]
                    profiles.append(side_profiles(out))
                    image.save(ROOT / "runs" / "edge_trail" / f"{path.stem}_{padding}_{trail}_{seed}.png", out)
                mean = {k: np.mean([p[k] for p in profiles], 0) for k in profiles[0]}
                row = {
                    "exemplar": path.name,
                    "padding": padding,
                    "trail": trail,
                    "asymmetry": asymmetry(mean),
                    "profiles": {k: [round(float(a), 3) for a in v] for k, v in mean.items()},
                    "seconds_per_run": round((time.perf_counter() - t) / args.seeds, 1),
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    synth.frame = frame
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"size": args.size, "iters": args.iters, "seeds": args.seeds, "rows": rows},
                                  indent=1) + "\n")  # fmt: skip
    table(rows)


if __name__ == "__main__":
    main()
