"""Texture Networks (Ulyanov et al. 2016): train a feed-forward generator once, then sample in one call.

    cfg = TexNetConfig.preset("quick", source="examples/brick.png")
    train(cfg, "runs/brick-texnet")                         # or: jtex train-texnet -s ... --output-dir ...
    model = load("runs/brick-texnet")
    images = sample(model, jax.random.key(0), (4, 512, 512))   # (4, 512, 512, 3) in [0, 1]

The generator is :class:`jtex.generators.PyramidGenerator`; the descriptor
is the frozen normalised VGG-19 of the optimisation engine, and the losses
are the engine's (:mod:`jtex.objective`):

* ``gatys`` (the paper's): Grams of relu1_1, relu2_1, relu3_1, relu4_1 and
  relu5_1, each ``FᵀF / (C H W)``, mean squared difference to the
  exemplar's (``1 / C²`` times the squared Frobenius distance), weight 1 per layer.
* ``multiscale``: Snelgrove's objective (pool1 + relu3_2, Gram / (C H W),
  summed over a 4-octave Gaussian pyramid of each sample), which the original
  authors never paired with a generator.

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
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jtex import figures, generators, image, objective, training, weights
from jtex.config import SynthConfig
from jtex.errors import JtexError
from jtex.generators import NORMS

LOSSES = ("gatys", "multiscale")
KIND = "texture_net"
PAPER_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


@dataclass(frozen=True)
class TexNetConfig:
    """Everything that decides what a training run computes (``save_every`` and ``steps`` aside)."""

    source: str = ""
    size: int = 256  # training samples are size x size
    batch: int = 16
    steps: int = 1500
    lr: float = 0.1
    lr_decay: float = 0.8
    decay_every: int = 300
    loss: str = "gatys"
    norm: str = "batch"
    scales: int = 6
    channels: int = 8
    noise_depth: int = 3
    exemplar_size: int = 256  # the exemplar's longer side is resized to this
    seed: int = 0
    save_every: int = 100
    calibration_batches: int = 8
    normalize_gradients: bool = True  # v1's -normalize_gradients: each layer's gradient L1-normalised
    weights: str = weights.DEFAULT

    PRESETS = {
        "paper": {},
        # 128^2, batch 4, 400 steps (lr x0.8 every 150): about 18 minutes on 2 CPU cores (2.4-2.7 s a step).
        "quick": {"size": 128, "batch": 4, "steps": 400, "decay_every": 150, "save_every": 50},
    }

    @classmethod
    def preset(cls, name: str, **overrides) -> TexNetConfig:
        if name not in cls.PRESETS:
            raise JtexError(f"unknown preset {name!r}; use one of {', '.join(cls.PRESETS)}")
        return cls(**{**cls.PRESETS[name], **{k: v for k, v in overrides.items() if v is not None}}).validate()

    def validate(self) -> TexNetConfig:
        m = 2 ** (self.scales - 1)
        checks = [
            (self.loss in LOSSES, f"--loss must be one of {', '.join(LOSSES)}, got {self.loss!r}"),
            (self.norm in NORMS, f"--norm must be one of {', '.join(NORMS)}, got {self.norm!r}"),
            (1 <= self.scales <= 8, f"--scales must be 1..8, got {self.scales}"),
            (self.size >= m and self.size % m == 0, f"--size must be a multiple of {m} ({self.scales} scales)"),
            (self.size <= 1024, f"--size {self.size} is over 1024; train smaller, sample at any size"),
            (self.batch >= 1 and self.steps >= 1, "--batch and --steps must be at least 1"),
            (self.save_every >= 1 and self.decay_every >= 1, "--save-every and decay_every must be at least 1"),
            (np.isfinite(self.lr) and self.lr > 0, f"--lr must be a positive number, got {self.lr}"),
            (0 < self.lr_decay <= 1, f"lr_decay must be in (0, 1], got {self.lr_decay}"),
            (32 <= self.exemplar_size <= 4096, f"--exemplar-size must be 32..4096, got {self.exemplar_size}"),
            (self.channels >= 1 and self.noise_depth >= 1, "channels and noise_depth must be at least 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise JtexError(message)
        if self.loss == "multiscale" and self.size < 64:
            raise JtexError("--loss multiscale needs --size 64 or more (4 octaves)")
        return self

    def settings(self) -> dict:
        """What the run folder compares on reuse (``steps``/``save_every`` may change: more steps continue)."""
        d = dataclasses.asdict(self)
        return {k: v for k, v in d.items() if k not in ("steps", "save_every")}

    def generator(self) -> generators.PyramidGenerator:
        return generators.PyramidGenerator(self.scales, self.channels, norm=self.norm)

    def synth_config(self) -> SynthConfig:
        """The engine's settings for this loss (see the module docstring); samples are seen as tiles."""
        if self.loss == "gatys":
            from jtex import vgg

            w = tuple(1.0 / vgg.channels(layer) ** 2 for layer in PAPER_LAYERS)
            kw = dict(layers=PAPER_LAYERS, layer_weights=w, octaves=1)
        else:
            kw = dict(layers=(2, 7), octaves=4)
        return SynthConfig(
            sources=(self.source,), output_width=self.size, output_height=self.size, gram="snelgrove",
            padding="same", tile=True, weights=self.weights, **kw,
        ).validate()  # fmt: skip


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


