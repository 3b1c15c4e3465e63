"""Markovian GANs (Li & Wand, ECCV 2016), part 2 — MGAN: a feed-forward decoder of VGG features, from MDAN targets.

    cfg = MGANConfig.preset("quick", source="examples/gravel.png")       # noise -> texture
    model = train(cfg, "runs/gravel-mgan")     # or: jtex train-mgan -s examples/gravel.png --output-dir ...
    model = load("runs/gravel-mgan")
    imgs = generate(model, jax.random.key(0), (4, 256, 512))   # (4, 256, 512, 3) in [0, 1]; noise="brown" ...
    # photo -> stylised image: train with content_dir="photos/", then stylize(model, photo)

``method="wct"`` (the default of a noise model): the decoder learns to invert
relu4_1 on crops of the exemplar (its augmented copies; pixel MSE plus the
adversarial term below, no teachers). To make a texture, the decoder decodes
a Gaussian relu4_1 field with the exemplar's relu4_1 auto-covariances (spot
noise, :mod:`jtex.spotnoise`; the texture tiles) — by default its windows
first swapped for the exemplar's own (:func:`jtex.spotnoise.swap`) — or a noise image's relu4_1
map whitened and coloured to the exemplar's statistics (:mod:`jtex.wct`, Li et
al. 2017); either way the result takes the exemplar's colour histogram
(:func:`jtex.colour.match_exemplar`). :func:`stylize` does the latter to a
photo. Generating and stylising live in :mod:`jtex.mgan_render`. The authors'
MDAN-teacher training below did not learn a texture from noise on 2 CPU cores
(README).

``method="mdan"``, as the authors' ``train.lua`` (stages 1 and 3):

1. **Teachers.** ``teachers`` inputs — seeded noise fields
   (:mod:`jtex.noisefields`: brown 1/f² and Perlin, alternating with
   ``noise="both"``) or the photos of ``content_dir`` (centre crops) — are
   each turned into a target by guided MDAN (:func:`jtex.mdan.mdan`, the
   input as its content: the target keeps the input's layout at relu5_1 and
   takes the exemplar's patches). Each target is an MDAN run folder under
   ``DIR/teachers/``, so an interrupted training resumes there too. The
   public code only ever did photos; the noise -> texture mode is the paper's.
2. **Decoder.** :class:`jtex.decoders.Decoder` maps the frozen VGG-19's
   relu4_1 map of an input crop (``size``², random position and mirror) to
   pixels in [-1, 1]; its loss is ``(1 pixel MSE to the target crop +
   adv_weight hinge(D(relu3_1(out)), +1)) / (1 + adv_weight)``, with the
   MGAN patch discriminator (:class:`jtex.discriminators.ConvDiscriminator`,
   outer ring masked) taking one Adam step per step on the target's
   relu3_1 (real) and the output's (fake). Adam lr 0.02, beta1 0.5 for both.
   One step is one jitted call. After training, BatchNorm's statistics are
   recomputed with the final weights and used in inference mode.

Preprocessing: images enter jtex's normalised VGG-19 as RGB in [0, 1] (its
first layer holds Caffe's BGR x 255 - mean), where the authors fed [-1, 1]
RGB straight into Caffe's VGG; the decoder's tanh output is in the authors'
[-1, 1] and is mapped to [0, 1] for the VGG and for the image.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jtex import training, weights
from jtex.decoders import ENCODER_LAYER, STRIDE, Decoder
from jtex.discriminators import FAKE, REAL, ConvDiscriminator, hinge_loss, mask_ring
from jtex.errors import JtexError
from jtex.mdan import MDANConfig, MDANResult, load_style, mdan, to_unit
from jtex.mgan_config import FEATURE_LAYERS, STYLE_LAYER, MGANConfig
from jtex.mgan_data import exemplar_crops, make_teachers, teacher_inputs
from jtex.mgan_render import MGAN, decode, generate, stylize, wct_model

__all__ = ["MDANConfig", "MDANResult", "MGAN", "MGANConfig", "generate", "load", "mdan", "stylize", "train"]

KIND = "mgan"
# Settings newer than some run folders, with the value those were trained with.
ADDED = {"method": "mdan", "feature_weight": 0.0}


class MGANState(NamedTuple):
    """What a training step changes: decoder and discriminator parameters, BatchNorm statistics, Adam states."""

    step: jax.Array
    g_params: Any
    g_stats: Any
    d_params: Any
    d_stats: Any
    g_opt: Any
    d_opt: Any


def _models(cfg: MGANConfig, d_features: int):
    return Decoder(upsample=cfg.decoder), ConvDiscriminator(features=d_features)


def _optimizers(cfg: MGANConfig):
    import optax

    return optax.adam(cfg.lr, b1=cfg.beta1), optax.adam(cfg.d_lr, b1=cfg.beta1)


def init_state(cfg: MGANConfig, enc_channels: int, d_features: int) -> MGANState:
    key = jax.random.key(cfg.seed)
    dec, dis = _models(cfg, d_features)
    side = cfg.size // STRIDE
    g = dec.init(jax.random.fold_in(key, 10), jnp.zeros((1, side, side, enc_channels)))
    d = dis.init(jax.random.fold_in(key, 11), jnp.zeros((1, cfg.size // 4, cfg.size // 4, d_features)))
    tx, dtx = _optimizers(cfg)
    zero = jnp.zeros((), jnp.int32)
    return MGANState(zero, g["params"], g["batch_stats"], d["params"], d["batch_stats"], tx.init(g["params"]),
                     dtx.init(d["params"]))  # fmt: skip


def draw(key, inputs, targets, n: int, size: int):
    """``n`` aligned random ``size``² crops (mirrored at random) of inputs and targets (T, S, S, 3) (jittable)."""
    t, s = inputs.shape[0], inputs.shape[1]
    k1, k2, k3 = jax.random.split(key, 3)
    idx = jax.random.randint(k1, (n,), 0, t)
    pos = jax.random.randint(k2, (n, 2), 0, s - size + 1)
    flip = jax.random.bernoulli(k3, 0.5, (n,))

    def one(i, p, f):
        a, b = (jax.lax.dynamic_slice(x, (i, p[0], p[1], 0), (1, size, size, 3))[0] for x in (inputs, targets))
        return jnp.where(f, a[:, ::-1], a), jnp.where(f, b[:, ::-1], b)

    return jax.vmap(one)(idx, pos, flip)


@functools.lru_cache(maxsize=8)
def make_step(cfg: MGANConfig, d_features: int):
    """The jitted ``(state, key, vgg_params, inputs, targets) -> (state, metrics)``."""
    import optax

    from jtex import vgg

    dec, dis = _models(cfg, d_features)
    tx, dtx = _optimizers(cfg)
    wp, wa = 1.0 / (1.0 + cfg.adv_weight), cfg.adv_weight / (1.0 + cfg.adv_weight)

    layers = tuple(dict.fromkeys((*(FEATURE_LAYERS if cfg.feature_weight else ()), STYLE_LAYER)))
    # wct: the inputs are the targets (draw takes the same crops of both), so one VGG pass over them gives
    # the decoder's relu4_1 input and the target's layers alike
    same = cfg.method == "wct"
    target_layers = tuple(dict.fromkeys((*layers, ENCODER_LAYER))) if same else layers

    def feats(vgg_params, images, which=layers):  # D's relu3_1 and, with feature_weight, the feature term's
        return vgg.features(vgg_params, images, which, pooling=cfg.pooling)

    def feature_term(fo, ft):  # relative MSE per layer, averaged: every layer counts alike
        if not cfg.feature_weight:
            return jnp.zeros(())
        return sum(jnp.mean((fo[k] - ft[k]) ** 2) / (jnp.mean(ft[k] ** 2) + 1e-8) for k in FEATURE_LAYERS) / len(
            FEATURE_LAYERS
        )

    def d_scores(params, stats, f):
        s, upd = dis.apply({"params": params, "batch_stats": stats}, f, train=True, mutable=["batch_stats"])
        return s, upd["batch_stats"]

    def d_loss(params, stats, real, fake):
        s_real, stats = d_scores(params, stats, real)
        s_fake, stats = d_scores(params, stats, fake)
        loss = hinge_loss(mask_ring(s_real, REAL), REAL) + hinge_loss(mask_ring(s_fake, FAKE), FAKE)
        return loss, (stats, s_real, s_fake)

    @jax.jit
    def step(state: MGANState, key, vgg_params, inputs, targets):
        x, y = draw(key, inputs, targets, cfg.batch, cfg.size)
        ft = feats(vgg_params, y, target_layers)
        enc = ft[ENCODER_LAYER] if same else feats(vgg_params, x, (ENCODER_LAYER,))[ENCODER_LAYER]

        def gen(gp):
            v = {"params": gp, "batch_stats": state.g_stats}
            out, upd = dec.apply(v, enc, train=True, mutable=["batch_stats"])
            return (out, feats(vgg_params, to_unit(out))), upd["batch_stats"]

        (out, fo), pull, g_stats = jax.vjp(gen, state.g_params, has_aux=True)
        (dl, (d_stats, s_real, s_fake)), g = jax.value_and_grad(d_loss, has_aux=True)(
            state.d_params, state.d_stats, ft[STYLE_LAYER], jax.lax.stop_gradient(fo[STYLE_LAYER])
        )
        upd, d_opt = dtx.update(g, state.d_opt, state.d_params)
        d_params = optax.apply_updates(state.d_params, upd)

        def g_loss(out, fo):  # the updated D, in training mode on the fakes (as the authors')
            mse = jnp.mean((out - (y * 2.0 - 1.0)) ** 2)
            feat = feature_term(fo, ft)
            s, _ = d_scores(d_params, d_stats, fo[STYLE_LAYER])
            adv = hinge_loss(mask_ring(s, REAL), REAL)
            return wp * (mse + cfg.feature_weight * feat) + wa * adv, (mse, adv, feat)

        (loss, (mse, adv, feat)), grads = jax.value_and_grad(g_loss, argnums=(0, 1), has_aux=True)(out, fo)
        (g,) = pull(grads)
        upd, g_opt = tx.update(g, state.g_opt, state.g_params)
        g_params = optax.apply_updates(state.g_params, upd)
        metrics = {"loss": loss, "pixel_mse": mse, "feature": feat, "adv": adv, "d_loss": dl, "pixel_std":
                   jnp.std(to_unit(out)), "d_real": jnp.mean(s_real), "d_fake": jnp.mean(s_fake)}  # fmt: skip
        return MGANState(state.step + 1, g_params, g_stats, d_params, d_stats, g_opt, d_opt), metrics

    return step


def calibrate(cfg: MGANConfig, variables: dict, vgg_params, inputs, key) -> dict:
    """BatchNorm running statistics recomputed with the final weights: the mean over ``calibration_batches``."""
    from jtex import vgg

    if cfg.calibration_batches < 1:
        return variables
    exact = Decoder(upsample=cfg.decoder, momentum=0.0)  # running stats := this batch's

    @jax.jit
    def stats(k):
        x, _ = draw(k, inputs, inputs, cfg.batch, cfg.size)
        enc = vgg.features(vgg_params, x, (ENCODER_LAYER,), pooling=cfg.pooling)[ENCODER_LAYER]
        return exact.apply(variables, enc, train=True, mutable=["batch_stats"])[1]["batch_stats"]

    all_stats = [stats(jax.random.fold_in(key, i)) for i in range(cfg.calibration_batches)]
    return {**variables, "batch_stats": jax.tree.map(lambda *a: jnp.mean(jnp.stack(a), axis=0), *all_stats)}


def train(cfg: MGANConfig, output_dir, *, exemplar=None, vgg_params=None, progress=True, overwrite=False) -> MGAN:
    """Train an MGAN into the run folder ``output_dir`` (resuming a run there); see the module docstring.

    The folder holds ``config.json``, ``exemplar.png``, ``metrics.jsonl``, ``checkpoints/``,
    ``samples/step_*.png``, ``loss.png``, ``samples.png`` and ``result.json``; with ``wct``
    ``textures.png``, with ``mdan`` ``teachers/NNN/`` (the MDAN targets) and ``teachers.png`` (inputs
    above targets). ``exemplar`` and ``vgg_params`` replace the files (tests). Returns :func:`load`'s model.
    """
    from jtex import figures, rundir, runtime

    if exemplar is not None and not cfg.source:
        cfg = dataclasses.replace(cfg, source="<array>")
    cfg = cfg.validate()
    runtime.configure()
    style = load_style(cfg.teacher(0), exemplar)
    vgg_params, wmeta = weights.resolve_given(cfg.weights, vgg_params)
    vgg_params = jax.tree.map(jnp.asarray, vgg_params)
    settings = cfg.settings() | {
        "exemplar_sha256": training.array_sha256(style),
        "weights_sha256": wmeta.get("npz_sha256"),
    }
    photos = None
    if cfg.photo_mode:
        from jtex.photos import PhotoSet

        photos = PhotoSet.load(cfg.content_dir, cfg.teacher_size, progress=progress)
        settings |= {"content_sha256": photos.digest(), "content_photos": len(photos)}
    run = rundir.RunDir(output_dir, settings, seed=cfg.seed, weights=wmeta, overwrite=overwrite, added=ADDED)
    try:
        if run.finished and run.read_result().get("steps", 0) >= cfg.steps:
            return load(output_dir, vgg_params=vgg_params)
        (run.path / "result.json").unlink(missing_ok=True)  # more steps: the run goes on
        run.save_image("exemplar.png", style)
        if cfg.method == "wct":  # the decoder learns to invert relu4_1 on the exemplar
            inputs = targets = exemplar_crops(cfg, style)
        else:
            inputs = teacher_inputs(cfg, photos)
            targets = make_teachers(cfg, run.path, style, inputs, vgg_params, progress)
            run.save_image("teachers.png", figures.contact_sheet(list(inputs[:4]) + list(targets[:4]),
                                                                columns=min(4, len(inputs))))  # fmt: skip
        shown = list(range(0, len(inputs), max(1, len(inputs) // 4)))[:4]  # spread over the exemplar copies
        enc_c = int(np.shape(vgg_params["conv4_1"]["kernel"])[-1])
        d_features = int(np.shape(vgg_params["conv3_1"]["kernel"])[-1])
        x_in, y_in = jnp.asarray(inputs), jnp.asarray(targets)
        jitted = make_step(_step_settings(cfg), d_features)
        show_in = inputs[shown]

        def preview(state):
            v = {"params": state.g_params, "batch_stats": state.g_stats}
            return figures.contact_sheet(list(show_in) + list(decode(v, vgg_params, show_in, cfg)),
                                         columns=len(shown))  # fmt: skip

        meta = {"kind": KIND, "config": dataclasses.asdict(cfg)}
        state, seconds = training.fit(
            run, state=init_state(cfg, enc_c, d_features), step_fn=lambda s, k: jitted(s, k, vgg_params, x_in, y_in),
            key=jax.random.fold_in(jax.random.key(cfg.seed), 3), steps=cfg.steps, save_every=cfg.save_every,
            preview=preview, meta=meta, warmup=min(100, cfg.steps // 5), progress=progress, desc="train-mgan",
        )  # fmt: skip
        variables = calibrate(cfg, {"params": state.g_params, "batch_stats": state.g_stats}, vgg_params, x_in,
                              jax.random.fold_in(jax.random.key(cfg.seed), 4))  # fmt: skip
        final = state._replace(g_params=variables["params"], g_stats=variables["batch_stats"])
        run.checkpoint(int(state.step), {**meta, "step": int(state.step), "calibrated": True}, final)
        run.save_image("samples.png", preview(final))
        model = load(output_dir, vgg_params=vgg_params)
        if cfg.method == "wct":
            textures = generate(model, jax.random.key(cfg.seed), (4, 2 * cfg.size, 2 * cfg.size))
            run.save_image("textures.png", figures.contact_sheet(list(textures)))
        m = run.metrics()
        run.write_result({
            "kind": KIND, "steps": int(state.step), "final_loss": m[-1]["loss"] if m else None,
            "final_pixel_mse": m[-1]["pixel_mse"] if m else None, "seconds_training": round(seconds, 2),
            "parameters": int(sum(np.size(a) for a in jax.tree.leaves(variables["params"]))),
            "photo_mode": cfg.photo_mode, "method": cfg.method, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        })  # fmt: skip
        return model
    finally:
        run.close()


def _step_settings(cfg: MGANConfig) -> MGANConfig:
    """``cfg`` with what the step's computation does not depend on blanked (the cache key of :func:`make_step`)."""
    keep = ("method", "size", "batch", "lr", "beta1", "d_lr", "adv_weight", "feature_weight", "decoder", "pooling")
    return MGANConfig(**{k: getattr(cfg, k) for k in keep})


