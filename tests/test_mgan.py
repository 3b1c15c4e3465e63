"""MGAN: the relu4_1 decoder, aligned crops, teachers, training, resume, load, generate, stylize, CLI."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jtex import decoders, mgan, vgg
from jtex.errors import JtexError
from jtex.mgan_config import MGANConfig

from conftest import EXAMPLES

# Tiny runs: 2 MDAN teachers of 48² (3 steps), 32² crops, a 1/8-width random VGG.
TINY = dict(
    source=str(EXAMPLES / "gravel.png"), size=32, teacher_size=48, teachers=2, teacher_steps=3, batch=2,
    exemplar_size=64, save_every=3, calibration_batches=2, method="mdan",
)  # fmt: skip
TINY_WCT = {**TINY, "method": "wct", "feature_weight": 1.0}


@pytest.fixture(scope="module")
def tiny_vgg():
    return vgg.init_params(jax.random.key(0), width=1 / 8)


@pytest.fixture(scope="module")
def run4(tmp_path_factory, tiny_vgg):
    out = tmp_path_factory.mktemp("mgan")
    return out, mgan.train(MGANConfig(**TINY, steps=4), out, vgg_params=tiny_vgg, progress=False)


def _metrics(path):
    return [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]


def test_the_decoder_is_the_authors_netg():
    d = decoders.Decoder()
    v = jax.jit(d.init)(jax.random.key(0), jnp.zeros((1, 16, 16, 512)))
    assert decoders.parameter_count(v) == 512 * 512 * 9 + 512 * 256 * 16 + 256 * 128 * 16 + 128 * 3 * 16 + 2 * (
        512 + 256 + 128
    )  # no conv biases; BatchNorm scale and offset
    out = jax.jit(lambda v, x: d.apply(v, x))(v, jax.random.normal(jax.random.key(1), (2, 5, 7, 512)))
    assert out.shape == (2, 40, 56, 3) and float(jnp.abs(out).max()) <= 1.0  # 8x the side, tanh


def test_up2_is_torchs_transposed_conv_4_2_1():
    x = jax.random.normal(jax.random.key(0), (2, 5, 7, 6))
    k = jax.random.normal(jax.random.key(1), (4, 4, 6, 3))
    # out[2i + t - 1] += x[i] k[t]: lax.conv_transpose on the flipped kernel, padding 2 (= 4 - 1 - 1)
    ref = jax.lax.conv_transpose(x, k[::-1, ::-1], (2, 2), ((2, 2), (2, 2)), dimension_numbers=("NHWC", "HWIO", "NHWC"))
    np.testing.assert_allclose(np.asarray(decoders.up2(x, k)), np.asarray(ref), rtol=1e-4, atol=1e-5)
    one = jnp.zeros((1, 3, 3, 1)).at[0, 1, 1, 0].set(1.0)  # an impulse at (1, 1) lands on rows/cols 1..4
    out = np.asarray(decoders.up2(one, jnp.arange(16.0).reshape(4, 4, 1, 1)))[0, :, :, 0]
    np.testing.assert_array_equal(out[1:5, 1:5], np.arange(16.0).reshape(4, 4))
    assert out.sum() == np.arange(16.0).sum()


def test_resize_up2_is_nearest_upsampling_then_a_3x3_conv():
    x = jax.random.normal(jax.random.key(0), (2, 5, 7, 6))
    k = jax.random.normal(jax.random.key(1), (3, 3, 6, 4))
    up = jnp.repeat(jnp.repeat(x, 2, 1), 2, 2)
    ref = jax.lax.conv_general_dilated(up, k, (1, 1), ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC"))
    np.testing.assert_allclose(np.asarray(decoders.resize_up2(x, k)), np.asarray(ref), rtol=1e-4, atol=1e-5)
    # no checkerboard: a constant map stays constant inside (the transposed conv's phases differ)
    ones, k4 = jnp.ones((1, 6, 6, 1)), jax.random.normal(jax.random.key(2), (4, 4, 1, 1))
    assert np.ptp(np.asarray(decoders.resize_up2(ones, k4[:3, :3]))[0, 1:-1, 1:-1]) < 1e-5
    assert np.ptp(np.asarray(decoders.up2(ones, k4))[0, 1:-1, 1:-1]) > 1e-2


def test_the_resize_decoder_trains_loads_and_generates(tmp_path, tiny_vgg):
    cfg = MGANConfig(**TINY, steps=2, decoder="resize")
    trained = mgan.train(cfg, tmp_path, vgg_params=tiny_vgg, progress=False)
    assert trained.variables["params"]["ResizeUp2_0"]["kernel"].shape[:2] == (3, 3)
    model = mgan.load(tmp_path, vgg_params=tiny_vgg)
    assert model.config.decoder == "resize"
    out = mgan.generate(model, jax.random.key(0), (2, 32, 48))
    assert out.shape == (2, 32, 48, 3) and np.isfinite(out).all()
    from jtex import cli_mgan

    assert (
        cli_mgan.train_parser().parse_args(["-s", "x", "--output-dir", "o", "--decoder", "resize"]).decoder == "resize"
    )
    with pytest.raises(JtexError, match="--decoder must be one of transposed, resize"):
        MGANConfig(**TINY, decoder="pixelshuffle").validate()


def test_crops_of_inputs_and_targets_are_aligned():
    x = jax.random.uniform(jax.random.key(0), (3, 20, 20, 3))
    a, b = jax.jit(lambda k: mgan.draw(k, x, x * 2.0, 5, 8))(jax.random.key(1))
    assert a.shape == (5, 8, 8, 3)
    np.testing.assert_allclose(np.asarray(b), 2.0 * np.asarray(a), rtol=1e-6)  # same photo, place and mirror
    whole = mgan.draw(jax.random.key(2), x, x, 4, 20)[0]
    assert all(any(np.array_equal(w, t) or np.array_equal(w, t[:, ::-1]) for t in np.asarray(x)) for w in whole)


def test_noise_teachers_alternate_kinds_and_are_seeded():
    cfg = MGANConfig(**{**TINY, "teachers": 4}).validate()
    a, b = mgan.teacher_inputs(cfg), mgan.teacher_inputs(cfg)
    assert a.shape == (4, 48, 48, 3) and np.array_equal(a, b)
    assert cfg.kinds == ("brown", "perlin")
    diffs = [float(np.abs(np.diff(t, axis=0)).mean()) for t in a]  # Perlin (1, 3) smoother than brown (0, 2)
    assert diffs[1] < diffs[0] and diffs[3] < diffs[2]
    c = mgan.teacher_inputs(MGANConfig(**{**TINY, "teachers": 4, "seed": 1}).validate())
    assert not np.array_equal(a, c)


def test_training_writes_teachers_and_a_run_folder(run4):
    out, model = run4
    for name in ("config.json", "metrics.jsonl", "result.json", "loss.png", "samples.png", "teachers.png"):
        assert (out / name).is_file(), name
    assert sorted(p.name for p in (out / "teachers").iterdir()) == ["000", "001"]
    assert (out / "teachers" / "000" / "output.png").is_file()
    assert [r["step"] for r in _metrics(out)] == [1, 2, 3, 4]
    assert all(r["feature"] == 0 for r in _metrics(out))  # the authors' losses: no feature term
    res = json.loads((out / "result.json").read_text())
    assert res["kind"] == "mgan" and res["steps"] == 4 and not res["photo_mode"]
    assert all(np.isfinite(r["loss"]) and r["d_loss"] >= 0 for r in _metrics(out))


def test_the_decoder_learns_its_targets(tmp_path, tiny_vgg):
    # No discriminator (adv_weight 0): the pixel MSE to the MDAN targets falls.
    cfg = MGANConfig(**{**TINY, "teachers": 1, "adv_weight": 0.0, "lr": 0.002, "save_every": 30}, steps=30)
    mgan.train(cfg, tmp_path, vgg_params=tiny_vgg, progress=False)
    mse = [r["pixel_mse"] for r in _metrics(tmp_path)]
    assert np.mean(mse[-5:]) < 0.5 * np.mean(mse[:3]), mse


def test_load_generate_is_per_sample_and_seeded(run4, tiny_vgg):
    out, trained = run4
    model = mgan.load(out, vgg_params=tiny_vgg)
    for a, b in zip(jax.tree.leaves(model.variables), jax.tree.leaves(trained.variables)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    four = mgan.generate(model, jax.random.key(3), (4, 40, 56), noise="perlin")
    two = mgan.generate(model, jax.random.key(3), (2, 40, 56), noise="perlin")
    assert four.shape == (4, 40, 56, 3) and four.dtype == np.float32 and 0 <= four.min() and four.max() <= 1
    np.testing.assert_allclose(two, four[:2], atol=1e-6)  # inference BatchNorm: no sample depends on its batch
    assert np.abs(four[0] - four[1]).mean() > 1e-4
    other = mgan.generate(model, jax.random.key(4), (1, 40, 56), noise="perlin")
    assert np.abs(other[0] - four[0]).mean() > 1e-4
    brown = mgan.generate(model, jax.random.key(3), (1, 40, 56))  # the first kind it learnt
    assert np.abs(brown[0] - four[0]).mean() > 1e-4
    with pytest.raises(JtexError, match="multiples of 8"):
        mgan.generate(model, jax.random.key(0), (1, 30, 32))
    with pytest.raises(JtexError, match="--noise spot: this model decodes brown and perlin noise"):
        mgan.generate(model, jax.random.key(0), (1, 32, 32), noise="spot")  # spot noise needs a wct model
    with pytest.raises(JtexError, match="not noise|noise"):
        mgan.stylize(model, four[0])


def test_more_steps_resume_to_the_same_weights(run4, tmp_path, tiny_vgg):
    _, full = run4
    mgan.train(MGANConfig(**TINY, steps=2), tmp_path, vgg_params=tiny_vgg, progress=False)
    again = mgan.train(MGANConfig(**TINY, steps=4), tmp_path, vgg_params=tiny_vgg, progress=False)
    for a, b in zip(jax.tree.leaves(again.variables), jax.tree.leaves(full.variables)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    with pytest.raises(JtexError, match="other settings.*adv_weight"):
        mgan.train(MGANConfig(**TINY, steps=4, adv_weight=0.1), tmp_path, vgg_params=tiny_vgg, progress=False)
    # --overwrite starts again: teachers too (their settings change with the run's)
    (tmp_path / "teachers" / "001" / "stale.txt").write_text("x")
    cfg = MGANConfig(**{**TINY, "teachers": 1}, steps=2, adv_weight=0.1)
    mgan.train(cfg, tmp_path, vgg_params=tiny_vgg, progress=False, overwrite=True)
    assert sorted(p.name for p in (tmp_path / "teachers").iterdir()) == ["000"]
    assert [r["step"] for r in _metrics(tmp_path)] == [1, 2]


def test_photo_mode_stylizes_photos(tmp_path, tiny_vgg):
    from jtex import image

    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("chelsea.jpg", "coffee.jpg"):
        src = EXAMPLES / "photos" / name
        if src.is_file():
            image.save(photos / f"{src.stem}.png", image.load(src, width=80))
    cfg = MGANConfig(**{**TINY, "method": "auto"}, steps=2, content_dir=str(photos))
    model = mgan.train(cfg, tmp_path / "run", vgg_params=tiny_vgg, progress=False)
    assert model.config.photo_mode and model.config.kinds == () and model.config.method == "mdan"  # auto
    inputs = image.load(tmp_path / "run" / "teachers" / "000" / "exemplar.png")  # the style, as MDAN saw it
    assert inputs.shape[2] == 3
    out = mgan.stylize(model, image.load(EXAMPLES / "photos" / "chelsea.jpg", width=70))
    assert out.shape[1] == 64 and out.shape[0] % 8 == 0  # floored to multiples of 8
    with pytest.raises(JtexError, match="photos"):
        mgan.generate(model, jax.random.key(0), (1, 32, 32))


def test_settings_mistakes_are_one_line_errors():
    for bad, match in [
        (dict(size=36), "--size must be a multiple of 8"),
        (dict(teacher_size=24), "--teacher-size must be a multiple of 8 from --size"),
        (dict(noise="pink"), "--noise must be one of"),
        (dict(teachers=0), "--teachers must be at least 1"),
        (dict(adv_weight=float("inf")), "--adv-weight must be a finite number"),
    ]:
        with pytest.raises(JtexError, match=match):
            MGANConfig(**{**TINY, **bad}).validate()
    with pytest.raises(JtexError, match="--preset must be one of quick, paper"):
        MGANConfig.preset("fast")


def test_cli_errors_exit_1_with_one_line(tmp_path, capsys, run4):
    from jtex import cli

    gravel = str(EXAMPLES / "gravel.png")
    for argv, match in [
        (["train-mgan", "-s", str(tmp_path / "no.png"), "--output-dir", str(tmp_path / "o")], "no such file"),
        (["train-mgan", "-s", gravel, "--size", "100", "--output-dir", str(tmp_path / "o")], "multiple of 8"),
        (["train-mgan", "-s", gravel, "--content-dir", str(tmp_path / "no"), "--output-dir", str(tmp_path)], "folder"),
        (["generate", str(tmp_path), "--output-dir", str(tmp_path / "o")], "no trained MGAN"),
        (["generate", str(run4[0]), "--content", str(tmp_path / "x.jpg"), "--output-dir", str(tmp_path)], "--content"),
        (["generate", str(run4[0]), "--count", "0", "--output-dir", str(tmp_path / "o")], "--count"),
    ]:  # fmt: skip
        assert cli.main(argv) == 1, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and match in err, err
    assert not (tmp_path / "o").exists()  # refused before any work


@pytest.fixture(scope="module")
def wct_run(tmp_path_factory, tiny_vgg):
    out = tmp_path_factory.mktemp("mgan_wct")
    return out, mgan.train(MGANConfig(**TINY_WCT, steps=3), out, vgg_params=tiny_vgg, progress=False)


def test_wct_matches_the_given_statistics():
    from jtex import wct

    rng = np.random.default_rng(0)
    style = rng.standard_normal((4000, 6)) @ rng.standard_normal((6, 6)) + np.arange(6.0)
    s = wct.stats(style)
    np.testing.assert_allclose(s.colour @ s.colour, np.cov(style, rowvar=False), rtol=1e-4, atol=1e-4)
    feats = jnp.asarray(rng.standard_normal((40, 50, 6)) * 3.0 + 1.0, jnp.float32)
    out = np.asarray(jax.jit(lambda f: wct.transform(f, s.mean, s.colour, eps=1e-6))(feats)).reshape(-1, 6)
    np.testing.assert_allclose(out.mean(axis=0), s.mean, atol=1e-4)
    np.testing.assert_allclose(np.cov(out, rowvar=False), s.colour @ s.colour, rtol=0.02, atol=0.02)
    flat = np.asarray(wct.transform(jnp.ones((3, 4, 6)), s.mean, s.colour))  # a constant map: the mean, not NaN
    np.testing.assert_allclose(flat, np.broadcast_to(s.mean, flat.shape), atol=1e-5)
    with pytest.raises(ValueError, match="two or more finite"):
        wct.stats(np.full((5, 3), np.nan))


def test_exemplar_crops_are_seeded_and_skip_narrow_copies():
    from jtex import patchbank

    rng = np.random.default_rng(0)
    copies = [rng.random((50, 60, 3)), rng.random((30, 90, 3)), rng.random((70, 70, 3))]
    a = patchbank.crops(copies, 32, 3, seed=1, side=64)
    assert a.shape == (6, 50, 50, 3) and a.dtype == np.float32  # the 30-px copy left out; side down to 50
    assert np.array_equal(a, patchbank.crops(copies, 32, 3, seed=1, side=64))
    assert not np.array_equal(a, patchbank.crops(copies, 32, 3, seed=2, side=64))
    assert patchbank.crops(copies, 40, 2, seed=1).shape == (4, 40, 40, 3)
    with pytest.raises(ValueError, match="at most 70 px"):
        patchbank.crops(copies, 80, 1, seed=0)
    with pytest.raises(JtexError, match="raise --exemplar-size or lower --size"):
        mgan.exemplar_crops(MGANConfig(**{**TINY_WCT, "size": 64}), np.zeros((40, 40, 3), np.float32))


def test_a_noise_model_learns_the_exemplar_by_default(tmp_path):
    noise = MGANConfig.preset("quick", source="x.png")
    assert noise.method == "wct" and noise.steps == 800 and noise.lr == 0.002 and noise.feature_weight == 1.0
    photo = MGANConfig.preset("quick", source="x.png", content_dir="photos")
    assert photo.method == "mdan" and photo.steps == 400 and photo.lr == 0.02
    assert MGANConfig.preset("quick", source="x.png", method="mdan").steps == 400
    assert MGANConfig(source="x.png").validate().method == "wct"
    for bad, match in [(dict(method="gatys"), "--method must be one of wct, mdan"),
                       (dict(method="wct", content_dir="photos"), "drop --content-dir"),
                       (dict(feature_weight=-1.0), "--feature-weight must be >= 0")]:  # fmt: skip
        with pytest.raises(JtexError, match=match):
            MGANConfig(**{**TINY, **bad}).validate()
    from jtex import cli_mgan

    args = cli_mgan.train_parser().parse_args(["-s", "x", "--output-dir", "o", "--method", "mdan"])
    assert args.method == "mdan" and args.feature_weight is None
    argv = ["-s", "x", "--output-dir", "o", "--feature-weight", "2"]
    assert cli_mgan.train_parser().parse_args(argv).feature_weight == 2.0


def test_a_wct_model_trains_on_the_exemplar_and_makes_textures(wct_run, tiny_vgg):
    from jtex import image

    out, trained = wct_run
    assert (out / "textures.png").is_file() and not (out / "teachers").exists()
    assert all(r["feature"] > 0 for r in _metrics(out))  # TINY_WCT's feature term is on
    assert json.loads((out / "result.json").read_text())["method"] == "wct"
    model = mgan.load(out, vgg_params=tiny_vgg)
    assert model.config.method == "wct" and model.config.kinds == ("swap", "spot", "brown", "perlin")
    np.testing.assert_array_equal(model.stats.colour, trained.stats.colour)
    np.testing.assert_array_equal(model.spots.maps[0], trained.spots.maps[0])
    four = mgan.generate(model, jax.random.key(3), (4, 40, 56), noise="perlin")
    two = mgan.generate(model, jax.random.key(3), (2, 40, 56), noise="perlin")
    np.testing.assert_allclose(two, four[:2], atol=1e-5)  # per-sample statistics and inference BatchNorm
    assert np.abs(four[0] - four[1]).mean() > 1e-3
    # each output carries the exemplar's colour histogram (gravel is grey: so is the output)
    ex = image.load(out / "exemplar.png")
    assert np.allclose(four[0][..., 0], four[0][..., 2])
    q = np.linspace(0.05, 0.95, 10)
    np.testing.assert_allclose(np.quantile(four[0], q), np.quantile(ex, q), atol=0.02)
    photo = mgan.stylize(model, image.load(EXAMPLES / "photos" / "chelsea.jpg", width=70))
    assert photo.shape[1] == 64 and np.isfinite(photo).all()  # a wct model stylises photos too
    _spot_textures_tile_and_are_per_sample(model, ex)
    (out / "exemplar.png").rename(out / "gone.png")
    try:
        with pytest.raises(JtexError, match="exemplar.png is missing"):
            mgan.load(out, vgg_params=tiny_vgg)
    finally:
        (out / "gone.png").rename(out / "exemplar.png")


def _spot_textures_tile_and_are_per_sample(model, ex):
    from jtex import mgan_render, spotnoise

    five = mgan.generate(model, jax.random.key(3), (5, 40, 56))  # swapped spot noise by default; two calls of CHUNK
    assert five.shape == (5, 40, 56, 3) and np.isfinite(five).all()
    np.testing.assert_allclose(mgan.generate(model, jax.random.key(3), (1, 40, 56)), five[:1], atol=1e-5)
    spot = mgan.generate(model, jax.random.key(3), (2, 40, 56), noise="spot")  # the same fields, not swapped
    assert spot.shape == (2, 40, 56, 3) and np.abs(spot[0] - five[0]).mean() > 1e-3
    # (the tiny random VGG's relu4_1 windows all point one way, so its swaps agree: diversity on spot noise)
    assert np.abs(spot[0] - spot[1]).mean() > 1e-3
    q = np.linspace(0.05, 0.95, 10)
    np.testing.assert_allclose(np.quantile(five[4], q), np.quantile(ex, q), atol=0.02)
    # The field is periodic and the decoder reaches SPOT_PAD cells: decoding it with a wider wrap gives the
    # same pixels, so the texture is one period of an endless one (it tiles).
    f = spotnoise.field(model.spots, jax.random.key(0), 5, 7)
    dec = decoders.Decoder(upsample=model.config.decoder)

    def wrapped(pad):
        out = dec.apply(model.variables, jnp.pad(f, ((pad, pad), (pad, pad), (0, 0)), mode="wrap")[None])[0]
        return np.asarray(out[8 * pad : 8 * pad + 40, 8 * pad : 8 * pad + 56])

    np.testing.assert_allclose(wrapped(mgan_render.SPOT_PAD), wrapped(mgan_render.SPOT_PAD + 3), atol=1e-5)
    assert np.abs(wrapped(mgan_render.SPOT_PAD - 1) - wrapped(mgan_render.SPOT_PAD + 3)).max() > 1e-4


def test_a_folder_from_before_the_method_setting_resumes_as_mdan(run4, tmp_path, tiny_vgg):
    import dataclasses
    import shutil

    shutil.copytree(run4[0], tmp_path / "old")
    conf = json.loads((tmp_path / "old" / "config.json").read_text())
    del conf["settings"]["method"], conf["settings"]["feature_weight"]
    (tmp_path / "old" / "config.json").write_text(json.dumps(conf))
    more = mgan.train(MGANConfig(**TINY, steps=5), tmp_path / "old", vgg_params=tiny_vgg, progress=False)
    assert more.config.method == "mdan" and more.stats is None
    with pytest.raises(JtexError, match="other settings.*method"):
        cfg = dataclasses.replace(MGANConfig(**TINY_WCT), steps=6)
        mgan.train(cfg, tmp_path / "old", vgg_params=tiny_vgg, progress=False)