@jax.custom_vjp
def _l1_normalised_gradient(f):
    """Identity whose backward pass divides the gradient by its L1 norm (+1e-8), as v1's TextureLoss does."""
    return f


_l1_normalised_gradient.defvjp(lambda f: (f, None), lambda _, g: (g / (jnp.sum(jnp.abs(g)) + 1e-8),))


def _loss_fn(cfg: TexNetConfig, vgg_params, exemplar: np.ndarray):
    """Per-sample texture loss (N, H, W, 3) -> (N,), the engine's statistics and targets.

    With ``normalize_gradients`` (the authors' v1 default) the gradient each
    layer's Gram term sends into its feature map is L1-normalised before it
    joins the rest of the backward pass, so every layer pulls equally hard:
    without it relu1_1 outweighs relu4_1 and relu5_1 by 3 to 5 orders of
    magnitude (measured on the brick) and the generator learns fine statistics only.
    The loss value is unchanged.
    """
    from jtex import pyramid, stats, vgg

    scfg = cfg.synth_config()
    targets = objective.targets(vgg_params, [exemplar], scfg, separate=False)
    spec = objective.output_spec(scfg)
    norm = _l1_normalised_gradient if cfg.normalize_gradients else (lambda f: f)

    def loss(x):
        total = 0.0
        for o, level in enumerate(pyramid.gaussian(x, spec.octaves, padding=spec.pyr_padding)):
            feats = vgg.features(vgg_params, level, spec.layers, padding=spec.vgg_padding, pooling=spec.pooling)
            for l, name in enumerate(spec.layers):
                g = stats.gram(norm(feats[name]), norm=spec.gram)
                total = total + spec.weights[l] * stats.gram_distance(g, targets[o][l], norm=spec.gram)
        return total

    return loss


def make_step(cfg: TexNetConfig, vgg_params, exemplar: np.ndarray):
    """The jitted train step ``(state, key) -> (state, metrics)`` and the optimiser."""
    import optax

    model, texture = cfg.generator(), _loss_fn(cfg, vgg_params, exemplar)
    tx = _optimizer(cfg)

    def loss_fn(params, batch_stats, noise):
        out, upd = model.apply(
            {"params": params, "batch_stats": batch_stats}, noise, train=True, mutable=["batch_stats"]
        )
        x = generators.to_image(out)
        return jnp.mean(texture(x)), (upd.get("batch_stats", {}), x)

    @jax.jit
    def step(state: TrainState, key):
        noise = generators.draw_noise(key, cfg.batch, cfg.size, cfg.size, scales=cfg.scales, depth=cfg.noise_depth)
        (loss, (stats, x)), g = jax.value_and_grad(loss_fn, has_aux=True)(state.params, state.batch_stats, noise)
        updates, opt_state = tx.update(g, state.opt_state, state.params)
        metrics = {
            "loss": loss,
            "pixel_std": jnp.mean(jnp.std(x, axis=(1, 2, 3))),
            "clipped": jnp.mean((x < 0) | (x > 1)),
            "grad_norm": jnp.sqrt(sum(jnp.sum(a * a) for a in jax.tree.leaves(g))),
        }
        return TrainState(state.step + 1, optax.apply_updates(state.params, updates), stats, opt_state), metrics

    return step, tx


def init_state(cfg: TexNetConfig, tx) -> TrainState:
    key = jax.random.fold_in(jax.random.key(cfg.seed), 0)
    noise = generators.draw_noise(key, 1, cfg.size, cfg.size, scales=cfg.scales, depth=cfg.noise_depth)
    v = cfg.generator().init(jax.random.fold_in(key, 1), noise, train=False)
    params, stats = v["params"], v.get("batch_stats", {})
    return TrainState(jnp.zeros((), jnp.int32), params, stats, tx.init(params))


