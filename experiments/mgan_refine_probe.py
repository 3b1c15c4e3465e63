"""Three ways to sharpen a trained ``wct`` MGAN's spot-noise textures, measured; the third (swap) is shipped.

    python experiments/mgan_refine_probe.py --model runs/ihc-mgan --mode finetune            # Gram fine-tune
    python experiments/mgan_refine_probe.py --model runs/ihc-mgan --mode finetune --inject   # + noise inputs
    python experiments/mgan_refine_probe.py --model runs/ihc-mgan --mode cascade --levels relu3_1 relu2_1 [--swap]
    python experiments/mgan_refine_probe.py --model runs/ihc-mgan --mode swap --patch 3 --rounds 2 [--place centre]
    python experiments/mgan_refine_probe.py --markdown

``finetune``: the model's decoder, its BatchNorm frozen in inference mode, is trained further on fresh
spot-noise fields (``--size``², batch 1, the wrap cropped as :func:`jtex.mgan.generate` does) against
Texture Networks' loss of ``jtex train-texnet --preset quick`` (Grams of relu1_1 ... relu5_1 over a
3-octave pyramid at weight 0.5, each term's gradient L1-normalised, samples seen on the torus), Adam
``--lr``. ``--inject`` adds StyleGAN-style noise inputs: after the 1/4- and 1/2-resolution stages' BatchNorm,
fresh Gaussian noise times a learnt per-channel scale (initialised to 0), so the fine detail need not be
drawn from the 1/8-resolution code alone. Scored at ``--evals`` steps.

``cascade``: Li et al. 2017's multi-level whitening and colouring (*Universal Style Transfer*) after the
relu4_1 decode: for each of ``--levels`` a small decoder (the VGG's mirror to that layer, nearest x2 and
circular 3x3 convs) learns to invert the layer on the exemplar's crops (pixel MSE + the relative MSE of the
layer's map, Adam 1e-3, ``--steps`` steps of four 128² crops); a texture's map at the layer is then whitened
and coloured to the exemplar's statistics (:func:`jtex.wct.transform`) and decoded, level by level.

``swap``: Chen & Schmidt's style swap (2016) of the spot field at relu4_1 before decoding: every
``--patch``² window of the periodic field is replaced by the exemplar map's window of highest normalised
cross-correlation (all 512 channels) and each cell becomes the mean of the windows covering it
(``--place mean``), or the centre cell of its own window's match (``centre``; ``last-centre``: in the last
round only), ``--rounds`` times. :func:`jtex.spotnoise.swap` ships ``--patch 3 --rounds 2 --place mean``,
matched on 128 projected channels.
``cascade --swap``: the cascade started from the shipped swap textures, each level's WCT replaced by
:func:`jtex.spotnoise.swap` against the exemplar's map at that level.

Every row: four 256² textures from seed 7 (the colour histogram matched, as ``generate`` does), scored with
jtex.metrics against the exemplar, as a ratio to the Gram synthesis of ``mgan_quality.py`` (VGG-16 SWD at
image scales 1, 1/2, 1/4; spectrum), plus ``input_use`` (per-pixel std across the four over the mean
per-image std: ~1 for independent textures) and the seam. Sheets go to ``--out``; results to
experiments/results/mgan_refine_probe.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "experiments"))

import results_file  # noqa: E402

RESULTS = ROOT / "experiments" / "results" / "mgan_refine_probe.json"
KEYS = ("swd_s1", "swd_s2", "swd_s4", "spectrum")


def scorer(model, style, gram: dict, out: Path):
    """``(images (N, H, W, 3), tag) -> row``: colour-matched, saved as a sheet, scored against the Gram synthesis."""
    from jtex import colour, figures, image, metrics

    def score(imgs, tag: str) -> dict:
        imgs = np.stack([colour.match_exemplar(np.clip(np.asarray(o), 0, 1), model.exemplar) for o in imgs])
        image.save(out / f"{tag}.png", figures.contact_sheet(list(imgs), columns=len(imgs)))
        rows = metrics.report(style, list(imgs), names=[str(i) for i in range(len(imgs))])
        row = {k: round(float(np.mean([r[k] for r in rows])) / gram[k], 3) for k in KEYS}
        row["input_use"] = round(float(np.mean(imgs.std(axis=0)) / np.mean(imgs.std(axis=(1, 2)))), 3)
        row["seam"] = round(float(np.mean([metrics.seam(i) for i in imgs])), 3)
        print(f"  {tag}: " + ", ".join(f"{k} {v}" for k, v in row.items()), flush=True)
        return row

    return score


def finetune(model, args, score) -> dict:
    import jax
    import jax.numpy as jnp
    import optax
    from flax import linen as nn

    from jtex import texture_net
    from jtex.decoders import STRIDE, UPSAMPLERS, WIDTHS
    from jtex.discriminators import batch_norm, conv_init
    from jtex.mgan_render import SPOT_PAD, wrapped_field
    from jtex.texnet_config import TexNetConfig

    cfg = model.config

    class NoisyDecoder(nn.Module):  # jtex.decoders.Decoder's layers and names, plus noise inputs
        @nn.compact
        def __call__(self, feats, key):
            x = nn.relu(batch_norm(False, 0.9)(nn.Conv(WIDTHS[0], (3, 3), padding=1, use_bias=False,
                                                       kernel_init=conv_init())(feats)))  # fmt: skip
            up = UPSAMPLERS[cfg.decoder]
            for i, width in enumerate(WIDTHS[1:]):
                x = batch_norm(False, 0.9)(up(width)(x))
                if args.inject:
                    s = self.param(f"noise_{i}", nn.initializers.zeros, (width,))
                    x = x + s * jax.random.normal(jax.random.fold_in(key, i), x.shape)
                x = nn.relu(x)
            return jnp.tanh(up(3)(x))

    tcfg = TexNetConfig.preset("quick", source=cfg.source, size=args.size)
    loss_fn = texture_net._loss_fn(tcfg, model.vgg_params, texture_net.load_exemplar(tcfg))
    dec, stats = NoisyDecoder(), model.variables["batch_stats"]
    m = SPOT_PAD * STRIDE

    def render(params, keys, side):
        def one(k):
            f = wrapped_field(model.spots, k, side // STRIDE, side // STRIDE)
            return dec.apply({"params": params, "batch_stats": stats}, f[None], jax.random.fold_in(k, 99))[0]

        return (jax.vmap(one)(keys)[:, m : m + side, m : m + side] + 1.0) / 2.0

    params = dict(model.variables["params"])
    if args.inject:
        params |= {f"noise_{i}": jnp.zeros(w) for i, w in enumerate(WIDTHS[1:])}
    tx = optax.adam(args.lr)
    opt = tx.init(params)

    @jax.jit
    def step(params, opt, key):
        def loss(p):
            return jnp.mean(loss_fn(render(p, key[None], args.size), None, key)[0])

        value, g = jax.value_and_grad(loss)(params)
        upd, opt = tx.update(g, opt, params)
        return optax.apply_updates(params, upd), opt, value

    keys = jnp.stack([jax.random.fold_in(jax.random.key(7), i) for i in range(4)])
    show = jax.jit(lambda p: render(p, keys, 256))
    name = "finetune" + ("-inject" if args.inject else "")
    rows = {"0": score(show(params), f"{name}-0")}
    t0 = time.time()
    for s in range(1, max(args.evals) + 1):
        params, opt, value = step(params, opt, jax.random.fold_in(jax.random.key(123), s))
        if s in args.evals:
            print(f"  step {s}: loss {float(value):.3g}, {time.time() - t0:.0f} s", flush=True)
            rows[str(s)] = score(show(params), f"{name}-{s}")
            if args.inject:
                rows[str(s)]["noise_scale"] = [round(float(jnp.mean(jnp.abs(params[f"noise_{i}"]))), 4) for i in (0, 1)]
    return {"mode": name, "lr": args.lr, "size": args.size, "seconds": round(time.time() - t0), "rows": rows}


ARCH = {"relu1_1": (), "relu2_1": ((64, True),), "relu3_1": ((128, True), (128, False), (64, True))}


def cascade(model, style, args, score) -> dict:
    import jax
    import jax.numpy as jnp
    import optax
    from flax import linen as nn

    from jtex import mgan, patchbank, spotnoise, vgg, wct
    from jtex.mgan_data import exemplar_crops

    cfg, vp = model.config, model.vgg_params

    class LevelDecoder(nn.Module):  # the VGG's mirror from ``level`` to pixels (circular padding: textures tile)
        level: str

        @nn.compact
        def __call__(self, f):
            x = f
            for width, up in ARCH[self.level]:
                x = nn.relu(nn.Conv(width, (3, 3), padding="CIRCULAR")(x))
                if up:
                    x = jnp.repeat(jnp.repeat(x, 2, 1), 2, 2)
                    x = nn.relu(nn.Conv(width, (3, 3), padding="CIRCULAR")(x))
            return nn.Conv(3, (3, 3), padding="CIRCULAR")(x) + 0.5

    def enc(x, level):
        return vgg.features(vp, x, (level,), padding="circular", pooling=cfg.pooling)[level]

    crops = jnp.asarray(exemplar_crops(cfg, style))
    copies = patchbank.augmented_copies(style)
    start = "swap" if args.swap else "spot"
    x = jnp.asarray(mgan.generate(model, jax.random.key(7), (4, 256, 256), noise=start))
    rows = {start: score(x, f"cascade-{start}")}
    y, fits, t0 = x, {}, time.time()
    for level in args.levels:
        dec = LevelDecoder(level)
        params = dec.init(jax.random.key(0), enc(crops[:1, :128, :128], level))
        tx = optax.adam(1e-3)
        opt = tx.init(params)

        @jax.jit
        def step(params, opt, key, dec=dec, level=level):
            target, _ = mgan.draw(key, crops, crops, 4, 128)
            f = enc(target, level)

            def loss(p):
                out = dec.apply(p, f)
                mse = jnp.mean((out - target)[:, 8:-8, 8:-8] ** 2)  # the crops do not wrap: their rim left out
                feat = jnp.mean((enc(out, level) - f) ** 2) / (jnp.mean(f**2) + 1e-8)
                return mse + feat, (mse, feat)

            (_, aux), g = jax.value_and_grad(loss, has_aux=True)(params)
            upd, opt = tx.update(g, opt, params)
            return optax.apply_updates(params, upd), opt, aux

        for s in range(args.steps):
            params, opt, (mse, feat) = step(params, opt, jax.random.fold_in(jax.random.key(1), s))
        fits[level] = {"pixel_mse": round(float(mse), 5), "feature": round(float(feat), 4)}
        print(f"  {level} decoder: pixel MSE {float(mse):.4g}, feature {float(feat):.3g}", flush=True)
        if args.swap:  # the texture's map at the level style-swapped to the exemplar's windows there
            ex_map = np.asarray(enc(jnp.asarray(copies[patchbank.ORIGINAL])[None], level))[0][1:-1, 1:-1]
            sp = spotnoise.spots([ex_map])
            f = jax.jit(jax.vmap(lambda g, sp=sp: spotnoise.swap(g, sp)))(enc(y, level))
        else:
            st = wct.exemplar_stats([np.asarray(enc(jnp.asarray(c)[None], level))[0] for c in copies])
            f = jax.vmap(wct.transform, in_axes=(0, None, None))(enc(y, level), st.mean, st.colour)
        y = jnp.clip(dec.apply(params, f), 0.0, 1.0)
        rows[level] = score(y, f"cascade{'-swap' if args.swap else ''}-{level}")
    return {"mode": "cascade-swap" if args.swap else "cascade", "levels": list(args.levels), "steps": args.steps,
            "decoders": fits, "seconds": round(time.time() - t0), "rows": rows}  # fmt: skip


def swap(model, args, score) -> dict:
    """Spot field -> Chen & Schmidt's style swap at relu4_1 (every ``--patch``² window of the periodic field
    replaced by the exemplar's window of highest normalised correlation, overlaps averaged), ``--rounds``
    times, then decoded as ``generate`` does."""
    import jax
    import jax.numpy as jnp

    from jtex import mgan, spotnoise
    from jtex.decoders import STRIDE, Decoder
    from jtex.mdan import to_unit
    from jtex.mgan_render import SPOT_PAD

    k = args.patch
    full = spotnoise.Spots(model.spots.maps, model.spots.mean, np.eye(model.spots.mean.shape[0], dtype=np.float32))
    match = spotnoise.matcher(full, k)  # all 512 channels: the identity as the basis
    dec = Decoder(upsample=model.config.decoder)
    m = SPOT_PAD * STRIDE

    def swapped(f):
        for r in range(args.rounds):
            pick = match(f)
            if args.place == "centre" or (args.place == "last-centre" and r == args.rounds - 1):
                # the matched window's centre cell only: every cell an exemplar cell
                f = jnp.roll(pick[:, :, k // 2, k // 2], (k // 2, k // 2), axis=(0, 1))
            else:
                f = spotnoise.place(pick)
        return f

    @jax.jit
    def render(keys):
        def one(key):
            f = swapped(spotnoise.field(model.spots, key, 256 // STRIDE, 256 // STRIDE))
            return jnp.pad(f, ((SPOT_PAD, SPOT_PAD), (SPOT_PAD, SPOT_PAD), (0, 0)), mode="wrap")

        out = to_unit(dec.apply(model.variables, jax.vmap(one)(keys), train=False))
        return jnp.clip(out[:, m : m + 256, m : m + 256], 0.0, 1.0)

    keys = jnp.stack([jax.random.fold_in(jax.random.key(7), i) for i in range(4)])
    t0 = time.time()
    rows = {"spot": score(mgan.generate(model, jax.random.key(7), (4, 256, 256), noise="spot"), "swap-spot")}
    name = f"swap-k{k}-r{args.rounds}" + ("" if args.place == "mean" else f"-{args.place}")
    rows[name] = score(render(keys), name)
    return {
        "mode": name,
        "patches": int(len(spotnoise.bank(full, k))),
        "seconds": round(time.time() - t0),
        "rows": rows,
    }


def markdown(res: dict) -> str:
    lines = [
        f"MGAN spot textures refined ({res.get('machine', '?')}, jax {res.get('jax', '?')}); ratio to the Gram "
        "synthesis, lower is better.",
        "",
        "| entry | row | swd_s1 | swd_s2 | swd_s4 | spectrum | input_use | seam |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, e in res.get("entries", {}).items():
        for row, r in e["rows"].items():
            cells = " | ".join(f"{r[k]:.2f}" for k in (*KEYS, "input_use", "seam"))
            lines.append(f"| {name} | {row} | {cells} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="a jtex train-mgan run folder (method wct)")
    ap.add_argument("--mode", choices=("finetune", "cascade", "swap"), default="finetune")
    ap.add_argument("--inject", action="store_true", help="finetune: noise inputs at the 1/4 and 1/2 stages")
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--size", type=int, default=256, help="finetune: training textures size²")
    ap.add_argument("--evals", type=int, nargs="+", default=[100, 200, 300], help="finetune: score at these steps")
    ap.add_argument("--levels", nargs="+", default=["relu3_1", "relu2_1"], choices=tuple(ARCH))
    ap.add_argument("--steps", type=int, default=400, help="cascade: steps per level decoder")
    ap.add_argument("--swap", action="store_true", help="cascade: from swap textures, style swaps at each level")
    ap.add_argument("--patch", type=int, default=3, help="swap: window side in relu4_1 cells")
    ap.add_argument("--rounds", type=int, default=1, help="swap: style swaps in a row")
    ap.add_argument("--place", choices=("mean", "centre", "last-centre"), default="mean",
                    help="swap: overlaps averaged, or a cell its match's centre (each round, or the last)")  # fmt: skip
    ap.add_argument("--out", default="runs/mgan_refine_probe")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    res = results_file.start(RESULTS, markdown, args.markdown, entries="entries")
    if res is None:
        return
    import mgan_quality

    from jtex import mdan, mgan

    model = mgan.load(args.model)
    if model.spots is None:
        raise SystemExit(f"{args.model}: a wct model (spot noise) is needed")
    style = mdan.load_style(model.config.teacher(0))
    stem = Path(model.config.source).stem
    gram = mgan_quality.gram_row(style, stem, 256)["gram"]
    out = Path(args.out) / stem
    out.mkdir(parents=True, exist_ok=True)
    score = scorer(model, style, gram, out)
    modes = {"cascade": lambda: cascade(model, style, args, score), "swap": lambda: swap(model, args, score)}
    entry = modes.get(args.mode, lambda: finetune(model, args, score))()
    if RESULTS.exists():  # another run may have added entries meanwhile
        res["entries"] = json.loads(RESULTS.read_text()).get("entries", {}) | res["entries"]
    res["entries"][f"{stem}-{entry['mode']}"] = {"model": args.model, **entry}
    RESULTS.write_text(json.dumps(res, indent=2))
    print(markdown(res))


if __name__ == "__main__":
    main()
