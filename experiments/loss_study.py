"""Which statistic to match: Gram, mean+covariance, EMD, histogram or sliced Wasserstein; one sweep per exemplar.

    python experiments/loss_study.py                      # bundled exemplars, ~4 min each on 2 cores
    python experiments/loss_study.py --exemplars a.png --size 128 --iters 200
    python experiments/loss_study.py --markdown           # reprint the table of the results file

Seed 004's Q4 (EMD against Gram, and its colour) with jtex's other statistics beside it: Snelgrove's
objective (4 octaves, pool1 + relu3_2, 'same' padding) at SIZE² from the exemplar resized to SIZE wide, each
statistic alone with weight 1, ITERS iterations of device L-BFGS, all five in one compiled program
(`jtex sweep --grid 'loss=gram;meancov;emd;hist;swd'`). Scored by jtex.metrics (ImageNet VGG-16: another network
than the one optimised); the table gives each statistic's numbers over Gram's (below 1: closer to the exemplar).
Writes experiments/results/loss_study.json and runs/loss_study/<exemplar>/ (sheet.png, sweep.csv, point folders).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import results_file  # noqa: E402

import jtex  # noqa: E402

RESULTS = ROOT / "experiments" / "results" / "loss_study.json"
RUNS = ROOT / "runs" / "loss_study"
BUNDLED = ["examples/brick.png", "examples/gravel.png", "examples/grass.png", "examples/hubble_deep_field.jpg"]
LOSSES = ["gram", "meancov", "emd", "hist", "swd"]
KEYS = ("swd_s1", "swd_s2", "swd_s4", "spectrum", "colour", "gram")


def markdown(res: dict) -> str:
    out = [
        f"Machine: {res['machine']}, jax {res['jax']}; {res['size']}², {res['iters']} iterations of device L-BFGS.",
        "",
        "| exemplar | statistic | " + " | ".join(KEYS) + " |",
        "|---|---|" + "---|" * len(KEYS),
    ]
    for stem, e in res["exemplars"].items():
        for name, r in e["over_gram"].items():
            out.append(f"| {stem} | {name} / gram | " + " | ".join(f"{r[k]:.2f}" for k in KEYS) + " |")
    return "\n".join(out)


def main():
    started = results_file.study(RESULTS, markdown, BUNDLED)
    if started is None:
        return
    args, res = started
    for path in args.exemplars:
        rows = jtex.sweep(path, {"loss": LOSSES}, RUNS / Path(path).stem, output_width=args.size,
                          output_height=args.size, source_width=args.size, padding="same", max_iter=args.iters,
                          tol=0.0, save_every=0, progress=False)  # fmt: skip
        by = {LOSSES[i]: r for i, r in enumerate(rows)}
        res["exemplars"][Path(path).stem] = {
            "rows": {k: {m: v[m] for m in KEYS} | {"final_loss": v["final_loss"]} for k, v in by.items()},
            "over_gram": {k: {m: v[m] / by["gram"][m] for m in KEYS} for k, v in by.items() if k != "gram"},
            "seconds": rows[0]["seconds"],
        }
        RESULTS.write_text(json.dumps(res, indent=2))
        print(f"[{path}: {rows[0]['seconds']:.0f} s]", flush=True)
    print(markdown(res))


if __name__ == "__main__":
    main()