def calibrate(cfg: TexNetConfig, variables: dict, key, batches: int) -> dict:
    """Batch-norm running statistics recomputed with the final weights (mean over ``batches`` batches)."""
    if cfg.norm != "batch" or batches < 1:
        return variables
    exact = cfg.generator().clone(momentum=0.0)  # running stats := this batch's

    @jax.jit
    def batch_stats(k):
        noise = generators.draw_noise(k, cfg.batch, cfg.size, cfg.size, scales=cfg.scales, depth=cfg.noise_depth)
        _, upd = exact.apply(variables, noise, train=True, mutable=["batch_stats"])
        return upd["batch_stats"]

    stats = [batch_stats(jax.random.fold_in(key, i)) for i in range(batches)]
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
      cfg: the settings (see :meth:`TexNetConfig.preset`); ``cfg.source`` names the exemplar file.
      output_dir: the run folder; running again with the same settings resumes
        (with more ``steps``, training goes on).
      exemplar: an (H, W, 3) array to use instead of ``cfg.source``.
      vgg_params: descriptor weights to use instead of ``cfg.weights`` (e.g. a tiny net in tests).
      overwrite: start again in a folder that holds another run.
    """
    from jtex import rundir

    cfg = cfg.validate()
    ex = load_exemplar(cfg, exemplar)
    if vgg_params is None:
        vgg_params, wmeta = weights.resolve(cfg.weights)
    else:
        wmeta = {"name": "caller's parameters", "npz_sha256": weights.content_digest(vgg_params)}
    settings = cfg.settings() | {"exemplar_sha256": _digest(ex), "weights_sha256": wmeta.get("npz_sha256")}
    run = rundir.RunDir(output_dir, settings, seed=cfg.seed, weights=wmeta, overwrite=overwrite)
    try:
        if run.finished and run.read_result().get("steps", 0) >= cfg.steps:
            return load(output_dir)
        (run.path / "result.json").unlink(missing_ok=True)  # more steps: the run goes on
        run.save_image("exemplar.png", ex)
        step, tx = make_step(cfg, vgg_params, ex)
        model = cfg.generator()
        preview_key = jax.random.fold_in(jax.random.key(cfg.seed), 2)

        def preview(state):
            v = {"params": state.params, "batch_stats": state.batch_stats}
            return list(np.asarray(_sample_fn(model, 4, cfg.size, cfg.size, cfg.noise_depth)(v, preview_key)))

        meta = {"kind": KIND, "config": dataclasses.asdict(cfg)}
        state, seconds = training.fit(
            run, state=init_state(cfg, tx), step_fn=step, key=jax.random.fold_in(jax.random.key(cfg.seed), 3),
            steps=cfg.steps, save_every=cfg.save_every, preview=preview, meta=meta,
            warmup=min(100, cfg.steps // 5), lr=schedule(cfg), progress=progress, desc="train-texnet",
        )  # fmt: skip
        variables = calibrate(
            cfg, {"params": state.params, "batch_stats": state.batch_stats},
            jax.random.fold_in(jax.random.key(cfg.seed), 4), cfg.calibration_batches,
        )  # fmt: skip
        final = TrainState(state.step, variables["params"], variables.get("batch_stats", {}), state.opt_state)
        run.checkpoint(int(state.step), {**meta, "step": int(state.step), "calibrated": True}, final)
        net = TexNet(cfg, variables)
        sheet = sample(net, jax.random.key(cfg.seed), (4, cfg.size, cfg.size))
        run.save_image("samples.png", figures.contact_sheet(list(sheet)))
        m = run.metrics()
        run.write_result(
            {
                "kind": KIND,
                "steps": int(state.step),
                "final_loss": m[-1]["loss"] if m else None,
                "seconds": round(sum(r.get("seconds", 0) for r in _last_per_session(m)), 2) or round(seconds, 2),
                "parameters": int(sum(np.size(a) for a in jax.tree.leaves(variables["params"]))),
                "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            }
        )
        return net
    finally:
        run.close()


def _last_per_session(metrics: list[dict]) -> list[dict]:
    """The last record of each uninterrupted stretch (``seconds`` restarts at 0 on resume)."""
    out = []
    for a, b in zip(metrics, metrics[1:] + [None]):
        if b is None or b["seconds"] < a["seconds"]:
            out.append(a)
    return out


def _digest(x: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(x, np.float32).tobytes()).hexdigest()


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
def _sample_fn(model, count: int, height: int, width: int, depth: int):
    @jax.jit
    def fn(variables, key):
        noise = generators.draw_noise(key, count, height, width, scales=model.scales, depth=depth)
        out = model.apply(variables, noise, train=False)
        return jnp.clip(generators.to_image(out), 0.0, 1.0)

    return fn


def sample(model: TexNet, key: jax.Array, shape: tuple[int, int, int]) -> np.ndarray:
    """``shape = (N, H, W)`` samples, (N, H, W, 3) float32 in [0, 1], in one jitted call.

    H and W are multiples of ``2 ** (scales - 1)``; sample i uses noise from
    ``fold_in(key, i)`` alone, so it does not depend on N or on the other samples.
    """
    n, h, w = (int(v) for v in shape)
    m = 2 ** (model.config.scales - 1)
    if n < 1 or h < m or w < m or h % m or w % m:
        raise JtexError(f"sample size {w}x{h} (count {n}): use a count >= 1 and sides that are multiples of {m}")
    fn = _sample_fn(model.config.generator(), n, h, w, model.config.noise_depth)
    return np.asarray(fn(model.variables, key))
