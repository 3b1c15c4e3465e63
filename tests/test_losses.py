"""Texture statistics as losses (jtex.losses), their weights, and their use inside a synthesis."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jtex import losses, objective, synth, vgg
from jtex.config import SynthConfig, layer_schedule, parse_loss
from jtex.errors import JtexError

from conftest import EXAMPLES, SMALL_SYNTH

BRICK = str(EXAMPLES / "brick.png")
KINDS = ("gram", "meancov", "emd", "hist", "swd")
TINY = vgg.init_params(jax.random.key(0), "vgg19", width=1 / 16)


def _feats(seed, shape=(1, 12, 12, 4), scale=1.0):
    return jnp.asarray(np.random.default_rng(seed).gamma(2.0, scale, shape), jnp.float32)


def _d(kind, f, target_f, mul=1.0, key=0):
    t = jax.tree.map(lambda a: a[0], losses.summary(kind, target_f, norm="snelgrove", key=jax.random.key(1)))
    return float(losses.distance(kind, f, t, norm="snelgrove", mul=mul, key=jax.random.key(key))[0])


@pytest.mark.parametrize("kind", KINDS)
def test_each_statistic_is_near_zero_on_its_own_features_and_grows_with_the_difference(kind):
    a = _feats(0)
    same = _d(kind, a, a)
    near, far = _d(kind, a, _feats(1)), _d(kind, a, _feats(1, scale=3.0))
    assert same <= 1e-3 * far and near < far
    g = jax.grad(lambda f: losses.distance(kind, f, jax.tree.map(lambda t: t[0], losses.summary(
        kind, _feats(1), norm="snelgrove", key=jax.random.key(1))), norm="snelgrove", mul=1.0,
        key=jax.random.key(0))[0])(a)  # fmt: skip
    assert bool(jnp.all(jnp.isfinite(g))) and float(jnp.abs(g).max()) > 0


def test_emd_is_the_sorted_per_channel_distance_and_compares_quantiles_across_sizes():
    a, b = _feats(0), _feats(1)
    d = np.sort(np.asarray(a[0]).reshape(-1, 4), 0) - np.sort(np.asarray(b[0]).reshape(-1, 4), 0)
    assert _d("emd", a, b) == pytest.approx(np.sum(np.mean(d**2, axis=0)), rel=1e-5)  # W2² per channel, summed
    # A larger exemplar of the same distribution: its quantiles stand in for the sorted values.
    big = jnp.tile(a, (1, 2, 2, 1))
    assert _d("emd", a, big) < 1e-6


def test_swd_draws_its_directions_from_the_key():
    a, b = _feats(0), _feats(1)
    assert _d("swd", a, b, key=3) == _d("swd", a, b, key=3)
    assert _d("swd", a, b, key=3) != _d("swd", a, b, key=4)


def test_hist_cdf_is_the_empirical_one_and_mul_scales_values():
    a = _feats(0, (1, 32, 32, 2))
    s = losses.summary("hist", a, norm="snelgrove", key=None)
    centres = np.asarray(losses._centres(s["lo"], s["hi"]))[0]
    vals = np.asarray(a[0]).reshape(-1, 2)
    width = centres[1] - centres[0]
    emp = lambda at: np.stack([(vals[:, c][None] <= at[:, c][:, None]).mean(1) for c in range(2)], 1)  # noqa: E731
    # A value counts fully from one bin centre on and linearly over the bin before it.
    soft = np.asarray(s["cdf"][0])
    assert np.all(emp(centres) <= soft + 1e-6) and np.all(soft <= emp(centres + width) + 1e-6)
    # mul=4 asks for features twice as large: twice a's features match a's summary under mul 4.
    assert _d("hist", 2 * a, a, mul=4.0) < 1e-3 * _d("hist", a, a, mul=4.0)
    assert _d("gram", 2 * a, a, mul=4.0) < 1e-9


def test_layer_schedules_and_loss_parsing():
    assert layer_schedule(None, 3) == (1.0, 1.0, 1.0)
    assert layer_schedule("linear", 3) == (1.0, 2.0, 3.0)
    assert layer_schedule("geometric:2", 4) == (1.0, 2.0, 4.0, 8.0)
    assert layer_schedule((0.5, 0), 2) == (0.5, 0.0)
    for bad in ("geometric:0", "geometric:x", "cubic"):
        with pytest.raises(JtexError, match="schedule"):
            layer_schedule(bad, 3)
    assert parse_loss("gram=1, swd=0.5") == (("gram", 1.0), ("swd", 0.5))
    assert parse_loss("emd") == (("emd", 1.0),)
    with pytest.raises(JtexError, match="not a number"):
        parse_loss("gram=x")
    base = SynthConfig(sources=(BRICK,))
    for loss, msg in [("gramm=1", "not one of"), ("gram=0", "every weight is 0"), ("gram=1,gram=2", "twice"),
                      ("gram=-1", ">= 0")]:  # fmt: skip
        with pytest.raises(JtexError, match=msg):
            base.replace(loss=loss).validate()
    assert SynthConfig(loss="gram=1,swd=2").loss == (("gram", 1.0), ("swd", 2.0))


SMALL = dict(SMALL_SYNTH, output_width=48, output_height=48, max_iter=12, save_every=0)


@pytest.mark.parametrize("loss", ["meancov=1", "emd=1", "hist=1", "swd=1", "gram=1,swd=1"])
@pytest.mark.parametrize("optimizer", ["lbfgs-b", "lbfgs"])
def test_every_statistic_drives_a_synthesis(loss, optimizer):
    cfg = SynthConfig(sources=(BRICK,), loss=loss, optimizer=optimizer, **SMALL)
    p = synth.build(cfg, params=TINY)
    start = float(objective.texture_loss(p.x0[0], p.element_targets(), p.params, p.spec)[0])
    res = synth.run(cfg, progress=False, params=TINY)
    assert np.isfinite(res.losses).all() and float(res.losses[0]) < 0.7 * start
    assert res.images.shape == (1, 48, 48, 3) and res.images.std() > 0.02


def test_a_layer_of_weight_zero_is_the_layer_left_out():
    both = SynthConfig(sources=(BRICK,), layer_weights=(1.0, 0.0), **SMALL)
    one = both.replace(layers=("pool1",), layer_weights=None)
    losses_ = []
    for cfg in (both, one):
        p = synth.build(cfg, params=TINY)
        losses_.append(float(p.objective(p.stages[0])(p.x0[0], *p.element())))
    assert losses_[0] == pytest.approx(losses_[1], rel=1e-6)


def test_tv_weight_adds_the_images_total_variation():
    cfg = SynthConfig(sources=(BRICK,), **SMALL)
    vals = []
    for tv in (0.0, 1000.0):
        p = synth.build(cfg.replace(tv_weight=tv), params=TINY)
        vals.append(float(p.objective(p.stages[0])(p.x0[0], *p.element())))
    x = np.asarray(p.x0[0])
    tv = np.abs(np.diff(x, axis=-3)).mean() + np.abs(np.diff(x, axis=-2)).mean()
    assert vals[1] - vals[0] == pytest.approx(1000.0 * tv, rel=1e-3)


def test_vgg16_layers_by_name_in_a_synthesis(tmp_path):
    tiny16 = vgg.init_params(jax.random.key(0), "vgg16", width=1 / 16)
    names = tuple(f"relu{b}_{i}" for b, n in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3)) for i in range(1, n + 1))
    assert len(names) == 13
    cfg = SynthConfig(sources=(BRICK,), **{**SMALL, "layers": names, "octaves": 1, "output_width": 64,
                                           "output_height": 64, "layer_weights": "geometric:2"})  # fmt: skip
    res = synth.run(cfg, tmp_path / "run", progress=False, params=tiny16)
    assert np.isfinite(res.losses).all()


@pytest.mark.parametrize("optimizer", ["lbfgs-b", "lbfgs"])
def test_sliced_wasserstein_is_one_objective_for_the_whole_run(optimizer):
    # Directions redrawn every iteration changed the loss under the line search: L-BFGS-B stopped after a
    # fifth of its iterations. Drawn once per run (from the seed), a tol=0 run uses every iteration.
    cfg = SynthConfig(sources=(BRICK,), loss="swd=1", optimizer=optimizer, **{**SMALL, "max_iter": 30, "tol": 0.0})
    p = synth.build(cfg, params=TINY)
    x, (batched, shared) = p.x0[0], p.element()
    f = p.objective(p.stages[0])
    assert float(f(x, batched, shared)) == float(f(x, batched, shared))
    other = {**batched, "k": {**batched["k"], "seed": batched["k"]["seed"] + 1}}
    assert float(f(x, other, shared)) != float(f(x, batched, shared))  # the seed picks the directions
    assert synth.run(cfg, progress=False, params=TINY).iterations == 30


def test_swd_projections_per_channel_set_the_number_of_directions(monkeypatch):
    seen = []
    real = losses.stats.sliced_wasserstein

    def spy(f, t, key, *, n_projections=None):
        seen.append(n_projections)
        return real(f, t, key, n_projections=n_projections)

    monkeypatch.setattr(losses.stats, "sliced_wasserstein", spy)
    a, b = _feats(0), _feats(1)
    t = jax.tree.map(lambda v: v[0], losses.summary("swd", b, norm="snelgrove", key=jax.random.key(1)))
    one = losses.distance("swd", a, t, norm="snelgrove", mul=1.0, key=jax.random.key(0), projections=1)
    four = losses.distance("swd", a, t, norm="snelgrove", mul=1.0, key=jax.random.key(0))
    assert seen == [4, 16]  # C = 4 channels: 1 and the default 4 per channel
    assert float(one[0]) != float(four[0])
    assert SynthConfig(swd_projections=8).swd_projections == 8
    assert objective.exemplar_spec(SynthConfig(swd_projections=2, loss="swd")).swd_projections == 2
    with pytest.raises(JtexError, match="--swd-projections must be 1 to 64"):
        SynthConfig(swd_projections=0).validate()
