"""Scale: peak memory and time of Snelgrove's default at high resolution, and batched throughput over devices.

    python experiments/bench_scale.py                       # ~40 min on 2 cores
    python experiments/bench_scale.py --parts memory --sides 1024 2048
    python experiments/bench_scale.py --markdown

memory: `jtex synth` with Snelgrove's defaults (brick exemplar, 4 octaves, pool1 + relu3_2, 'valid') at each side,
ITERS L-BFGS-B iterations (one stage: `--coarse-to-fine-above 0`), with Grams summed over rematerialised tiles
(`--gram-tile 1024`, the default, and 512) and without (`--gram-tile 0`), each in a fresh process with the
compilation cache off. Peak RSS is the child's own
(`os.wait4`'s ru_maxrss), measured from outside; beside it the estimate `jtex.sizes.need_bytes` prints
before compiling. A run the estimate refuses is recorded as refused.

batch: images per second of `--batch B` (B = 1 ... 64) syntheses over 8 forced host devices
(`XLA_FLAGS=--xla_force_host_platform_device_count=8`; gravel, 64², 1 octave, 'same', 20 iterations of device
L-BFGS), whole command including compilation, and the same over the default device(s) of this machine (a GPU
when one is lent). Writes experiments/results/bench_scale.json.
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
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "experiments" / "results" / "bench_scale.json"
JTEX = [sys.executable, "-m", "jtex", "synth", "--quiet", "--no-compilation-cache", "-n", "0"]
BATCH_ARGS = ["-s", "examples/gravel.png", "-ow", "64", "-oh", "64", "-sw", "128", "-o", "1", "-p", "same",
              "-m", "20", "--tol", "0", "--optimizer", "lbfgs"]  # fmt: skip


def _child(args, env=None) -> dict:
    """Run a command; wall seconds, the child's peak RSS (GiB), its last stderr line, return code."""
    t = time.perf_counter()
    p = subprocess.Popen(args, cwd=ROOT, env={**os.environ, **(env or {})}, stderr=subprocess.PIPE, text=True)
    err = p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    last = (err.strip().splitlines() or [""])[-1]
    return {"seconds": round(time.perf_counter() - t, 1), "peak_rss_gib": round(usage.ru_maxrss / 2**20, 2),
            "rc": p.returncode, "message": last[:300]}  # fmt: skip


def _estimate(side: int, tile: int, iters: int) -> float:
    """What `jtex synth` prints before compiling (jtex.sizes.need_bytes)."""
    from jtex import image, sizes, synth
    from jtex.config import SynthConfig

    cfg = SynthConfig(sources=("examples/brick.png",), output_width=side, output_height=side, gram_tile=tile,
                      max_iter=iters)  # fmt: skip
    canvas = synth.plan_stages(cfg, *synth.frame(cfg))[-1]  # the canvas the synthesis would optimise
    return round(sizes.need_bytes(cfg, [image.load("examples/brick.png")], canvas[1:], 1) / 2**30, 2)


def memory(sides, tiles, iters: int, res: dict) -> None:
    rows = res.setdefault("memory", {})
    with tempfile.TemporaryDirectory() as tmp:
        for side in sides:
            for tile in tiles:
                args = JTEX + ["-s", "examples/brick.png", "-ow", str(side), "-oh", str(side), "-m", str(iters),
                               "--gram-tile", str(tile), "--coarse-to-fine-above", "0",
                               "--output-dir", f"{tmp}/{side}_{tile}"]  # fmt: skip
                r = _child(args) | {"estimate_gib": _estimate(side, tile, iters), "iters": iters}
                r["refused"] = r["rc"] != 0 and "GiB" in r["message"]
                rows[f"{side}/{tile}"] = r
                print(f"[{side}² gram-tile {tile}: {r}]", flush=True)
                RESULTS.write_text(json.dumps(res, indent=2) + "\n")


def batch(batches, res: dict) -> None:
    rows = res.setdefault("batch", {})
    forced = {"XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu"}
    with tempfile.TemporaryDirectory() as tmp:
        for where, env in (("8 forced host devices", forced), ("default devices", {})):
            for b in batches:
                r = _child(JTEX + BATCH_ARGS + ["--batch", str(b), "--output-dir", f"{tmp}/{where[0]}_{b}"], env)
                if r["rc"]:
                    raise SystemExit(r["message"])
                r["images_per_s"] = round(b / r["seconds"], 3)
                rows[f"{where}/{b}"] = r
                print(f"[{where}, batch {b}: {r['seconds']} s, {r['images_per_s']} images/s]", flush=True)
                RESULTS.write_text(json.dumps(res, indent=2) + "\n")


def markdown(res: dict) -> str:
    out = [f"Machine: {res.get('machine')}, jax {res.get('jax')}."]
    if res.get("memory"):
        out += ["", "| side | --gram-tile | iterations | estimate | peak RSS | estimate / peak | seconds |",
                "|---|---|---|---|---|---|---|"]  # fmt: skip
        for k, r in res["memory"].items():
            side, tile = k.split("/")
            peak = "refused by the estimate" if r.get("refused") else f"{r['peak_rss_gib']:.2f} GiB"
            secs = "" if r.get("refused") else f"{r['seconds']:.0f}"
            ratio = "" if r.get("refused") else f"{r['estimate_gib'] / r['peak_rss_gib']:.2f}"
            out.append(f"| {side}² | {tile} | {r['iters']} | {r['estimate_gib']:.2f} GiB | {peak} | {ratio} | {secs} |")
    if res.get("batch"):
        out += ["", "| devices | batch | seconds (whole command) | images/s |", "|---|---|---|---|"]
        for k, r in res["batch"].items():
            where, b = k.split("/")
            out.append(f"| {where} | {b} | {r['seconds']:.1f} | {r['images_per_s']:.2f} |")
    return "\n".join(out)


def main():
    import results_file

    ap = argparse.ArgumentParser()
    ap.add_argument("--parts", nargs="+", default=["memory", "batch"], choices=["memory", "batch"])
    ap.add_argument("--sides", nargs="+", type=int, default=[1024, 2048, 4096])
    ap.add_argument("--tiles", nargs="+", type=int, default=[1024, 0], help="--gram-tile values (0: untiled)")
    ap.add_argument("--iters", type=int, default=2)
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 2, 4, 8, 16, 32, 64])
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    res = results_file.start(RESULTS, markdown, args.markdown, entries=None)
    if res is None:
        return
    if "memory" in args.parts:
        memory(args.sides, args.tiles, args.iters, res)
    if "batch" in args.parts:
        batch(args.batches, res)
    print(markdown(res))


if __name__ == "__main__":
    main()
