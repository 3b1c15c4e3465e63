"""Texture Networks (Ulyanov et al. 2016): train a feed-forward generator once, then sample in one call.

    cfg = TexNetConfig.preset("quick", source="examples/brick.png")
    train(cfg, "runs/brick-texnet")                         # or: jtex train-texnet -s ... --output-dir ...
    model = load("runs/brick-texnet")
    images = sample(model, jax.random.key(0), (4, 512, 512))   # (4, 512, 512, 3) in [0, 1]

    # stylisation: the exemplar is the style, a folder of photos the content
    cfg = TexNetConfig.preset("quick", source="style.jpg", content_dir="photos/")
    out = stylize(train(cfg, "runs/style"), photo, jax.random.key(0))   # photo's size, [0, 1]

The generator is :class:`jtex.generators.PyramidGenerator`; the descriptor
is the frozen normalised VGG-19 of the optimisation engine, and the losses
are the engine's (:mod:`jtex.objective`):

* ``gatys`` (the paper's): Grams of relu1_1, relu2_1, relu3_1, relu4_1 and
  relu5_1, each ``FᵀF / (C H W)``, mean squared difference to the
  exemplar's (``1 / C²`` times the squared Frobenius distance), weight 1 per layer.
* ``multiscale``: Snelgrove's objective (pool1 + relu3_2, Gram / (C H W),
  summed over a 4-octave Gaussian pyramid of each sample), which the original
  authors never paired with a generator.
* ``swd``: the sliced Wasserstein loss of Heitz et al. (CVPR 2021), who
  trained this generator with it: on relu1_1 .. relu5_1, each sample's
  channel vectors projected on C random unit directions (C the layer's
  width), drawn afresh every step, sorted and compared with the exemplar's
  (at most 16384 of its positions), weight 1 per layer.

With ``octaves`` > 1, ``gatys`` and ``swd`` are also taken on the sample's
Gaussian pyramid (circular) against the exemplar's, every layer at every
octave, octave o weighted ``octave_weight ** o``: the coarser octaves see
structure 2x, 4x, ... as large as relu5_1 does at full size. ``quick`` uses 3
octaves at weight 0.5; the paper used 1.

A stylisation network (``content_dir`` set) also takes a photo, average-pooled
to every scale beside the noise, and its loss adds ``content_weight`` times the
mean squared difference of relu4_2 maps of output and photo (see :func:`_loss_fn`).

Samples are seen on the torus (circular VGG padding and pyramid), as the
generator's circular convolutions make them; exemplars with 'same' padding.
Training: Adam (β 0.9, 0.999, ε 1e-8), learning rate ``lr`` times
``lr_decay`` every ``decay_every`` steps (the paper's 0.1, 0.8, 300), fresh
noise every step. With batch norm, the running statistics are recomputed
with the final weights at the end ("precise" statistics over
``calibration_batches`` batches), so sampling uses statistics of the network
it runs.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jtex import figures, generators, image, objective, training, weights
from jtex.errors import JtexError
from jtex.texnet_config import LOSSES, PAPER_LAYERS, TexNetConfig

__all__ = ["LOSSES", "PAPER_LAYERS", "TexNet", "TexNetConfig", "load", "sample", "stylize", "train"]

KIND = "texture_net"


class TrainState(NamedTuple):
    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any


class TexNet(NamedTuple):
    """A trained generator: its config and Flax variables (``params``, ``batch_stats``)."""

    config: TexNetConfig
    variables: dict


def load_exemplar(cfg: TexNetConfig, array: np.ndarray | None = None) -> np.ndarray:
    """The exemplar as (H, W, 3) in [0, 1], its longer side resized to ``exemplar_size``."""
    x = image.from_array(array) if array is not None else image.load(cfg.source)
    h, w = x.shape[:2]
    if max(h, w) != cfg.exemplar_size:
        x = image.resize(x, width=cfg.exemplar_size) if w >= h else image.resize(x, height=cfg.exemplar_size)
    return x


def schedule(cfg: TexNetConfig):
    import optax

    return optax.exponential_decay(cfg.lr, cfg.decay_every, cfg.lr_decay, staircase=True)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _l1_normalised_gradient(f, scale: float):
    """Identity whose backward pass rescales the gradient to L1 norm ``scale`` (v1's TextureLoss: 1, +1e-8)."""
    return f


_l1_normalised_gradient.defvjp(
    lambda f, scale: (f, None), lambda scale, _, g: (scale * g / (jnp.sum(jnp.abs(g)) + 1e-8),)
)

CONTENT_LAYER = "relu4_2"
# settings newer than some run folders, with the value those were trained with
ADDED = {"upsample": "nearest", "octaves": 1, "octave_weight": 1.0, "mrf_weight": 0.0}
MRF_LAYER = "relu4_1"  # mrf_weight: each 3x3 window of the sample's map pulled to its best exemplar window


def _loss_fn(cfg: TexNetConfig, vgg_params, exemplar: np.ndarray):
    """Per-sample losses ``(x, content) -> (texture (N,), content (N,))``, the engine's statistics and targets.

    With ``normalize_gradients`` (the authors' v1 default) the gradient each
    layer's Gram term sends into its feature map is L1-normalised before it
    joins the rest of the backward pass, so every layer pulls equally hard:
    without it relu1_1 outweighs relu4_1 and relu5_1 by 3 to 5 orders of
    magnitude (measured on the brick) and the generator learns fine statistics only.
    The loss value is unchanged.

    Stylisation (``content`` given, photos (N, H, W, 3)): the mean squared
    difference of the relu4_2 maps of ``x`` and of the photo, times
    ``content_weight``, seen with the same padding. With ``normalize_gradients``
    its gradient is rescaled to L1 norm ``content_weight`` (the texture layers
    have 1 each), so the weight means the same whatever the network's scale; v1
    did not normalise its content term, so its weights (style 1e3, content
    0.6-0.8, unnormalised Caffe VGG) do not carry over.
    """
    from jtex import losses, pyramid, spotnoise, vgg

    scfg = cfg.synth_config()
    targets = objective.targets(vgg_params, [exemplar], scfg, separate=False)
    spec = objective.output_spec(scfg)
    layer_w = objective.layer_weights(scfg)
    kind = scfg.loss[0][0]  # the one statistic (weight 1): gram, or swd for --loss swd

    def norm(f, scale=1.0):
        return _l1_normalised_gradient(f, scale) if cfg.normalize_gradients else f

    if cfg.mrf_weight:  # the exemplar's own map ('same' padding), its frame cell (VGG's zero padding) cut
        m = vgg.features(vgg_params, jnp.asarray(exemplar)[None], (MRF_LAYER,), pooling=spec.pooling)[MRF_LAYER][0]
        mrf = jax.vmap(spotnoise.window_loss(spotnoise.spots([m[1:-1, 1:-1] if min(m.shape[:2]) > 5 else m])))

    def loss(x, content=None, key=None):
        texture = content_term = 0.0
        for o, level in enumerate(pyramid.gaussian(x, spec.octaves, padding=spec.pyr_padding)):
            want = spec.layers + ((CONTENT_LAYER,) if content is not None and o == 0 else ())
            w_o = cfg.octave_weight**o
            feats = vgg.features(vgg_params, level, want, padding=spec.vgg_padding, pooling=spec.pooling)
            for l, name in enumerate(spec.layers):
                # swd's directions are redrawn every step (Heitz et al.), from the step's key
                k = jax.random.fold_in(key, 16 * o + l) if kind == "swd" else None
                d = losses.distance(kind, norm(feats[name], w_o), targets[o][l][kind], norm=spec.gram, mul=scfg.mul,
                                    key=k, projections=spec.swd_projections)  # fmt: skip
                texture = texture + w_o * layer_w[l] * d
            if cfg.mrf_weight and o == 0:
                texture = texture + cfg.mrf_weight * mrf(norm(feats[MRF_LAYER], cfg.mrf_weight))
            if content is not None and o == 0:
                target = vgg.features(vgg_params, content, (CONTENT_LAYER,), padding=spec.vgg_padding,
                                      pooling=spec.pooling)[CONTENT_LAYER]  # fmt: skip
                f = norm(feats[CONTENT_LAYER], cfg.content_weight)
                diff = f - jax.lax.stop_gradient(target)
                content_term = cfg.content_weight * jnp.mean(diff * diff, axis=(1, 2, 3))
        return texture, content_term * jnp.ones(x.shape[0])

    return loss


def make_step(cfg: TexNetConfig, vgg_params, exemplar: np.ndarray, photos=None):
    """The train step ``(state, key) -> (state, metrics)`` (one jitted call) and the optimiser.

    A stylisation config takes its photo crops from ``photos`` (a
    :class:`jtex.photos.PhotoSet`), drawn on the host from the step's key.
    """
    import optax

    model, texture = cfg.generator(), _loss_fn(cfg, vgg_params, exemplar)
    tx = _optimizer(cfg)

    def loss_fn(params, batch_stats, noise, content, key):
        out, upd = model.apply(
            {"params": params, "batch_stats": batch_stats}, noise, content, train=True, mutable=["batch_stats"]
        )
        x = generators.to_image(out)
        tex, con = texture(x, content, key)
        return jnp.mean(tex + con), (upd.get("batch_stats", {}), x, jnp.mean(con))

    @jax.jit
    def jitted(state: TrainState, key, content):
        noise = generators.draw_noise(key, cfg.batch, cfg.size, cfg.size, scales=cfg.scales, depth=cfg.noise_depth)
        (loss, (stats, x, con)), g = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params, state.batch_stats, noise, content, jax.random.fold_in(key, 1)
        )
        updates, opt_state = tx.update(g, state.opt_state, state.params)
        metrics = {
            "loss": loss,
            "pixel_std": jnp.mean(jnp.std(x, axis=(1, 2, 3))),
            "clipped": jnp.mean((x < 0) | (x > 1)),
            "grad_norm": jnp.sqrt(sum(jnp.sum(a * a) for a in jax.tree.leaves(g))),
        }
        if content is not None:
            metrics["content_loss"] = con
        return TrainState(state.step + 1, optax.apply_updates(state.params, updates), stats, opt_state), metrics

    def step(state: TrainState, key):
        return jitted(state, key, _content_batch(cfg, photos, key))

    return step, tx


