"""A sweep against its points run one by one, and what it compiles.

    python experiments/bench_sweep.py            # ~6 min on 2 cores
    python experiments/bench_sweep.py --markdown

Runs `jtex sweep --grid mul=0.5,1,2 --grid seed=0,1,2` (9 points; brick, 128², 4 octaves, 'same', 40 iterations of
device L-BFGS) as one command, then the same 9 points as 9 `jtex synth` commands, each in a fresh process with the
compilation cache off (so both pay their compiles), and compares wall times. Then counts the XLA compilations
(`JAX_LOG_COMPILES=1`, lines starting "Compiling") of a 3-point and of the 9-point sweep.
Writes experiments/results/bench_sweep.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results" / "bench_sweep.json"
JTEX = [sys.executable, "-c", "import sys; from jtex.cli import main; sys.exit(main())"]
COMMON = ["-s", "examples/brick.png", "-ow", "128", "-oh", "128", "-sw", "128", "-p", "same", "-m", "40",
          "--optimizer", "lbfgs", "--tol", "0", "-n", "0", "--quiet", "--no-compilation-cache"]  # fmt: skip
MULS, SEEDS = ["0.5", "1", "2"], ["0", "1", "2"]


def _run(args, env=None) -> tuple[float, str]:
    t = time.perf_counter()
    p = subprocess.run(JTEX + args, cwd=ROOT, env={**os.environ, **(env or {})}, capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(p.stderr)
    return time.perf_counter() - t, p.stderr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    if args.markdown:
        r = json.loads(RESULTS.read_text())
        print("| sweep, 9 points | 9 separate commands | ratio | compilations, 3-point sweep | 9-point sweep |")
        print("|---|---|---|---|---|")
        print(f"| {r['sweep_s']:.1f} s | {r['separate_s']:.1f} s | {r['ratio']:.2f} | {r['compiles_3']} | "
              f"{r['compiles_9']} |")  # fmt: skip
        return
    with tempfile.TemporaryDirectory() as tmp:
        grid = ["--grid", "mul=" + ",".join(MULS), "--grid", "seed=" + ",".join(SEEDS)]
        sweep_s, _ = _run(["sweep", *COMMON, *grid, "--no-metrics", "--output-dir", f"{tmp}/sweep"])
        separate_s = 0.0
        for m in MULS:
            for s in SEEDS:
                sec, _ = _run(["synth", *COMMON, "--mul", m, "--seed", s, "--output-dir", f"{tmp}/one_{m}_{s}"])
                separate_s += sec
        counts = {}
        for n, muls in ((3, MULS[:1]), (9, MULS)):
            g = ["--grid", "mul=" + ",".join(muls), "--grid", "seed=" + ",".join(SEEDS)]
            _, err = _run(
                ["sweep", *COMMON, *g, "--no-metrics", "--output-dir", f"{tmp}/c{n}"], {"JAX_LOG_COMPILES": "1"}
            )
            counts[n] = sum(1 for line in err.splitlines() if "Compiling" in line)
    import jax

    res = {
        "machine": f"cpu: {os.cpu_count()} CPU cores", "jax": jax.__version__, "settings": COMMON,
        "sweep_s": sweep_s, "separate_s": separate_s, "ratio": sweep_s / separate_s,
        "compiles_3": counts[3], "compiles_9": counts[9],
    }  # fmt: skip
    RESULTS.write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
