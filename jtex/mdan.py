"""Markovian GANs (Li & Wand, ECCV 2016), part 1 — MDAN: pixels optimised against a patch discriminator.

    cfg = MDANConfig(source="examples/gravel.png", width=128, height=128, steps=300)
    res = mdan(cfg, "runs/gravel-mdan")          # or: jtex mdan -s ... -ow 128 -oh 128 -m 300 --output-dir ...
    res.image                                      # (128, 128, 3) float32 in [0, 1]; also DIR/output.png
    # guided synthesis (style transfer): the pixels start from the photo, a relu5_1 content term holds its layout
    mdan(MDANConfig(source="style.png", content="photo.jpg", width=192, height=128), "runs/styled")

One step (one jitted call) is the authors' ``MDAN_wrapper.lua`` iteration:

1. the image's VGG-19 relu3_1 map is cut into 8x8 neural patches at stride 4
   (P of them); P real patches are drawn, with replacement, from the
   augmented exemplar (:mod:`jtex.patchbank`);
2. the discriminator (:class:`jtex.discriminators.PatchDiscriminator`) takes
   ``d_steps`` Adam steps (lr 0.02, beta1 0.5) on
   ``hinge(D(real), +1) + hinge(D(fake), -1)``, real and fake patches as two
   batches (its BatchNorm sees each batch's own statistics, as the authors');
3. the pixels take one Adam step (lr 0.02, beta1 0.5) on
   ``hinge(D(fake), +1)`` — the fakes scored by the updated D, each cell's
   gradient the mean over the patches that hold it (the authors' division by
   the overlap count) — plus ``tv_weight`` (1e-4) times
   ``½ Σ (Δx² + Δy²)`` over the (H-1) x (W-1) region, plus, guided,
   ``content_weight`` times ``mean((F - F_photo)²) / mean(F_photo²)`` at
   relu5_1 (a relative MSE, so the weight does not depend on the network's
   scale); then they are clipped to the image's range.

Grain (not the authors'). The discriminator sees relu3_1 patches only, and a texture's
finest statistics barely move its verdict: on a lunar photo kept out of the repository
MDAN's outputs lacked the exemplar's specks and small craters (finest-scale SWD 2.0-2.7x
a Gram synthesis'). ``gram_weight`` (1) adds the relative Gram distance
``sum_l |G_l - G_l*|^2 / |G_l*|^2`` at relu1_1 and relu2_1 (``G = F^T F / M``, the
exemplar's own Grams as targets), its gradient scaled to ``gram_weight`` times the
adversarial gradient's norm, as the content term's is; 0 is the authors' MDAN.

Preprocessing. The pixels live in the authors' units, RGB in [-1, 1] (so
``lr`` 0.02 is their step), but jtex's VGG-19 is the normalised network that
takes RGB in [0, 1] (its first layer maps to Caffe's BGR x 255 minus the
ImageNet mean), so the pixels enter it as ``(x + 1) / 2``. The authors fed
[-1, 1] straight into the unnormalised Caffe VGG-19 (no BGR, no x 255, no
mean): features about 1/128 of their trained scale, biases dominating; D's
BatchNorm and Adam make the loss balance nearly blind to that scale. Pooling
is max (as trained, the authors'; average measured worse), padding zero.

Colour. MDAN's discriminator normalises its features (BatchNorm), so it
barely sees a global shift of colour or contrast: outputs come out flat and
tinted (gravel: a colour distance 6x the Gram synthesis'). The authors
stretched the contrast (mean +- 2 std, then min-max); jtex matches each
channel's histogram to the exemplar's (``match_colour``, Gatys' post-process;
on gravel it cut the finest-scale SWD by a quarter); a grey exemplar's output is
made exactly grey first, as jtex's syntheses do (per-channel matching keeps the
blue and green specks MDAN leaves in dark spots: on a grey moon photo, swd_s1
0.20 with them, 0.13 without). Snapshots are raw.

Borders. Zero padding gives the outermost pixels odd gradients (a blue and
orange fringe 3 px deep); as jtex's syntheses, MDAN optimises a canvas
``margin`` (8) px larger on every side and crops it.

Unguided synthesis starts (``init_noise``) from the exemplar's spot noise (``spot``: its
random-phase texture, with its power spectrum and colours; :func:`start_image`) or from its
mean colour plus ``init_scale`` times unit noise (``white``, or ``brown`` 1/f²); guided
synthesis from the photo (resized to the output size).
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

from jtex import image, training, weights
from jtex.discriminators import FAKE, REAL, PatchDiscriminator, extract_patches, hinge_loss
from jtex.mgan_config import CONTENT_LAYER, GRAM_LAYERS, STYLE_LAYER, MDANConfig
from jtex.stats import gram, gram_distance

__all__ = ["MDANConfig", "MDANResult", "MDANState", "mdan"]

KIND = "mdan"


class MDANState(NamedTuple):
    """What a step changes: the pixels (1, H, W, 3) in [-1, 1], the discriminator, both Adam states."""

    step: jax.Array
    pixels: jax.Array
    d_params: Any
    d_stats: Any
    opt_state: Any
    d_opt_state: Any


class MDANResult(NamedTuple):
    """A finished MDAN run: the image (H, W, 3) float32 in [0, 1], its settings, steps done, seconds, folder."""

    image: np.ndarray
    config: MDANConfig
    steps: int
    seconds: float
    path: Path


def to_unit(pixels):
    """The authors' pixel units [-1, 1] -> RGB in [0, 1] (what jtex's VGG takes)."""
    return (pixels + 1.0) * 0.5


def tv_term(pixels):
    """``½ Σ (Δx² + Δy²)`` over the (H-1) x (W-1) region (the authors' ``TVLoss``, whose gradient is this one's)."""
    x = pixels[:, :-1, :-1]
    return 0.5 * (jnp.sum((x - pixels[:, :-1, 1:]) ** 2) + jnp.sum((x - pixels[:, 1:, :-1]) ** 2))


def load_style(cfg: MDANConfig, array: np.ndarray | None = None) -> np.ndarray:
    """The exemplar (H, W, 3) in [0, 1], its longer side resized to ``exemplar_size``."""
    x = image.from_array(array) if array is not None else image.load(cfg.source)
    h, w = x.shape[:2]
    if max(h, w) != cfg.exemplar_size:
        x = image.resize(x, width=cfg.exemplar_size) if w >= h else image.resize(x, height=cfg.exemplar_size)
    return x


def load_content(cfg: MDANConfig, array: np.ndarray | None = None) -> np.ndarray | None:
    """The content photo resized to the output's ``width`` x ``height`` (its aspect not kept), mirrored
    into the margin (:attr:`MDANConfig.canvas`), or None."""
    if array is None and not cfg.guided:
        return None
    x = image.from_array(array) if array is not None else image.load(cfg.content)
    x = image.resize(x, width=cfg.width, height=cfg.height)
    m = cfg.margin
    return np.pad(x, ((m, m), (m, m), (0, 0)), mode="symmetric") if m else x


def crop(cfg: MDANConfig, pixels) -> np.ndarray:
    """The output (H, W, 3) in [0, 1] from the canvas' pixels (1, H + 2 margin, W + 2 margin, 3) in [-1, 1]."""
    m = cfg.margin
    x = np.clip(np.asarray(to_unit(pixels), np.float32)[0], 0.0, 1.0)
    return x[m : m + cfg.height, m : m + cfg.width]


