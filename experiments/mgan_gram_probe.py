"""Can a Gram (texture-statistics) loss teach MGAN's decoder noise -> texture? A probe, not a trainer.

    python experiments/mgan_gram_probe.py --name plain                        # Gram loss on the whole output
    python experiments/mgan_gram_probe.py --name interior --crop 16           # the outer 16 px left out of it
    python experiments/mgan_gram_probe.py --name mse --crop 16 --teachers runs/gravel-mgan --mse-weight 1
    python experiments/mgan_gram_probe.py --name div1 --diversity 1                # plus Li et al.'s diversity term
    python experiments/mgan_gram_probe.py --name white1-div1 --diversity 1 --white 1   # fields with white noise added
    python experiments/mgan_gram_probe.py --markdown

The authors' decoder (jtex.decoders.Decoder: relu4_1 -> transposed convs -> tanh) is trained with Adam on
fresh brown and Perlin fields (128², batch 4, alternating) against Texture Networks' Gram loss (relu1_1 ...
relu5_1, weights 1/C², each layer's gradient L1-normalised, 'same' padding) of the exemplar; ``--crop``
leaves the outer pixels out of that loss; ``--teachers DIR`` (a ``jtex train-mgan`` run folder of the same
exemplar) adds the pixel MSE to its MDAN targets (``--mse-weight``), on the teachers' own inputs;
``--diversity W`` subtracts Li et al. 2017's diversity term (the mean absolute difference of the relu4_2
maps of outputs of different fields, its gradient L1-normalised to W, as each Gram layer's is to 1);
``--white A`` adds white Gaussian noise of A times the fields' std to every field (clipped). After
training (BatchNorm statistics recomputed), four new fields of each kind are decoded and scored with
jtex.metrics, and two numbers say whether the decoder uses its input:

  input_use   the per-pixel std across the four outputs over the mean per-image std: 0 when every
              field gives the same image, about 1 for independent textures
  texture     the Gram loss of the outputs' interior next to the teachers' (when given)

Writes one sheet per noise kind (inference mode) to --out, NAME_KIND.png, and
experiments/results/mgan_gram_probe.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "experiments"))

import results_file  # noqa: E402

RESULTS = ROOT / "experiments" / "results" / "mgan_gram_probe.json"
KEYS = ("swd_s1", "swd_s2", "swd_s4", "spectrum")
SIZE, BATCH = 128, 4


def gram_loss(vgg_params, style):
    """Texture Networks' loss of images (N, S, S, 3) in [0, 1]: the batch mean of Gram distances to ``style``."""
    import jax.numpy as jnp

    from jtex import objective, stats, vgg
    from jtex.config import SynthConfig
    from jtex.texnet_config import PAPER_LAYERS
    from jtex.texture_net import _l1_normalised_gradient

    w = tuple(1.0 / vgg.channels(layer) ** 2 for layer in PAPER_LAYERS)
    cfg = SynthConfig(arrays=(style,), output_width=SIZE, output_height=SIZE, gram="snelgrove", padding="same",
                      layers=PAPER_LAYERS, layer_weights=w, octaves=1).validate()  # fmt: skip
    spec, lw = objective.output_spec(cfg), objective.layer_weights(cfg)
    want = objective.targets(vgg_params, [style], cfg, separate=False)[0]

    def loss(x):
        feats = vgg.features(vgg_params, x, spec.layers, padding=spec.vgg_padding, pooling=spec.pooling)
        total = 0.0
        for i, name in enumerate(spec.layers):
            g = stats.gram(_l1_normalised_gradient(feats[name], 1.0), norm=spec.gram)
            total = total + lw[i] * stats.gram_distance(g, cfg.mul * want[i]["gram"]["gram"], norm=spec.gram)
        return jnp.mean(total)

    return loss


