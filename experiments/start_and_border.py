"""How the start image and the margin shape fine grain and borders.

    python experiments/start_and_border.py            # about 30 min on 2 CPU cores
    python experiments/start_and_border.py --quick    # a smoke run
    python experiments/start_and_border.py --padding valid --size 320 --margins 0 8 16 24 \
        --exemplars brick.png hubble_deep_field.jpg /path/to/held_out.png    # the margin under 'valid' padding

For every bundled exemplar (resized to SIZE wide) and each setting (start-noise
amplitude ``init_scale``, ``margin``; with ``--margins``, sigma 0.01 and those
margins), a SIZE x SIZE multi-scale synthesis (4 octaves, ``--padding``, 'same'
by default, L-BFGS-B) and three numbers of its output: the final loss,
the finest frequency band's share of power relative to the exemplar's
(``fine_ratio``, 1 is ideal; see :mod:`jtex.metrics`), the mean absolute log2
ratio over five octave bands (``spectrum_distance``), and the outer 4-pixel
ring's standard deviation over the interior's (``border``, 1 is ideal).
Writes experiments/results/start_and_border.json (start_and_border_valid.json
with ``--padding valid``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "experiments" / "results" / "start_and_border.json"
EXEMPLARS = ["brick.png", "gravel.png", "grass.png", "hubble_deep_field.jpg"]
SETTINGS = [  # (label, init_scale, margin)
    ("v1 default: sigma 0.1, no margin", 0.1, 0),
    ("sigma 0.01, no margin", 0.01, 0),
    ("sigma 0.01, margin 8", 0.01, 8),
    ("sigma 0.003, margin 8", 0.003, 8),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--padding", default="same")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--iters", type=int, default=150)
    ap.add_argument("--margins", type=int, nargs="+", help="instead of the settings above: sigma 0.01, these margins")
    ap.add_argument(
        "--exemplars",
        nargs="+",
        default=EXEMPLARS,
        help="a subset; rows of others already in the results file are kept",
    )
    args = ap.parse_args()
    import jtex
    from jtex import image, metrics

    size, iters = (128, 10) if args.quick else (args.size, args.iters)
    settings = [(f"sigma 0.01, margin {m}", 0.01, m) for m in args.margins] if args.margins else SETTINGS
    results = RESULTS.with_name(f"start_and_border_{args.padding}.json") if args.padding != "same" else RESULTS
    rows = []
    for name in args.exemplars:
        src = image.load(ROOT / "examples" / name, width=size)  # an absolute path: a held-out exemplar
        for label, scale, margin in settings:
            t = time.perf_counter()
            out = jtex.synthesize(
                src,
                output_width=size,
                output_height=size,
                padding=args.padding,
                max_iter=iters,
                init_scale=scale,
                margin=margin,
                seed=0,
                progress=False,
                octaves=3 if args.quick else 4,
            )
            spec = metrics.spectrum_report(src, out[0])
            row = {
                "exemplar": name,
                "setting": label,
                "init_scale": scale,
                "margin": margin,
                "fine_ratio": spec["fine_ratio"],
                "spectrum_distance": spec["distance"],
                "border": round(metrics.ring_contrast(out[0]), 3),
                "seconds": round(time.perf_counter() - t, 1),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
            image.save(ROOT / "runs" / "start_and_border" / f"{Path(name).stem}_{scale}_{margin}.png", out[0])
    if not args.quick:
        if results.is_file():  # keep the other exemplars' rows
            kept = [r for r in json.loads(results.read_text())["rows"] if r["exemplar"] not in args.exemplars]
            rank = {n: i for i, n in enumerate([*EXEMPLARS, *args.exemplars])}.get
            rows = sorted(
                kept + rows,
                key=lambda r: (rank(r["exemplar"], 99), r["init_scale"] < 0.1, r["margin"], -r["init_scale"]),
            )
        results.parent.mkdir(parents=True, exist_ok=True)
        results.write_text(
            json.dumps({"size": size, "iters": iters, "padding": args.padding, "rows": rows}, indent=1) + "\n"
        )
    print("\n| exemplar | setting | fine-band ratio | spectrum distance | border/interior |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['exemplar']} | {r['setting']} | {r['fine_ratio']:.2f} | {r['spectrum_distance']:.3f} | "
            f"{r['border']:.2f} |"
        )


if __name__ == "__main__":
    main()
