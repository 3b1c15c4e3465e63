"""What one evaluation of each statistic costs, and what jtex.sorting saves on the CPU.

    python experiments/bench_statistics.py              # ~3 min on 2 cores
    python experiments/bench_statistics.py --size 512
    python experiments/bench_statistics.py --markdown   # reprint the table of the results file

One loss-and-gradient evaluation of Snelgrove's objective (4 octaves, pool1 + relu3_2, 'same' padding) at SIZE²
from gravel resized to SIZE wide, each statistic alone, median of 5 after compilation; `swd` with 1, 2, 4 and 8
directions per channel. Sorting statistics (`emd`, `swd`) are timed twice in the same process: with
jtex.sorting's numpy permutation (the CPU default) and with XLA's own `jnp.sort`.
Writes experiments/results/bench_statistics.json.
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

RESULTS = ROOT / "experiments" / "results" / "bench_statistics.json"
POINTS = [("gram", 4), ("meancov", 4), ("emd", 4), ("hist", 4), ("swd", 1), ("swd", 2), ("swd", 4), ("swd", 8)]


def markdown(res: dict) -> str:
    out = [
        f"Machine: {res['machine']}, jax {res['jax']}; {res['size']}², one loss-and-gradient evaluation, median of 5.",
        "",
        "| statistic | jtex (s) | with XLA's sort (s) | ratio |",
        "|---|---|---|---|",
    ]
    for name, r in res["rows"].items():
        xla = r.get("xla_sort_s")
        cells = (f"{xla:.3f}", f"{r['seconds'] / xla:.2f}") if xla else ("-", "-")
        out.append(f"| {name} | {r['seconds']:.3f} | {cells[0]} | {cells[1]} |")
    return "\n".join(out)


def _median_eval(kind: str, projections: int, size: int) -> float:
    import jax
    import jax.numpy as jnp

    from jtex import objective, synth
    from jtex.config import SynthConfig

    cfg = SynthConfig(sources=("examples/gravel.png",), output_width=size, output_height=size, source_width=size,
                      padding="same", loss=((kind, 1.0),), swd_projections=projections)  # fmt: skip
    p = synth.build(cfg)
    knobs = jax.tree.map(lambda a: a[0], p.knobs)
    targets = jax.tree.map(lambda a: a[0], p.targets)
    f = jax.jit(jax.value_and_grad(lambda x: jnp.sum(objective.texture_loss(x, targets, p.params, p.spec, knobs))))
    x = p.x0[0]
    jax.block_until_ready(f(x))
    times = []
    for _ in range(5):
        t = time.perf_counter()
        jax.block_until_ready(f(x))
        times.append(time.perf_counter() - t)
    return sorted(times)[2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    res = results_file.start(RESULTS, markdown, args.markdown, entries=None)
    if res is None:
        return
    import jax
    import jax.numpy as jnp

    from jtex import sorting

    res.update(size=args.size, rows={})
    fast = sorting.sort
    for kind, proj in POINTS:
        name = f"swd, {proj} per channel" if kind == "swd" else kind
        row = {"seconds": _median_eval(kind, proj, args.size)}
        if kind in ("emd", "swd"):
            sorting.sort = lambda x, axis=-1: jnp.sort(x, axis=axis)
            jax.clear_caches()  # stats.sliced_wasserstein is jitted: trace it again with XLA's sort
            try:
                row["xla_sort_s"] = _median_eval(kind, proj, args.size)
            finally:
                sorting.sort = fast
                jax.clear_caches()
        res["rows"][name] = row
        print(name, row, flush=True)
    RESULTS.write_text(json.dumps(res, indent=2))
    print(markdown(res))


if __name__ == "__main__":
    main()
