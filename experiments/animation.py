"""Measure a looping animation: inter-frame distances vs their targets, texture loss vs a still.

    python experiments/animation.py                 # about 12 min on 2 CPU cores
    python experiments/animation.py --quick         # a smoke run

Runs ``python run.py -s examples/brick.png -c 8 --if-shift 5 -ow 192 -oh 192 -o 3 -m 200``
and the same settings as a still image (``-c 1``), then reports for every
frame pair (t, t+1 mod 8) the achieved distance against the target D(5), the
loop closure (frame 7 -> frame 0), and each frame's texture loss against the
still's. Writes experiments/results/animation.json and docs/animation.gif.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jax.numpy as jnp  # noqa: E402

from jtex import animation, figures, image, objective, synth  # noqa: E402
from jtex.config import SynthConfig  # noqa: E402

RESULTS = ROOT / "experiments" / "results" / "animation.json"


def run(args, out):
    cmd = [sys.executable, "run.py", *args, "--quiet", "--output-dir", str(out)]
    print("+", " ".join(["python", *cmd[1:]]), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)
    return json.loads((out / "result.json").read_text())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--source", default="examples/brick.png")
    a = ap.parse_args()
    size, iters, count = (128, 20, 4) if a.quick else (192, 200, 8)
    common = ["-s", a.source, "-ow", str(size), "-oh", str(size), "-o", "3", "-m", str(iters), "--seed", "0"]
    base = ROOT / "runs" / "animation"
    shutil.rmtree(base, ignore_errors=True)
    anim = run([*common, "-c", str(count), "--if-shift", "5"], base / "animated")
    run(common, base / "still")

    cfg = SynthConfig(
        sources=(str(ROOT / a.source),), output_width=size, output_height=size, octaves=3, count=count, if_shift=5.0
    )
    p = synth.build(cfg)
    targets = p.element_targets()
    frames = np.stack([image.load(f) for f in sorted((base / "animated").glob("frame_*.png"))])
    still_img = image.load(base / "still" / "output.png")[None]
    obj = p.objective(p.stages[0])
    d = np.asarray(
        animation.pair_distances(
            jnp.asarray(frames),
            order=cfg.if_order,
            octaves=cfg.if_octaves,
            kind=cfg.if_distance_type,
            padding=obj.padding,
        )
    )
    frame_losses = np.asarray(objective.texture_loss(jnp.asarray(frames), targets, p.params, p.spec))
    still_loss = float(objective.texture_loss(jnp.asarray(still_img), targets, p.params, p.spec)[0])
    target1 = obj.targets[0]
    steps = [
        {
            "from": t,
            "to": (t + 1) % count,
            "distance": float(d[0, t]),
            "target": target1,
            "ratio": float(d[0, t] / target1),
        }
        for t in range(count)
    ]
    result = {
        "command": "python run.py " + " ".join([*common, "-c", str(count), "--if-shift", "5"]),
        "frames": count,
        "size": size,
        "iterations": iters,
        "seconds": anim["seconds"],
        "target_distances": list(obj.targets),
        "steps": steps,
        "loop_closure_ratio": steps[-1]["ratio"],
        "max_abs_deviation": float(max(abs(s["ratio"] - 1) for s in steps)),
        "frame_texture_losses": [float(v) for v in frame_losses],
        "still_texture_loss": still_loss,
        "frames_all_different": bool(
            all(np.abs(frames[i] - frames[j]).mean() > 1e-3 for i in range(count) for j in range(i + 1, count))
        ),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    (ROOT / "docs").mkdir(exist_ok=True)
    small = [image.resize(f, scale=0.75) for f in frames]
    figures.save_animation(ROOT / "docs" / "animation.gif", small, fps=8)
    print(f"{'step':>8s} {'distance':>9s} {'target':>9s} {'ratio':>6s}")
    for s in steps:
        print(f"{s['from']:>3d} -> {s['to']:<2d} {s['distance']:9.4f} {s['target']:9.4f} {s['ratio']:6.2f}")
    print(f"texture loss per frame: {np.round(frame_losses, 5).tolist()}  still: {still_loss:.5f}")
    print(f"wrote {RESULTS} and docs/animation.gif")


if __name__ == "__main__":
    main()