def _optimizers(cfg: MDANConfig):
    import optax

    return optax.adam(cfg.lr, b1=cfg.beta1), optax.adam(cfg.d_lr, b1=cfg.d_beta1)


def discriminator(cfg: MDANConfig, channels: int) -> PatchDiscriminator:
    """MDAN's D for patches of ``channels`` feature channels (256 on VGG-19's relu3_1)."""
    return PatchDiscriminator(features=channels, size=cfg.patch)


def start_image(cfg: MDANConfig, style: np.ndarray) -> jax.Array:
    """The unguided start: the canvas (H, W, 3) in [0, 1] units (not yet clipped) for ``cfg.init_noise``.

    ``spot``: the exemplar's asymptotic discrete spot noise (:mod:`jtex.spotnoise` on its pixels, drawn on a
    torus at least the exemplar's size, so its whole covariance, then cut to the canvas): a Gaussian texture
    with the exemplar's power spectrum and colour covariance. ``white``/``brown``: the exemplar's mean colour
    plus ``init_scale`` times unit noise.
    """
    key = jax.random.fold_in(jax.random.key(cfg.seed), 0)
    h, w = cfg.canvas
    if cfg.init_noise == "spot":
        from jtex import spotnoise

        grid = max(h, style.shape[0]), max(w, style.shape[1])
        return spotnoise.field(spotnoise.spots([style]), key, *grid)[:h, :w]
    if cfg.init_noise == "brown":  # 1/f² noise of unit std: structure at every scale
        from jtex import noisefields

        field = noisefields.field("brown", np.random.default_rng([cfg.seed, 0]), h, w)
        noise = jnp.asarray((field - noisefields.MEAN) / noisefields.STD)
    else:
        noise = jax.random.normal(key, (h, w, 3))
    return jnp.asarray(style.reshape(-1, 3).mean(axis=0)) + cfg.init_scale * noise


