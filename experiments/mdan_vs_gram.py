"""MDAN from noise against jtex's Gram synthesis at the same size, by jtex.metrics (issue: within 2x).

    python experiments/mdan_vs_gram.py                       # bundled exemplars, ~5 min each on 2 cores
    python experiments/mdan_vs_gram.py --exemplars a.png b.jpg --size 128 --steps 300 --seeds 0 1
    python experiments/mdan_vs_gram.py --markdown            # the table of the results file

Per exemplar (its longer side resized to EXEMPLAR px, as MDAN's ``exemplar_size``): MDAN with its defaults
(:class:`jtex.mdan.MDANConfig`, STEPS steps) and ``jtex synth`` with its defaults but 'same' padding (so
SIZE may be small), both SIZE². Each output is scored with jtex.metrics (ImageNet VGG-16 SWD at image scales
1, 1/2, 1/4, spectrum, colour; lower is better) against the resized exemplar, beside the crop baseline; the
table gives MDAN / Gram per metric (1.0: as good as the optimisation; the issue asks <= 2).
Writes experiments/results/mdan_vs_gram.json and the outputs under runs/mdan_vs_gram/.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import results_file  # noqa: E402

from jtex import mdan, metrics, synth  # noqa: E402
from jtex.config import SynthConfig  # noqa: E402
from jtex.mgan_config import MDANConfig  # noqa: E402

RESULTS = ROOT / "experiments" / "results" / "mdan_vs_gram.json"
RUNS = ROOT / "runs" / "mdan_vs_gram"
BUNDLED = ["examples/brick.png", "examples/gravel.png", "examples/grass.png", "examples/hubble_deep_field.jpg"]
KEYS = ("swd_s1", "swd_s2", "swd_s4", "spectrum", "colour")


def one(path: str, size: int, steps: int, exemplar: int, seed: int) -> dict:
    name = Path(path).stem + (f"@seed{seed}" if seed else "")
    cfg = MDANConfig(source=path, width=size, height=size, steps=steps, exemplar_size=exemplar, seed=seed)
    t = time.perf_counter()
    res = mdan.mdan(cfg, RUNS / name / "mdan", progress=False, overwrite=True)
    t_mdan = time.perf_counter() - t
    style = mdan.load_style(cfg)  # the exemplar both methods see
    scfg = SynthConfig(
        arrays=(style,), output_width=size, output_height=size, padding="same", seed=seed
    )  # everything else jtex's defaults
    t = time.perf_counter()
    gram = synth.run(scfg, RUNS / name / "gram", progress=False, overwrite=True)
    t_gram = time.perf_counter() - t
    gram_img = gram.images[0]
    rows = metrics.report(style, [res.image, gram_img], names=["mdan", "gram"])
    out = {r["image"]: {k: r[k] for k in KEYS} for r in rows}
    out["crop"] = {k: rows[0]["baseline_crop"][k] for k in KEYS}
    out["mdan_over_gram"] = {k: round(out["mdan"][k] / out["gram"][k], 3) for k in KEYS if out["gram"][k]}
    out.update(
        size=size, steps=steps, gram_iterations=scfg.max_iter, seed=seed, exemplar_px=list(style.shape[:2]),
        mdan_seconds=round(t_mdan, 1), gram_seconds=round(t_gram, 1), gram_final_loss=float(gram.losses[0]),
    )  # fmt: skip
    return name, out


def markdown(res: dict) -> str:
    lines = [
        f"MDAN from noise against Gram synthesis ({res.get('machine', '?')}, jax {res.get('jax', '?')}); "
        "VGG-16 SWD at scales 1, 1/2, 1/4, spectrum, colour: lower is better.",
        "",
        "| exemplar | method | swd_s1 | swd_s2 | swd_s4 | spectrum | colour | seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, e in res.get("exemplars", {}).items():
        for row, secs in (("mdan", e["mdan_seconds"]), ("gram", e["gram_seconds"]), ("crop", "")):
            lines.append(f"| {name} | {row} | " + " | ".join(f"{e[row][k]:.3g}" for k in KEYS) + f" | {secs} |")
        r = e["mdan_over_gram"]
        lines.append(f"| {name} | **MDAN / Gram** | " + " | ".join(f"{r.get(k, 0):.2f}x" for k in KEYS) + " | |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exemplars", nargs="+", default=BUNDLED)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--exemplar", type=int, default=256, help="the exemplar's longer side, px")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--markdown", action="store_true", help="print the table of the results file and exit")
    args = ap.parse_args()
    res = results_file.start(RESULTS, markdown, args.markdown)
    if res is None:
        return
    for seed in args.seeds:
        for path in args.exemplars:
            t = time.perf_counter()
            name, entry = one(path, args.size, args.steps, args.exemplar, seed)
            res["exemplars"][name] = entry
            RESULTS.write_text(json.dumps(res, indent=2))
            print(f"[{name}: {time.perf_counter() - t:.0f} s] MDAN/Gram {entry['mdan_over_gram']}", flush=True)
    print(markdown(res))


if __name__ == "__main__":
    main()
