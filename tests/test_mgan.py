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
    exemplar_size=64, save_every=3, calibration_batches=2,
)  # fmt: skip


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
    cfg = MGANConfig(**TINY, steps=2, content_dir=str(photos))
    model = mgan.train(cfg, tmp_path / "run", vgg_params=tiny_vgg, progress=False)
    assert model.config.photo_mode and model.config.kinds == ()
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