def run(args) -> dict:
    import jax
    import jax.numpy as jnp
    import optax

    from jtex import figures, image, metrics, mgan, noisefields, weights
    from jtex.decoders import ENCODER_LAYER, Decoder
    from jtex.mdan import MDANConfig, load_style
    from jtex.texture_net import _l1_normalised_gradient
    from jtex.vgg import features

    vgg_params = jax.tree.map(jnp.asarray, weights.load())
    style = load_style(MDANConfig(source=args.source))
    loss_of = gram_loss(vgg_params, style)
    c = args.crop

    def interior(x):
        return x[:, c : SIZE - c, c : SIZE - c] if c else x

    pairs = None
    if args.teachers:
        settings = json.loads((Path(args.teachers) / "config.json").read_text())["settings"]
        fields_ = {f.name for f in dataclasses.fields(mgan.MGANConfig)}
        model_cfg = mgan.MGANConfig(**{k: v for k, v in settings.items() if k in fields_})
        inputs = mgan.teacher_inputs(model_cfg).astype(np.float32)
        targets = np.stack([image.load(Path(args.teachers) / "teachers" / f"{i:03d}" / "output.png")
                            for i in range(len(inputs))]).astype(np.float32)  # fmt: skip
        pairs = (jnp.asarray(inputs[:, :SIZE, :SIZE]), jnp.asarray(targets[:, :SIZE, :SIZE]))

    dec = Decoder()
    v = dec.init(jax.random.key(args.seed), jnp.zeros((1, SIZE // 8, SIZE // 8, 512)))
    tx = optax.adam(args.lr, b1=0.5)
    params, bstats, opt = v["params"], v["batch_stats"], tx.init(v["params"])

    def encode(x):
        return features(vgg_params, x, (ENCODER_LAYER,), pooling="max")[ENCODER_LAYER]

    @jax.jit
    def step(params, bstats, opt, x, tx_in, tx_out):
        def lf(p):
            out, upd = dec.apply({"params": p, "batch_stats": bstats}, encode(x), train=True, mutable=["batch_stats"])
            tex = loss_of(interior((out + 1) / 2))
            div = 0.0
            if args.diversity:  # Li et al. 2017: push the outputs of different fields apart at relu4_2
                f = features(vgg_params, (out + 1) / 2, ("relu4_2",), pooling="avg", padding="same")["relu4_2"]
                f = _l1_normalised_gradient(f, args.diversity)
                div = -jnp.mean(jnp.abs(f - jnp.roll(f, 1, axis=0)))
            mse = 0.0
            if pairs is not None:  # the teachers' own inputs through the same decoder
                o2, upd = dec.apply({"params": p, "batch_stats": upd["batch_stats"]}, encode(tx_in), train=True,
                                    mutable=["batch_stats"])  # fmt: skip
                mse = jnp.mean(((o2 + 1) / 2 - tx_out) ** 2)
            return tex + div + args.mse_weight * mse, (upd["batch_stats"], tex, mse)

        (_, (bs, tex, mse)), g = jax.value_and_grad(lf, has_aux=True)(params)
        u, opt2 = tx.update(g, opt, params)
        return optax.apply_updates(params, u), bs, opt2, tex, mse

    rng = np.random.default_rng(args.seed)

    def fields(n, rng=rng, kinds=("brown", "perlin")):
        f = np.stack([noisefields.field(kinds[i % len(kinds)], rng, SIZE, SIZE) for i in range(n)])
        if args.white:  # white noise of std white x 0.15 on top: per-pixel variation for the fine scale
            f = np.clip(f + args.white * noisefields.STD * rng.standard_normal(f.shape), 0, 1)
        return f.astype(np.float32)

    t0, log = time.time(), []
    for i in range(args.steps):
        if pairs is not None:
            k = rng.integers(0, len(pairs[0]), BATCH)
            tin, tout = pairs[0][k], pairs[1][k]
        else:
            tin = tout = jnp.zeros((0,))
        params, bstats, opt, tex, mse = step(params, bstats, opt, jnp.asarray(fields(BATCH)), tin, tout)
        if i % 25 == 0 or i == args.steps - 1:
            log.append({"step": i, "texture": float(tex), "mse": float(mse), "s": round(time.time() - t0, 1)})
            print(log[-1], flush=True)

    exact = Decoder(momentum=0.0)  # BatchNorm statistics recomputed with the final weights (as mgan.calibrate)
    stats = [exact.apply({"params": params, "batch_stats": bstats}, encode(jnp.asarray(fields(BATCH))),
                         train=True, mutable=["batch_stats"])[1]["batch_stats"] for _ in range(8)]  # fmt: skip
    bstats = jax.tree.map(lambda *a: jnp.mean(jnp.stack(a), 0), *stats)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    keys = ("steps", "lr", "crop", "mse_weight", "diversity", "white", "seed")
    entry = {"settings": {k: getattr(args, k) for k in keys} | {"teachers": bool(args.teachers)}, "log": log,
             "seconds": round(time.time() - t0, 1)}  # fmt: skip
    for kind in ("brown", "perlin"):
        x = jnp.asarray(fields(4, rng, (kind,)))
        imgs = np.asarray((dec.apply({"params": params, "batch_stats": bstats}, encode(x)) + 1) / 2).clip(0, 1)
        image.save(out_dir / f"{args.name}_{kind}.png", figures.contact_sheet(list(imgs), columns=4))
        rows = metrics.report(style, list(imgs), names=[str(i) for i in range(4)])
        entry[kind] = {k: float(np.mean([r[k] for r in rows])) for k in KEYS}
        entry[kind]["input_use"] = float(imgs.std(axis=0).mean() / imgs.std(axis=(1, 2)).mean())
        entry[kind]["texture"] = float(jax.jit(loss_of)(interior(jnp.asarray(imgs))))
    if pairs is not None:
        entry["teachers_texture"] = float(jax.jit(loss_of)(interior(pairs[1][:BATCH])))
    return entry


def markdown(res: dict) -> str:
    lines = [
        f"MGAN decoder under a Gram loss ({res.get('machine', '?')}, jax {res.get('jax', '?')}); new brown fields, "
        "128²; input_use 0 = the same image for every field.",
        "",
        "| probe | crop | teacher MSE weight | diversity | white | steps | texture loss | teachers' | input_use "
        "| swd_s1 | swd_s2 | swd_s4 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, e in res.get("probes", {}).items():
        s, b = e["settings"], e["brown"]
        teach = f"{e['teachers_texture']:.2g}" if "teachers_texture" in e else "-"
        lines.append(f"| {name} | {s['crop']} | {s['mse_weight'] if s['teachers'] else '-'} | "
                     f"{s.get('diversity', 0)} | {s.get('white', 0)} | {s['steps']} | "
                     f"{b['texture']:.2g} | {teach} | {b['input_use']:.2f} | {b['swd_s1']:.3g} | {b['swd_s2']:.3g} | "
                     f"{b['swd_s4']:.3g} |")  # fmt: skip
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", default="plain")
    ap.add_argument("--source", default=str(ROOT / "examples" / "gravel.png"))
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--lr", type=float, default=0.002)
    ap.add_argument("--crop", type=int, default=0)
    ap.add_argument("--teachers", default="", help="a jtex train-mgan run folder of the same exemplar")
    ap.add_argument("--mse-weight", type=float, default=1.0)
    ap.add_argument("--diversity", type=float, default=0.0, help="weight of Li et al.'s diversity term at relu4_2")
    ap.add_argument("--white", type=float, default=0.0, help="add white noise of this many times the fields' std")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "runs" / "mgan_gram_probe"))
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    res = results_file.start(RESULTS, markdown, args.markdown, entries="probes")
    if res is None:
        return
    res["probes"][args.name] = run(args)
    RESULTS.write_text(json.dumps(res, indent=2))
    print(markdown(res))


if __name__ == "__main__":
    main()
