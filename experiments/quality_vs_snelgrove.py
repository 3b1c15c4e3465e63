"""Texture quality of jtex's defaults against Snelgrove's own code and PyTorch's L-BFGS, 'valid' padding.

    # 1. jtex and PyTorch: rows stem@valid, outputs under runs/quality_vs_torch/
    python experiments/quality_vs_torch.py --padding valid --size 320 --exemplars examples/brick.png ...
    # 2. Snelgrove's code on the same exemplars (see experiments/snelgrove_peer.py for his environment)
    python experiments/snelgrove_peer.py --code CODE --python PY --data-dir DATA --size 320 --padding valid \\
        --iters 150 --source examples/brick.png --source-width 320 --keep runs/snelgrove/brick.png
    # 3. score all three
    python experiments/quality_vs_snelgrove.py --exemplars examples/brick.png ... [--markdown]

Snelgrove's code saves a snapshot every 10 iterations; with 150 iterations the last one is I0140, the image
a user of his code gets. Each exemplar is scored with jtex.metrics (ImageNet VGG-16 SWD at scales 1, 1/2,
1/4, spectrum, colour, Gram) from the exemplar resized to 320 wide, beside the outer 4-px ring's contrast
over the interior's (jtex.spectra.ring_contrast: 1 is ideal, a flat frame is well below). Writes
experiments/results/quality_vs_snelgrove.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jtex import image, metrics, spectra  # noqa: E402

RESULTS = ROOT / "experiments" / "results" / "quality_vs_snelgrove.json"
KEYS = ("swd_s1", "swd_s2", "swd_s4", "spectrum", "colour", "gram")
NAMES = ("jtex", "pytorch", "snelgrove")


def score(path: str, size: int, peer_dir: Path) -> dict:
    stem = Path(path).stem
    ours = ROOT / "runs" / "quality_vs_torch" / f"{stem}@valid"
    shots = sorted((peer_dir / Path(path).name / f"{size}_valid" / "outputs").glob("*/I*_F0000.png"))
    if not shots or not (ours / "torch.png").is_file():
        raise SystemExit(f"{stem}: run quality_vs_torch.py --padding valid and snelgrove_peer.py --keep first")
    imgs = [image.load(ours / "jtex" / "output.png"), image.load(ours / "torch.png"), image.load(shots[-1])]
    rep = metrics.report(image.load(path, width=size), imgs, names=list(NAMES), key=0)
    rows = {r["image"]: {k: r[k] for k in KEYS} | {"ring": spectra.ring_contrast(im)} for r, im in zip(rep, imgs)}
    better = {k: min(rows["pytorch"][k], rows["snelgrove"][k]) for k in KEYS}
    over = {k: rows["jtex"][k] / better[k] for k in KEYS}
    return {"snelgrove_image": shots[-1].name, "rows": rows, "jtex_over_better": over}


def markdown(res: dict) -> str:
    out = ["| exemplar | " + " | ".join(KEYS) + " | ring: jtex / PyTorch / Snelgrove |", "|---" * (len(KEYS) + 2) + "|"]
    for stem, e in res.items():
        r, ring = e["jtex_over_better"], [e["rows"][n]["ring"] for n in NAMES]
        out.append(
            f"| {stem} | "
            + " | ".join(f"{r[k]:.2f}" for k in KEYS)
            + " | "
            + " / ".join(f"{v:.2f}" for v in ring)
            + " |"
        )
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--exemplars", nargs="+", default=["examples/brick.png", "examples/hubble_deep_field.jpg"])
    ap.add_argument("--size", type=int, default=320)
    ap.add_argument("--peer-dir", default="runs/snelgrove", help="snelgrove_peer.py's --keep folders, one per source")
    ap.add_argument("--markdown", action="store_true", help="print the table of the results file and exit")
    args = ap.parse_args()
    if args.markdown:
        print(markdown(json.loads(RESULTS.read_text())))
        return
    res = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    for path in args.exemplars:
        res[Path(path).stem] = score(path, args.size, Path(args.peer_dir))
        RESULTS.write_text(json.dumps(res, indent=2))
    print(markdown(res))


if __name__ == "__main__":
    main()