def init_state(cfg: MDANConfig, style: np.ndarray, content: np.ndarray | None, channels: int) -> MDANState:
    """Step 0: the start pixels, a fresh discriminator (the authors' init) and both optimisers' states."""
    key = jax.random.key(cfg.seed)
    if content is not None:
        pixels = jnp.asarray(content[None] * 2.0 - 1.0)
    else:
        pixels = jnp.clip(start_image(cfg, style)[None] * 2.0 - 1.0, -1.0, 1.0)
    d = discriminator(cfg, channels)
    v = d.init(jax.random.fold_in(key, 1), jnp.zeros((2, cfg.patch, cfg.patch, channels)), train=False)
    tx, dtx = _optimizers(cfg)
    zero = jnp.zeros((), jnp.int32)
    return MDANState(zero, pixels, v["params"], v["batch_stats"], tx.init(pixels), dtx.init(v["params"]))


@functools.lru_cache(maxsize=8)
def make_step(cfg: MDANConfig, channels: int):
    """The jitted step ``(state, key, vgg_params, bank, content_target, grams) -> (state, metrics)``.

    ``bank`` is a :class:`jtex.patchbank.PatchBank`; ``content_target`` the photo's relu5_1 map (guided) or
    None; ``grams`` the exemplar's Grams at :data:`GRAM_LAYERS` (a dict; None when ``gram_weight`` is 0).
    Real patches come from ``fold_in(key, i)`` for D step i. Cached by the settings the computation depends
    on (see :func:`_step_settings`), so runs of one kind share one compiled program.
    """
    import optax

    from jtex import vgg

    d = discriminator(cfg, channels)
    exact_d = d.clone(momentum=0.0)  # its "running" statistics := the batch's
    tx, dtx = _optimizers(cfg)
    layers = (STYLE_LAYER, CONTENT_LAYER) if cfg.guided else (STYLE_LAYER,)
    if cfg.gram_weight:
        layers = GRAM_LAYERS + layers

    def feats(vgg_params, pixels):
        return vgg.features(vgg_params, to_unit(pixels), layers, pooling=cfg.pooling)

    def scores(params, stats, real, fake):
        """D's scores of real and fake patches in training mode, and the batch statistics it updates."""
        v = {"params": params, "batch_stats": stats}
        if cfg.d_batch == "joint":  # one batch: BatchNorm's statistics mix both, D sees their difference
            s, upd = d.apply(v, jnp.concatenate([real, fake]), train=True, mutable=["batch_stats"])
            return s[: real.shape[0]], s[real.shape[0] :], upd["batch_stats"]
        s_real, upd = d.apply(v, real, train=True, mutable=["batch_stats"])
        s_fake, upd = d.apply({"params": params, **upd}, fake, train=True, mutable=["batch_stats"])
        return s_real, s_fake, upd["batch_stats"]

    def d_loss(params, stats, real, fake):
        s_real, s_fake, stats = scores(params, stats, real, fake)
        return hinge_loss(s_real, REAL) + hinge_loss(s_fake, FAKE), (stats, s_real, s_fake)

    def style_loss(f, params, stats, real):
        fake = extract_patches(f[STYLE_LAYER], cfg.patch, cfg.stride, average_overlaps=True)
        # Normalised as in D's step (the running statistics stay D's). joint: by the statistics of the batch
        # of reals and fakes, held fixed, so no patch can move its neighbours' scores through them.
        if cfg.d_batch == "joint":
            both = jnp.concatenate([real, jax.lax.stop_gradient(fake)])
            _, exact = exact_d.apply(
                {"params": params, "batch_stats": stats}, both, train=True, mutable=["batch_stats"]
            )
            s = d.apply({"params": params, **exact}, fake, train=False)
        else:
            s, _ = d.apply({"params": params, "batch_stats": stats}, fake, train=True, mutable=["batch_stats"])
        return hinge_loss(s, REAL)

    def content_loss(f, target):
        diff = f[CONTENT_LAYER] - target
        return jnp.mean(diff * diff) / (jnp.mean(target * target) + 1e-12)

    def gram_loss(f, grams):
        """Sum over GRAM_LAYERS of the relative squared Gram distance (so layers weigh alike)."""
        dist = functools.partial(gram_distance, norm="none")
        return sum(dist(gram(f[n])[0], grams[n]) / jnp.sum(grams[n] ** 2) for n in GRAM_LAYERS)

    def norm(g):
        return jnp.sqrt(jnp.sum(g * g))

    def scaled(g, weight, ref):
        """A term's pixel gradient ``g`` rescaled to ``weight`` times the norm of ``ref`` (the adversarial one's)."""
        return weight * norm(ref) / (norm(g) + 1e-12) * g

    @jax.jit
    def step(state: MDANState, key, vgg_params, bank, target, grams):
        f, pull = jax.vjp(functools.partial(feats, vgg_params), state.pixels)
        fake = extract_patches(jax.lax.stop_gradient(f[STYLE_LAYER]), cfg.patch, cfg.stride)
        params, stats, d_opt = state.d_params, state.d_stats, state.d_opt_state
        for i in range(cfg.d_steps):
            real = bank.sample(jax.random.fold_in(key, i), fake.shape[0], cfg.patch)
            (dl, (stats, s_real, s_fake)), g = jax.value_and_grad(d_loss, has_aux=True)(params, stats, real, fake)
            updates, d_opt = dtx.update(g, d_opt, params)
            params = optax.apply_updates(params, updates)
        style, gf = jax.value_and_grad(style_loss)(f, params, stats, real)
        (g_style,) = pull(gf)
        tv, g_tv = jax.value_and_grad(tv_term)(state.pixels)
        grad = g_style + cfg.tv_weight * g_tv
        if grams is not None:
            g_loss, gf = jax.value_and_grad(gram_loss)(f, grams)
            grad = grad + scaled(pull(gf)[0], cfg.gram_weight, g_style)
        if target is not None:
            content, gf = jax.value_and_grad(content_loss)(f, target)
            grad = grad + scaled(pull(gf)[0], cfg.content_weight, g_style)
        updates, opt = tx.update(grad, state.opt_state, state.pixels)
        pixels = jnp.clip(optax.apply_updates(state.pixels, updates), -1.0, 1.0)
        metrics = {
            "loss": style + cfg.tv_weight * tv,
            "style_loss": style,
            "d_loss": dl,
            "d_real": jnp.mean(s_real),
            "d_fake": jnp.mean(s_fake),
            "tv": tv,
            "pixel_std": jnp.std(to_unit(pixels)),
            "style_grad": norm(g_style),
            "tv_grad": cfg.tv_weight * norm(g_tv),
        }
        if grams is not None:
            metrics["gram_loss"] = g_loss
        if target is not None:
            metrics["content_loss"] = content
        return MDANState(state.step + 1, pixels, params, stats, opt, d_opt), metrics

    return step