def _content_batch(cfg: TexNetConfig, photos, key, n: int | None = None):
    """The step's photo crops (a stylisation config), or None."""
    if not cfg.stylization:
        return None
    if photos is None:
        raise JtexError("a stylisation network trains on photos: give --content-dir")
    return photos.batch(key, n or cfg.batch, cfg.size)


def init_state(cfg: TexNetConfig, tx) -> TrainState:
    key = jax.random.fold_in(jax.random.key(cfg.seed), 0)
    noise = generators.draw_noise(key, 1, cfg.size, cfg.size, scales=cfg.scales, depth=cfg.noise_depth)
    content = jnp.zeros((1, cfg.size, cfg.size, 3)) if cfg.stylization else None
    v = cfg.generator().init(jax.random.fold_in(key, 1), noise, content, train=False)
    params, stats = v["params"], v.get("batch_stats", {})
    return TrainState(jnp.zeros((), jnp.int32), params, stats, tx.init(params))


def calibrate(cfg: TexNetConfig, variables: dict, key, batches: int, photos=None) -> dict:
    """Batch-norm running statistics recomputed with the final weights (mean over ``batches`` batches)."""
    if cfg.norm != "batch" or batches < 1:
        return variables
    exact = cfg.generator().clone(momentum=0.0)  # running stats := this batch's

    @jax.jit
    def batch_stats(k, content):
        noise = generators.draw_noise(k, cfg.batch, cfg.size, cfg.size, scales=cfg.scales, depth=cfg.noise_depth)
        _, upd = exact.apply(variables, noise, content, train=True, mutable=["batch_stats"])
        return upd["batch_stats"]

    keys = [jax.random.fold_in(key, i) for i in range(batches)]
    stats = [batch_stats(k, _content_batch(cfg, photos, k)) for k in keys]
    mean = jax.tree.map(lambda *a: jnp.mean(jnp.stack(a), axis=0), *stats)
    return {**variables, "batch_stats": mean}


