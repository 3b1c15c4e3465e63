"""Why seed 004's EMD lost colour: its code sorted each position's channels, not each channel's positions.

    python experiments/seed004_emd_axis.py                 # Hubble, ~3 min on 2 cores
    python experiments/seed004_emd_axis.py --exemplars a.png --size 128 --iters 200
    python experiments/seed004_emd_axis.py --markdown      # reprint the table of the results file

Seed 004's loss (its q4 code) reshapes a layer's maps to (H*W, C) and calls ``tf.sort(x)``, whose default axis
is the last one: each position's C channel values are sorted, and output and exemplar are then compared position
by position. That is not the per-channel EMD its text describes (and jtex's ``--loss emd`` implements: each
channel's H*W values sorted, compared as distributions): sorting across channels forgets which channel fired, and
which channels fire together is what carries colour in the first layers. This runs the three losses on
Snelgrove's objective (4 octaves, pool1 + relu3_2, 'same' padding, no margin) at SIZE² from the exemplar resized
to SIZE wide (the sizes must match for the position-wise comparison), ITERS iterations of L-BFGS-B from the
same start, and scores them with jtex.metrics (ImageNet VGG-16). Writes experiments/results/seed004_emd_axis.json
and docs/seed004_emd_axis.png (exemplar, Gram, jtex's EMD, seed 004's code's EMD, for each exemplar).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import results_file  # noqa: E402

RESULTS = ROOT / "experiments" / "results" / "seed004_emd_axis.json"
FIGURE = ROOT / "docs" / "seed004_emd_axis.png"
BUNDLED = ["examples/hubble_deep_field.jpg"]  # the one colour texture bundled (brick, gravel, grass are grey)
KEYS = ("swd_s1", "swd_s2", "swd_s4", "spectrum", "colour", "gram")
LOSSES = ("gram", "emd (jtex: per channel)", "emd (seed 004's code: per position)")


def markdown(res: dict) -> str:
    out = [
        f"Machine: {res['machine']}, jax {res['jax']}; {res.get('size')}², {res.get('iters')} iterations of L-BFGS-B.",
        "",
        "| exemplar | loss | " + " | ".join(KEYS) + " |",
        "|---|---|" + "---|" * len(KEYS),
    ]
    for stem, e in res["exemplars"].items():
        for name, r in e.items():
            out.append(f"| {stem} | {name} | " + " | ".join(f"{r[k]:.4g}" for k in KEYS) + " |")
    return "\n".join(out)


@dataclass(frozen=True)  # not a NamedTuple: jit's cache would take it for the engine's StillObjective(spec)
class PositionSortLoss:
    """Seed 004's code: sum over octaves and layers of mean((sort_C(F) - sort_C(F_exemplar))²), position-aligned."""

    spec: object

    def __call__(self, x, batched, shared):
        import jax.numpy as jnp

        from jtex import objective, pyramid

        total = 0.0
        if self.spec.grey:  # as the engine sees a grey exemplar's output: through its channel mean
            x = jnp.broadcast_to(jnp.mean(x, axis=-1, keepdims=True), x.shape)
        levels = pyramid.gaussian(x[None], self.spec.octaves, padding=self.spec.pyr_padding)
        for o, level in enumerate(levels):
            feats = objective._features(shared, level, self.spec)
            for n in self.spec.layers:
                total = total + jnp.mean((jnp.sort(feats[n], axis=-1) - jnp.sort(batched["maps"][o][n], axis=-1)) ** 2)
        return total


def run_one(path: str, size: int, iters: int) -> tuple[dict, list[np.ndarray]]:
    import jax
    import jax.numpy as jnp

    from jtex import metrics, objective, optimize, pyramid, synth
    from jtex.config import SynthConfig

    base = dict(sources=(path,), output_width=size, output_height=size, source_width=size, padding="same",
                margin=0, max_iter=iters, tol=0.0, save_every=0)  # fmt: skip
    images = []
    for loss in ("gram", "emd"):  # jtex's own, through the engine
        res = synth.run(SynthConfig(loss=loss, **base), None, progress=False)
        images.append(np.asarray(res.images[0]))
    p = synth.build(SynthConfig(**base))
    ex = jnp.asarray(p.sources[0])[None]
    if ex.shape[1:3] != (size, size):
        raise SystemExit(f"{path}: resized to {ex.shape[2]}x{ex.shape[1]}, not square; use a square exemplar")
    levels = pyramid.gaussian(ex, p.spec.octaves, padding=p.spec.pyr_padding)
    maps = [{n: f for n, f in objective._features(p.params, lv, p.spec).items()} for lv in levels]
    batched = {"maps": jax.tree.map(lambda a: a[None], maps)}
    out = optimize.minimize(PositionSortLoss(p.spec), p.x0[:, 0], batched, p.params, max_iter=iters, tol=0.0)
    images.append(np.asarray(out.x[0]))
    rows = metrics.report(np.asarray(p.sources[0]), images, names=list(LOSSES))
    return {r["image"]: {k: r[k] for k in KEYS} for r in rows}, [np.asarray(p.sources[0]), *images]


def main():
    started = results_file.study(RESULTS, markdown, BUNDLED)
    if started is None:
        return
    args, res = started
    from jtex import figures, image

    rows = []
    for path in args.exemplars:
        table, imgs = run_one(path, args.size, args.iters)
        res["exemplars"][Path(path).stem] = table
        rows.append(imgs)
        RESULTS.write_text(json.dumps(res, indent=2))
        print(f"[{path} done]", flush=True)
    sheet = figures.labelled_grid([im for r in rows for im in r], rows=len(rows), columns=4,
                                  row_labels=[Path(p).stem for p in args.exemplars],
                                  column_labels=["exemplar", "gram", "emd per channel", "seed 004's code"])  # fmt: skip
    image.save(FIGURE, sheet)
    print(markdown(res))


if __name__ == "__main__":
    main()
