"""Which XLA:CPU convolution path runs jtex's VGG convolutions fastest: flags and formulations, measured.

    python experiments/bench_conv_paths.py            # about 5 minutes on 2 CPU cores
    python experiments/bench_conv_paths.py --markdown # the tables of the results file

Snelgrove's TensorFlow code runs its VGG convolutions through oneDNN's brgconv (AVX-512, float32) and is
faster per evaluation than jtex on AVX-512 CPUs (experiments/bench_synth.py, part iter). This benchmark
asks whether XLA:CPU has a faster path for the same convolutions:

  paths   each XLA:CPU library flag set in its own process (XLA_FLAGS are read once per process):
          Eigen (jtex's default), YNNPACK fusions (XLA's default), the oneDNN runtime flags, oneDNN and
          XNNPACK convolution fusions; timed on one loss+gradient evaluation of Snelgrove's objective at
          512² 'valid' (4 octaves, pool1 + relu3_2) and on three VGG convolutions (forward + input gradient)
  forms   the same convolutions written as 9 shifted matrix products, as one im2col matrix product, or
          as Winograd F(2x2, 3x3) (2.25x fewer multiplications: 16 batched products of tile transforms)
          under jtex's flags: can XLA's dot (oneDNN's sgemm underneath) beat its convolution?

Each time is the best of 5 after a compiling call. Writes experiments/results/bench_conv_paths.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "experiments"))

import results_file  # noqa: E402

RESULTS = ROOT / "experiments" / "results" / "bench_conv_paths.json"
NO_YNN = "--xla_cpu_experimental_ynn_fusion_type="
PATHS = {
    "Eigen (jtex default)": NO_YNN,
    "YNNPACK fusions (XLA default)": "",
    "oneDNN runtime": f"--xla_cpu_use_onednn=true --xla_cpu_experimental_onednn_custom_call=true {NO_YNN}",
    "oneDNN conv fusion": f"--xla_cpu_experimental_onednn_fusion_type=individual_convolution {NO_YNN}",
    "XNNPACK conv fusion": f"--xla_cpu_experimental_xnn_fusion_type=individual_convolution {NO_YNN}",
}
WINOGRAD_G = ((1, 0, 0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0, 0, 1))
CONVS = ((512, 64, 64), (256, 128, 128), (128, 256, 256))  # side, in, out: conv1_2, conv2_2, conv3_2 at 512²


def _best(fn, reps=5) -> float:
    import jax

    jax.block_until_ready(fn())
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        ts.append(time.perf_counter() - t)
    return min(ts)


def conv_forms():
    import jax.numpy as jnp
    from jax import lax

    def conv(x, w):
        return lax.conv_general_dilated(x, w, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))

    def shifted(x, w):
        ho, wo = x.shape[1] - 2, x.shape[2] - 2
        return sum(x[:, dy : dy + ho, dx : dx + wo] @ w[dy, dx] for dy in range(3) for dx in range(3))

    def im2col(x, w):
        ho, wo = x.shape[1] - 2, x.shape[2] - 2
        cols = jnp.concatenate([x[:, dy : dy + ho, dx : dx + wo] for dy in range(3) for dx in range(3)], -1)
        return cols @ w.reshape(-1, w.shape[-1])

    def winograd(x, w):  # Lavin & Gray 2016: Y = Aᵀ[(G w Gᵀ) ⊙ (Bᵀ d B)]A per 4x4 tile d, 2x2 outputs a tile
        n, ho, wo = x.shape[0], x.shape[1] - 2, x.shape[2] - 2  # even here
        g = jnp.asarray(WINOGRAD_G, w.dtype)
        u = jnp.einsum("pa,abio,qb->pqio", g, w, g).reshape(16, w.shape[2], w.shape[3])

        def bt(s):  # Bᵀ along an axis, on its four shifted slices
            return [s[0] - s[2], s[1] + s[2], s[2] - s[1], s[1] - s[3]]

        def at(s):  # Aᵀ along an axis
            return [s[0] + s[1] + s[2], s[1] - s[2] - s[3]]

        rows = bt([x[:, a : a + ho : 2] for a in range(4)])
        v = jnp.stack([t for r in rows for t in bt([r[:, :, b : b + wo : 2] for b in range(4)])])
        m = jnp.einsum("tpi,tio->tpo", v.reshape(16, -1, x.shape[3]), u).reshape(4, 4, n, ho // 2, wo // 2, -1)
        y = jnp.stack([jnp.stack(at(list(r)), 3) for r in at(list(m))], 2)  # (n, ho/2, 2, wo/2, 2, out)
        return y.reshape(n, ho, wo, -1)

    return {
        "convolution": conv,
        "9 shifted products": shifted,
        "im2col product": im2col,
        "Winograd F(2x2,3x3)": winograd,
    }


def time_convs(forms) -> list[dict]:
    """Forward + input gradient of relu(conv)² summed, per shape and form: seconds and GFLOP/s."""
    import jax
    import jax.numpy as jnp

    rows = []
    for side, cin, cout in CONVS:
        x = jax.random.normal(jax.random.key(0), (1, side, side, cin))
        w = jax.random.normal(jax.random.key(1), (3, 3, cin, cout)) * 0.05
        gflop = 2 * 2 * (side - 2) ** 2 * 9 * cin * cout / 1e9  # forward and input gradient
        for name, f in forms.items():
            g = jax.jit(jax.grad(lambda x, f=f: jnp.sum(jax.nn.relu(f(x, w)) ** 2)))
            s = _best(lambda g=g: g(x))
            rows.append({"conv": f"3x3 {cin}->{cout} at {side}²", "form": name, "s": s, "gflops": gflop / s})
    return rows


def child(path: str) -> dict:
    import jax
    from bench_synth import SNELGROVE, _setup

    p = _setup(512, {**SNELGROVE, "padding": "valid"})
    args = p.element()
    vg = jax.jit(jax.value_and_grad(p.objective(p.stages[0])))
    out = {"eval_s": _best(lambda: vg(p.x0[0], *args))}
    forms = conv_forms()
    out["convs"] = time_convs(forms if path == "Eigen (jtex default)" else {"convolution": forms["convolution"]})
    return out


def _cell(r: dict) -> str:
    return f"{r['s'] * 1e3:.0f} ms ({r['gflops']:.0f} GFLOP/s)"


def markdown(res: dict) -> str:
    labels = [f"3x3 {i}->{o} at {s}²" for s, i, o in CONVS]
    lines = [f"Machine: {res.get('machine', '?')}, jax {res.get('jax', '?')}.", ""]
    lines += [
        "| XLA:CPU path | eval s (512² 'valid') | " + " | ".join(labels) + " |",
        "|---|---|" + "---|" * len(CONVS),
    ]
    for name, e in res.get("paths", {}).items():
        if "error" in e:
            lines.append(f"| {name} | failed: {e['error']} |" + " |" * len(CONVS))
            continue
        conv = [_cell(r) for r in e["convs"] if r["form"] == "convolution"]
        lines.append(f"| {name} | {e['eval_s']:.2f} | " + " | ".join(conv) + " |")
    eigen = res.get("paths", {}).get("Eigen (jtex default)", {})
    if "convs" in eigen:
        lines += ["", "| formulation (Eigen path) | " + " | ".join(labels) + " |", "|---|" + "---|" * len(CONVS)]
        for form in dict.fromkeys(r["form"] for r in eigen["convs"]):
            lines.append(f"| {form} | " + " | ".join(_cell(r) for r in eigen["convs"] if r["form"] == form) + " |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    res = results_file.start(RESULTS, markdown, args.markdown, entries=None)
    if res is None:
        return
    res["paths"] = {}  # every path measured afresh
    for name, flags in PATHS.items():
        env = {**os.environ, "XLA_FLAGS": flags, "JTEX_XLA_CPU_DEFAULTS": "0"}
        out = subprocess.run([sys.executable, __file__, "--child", name], env=env, capture_output=True, text=True)
        if out.returncode:
            res["paths"][name] = {"error": out.stderr.strip().splitlines()[-1][:300]}
            continue
        res["paths"][name] = json.loads(out.stdout.strip().splitlines()[-1]) | {"xla_flags": flags}
        print(f"[{name}] eval {res['paths'][name]['eval_s']:.2f} s", flush=True)
        RESULTS.write_text(json.dumps(res, indent=2) + "\n")
    print(markdown(res))


if __name__ == "__main__":
    main()
