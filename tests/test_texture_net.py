"""Texture Networks: the generator's structure and torus symmetry, sampling, training, resume, failures."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jtex import generators, texture_net, training, vgg
from jtex.errors import JtexError

from conftest import EXAMPLES

# Tiny runs: 3 noise scales, 32x32 samples, a 1/8-width random VGG (the real one is not the point here).
TINY = dict(source=str(EXAMPLES / "brick.png"), size=32, batch=2, scales=3, exemplar_size=64, save_every=3)


@pytest.fixture(scope="module")
def tiny_vgg():
    return vgg.init_params(jax.random.key(0), width=1 / 8)


def test_the_papers_generator_has_the_expected_size():
    # 6 scales, 8 channels, noise depth 3, batch norm. Counted by hand: each noise branch
    # (3x3 3->8, 3x3 8->8, 1x1 8->8, three norms) has 928 weights, 6 of them 5568; each join
    # of width c = 16..48 has 19c^2 + 9c conv weights plus 2(c-8) + 16 norm weights, 111200
    # in all; the last 1x1 48->3 has 147. (The authors' released checkpoints have 116,755.)
    z = generators.draw_noise(jax.random.key(0), 1, 32, 32, scales=6, depth=3)
    v = generators.PyramidGenerator().init(jax.random.key(1), z)
    assert sum(a.size for a in jax.tree.leaves(v["params"])) == 5568 + 111200 + 147
    assert set(v) == {"params", "batch_stats"}
    inst = generators.PyramidGenerator(norm="instance").init(jax.random.key(1), z)
    assert "batch_stats" not in inst


@pytest.mark.parametrize("norm,upsample", [("batch", "nearest"), ("instance", "nearest"), ("batch", "bilinear")])
def test_generator_lives_on_a_torus(norm, upsample):
    # Circular padding everywhere: rolling every scale's noise by 8 / r pixels rolls the
    # output by 8 (zero padding breaks this at the borders). So samples tile seamlessly.
    model = generators.PyramidGenerator(scales=3, norm=norm, upsample=upsample)
    z = generators.draw_noise(jax.random.key(0), 2, 32, 48, scales=3, depth=3)
    v = model.init(jax.random.key(1), z)
    # Non-trivial affine norms, so the check does not pass through a near-constant output.
    v = jax.tree.map(lambda a: a + 0.3 * jax.random.normal(jax.random.key(2), a.shape), v)
    out = model.apply(v, z, train=False)
    rolled = [jnp.roll(a, (8 // 2 ** (2 - k), 16 // 2 ** (2 - k)), axis=(1, 2)) for k, a in enumerate(z)]
    out2 = model.apply(v, rolled, train=False)
    assert float(jnp.std(out)) > 1e-3
    np.testing.assert_allclose(np.asarray(out2), np.roll(np.asarray(out), (8, 16), axis=(1, 2)), atol=2e-4)


def test_upsampling_on_the_torus():
    x = jax.random.normal(jax.random.key(0), (2, 6, 8, 3))
    near = generators.upsample2(x, "nearest")
    np.testing.assert_array_equal(near, jax.image.resize(x, (2, 12, 16, 3), "nearest"))
    lin = generators.upsample2(x, "bilinear")
    # Away from the wrap, jax's linear resize (half-pixel centres); across it, the other side's pixels.
    ref = jax.image.resize(x, (2, 12, 16, 3), "linear")
    np.testing.assert_allclose(lin[:, 1:-1, 1:-1], ref[:, 1:-1, 1:-1], atol=1e-5)
    np.testing.assert_allclose(lin[:, 0, 0], 0.5625 * x[:, 0, 0] + 0.1875 * (x[:, -1, 0] + x[:, 0, -1])
                               + 0.0625 * x[:, -1, -1], atol=1e-5)  # fmt: skip
    np.testing.assert_allclose(generators.upsample2(jnp.roll(x, (1, 3), (1, 2)), "bilinear"),
                               jnp.roll(lin, (2, 6), (1, 2)), atol=1e-5)  # fmt: skip
    assert float(jnp.std(generators.upsample2(jnp.ones((1, 4, 4, 2)), "bilinear"))) < 1e-6
    with pytest.raises(ValueError, match="upsample must be one of"):
        generators.upsample2(x, "cubic")


def test_noise_sizes_are_checked():
    with pytest.raises(ValueError, match="multiples of 4"):
        generators.noise_shapes(3, 30, 32, 3)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_vgg):
    out = tmp_path_factory.mktemp("texnet")
    cfg = texture_net.TexNetConfig(**TINY, steps=6)
    net = texture_net.train(cfg, out, vgg_params=tiny_vgg, progress=False)
    return out, net


def test_training_writes_a_run_folder_and_lowers_the_loss(trained):
    out, net = trained
    for name in ("config.json", "metrics.jsonl", "result.json", "loss.png", "samples.png", "exemplar.png"):
        assert (out / name).is_file(), name
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["step_000003.png", "step_000006.png"]
    m = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in m] == list(range(1, 7))
    assert m[-1]["loss"] < 0.75 * m[0]["loss"]  # Adam at lr 0.1 moves fast from a flat grey start
    assert m[0]["lr"] == pytest.approx(0.1)
    result = json.loads((out / "result.json").read_text())
    assert result["steps"] == 6 and result["kind"] == "texture_net"
    manifest = json.loads((out / "config.json").read_text())
    assert manifest["settings"]["loss"] == "gatys" and manifest["seed"] == 0


def test_load_returns_the_trained_generator(trained):
    out, net = trained
    loaded = texture_net.load(out)
    assert loaded.config == net.config
    a = texture_net.sample(net, jax.random.key(5), (2, 32, 32))
    b = texture_net.sample(loaded, jax.random.key(5), (2, 32, 32))
    np.testing.assert_array_equal(a, b)


def test_a_sample_does_not_depend_on_its_batch(trained):
    _, net = trained
    four = texture_net.sample(net, jax.random.key(1), (4, 32, 64))
    two = texture_net.sample(net, jax.random.key(1), (2, 32, 64))
    assert four.shape == (4, 32, 64, 3) and four.dtype == np.float32
    assert 0.0 <= four.min() and four.max() <= 1.0
    np.testing.assert_allclose(two, four[:2], atol=1e-6)
    assert np.abs(four[0] - four[1]).mean() > 1e-3  # different noise, different samples
    other = texture_net.sample(net, jax.random.key(2), (1, 32, 64))
    assert np.abs(other[0] - four[0]).mean() > 1e-3


def test_batch_norm_statistics_are_calibrated(trained):
    _, net = trained
    stats = net.variables["batch_stats"]
    var = [np.asarray(a) for path, a in jax.tree_util.tree_leaves_with_path(stats) if "var" in str(path[-1])]
    assert var and all(np.all(v > 0) for v in var)
    assert not all(np.allclose(v, 1.0) for v in var)  # not the initial running variance


def test_more_steps_resume_to_the_same_weights(tmp_path, tiny_vgg):
    # 6 steps straight vs 3 steps, then the same command with --steps 6: same weights.
    full = texture_net.train(texture_net.TexNetConfig(**TINY, steps=6), tmp_path / "a", vgg_params=tiny_vgg,
                             progress=False)  # fmt: skip
    texture_net.train(texture_net.TexNetConfig(**TINY, steps=3), tmp_path / "b", vgg_params=tiny_vgg, progress=False)
    again = texture_net.train(
        texture_net.TexNetConfig(**TINY, steps=6), tmp_path / "b", vgg_params=tiny_vgg, progress=False
    )
    for x, y in zip(jax.tree.leaves(full.variables), jax.tree.leaves(again.variables)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6)
    steps = [json.loads(line)["step"] for line in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 7))


def test_other_settings_in_the_same_folder_are_refused(trained, tiny_vgg):
    out, _ = trained
    cfg = texture_net.TexNetConfig(**{**TINY, "lr": 0.05}, steps=6)
    with pytest.raises(JtexError, match="other settings.*lr"):
        texture_net.train(cfg, out, vgg_params=tiny_vgg, progress=False)


def test_a_folder_from_before_a_setting_existed_resumes(tmp_path, tiny_vgg):
    # Run folders written before --upsample existed hold no "upsample": they were trained nearest.
    cfg = texture_net.TexNetConfig(**TINY, steps=3)
    texture_net.train(cfg, tmp_path, vgg_params=tiny_vgg, progress=False)
    conf = json.loads((tmp_path / "config.json").read_text())
    del conf["settings"]["upsample"]
    (tmp_path / "config.json").write_text(json.dumps(conf))
    more = texture_net.train(dataclasses.replace(cfg, steps=4), tmp_path, vgg_params=tiny_vgg, progress=False)
    assert more.config.upsample == "nearest"
    with pytest.raises(JtexError, match="other settings.*upsample"):
        texture_net.train(dataclasses.replace(cfg, steps=5, upsample="bilinear"), tmp_path, vgg_params=tiny_vgg,
                          progress=False)  # fmt: skip


def _loop_state(step=0):
    from typing import NamedTuple

    class S(NamedTuple):
        step: jax.Array
        w: jax.Array

    return S(jnp.asarray(step, jnp.int32), jnp.zeros(3))


def _open(tmp_path):
    from jtex import rundir

    return rundir.RunDir(tmp_path, {"what": "loop test"}, seed=0)


def test_a_non_finite_loss_stops_with_one_line_and_keeps_the_last_checkpoint(tmp_path):
    def step(state, key):
        loss = jnp.where(state.step >= 4, jnp.nan, 1.0)
        return state._replace(step=state.step + 1, w=state.w + 1), {"loss": loss, "pixel_std": jnp.asarray(0.2)}

    run = _open(tmp_path)
    with pytest.raises(training.TrainingFailed, match=r"diverged at step 5: loss not finite.*step 4 is kept"):
        training.fit(run, state=_loop_state(), step_fn=step, key=jax.random.key(0), steps=10, save_every=2,
                     meta={"kind": "t"}, progress=False)  # fmt: skip
    assert run.manager.latest_step() == 4
    assert (tmp_path / "FAILED").is_file()
    assert [r["step"] for r in run.metrics()] == [1, 2, 3, 4]


def test_a_collapse_to_a_constant_image_is_reported(tmp_path):
    def step(state, key):
        std = jnp.where(state.step >= 10, 0.0, 0.2)
        return state._replace(step=state.step + 1), {"loss": jnp.asarray(1.0), "pixel_std": std}

    run = _open(tmp_path)
    with pytest.raises(training.TrainingFailed, match="collapsed to a constant image at step 35"):
        training.fit(run, state=_loop_state(), step_fn=step, key=jax.random.key(0), steps=100, save_every=50,
                     meta={"kind": "t"}, warmup=5, progress=False)  # fmt: skip


def test_config_mistakes_are_one_line_errors():
    with pytest.raises(JtexError, match="multiple of 32"):
        texture_net.TexNetConfig(size=100).validate()
    with pytest.raises(JtexError, match="--loss must be one of"):
        texture_net.TexNetConfig(loss="l1").validate()
    with pytest.raises(JtexError, match="unknown preset"):
        texture_net.TexNetConfig.preset("fast")
    quick = texture_net.TexNetConfig.preset("quick")
    assert (quick.size, quick.batch, quick.norm, quick.octaves) == (256, 1, "instance", 3)
    # quick's pyramid keeps its coarsest octave 32 px or more; multiscale has its own; an explicit --octaves is checked
    octaves = {s: texture_net.TexNetConfig.preset("quick", size=s).octaves for s in (32, 64, 96, 128, 512)}
    assert octaves == {32: 1, 64: 2, 96: 2, 128: 3, 512: 3}
    multiscale = texture_net.TexNetConfig.preset("quick", loss="multiscale")
    assert (multiscale.octaves, multiscale.octave_weight, quick.octave_weight) == (1, 1.0, 0.5)
    # an explicit --octave-weight with multiscale weighs Snelgrove's 4 octaves (README), so it is kept
    assert texture_net.TexNetConfig.preset("quick", loss="multiscale", octave_weight=0.5).octave_weight == 0.5
    with pytest.raises(JtexError, match="coarsest octave 32 px"):
        texture_net.TexNetConfig.preset("quick", size=64, octaves=3)
    style = texture_net.TexNetConfig.preset("quick", content_dir="photos")
    assert (style.size, style.batch, style.norm, style.octaves, style.octave_weight) == (128, 4, "batch", 1, 1.0)
    assert texture_net.TexNetConfig.preset("quick", content_dir="photos", batch=2).batch == 2  # flags win
    with pytest.raises(JtexError, match="--mrf-weight must be a number >= 0"):
        texture_net.TexNetConfig(mrf_weight=-1.0).validate()
    with pytest.raises(JtexError, match="--mrf-weight goes with --loss gatys"):
        texture_net.TexNetConfig(mrf_weight=1.0, loss="swd").validate()


def test_the_swd_loss_redraws_its_directions_and_trains(tmp_path, tiny_vgg):
    # Heitz et al.'s sliced Wasserstein loss: per sample, directions drawn from the step's key; it ranks a
    # crop of the exemplar above noise, and a few Adam steps lower it.
    cfg = texture_net.TexNetConfig(**TINY, loss="swd", steps=6)
    ex = texture_net.load_exemplar(cfg)
    loss = texture_net._loss_fn(cfg, tiny_vgg, ex)
    noise = jax.random.uniform(jax.random.key(0), (2, 32, 32, 3))
    a, b, c = (np.asarray(loss(noise, None, jax.random.key(k))[0]) for k in (1, 1, 2))
    assert a.shape == (2,) and np.all(np.isfinite(a))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    crop = jnp.asarray(ex[None, :32, :32])
    assert float(loss(crop, None, jax.random.key(1))[0][0]) < 0.5 * float(a.min())
    texture_net.train(cfg, tmp_path, vgg_params=tiny_vgg, progress=False)
    m = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert m[-1]["loss"] < m[0]["loss"]


def test_the_mrf_term_pulls_relu4_1_windows_to_the_exemplars_and_trains(tmp_path, tiny_vgg):
    # --mrf-weight: CNNMRF's window term at relu4_1 joins the Gram loss; it is smaller for a crop of the
    # exemplar (its windows are the exemplar's, but for the wrap-around ones) than for noise.
    cfg = texture_net.TexNetConfig(**TINY, mrf_weight=2.0, steps=4)
    ex = texture_net.load_exemplar(cfg)
    with_mrf = texture_net._loss_fn(cfg, tiny_vgg, ex)
    without = texture_net._loss_fn(dataclasses.replace(cfg, mrf_weight=0.0), tiny_vgg, ex)
    noise = jax.random.uniform(jax.random.key(0), (2, 32, 32, 3))
    crop = jnp.asarray(ex[None, 16:48, 16:48])
    extra = {k: np.asarray(with_mrf(x)[0] - without(x)[0]) for k, x in (("noise", noise), ("crop", crop))}
    assert extra["noise"].shape == (2,) and np.all(extra["noise"] > 0)
    assert float(extra["crop"][0]) < 0.5 * float(extra["noise"].min())
    texture_net.train(cfg, tmp_path, vgg_params=tiny_vgg, progress=False)
    m = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(m) == 4 and all(np.isfinite(r["loss"]) for r in m)


@pytest.mark.parametrize("weight", [1.0, 0.5])
def test_the_gram_loss_over_octaves_adds_the_coarser_octaves_terms(tiny_vgg, weight):
    # --octaves 2: the paper's Gram loss on the sample, plus --octave-weight times the same loss on its
    # (circular) pyramid reduction against the exemplar's reduction, which sees structure twice as large.
    from jtex import objective, pyramid

    cfg2 = texture_net.TexNetConfig(**{**TINY, "size": 64}, octaves=2, octave_weight=weight)
    cfg1 = dataclasses.replace(cfg2, octaves=1)
    ex = texture_net.load_exemplar(cfg2)
    scfg = cfg2.synth_config()
    assert scfg.octaves == 2 and cfg1.synth_config().octaves == 1
    ex_pad, x_pad = objective.exemplar_spec(scfg).pyr_padding, objective.output_spec(scfg).pyr_padding
    ex_coarse = np.asarray(pyramid.gaussian(jnp.asarray(ex[None]), 2, padding=ex_pad)[1][0])
    x = jax.random.uniform(jax.random.key(0), (2, 64, 64, 3))
    x_coarse = pyramid.gaussian(x, 2, padding=x_pad)[1]
    both = texture_net._loss_fn(cfg2, tiny_vgg, ex)(x)[0]
    fine = texture_net._loss_fn(cfg1, tiny_vgg, ex)(x)[0]
    coarse = texture_net._loss_fn(cfg1, tiny_vgg, ex_coarse)(x_coarse)[0]
    assert float(coarse.min()) > 0
    np.testing.assert_allclose(both, fine + weight * coarse, rtol=1e-4)
    with pytest.raises(JtexError, match="--octaves is for --loss gatys or swd"):
        dataclasses.replace(cfg2, loss="multiscale").validate()
    with pytest.raises(JtexError, match="coarsest octave 32 px"):
        dataclasses.replace(cfg2, octaves=3).validate()


def test_batch_norm_over_one_sample_gets_a_note(tmp_path, tiny_vgg, capsys):
    cfg = texture_net.TexNetConfig(**{**TINY, "batch": 1}, steps=1)
    texture_net.train(cfg, tmp_path / "bn", vgg_params=tiny_vgg, progress=True)
    assert "--norm instance samples what was trained" in capsys.readouterr().err
    texture_net.train(dataclasses.replace(cfg, norm="instance"), tmp_path / "in", vgg_params=tiny_vgg, progress=True)
    assert "--norm instance" not in capsys.readouterr().err


def test_load_refuses_a_folder_without_a_generator(tmp_path):
    with pytest.raises(JtexError, match="no trained texture network"):
        texture_net.load(tmp_path)


def test_sample_sizes_are_checked(trained):
    _, net = trained
    with pytest.raises(JtexError, match="multiples of 4"):
        texture_net.sample(net, jax.random.key(0), (1, 30, 32))


def test_cli_trains_and_samples(tmp_path):
    # The real VGG-19 (the CLI has no test hook), at the smallest sizes.
    from jtex import cli

    run = tmp_path / "run"
    argv = ["train-texnet", "-s", TINY["source"], "--output-dir", str(run), "--size", "32", "--scales", "3",
            "--channels", "4", "--batch", "1", "--steps", "2", "--exemplar-size", "64", "--upsample", "bilinear",
            "--octave-weight", "0.25", "-q"]  # fmt: skip
    assert cli.main(argv) == 0
    settings = json.loads((run / "config.json").read_text())["settings"]
    assert (settings["channels"], settings["upsample"], settings["norm"]) == (4, "bilinear", "instance")
    assert (settings["octaves"], settings["octave_weight"]) == (1, 0.25)  # quick's pyramid, cut to --size 32
    assert (
        cli.main(["sample", str(run), "--size", "48", "32", "--count", "3", "--output-dir", str(tmp_path / "s")]) == 0
    )
    names = sorted(p.name for p in (tmp_path / "s").iterdir())
    assert names == ["sample_000.png", "sample_001.png", "sample_002.png", "sheet.png"]
    from jtex import image

    assert image.load(tmp_path / "s" / "sample_000.png").shape == (32, 48, 3)
    assert cli.main(["sample", str(tmp_path), "--output-dir", str(tmp_path / "t")]) == 1


def test_each_layers_gradient_is_l1_normalised():
    # v1's -normalize_gradients: the gradient a Gram term sends into its feature map has L1 norm 1,
    # whatever the term's scale, and the forward value is untouched.
    f = jax.random.normal(jax.random.key(0), (2, 4, 4, 3))
    for scale in (1e-6, 1.0, 1e4):
        g = jax.grad(lambda f: scale * jnp.sum(texture_net._l1_normalised_gradient(f, 1.0) ** 2))(f)
        assert float(jnp.sum(jnp.abs(g))) == pytest.approx(1.0, rel=1e-3)  # the +1e-8 shows at 1e-6
    np.testing.assert_array_equal(np.asarray(texture_net._l1_normalised_gradient(f, 1.0)), np.asarray(f))
    # The content term's gradient is rescaled to its weight instead.
    g = jax.grad(lambda f: 1e3 * jnp.mean(texture_net._l1_normalised_gradient(f, 2.5) ** 2))(f)
    assert float(jnp.sum(jnp.abs(g))) == pytest.approx(2.5, rel=1e-4)


# --- stylisation (--content-dir) ---


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory):
    from jtex import image

    d = tmp_path_factory.mktemp("photos")
    image.save(d / "a.png", image.load(EXAMPLES / "photos" / "chelsea.jpg", width=96))  # 96 x 64
    image.save(d / "b.png", image.load(EXAMPLES / "hubble_deep_field.jpg", width=48))  # 48 x 48
    (d / "notes.txt").write_text("not an image, not listed")
    return d


def test_photo_set_crops_are_seeded_and_inside_the_photos(photo_dir):
    from jtex.photos import PhotoSet

    photos = PhotoSet.load(photo_dir, 40)
    assert len(photos) == 2 and [min(p.shape[:2]) for p in photos.photos] == [40, 40]
    a = photos.batch(jax.random.key(3), 6, 32)
    assert a.shape == (6, 32, 32, 3) and a.dtype == np.float32 and 0 <= a.min() and a.max() <= 1
    np.testing.assert_array_equal(a, photos.batch(jax.random.key(3), 6, 32))
    assert np.abs(a - photos.batch(jax.random.key(4), 6, 32)).mean() > 1e-3
    assert photos.digest() == PhotoSet.load(photo_dir, 40).digest() != PhotoSet.load(photo_dir, 48).digest()


def test_photo_set_skips_unreadable_files_and_refuses_empty_folders(tmp_path, photo_dir, capsys):
    import shutil

    from jtex.photos import PhotoSet

    shutil.copy(photo_dir / "a.png", tmp_path / "a.png")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    assert len(PhotoSet.load(tmp_path, 32)) == 1
    assert "skipped 1 unreadable file(s)" in capsys.readouterr().err
    (tmp_path / "a.png").unlink()
    with pytest.raises(JtexError, match="none of its 1 image files can be read"):
        PhotoSet.load(tmp_path, 32)
    with pytest.raises(JtexError, match="not a folder"):
        PhotoSet.load(tmp_path / "broken.jpg", 32)


@pytest.fixture(scope="module")
def stylist(tmp_path_factory, tiny_vgg, photo_dir):
    out = tmp_path_factory.mktemp("stylist")
    cfg = texture_net.TexNetConfig(**TINY, steps=3, content_dir=str(photo_dir), content_weight=2.0)
    return out, texture_net.train(cfg, out, vgg_params=tiny_vgg, progress=False)


def test_a_stylisation_network_trains_on_photos_and_keeps_their_size(stylist):
    out, net = stylist
    m = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(r["content_loss"] > 0 for r in m) and all(r["loss"] > r["content_loss"] for r in m)
    settings = json.loads((out / "config.json").read_text())["settings"]
    assert settings["content_photos"] == 2 and len(settings["content_sha256"]) == 64
    photo = np.random.default_rng(0).random((30, 45, 3), dtype=np.float32)  # not a multiple of 4
    a = texture_net.stylize(net, photo, jax.random.key(0))
    assert a.shape == (30, 45, 3) and 0 <= a.min() and a.max() <= 1
    np.testing.assert_array_equal(a, texture_net.stylize(texture_net.load(out), photo, jax.random.key(0)))
    assert texture_net.stylize(net, photo, jax.random.key(0), max_side=20).shape == (13, 20, 3)
    # The photo drives the output: another photo, another image.
    assert np.abs(a - texture_net.stylize(net, photo[::-1], jax.random.key(0))).mean() > 1e-4


def test_sample_and_stylize_refuse_the_other_kind_of_network(stylist, trained):
    with pytest.raises(JtexError, match="stylisation network.*jtex stylize"):
        texture_net.sample(stylist[1], jax.random.key(0), (1, 32, 32))
    with pytest.raises(JtexError, match="texture network.*jtex sample"):
        texture_net.stylize(trained[1], np.zeros((32, 32, 3), np.float32), jax.random.key(0))


def test_stylisation_needs_its_photos(stylist, tiny_vgg, tmp_path):
    cfg = texture_net.TexNetConfig(**TINY, steps=3, content_dir=str(tmp_path / "missing"))
    with pytest.raises(JtexError, match="not a folder"):
        texture_net.train(cfg, tmp_path / "run", vgg_params=tiny_vgg, progress=False)
    with pytest.raises(JtexError, match="--content-weight must be"):
        texture_net.TexNetConfig(content_weight=-1.0).validate()
    assert texture_net.TexNetConfig.preset("paper", content_dir="x").batch == 4
    assert texture_net.TexNetConfig.preset("paper", content_dir="x").steps == 3000
    assert texture_net.TexNetConfig.preset("paper").batch == 16


def test_cli_trains_a_stylisation_network_and_stylizes(tmp_path, photo_dir):
    from jtex import cli, image

    run = tmp_path / "run"
    argv = ["train-texnet", "-s", TINY["source"], "--content-dir", str(photo_dir), "--output-dir", str(run),
            "--size", "32", "--scales", "3", "--batch", "1", "--steps", "1", "--exemplar-size", "64", "-q"]  # fmt: skip
    assert cli.main(argv) == 0
    assert cli.main(["stylize", str(run), str(photo_dir), "--output-dir", str(tmp_path / "o")]) == 0
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["a.png", "b.png"]
    assert image.load(tmp_path / "o" / "a.png").shape == (64, 96, 3)
    assert cli.main(["sample", str(run), "--output-dir", str(tmp_path / "s")]) == 1
    bad = argv[:4] + [str(tmp_path / "nowhere")] + argv[5:]
    assert cli.main(bad) == 1