def load(path, *, vgg_params=None) -> MGAN:
    """The trained MGAN in a run folder written by :func:`train` (its latest checkpoint)."""
    import orbax.checkpoint as ocp

    path = Path(path)
    if not (path / "checkpoints").is_dir() or not (path / "config.json").is_file():
        raise JtexError(f"{path} holds no trained MGAN; train one with: jtex train-mgan -s IMAGE --output-dir {path}")
    manager = ocp.CheckpointManager((path / "checkpoints").absolute(), item_names=("meta", "arrays"))
    step = manager.latest_step()
    if step is None:
        raise JtexError(f"{path} has no finished checkpoint yet; run the training command again to resume it")
    meta = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    if meta.get("kind") != KIND:
        raise JtexError(f"{path} holds a {meta.get('kind', 'synthesis')!r} run, not an MGAN")
    known = {f.name for f in dataclasses.fields(MGANConfig)}
    saved = ADDED | meta["config"]
    cfg = MGANConfig(**{k: v for k, v in saved.items() if k in known})
    if vgg_params is None:
        vgg_params, _ = weights.resolve(cfg.weights)
    vgg_params = jax.tree.map(jnp.asarray, vgg_params)
    enc_c = int(np.shape(vgg_params["conv4_1"]["kernel"])[-1])
    d_features = int(np.shape(vgg_params["conv3_1"]["kernel"])[-1])
    like = training.blank_like(init_state(cfg, enc_c, d_features))
    arrays = manager.restore(step, args=ocp.args.Composite(arrays=ocp.args.StandardRestore(like)))["arrays"]
    manager.close()
    variables = {"params": arrays.g_params, "batch_stats": arrays.g_stats}
    if cfg.method != "wct":
        return MGAN(cfg, variables, vgg_params)
    from jtex import image

    if not (path / "exemplar.png").is_file():
        raise JtexError(f"{path}/exemplar.png is missing: a wct MGAN needs its exemplar; train the model again")
    return wct_model(cfg, variables, vgg_params, image.load(path / "exemplar.png"))
