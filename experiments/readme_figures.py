"""Make the README's figures: Gatys vs multi-scale at 512x512, and a tiled texture.

    python experiments/readme_figures.py            # about 35 min on 2 CPU cores
    python experiments/readme_figures.py hubble-multiscale brick-multiscale   # only these runs again

Each synthesis is a plain ``python run.py ...`` command (printed, and listed in
the README) writing a run folder under runs/figures/; this script then lays out
small PNGs under docs/ and writes docs/figures.json with each run's command,
wall time and final loss.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jtex import figures, image  # noqa: E402

RUNS = ROOT / "runs" / "figures"
DOCS = ROOT / "docs"
GATYS = ["-o", "1", "-l", "conv1_1", "pool1", "pool2", "pool3", "pool4", "--gram", "gatys", "-p", "same"]
EXEMPLARS = {"brick": ["-s", "examples/brick.png"], "hubble": ["-s", "examples/hubble_deep_field.jpg", "-sw", "512"]}
ITERS = "100"


def run(name: str, args: list[str], only: list[str]) -> dict:
    """Run one figure's synthesis afresh (if ``only`` is empty or names it; else reuse its run folder)."""
    out = RUNS / name
    cmd = ["python", "run.py", *args, "-m", ITERS, "--seed", "0", "--quiet", "--output-dir", str(out.relative_to(ROOT))]
    if not only or name in only:
        shutil.rmtree(out, ignore_errors=True)  # figures are made afresh
        print("+", " ".join(cmd), flush=True)
        subprocess.run([sys.executable, *cmd[1:]], cwd=ROOT, check=True)
    result = json.loads((out / "result.json").read_text())
    return {
        "command": " ".join(cmd),
        "seconds": result["seconds"],
        "loss": result["losses"][0],
        "iterations": result["iterations"],
    }


def main(only: list[str]):
    DOCS.mkdir(exist_ok=True)
    info = {}
    for ex, src in EXEMPLARS.items():
        info[f"{ex}-gatys"] = run(f"{ex}-gatys", [*src, "-ow", "512", "-oh", "512", *GATYS], only)
        info[f"{ex}-multiscale"] = run(f"{ex}-multiscale", [*src, "-ow", "512", "-oh", "512"], only)
        exemplar = image.load(ROOT / src[1], width=512)
        panel = figures.contact_sheet(
            [image.load(RUNS / f"{ex}-gatys" / "output.png"), image.load(RUNS / f"{ex}-multiscale" / "output.png")],
            exemplar=exemplar[:512, :512],
            columns=3,
            pad=6,
        )
        image.save(DOCS / f"{ex}_gatys_vs_multiscale.png", image.resize(panel, scale=0.5))
    info["gravel-tile"] = run(
        "gravel-tile",
        ["-s", "examples/gravel.png", "-sw", "256", "-ow", "256", "-oh", "256", "-p", "same", "--tile"],
        only,
    )
    tile = image.load(RUNS / "gravel-tile" / "output.png")
    image.save(DOCS / "gravel_tiled_2x2.png", np.tile(tile, (2, 2, 1)))
    (DOCS / "figures.json").write_text(json.dumps(info, indent=2) + "\n")
    for k, v in info.items():
        print(f"{k:20s} {v['seconds']:8.1f} s  loss {v['loss']:.4g}")


if __name__ == "__main__":
    main(sys.argv[1:])