def _prepare(cfg: MDANConfig, vgg_params, style: np.ndarray, content: np.ndarray | None, channels: int):
    """The step ``(state, key) -> (state, metrics)`` for :func:`jtex.training.fit`, its data made once."""
    from jtex import patchbank, vgg

    vgg_params = jax.tree.map(jnp.asarray, vgg_params)  # on the device once, not every step
    copies = patchbank.augmented_copies(style) if cfg.augment else [style]
    bank = jax.tree.map(
        jnp.asarray, patchbank.build(vgg_params, copies, STYLE_LAYER, cfg.patch, cfg.stride, cfg.pooling)
    )
    target = None
    if content is not None:
        target = vgg.features(vgg_params, jnp.asarray(content[None]), (CONTENT_LAYER,), pooling=cfg.pooling)
        target = target[CONTENT_LAYER]
    grams = None
    if cfg.gram_weight:  # the exemplar's own Grams (relu1_1 and relu2_1 barely change under the augmentation)
        f = vgg.features(vgg_params, jnp.asarray(style[None]), GRAM_LAYERS, pooling=cfg.pooling)
        grams = {n: gram(f[n])[0] for n in GRAM_LAYERS}
    jitted = make_step(_step_settings(cfg), channels)
    return lambda state, key: jitted(state, key, vgg_params, bank, target, grams)