def train(
    cfg: TexNetConfig,
    output_dir,
    *,
    exemplar: np.ndarray | None = None,
    vgg_params=None,
    progress: bool = True,
    overwrite: bool = False,
) -> TexNet:
    """Train a generator into ``output_dir`` (resuming a run there); returns the :class:`TexNet`.

    Args:
      cfg: the settings (see :meth:`TexNetConfig.preset`); ``cfg.source`` names the exemplar file,
        ``cfg.content_dir`` (if set) the folder of training photos of a stylisation network.
      output_dir: the run folder; running again with the same settings resumes
        (with more ``steps``, training goes on).
      exemplar: an (H, W, 3) array to use instead of ``cfg.source``.
      vgg_params: descriptor weights to use instead of ``cfg.weights`` (e.g. a tiny net in tests).
      overwrite: start again in a folder that holds another run.
    """
    from jtex import rundir

    cfg = cfg.validate()
    if cfg.norm == "batch" and cfg.batch == 1 and progress:
        print("jtex: note: batch norm over a batch of 1 is instance norm in training, but samples use averaged "
              "statistics; --norm instance samples what was trained", file=sys.stderr)  # fmt: skip
    ex = load_exemplar(cfg, exemplar)
    vgg_params, wmeta = weights.resolve_given(cfg.weights, vgg_params)
    settings = cfg.settings() | {
        "exemplar_sha256": training.array_sha256(ex),
        "weights_sha256": wmeta.get("npz_sha256"),
    }
    photos = None
    if cfg.stylization:
        from jtex.photos import PhotoSet

        photos = PhotoSet.load(cfg.content_dir, cfg.size, progress=progress)
        settings |= {"content_sha256": photos.digest(), "content_photos": len(photos)}
    run = rundir.RunDir(output_dir, settings, seed=cfg.seed, weights=wmeta, overwrite=overwrite, added=ADDED)
    try:
        if run.finished and run.read_result().get("steps", 0) >= cfg.steps:
            return load(output_dir)
        (run.path / "result.json").unlink(missing_ok=True)  # more steps: the run goes on
        run.save_image("exemplar.png", ex)
        step, tx = make_step(cfg, vgg_params, ex, photos)
        model = cfg.generator()
        preview_key = jax.random.fold_in(jax.random.key(cfg.seed), 2)
        shown = _content_batch(cfg, photos, preview_key, 4)

        def preview(state):
            v = {"params": state.params, "batch_stats": state.batch_stats}
            out = _generate_fn(model, 4, cfg.size, cfg.size, cfg.noise_depth)(v, preview_key, shown)
            # a row of samples; or the photos above what the network makes of them
            return figures.contact_sheet(([] if shown is None else list(shown)) + list(np.asarray(out)), columns=4)

        meta = {"kind": KIND, "config": dataclasses.asdict(cfg)}
        state, seconds = training.fit(
            run, state=init_state(cfg, tx), step_fn=step, key=jax.random.fold_in(jax.random.key(cfg.seed), 3),
            steps=cfg.steps, save_every=cfg.save_every, preview=preview, meta=meta,
            warmup=min(100, cfg.steps // 5), lr=schedule(cfg), progress=progress, desc="train-texnet",
        )  # fmt: skip
        variables = calibrate(
            cfg, {"params": state.params, "batch_stats": state.batch_stats},
            jax.random.fold_in(jax.random.key(cfg.seed), 4), cfg.calibration_batches, photos,
        )  # fmt: skip
        final = TrainState(state.step, variables["params"], variables.get("batch_stats", {}), state.opt_state)
        run.checkpoint(int(state.step), {**meta, "step": int(state.step), "calibrated": True}, final)
        net = TexNet(cfg, variables)
        run.save_image("samples.png", preview(final))
        m = run.metrics()
        run.write_result(
            {
                "kind": KIND,
                "steps": int(state.step),
                "final_loss": m[-1]["loss"] if m else None,
                "seconds": training.session_seconds(m) or round(seconds, 2),
                "parameters": int(sum(np.size(a) for a in jax.tree.leaves(variables["params"]))),
                "stylization": cfg.stylization,
                "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            }
        )
        return net
    finally:
        run.close()


def load(path) -> TexNet:
    """The trained generator in a run folder written by :func:`train` (its latest checkpoint)."""
    import orbax.checkpoint as ocp

    path = Path(path)
    cfg_path = path / "config.json"
    if not (path / "checkpoints").is_dir() or not cfg_path.is_file():
        raise JtexError(f"{path} holds no trained texture network; train one with: jtex train-texnet -s IMAGE ...")
    manager = ocp.CheckpointManager((path / "checkpoints").absolute(), item_names=("meta", "arrays"))
    step = manager.latest_step()
    if step is None:
        raise JtexError(f"{path} has no finished checkpoint yet; run the training command again to resume it")
    meta = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    if meta.get("kind") != KIND:
        raise JtexError(f"{path} holds a {meta.get('kind', 'synthesis')!r} run, not a texture network")
    known = {f.name for f in dataclasses.fields(TexNetConfig)}
    cfg = TexNetConfig(**{k: v for k, v in meta["config"].items() if k in known}).validate()
    like = training.blank_like(init_state(cfg, _optimizer(cfg)))
    arrays = manager.restore(step, args=ocp.args.Composite(arrays=ocp.args.StandardRestore(like)))["arrays"]
    manager.close()
    return TexNet(cfg, {"params": arrays.params, "batch_stats": arrays.batch_stats})


def _optimizer(cfg):
    import optax

    return optax.adam(schedule(cfg), b1=0.9, b2=0.999, eps=1e-8)


@functools.lru_cache(maxsize=32)
def _generate_fn(model, count: int, height: int, width: int, depth: int):
    """Jitted ``(variables, key, content or None) -> (count, height, width, 3)`` images in [0, 1]."""

    @jax.jit
    def fn(variables, key, content):
        noise = generators.draw_noise(key, count, height, width, scales=model.scales, depth=depth)
        out = model.apply(variables, noise, content, train=False)
        return jnp.clip(generators.to_image(out), 0.0, 1.0)

    return fn


def sample(model: TexNet, key: jax.Array, shape: tuple[int, int, int]) -> np.ndarray:
    """``shape = (N, H, W)`` samples, (N, H, W, 3) float32 in [0, 1], in one jitted call.

    H and W are multiples of ``2 ** (scales - 1)``; sample i uses noise from
    ``fold_in(key, i)`` alone, so it does not depend on N or on the other samples.
    """
    if model.config.stylization:
        raise JtexError("this is a stylisation network: it turns photos into images (jtex stylize), it does not sample")
    n, h, w = (int(v) for v in shape)
    m = 2 ** (model.config.scales - 1)
    if n < 1 or h < m or w < m or h % m or w % m:
        raise JtexError(f"sample size {w}x{h} (count {n}): use a count >= 1 and sides that are multiples of {m}")
    fn = _generate_fn(model.config.generator(), n, h, w, model.config.noise_depth)
    return np.asarray(fn(model.variables, key, None))


def stylize(model: TexNet, photo: np.ndarray, key: jax.Array, *, max_side: int | None = 1024) -> np.ndarray:
    """A photo (H, W, 3) in [0, 1] through a stylisation network: (H', W', 3) float32 in [0, 1].

    The photo keeps its size (H' x W' = H x W) unless its longer side is over
    ``max_side``, then it is shrunk to that first. The network needs sides
    that are multiples of ``2 ** (scales - 1)`` and sees its input as a torus,
    so the photo is mirrored outwards by at least that many pixels on every
    side, run through, and the result cropped back: the wrap-around falls in
    the mirrored margin, not across the picture. ``key`` draws the noise.
    """
    from jtex import image

    cfg = model.config
    if not cfg.stylization:
        raise JtexError("this is a texture network (trained without --content-dir): sample it with jtex sample")
    x = image.from_array(photo)
    if max_side is not None and max(x.shape[:2]) > max_side:
        x = image.resize(x, scale=max_side / max(x.shape[:2]))
    h, w = x.shape[:2]
    m = 2 ** (cfg.scales - 1)
    big_h, big_w = -(-(h + 2 * m) // m) * m, -(-(w + 2 * m) // m) * m
    top, left = (big_h - h) // 2, (big_w - w) // 2
    padded = np.pad(x, ((top, big_h - h - top), (left, big_w - w - left), (0, 0)), mode="symmetric")
    fn = _generate_fn(cfg.generator(), 1, big_h, big_w, cfg.noise_depth)
    out = fn(model.variables, key, jnp.asarray(padded[None]))
    return np.asarray(out[0, top : top + h, left : left + w])