def _step_settings(cfg: MDANConfig) -> MDANConfig:
    """``cfg`` with what the step's computation does not depend on blanked (the cache key of :func:`make_step`)."""
    return dataclasses.replace(
        cfg, source="", content="guided" if cfg.guided else "", width=0, height=0, steps=0, seed=0, save_every=0,
        weights="", exemplar_size=0, augment=False, init_scale=0.0, init_noise="", match_colour=False, margin=0,
    )  # fmt: skip


def mdan(
    cfg: MDANConfig,
    output_dir,
    *,
    exemplar: np.ndarray | None = None,
    content: np.ndarray | None = None,
    vgg_params=None,
    progress: bool = True,
    overwrite: bool = False,
) -> MDANResult:
    """Synthesise with MDAN into the run folder ``output_dir`` (resuming a run there); see the module docstring.

    Args:
      cfg: the settings; ``cfg.source`` names the exemplar, ``cfg.content`` (if set) the photo to stylise.
      output_dir: the run folder: ``config.json``, ``metrics.jsonl``, ``checkpoints/``,
        ``snapshots/step_*.png``, ``loss.png``, ``exemplar.png``, ``output.png``, ``result.json``.
        The same settings again resume (more ``steps``: the run goes on); others are refused.
      exemplar, content: (H, W, 3) arrays to use instead of the files.
      vgg_params: descriptor weights to use instead of ``cfg.weights`` (e.g. a tiny net in tests).
      overwrite: start again in a folder that holds another run.
    """
    from jtex import rundir, runtime

    if exemplar is not None and not cfg.source:
        cfg = dataclasses.replace(cfg, source="<array>")
    if content is not None and not cfg.content:
        cfg = dataclasses.replace(cfg, content="<array>")
    cfg = cfg.validate()
    runtime.configure()
    style, photo = load_style(cfg, exemplar), load_content(cfg, content)
    vgg_params, wmeta = weights.resolve_given(cfg.weights, vgg_params)
    channels = int(np.shape(vgg_params["conv3_1"]["kernel"])[-1])
    settings = cfg.settings() | {
        "exemplar_sha256": training.array_sha256(style),
        "weights_sha256": wmeta.get("npz_sha256"),
    }
    if photo is not None:
        settings["content_image_sha256"] = training.array_sha256(photo)
    run = rundir.RunDir(output_dir, settings, seed=cfg.seed, weights=wmeta, overwrite=overwrite)
    try:
        done = run.finished and run.read_result().get("steps", 0) >= cfg.steps
        if not done:
            (run.path / "result.json").unlink(missing_ok=True)  # more steps: the run goes on
            run.save_image("exemplar.png", style)
        prepared = []

        def step(state, key):  # the augmented exemplar's maps are made only if a step runs
            if not prepared:
                prepared.append(_prepare(cfg, vgg_params, style, photo, channels))
            return prepared[0](state, key)

        state, _ = training.fit(
            run, state=init_state(cfg, style, photo, channels), step_fn=step,
            key=jax.random.fold_in(jax.random.key(cfg.seed), 3), steps=cfg.steps, save_every=cfg.save_every,
            preview=lambda s: crop(cfg, s.pixels), meta={"kind": KIND,
            "config": dataclasses.asdict(cfg)}, warmup=min(100, cfg.steps // 5), progress=progress, desc="mdan",
            preview_dir="snapshots",
        )  # fmt: skip
        out = crop(cfg, state.pixels)
        if cfg.match_colour:  # MDAN's output is low in contrast and drifts in colour: the exemplar's histogram
            from jtex import colour

            out = colour.match_exemplar(out, style)
        if done:
            return MDANResult(out, cfg, int(state.step), float(run.read_result().get("seconds", 0.0)), run.path)
        run.save_image("output.png", out)
        seconds = training.session_seconds(run.metrics())
        run.write_result(_report(cfg, state, run.metrics(), style, out, seconds))
        return MDANResult(out, cfg, int(state.step), seconds, run.path)
    finally:
        run.close()


def _report(cfg: MDANConfig, state: MDANState, records: list[dict], style, out, seconds: float) -> dict:
    from jtex import spectra

    last = records[-1] if records else {}
    return {
        "kind": KIND,
        "steps": int(state.step),
        "guided": cfg.guided,
        "final_loss": last.get("loss"),
        "final_d_loss": last.get("d_loss"),
        "seconds": seconds,
        "spectrum": spectra.spectrum_report(style, out),
        "border_contrast": round(spectra.ring_contrast(out), 4),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
