"""Markovian GANs: the patch discriminators and their loss, the augmented patch bank, MDAN runs, resume, CLI."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jtex import discriminators as dis
from jtex import mdan, patchbank, vgg
from jtex.errors import JtexError
from jtex.mgan_config import MDANConfig

from conftest import EXAMPLES

# Tiny runs: 64x64 outputs (16x16 relu3_1 maps, 9 patches), a 64 px exemplar, a 1/8-width random VGG.
TINY = dict(source=str(EXAMPLES / "gravel.png"), width=64, height=64, exemplar_size=64, save_every=3)


@pytest.fixture(scope="module")
def tiny_vgg():
    return vgg.init_params(jax.random.key(0), width=1 / 8)


def _metrics(path):
    return [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]


# --- the discriminators and the loss ---


def test_hinge_loss_golden_values():
    s = jnp.array([2.0, 0.5, -1.0, -3.0])
    assert float(dis.hinge_loss(s, dis.REAL)) == pytest.approx((0 + 0.5 + 2 + 4) / 4)  # max(0, 1 - s)
    assert float(dis.hinge_loss(s, dis.FAKE)) == pytest.approx((3 + 1.5 + 0 + 0) / 4)  # max(0, 1 + s)
    g = jax.grad(lambda s: dis.hinge_loss(s, dis.REAL))(s)
    np.testing.assert_allclose(np.asarray(g), [0, -0.25, -0.25, -0.25])  # no gradient past the margin


def test_the_ring_mask_silences_the_border_of_the_score_map():
    s = jax.random.normal(jax.random.key(0), (2, 8, 8))
    loss, g = jax.value_and_grad(lambda s: dis.hinge_loss(dis.mask_ring(s, dis.FAKE), dis.FAKE))(s)
    inner = np.asarray(s)[:, 1:7, 1:7]
    assert float(loss) == pytest.approx(np.maximum(0, 1 + inner).sum() / 128, rel=1e-5)  # 36 inner of 64, counted
    g = np.asarray(g)
    ring = np.ones((8, 8), bool)
    ring[1:7, 1:7] = False
    assert np.all(g[:, ring] == 0) and np.count_nonzero(g[:, ~ring]) > 0


def test_mgan_discriminator_maps_a_128_patch_to_8x8_scores_each_seeing_10_cells():
    d = dis.ConvDiscriminator(features=8)
    x = jax.random.normal(jax.random.key(0), (2, 32, 32, 16))
    v = jax.jit(d.init)(jax.random.key(1), x)
    score = jax.jit(d.apply)
    base = score(v, x)
    assert base.shape == (2, 8, 8)
    # One relu3_1 cell changed: score j sees cells 4j-3 .. 4j+6, so cell 13 reaches rows and columns 2, 3, 4.
    moved = np.asarray(score(v, x.at[0, 13, 13].add(10.0)) != base)
    rows, cols = np.nonzero(moved[0])
    assert set(rows) == {2, 3, 4} and set(cols) == {2, 3, 4} and not moved[1].any()


def test_batch_norm_inference_mode_scores_a_patch_whatever_its_batch():
    d = dis.PatchDiscriminator(features=16)
    p = jax.random.normal(jax.random.key(0), (6, 8, 8, 16))
    mixed = jnp.concatenate([p[:1], 3.0 + jax.random.normal(jax.random.key(1), (5, 8, 8, 16))])
    v = jax.jit(d.init)(jax.random.key(2), p)
    v = {**v, "batch_stats": jax.tree.map(lambda a: a + 0.5, v["batch_stats"])}  # running stats not the identity
    infer = jax.jit(d.apply)
    train = jax.jit(lambda v, x: d.apply(v, x, train=True, mutable=["batch_stats"])[0])
    a, b, ta, tb = infer(v, p), infer(v, mixed), train(v, p), train(v, mixed)
    assert a.shape == (6,) and float(a[0]) == pytest.approx(float(b[0]), rel=1e-5)
    assert abs(float(ta[0]) - float(tb[0])) > 1e-3  # training mode: batch statistics, so it does depend
    assert abs(float(a[0]) - float(ta[0])) > 1e-3


def test_patches_cover_the_map_and_their_gradient_is_averaged_over_overlaps():
    assert list(dis.patch_grid(16)) == [0, 4, 8] and list(dis.patch_grid(18)) == [0, 4, 8, 10]  # last flush
    f = jax.random.normal(jax.random.key(0), (2, 18, 16, 3))
    p = dis.extract_patches(f)
    assert p.shape == (2 * 4 * 3, 8, 8, 3)
    np.testing.assert_array_equal(np.asarray(p[4]), np.asarray(f[0, 4:12, 4:12]))  # map 0, row 1, column 1
    np.testing.assert_array_equal(np.asarray(p[12 + 9]), np.asarray(f[1, 10:18, 0:8]))
    summed = jax.grad(lambda f: jnp.sum(dis.extract_patches(f)))(f)
    np.testing.assert_allclose(np.asarray(summed[0, ..., 0]), dis.overlap_counts(18, 16))
    averaged = jax.grad(lambda f: jnp.sum(dis.extract_patches(f, average_overlaps=True)))(f)
    np.testing.assert_allclose(np.asarray(averaged), 1.0, rtol=1e-6)


# --- the augmented exemplar ---


def test_augmented_copies_are_18_without_the_rotation_fill():
    flat = np.full((64, 80, 3), 0.5, np.float32)
    copies = patchbank.augmented_copies(flat)
    assert len(copies) == 18
    assert all(abs(c - 0.5).max() < 1e-5 for c in copies)  # no black corner came in with a rotation
    ramp = np.random.default_rng(0).random((64, 80, 3), dtype=np.float32)
    c = patchbank.augmented_copies(ramp)
    np.testing.assert_array_equal(c[4], ramp)  # unrotated, unscaled
    np.testing.assert_array_equal(c[9 + 4], ramp[:, ::-1])  # and mirrored
    assert c[3].shape[:2] == (58, 73) and c[5].shape[:2] == (70, 88)  # scales 1/1.1 and 1.1
    assert c[1].shape == c[7].shape and c[1].shape[0] < 64  # -10 and +10 degrees, cropped alike


def test_patch_bank_draws_real_patches_of_every_copy(tiny_vgg):
    copies = patchbank.augmented_copies(np.random.default_rng(1).random((64, 64, 3), dtype=np.float32))
    bank = patchbank.build(tiny_vgg, copies, "relu3_1")
    assert bank.maps.shape[0] == 18 and set(bank.positions[:, 0]) == set(range(18))
    drawn = np.asarray(jax.jit(lambda b, k: b.sample(k, 5, 8))(bank, jax.random.key(3)))
    idx = np.asarray(jax.random.randint(jax.random.key(3), (5,), 0, bank.count))
    for got, i in zip(drawn, idx):
        np.testing.assert_array_equal(got, bank.patch(int(i), 8))


# --- MDAN ---


@pytest.fixture(scope="module")
def run6(tmp_path_factory, tiny_vgg):
    out = tmp_path_factory.mktemp("mdan")
    return out, mdan.mdan(MDANConfig(**TINY, steps=6), out, vgg_params=tiny_vgg, progress=False)


def test_mdan_writes_a_run_folder_and_changes_the_image(run6, tiny_vgg):
    out, res = run6
    for name in ("config.json", "metrics.jsonl", "result.json", "loss.png", "output.png", "exemplar.png"):
        assert (out / name).is_file(), name
    assert sorted(p.name for p in (out / "snapshots").iterdir()) == ["step_000003.png", "step_000006.png"]
    assert [r["step"] for r in _metrics(out)] == list(range(1, 7))
    assert res.image.shape == (64, 64, 3) and res.steps == 6 and 0 <= res.image.min() and res.image.max() <= 1
    start = mdan.crop(res.config, mdan.init_state(res.config, mdan.load_style(res.config), None, 32).pixels)
    assert np.abs(res.image - start).mean() > 5e-3  # Adam at lr 0.02 moved the pixels
    from jtex import colour

    style = mdan.load_style(res.config)  # the output has the exemplar's colour histogram
    np.testing.assert_allclose(res.image, colour.match_histogram(res.image, style), atol=1e-6)
    # The canvas is 8 px larger on every side; the output is its centre, also in the snapshots.
    pixels = mdan.init_state(res.config, mdan.load_style(res.config), None, 32).pixels
    assert pixels.shape == (1, 80, 80, 3) and res.config.canvas == (80, 80)
    np.testing.assert_array_equal(start, np.clip(np.asarray(mdan.to_unit(pixels))[0, 8:72, 8:72], 0, 1))
    from jtex import image

    assert image.load(out / "snapshots" / "step_000006.png").shape == (64, 64, 3)
    manifest = json.loads((out / "config.json").read_text())
    assert manifest["seed"] == 0 and manifest["settings"]["d_batch"] == "separate"
    assert len(manifest["settings"]["weights_sha256"]) == 64
    assert json.loads((out / "result.json").read_text())["kind"] == "mdan"


def test_the_discriminator_learns_to_tell_the_exemplar_from_the_image(tmp_path, tiny_vgg):
    # Pixels held (lr ~ 0): D's hinge loss falls from about 2 (chance) to near 0 within a dozen steps,
    # with reals and fakes in one BatchNorm batch or (the default) in two.
    for d_batch in ("joint", "separate"):
        cfg = MDANConfig(**TINY, steps=12, lr=1e-9, d_lr=0.002, d_batch=d_batch)
        mdan.mdan(cfg, tmp_path / d_batch, vgg_params=tiny_vgg, progress=False)
        d = [r["d_loss"] for r in _metrics(tmp_path / d_batch)]
        assert d[0] > 1.0 and max(d[-4:]) < 0.2 * d[0], (d_batch, d)


def test_the_pixels_learn_to_fool_a_fixed_discriminator(tmp_path, tiny_vgg):
    # D held (d_lr ~ 0): the image's patches climb to "real", the generator's hinge loss falls.
    mdan.mdan(MDANConfig(**TINY, steps=6, d_lr=1e-9), tmp_path, vgg_params=tiny_vgg, progress=False)
    s = [r["style_loss"] for r in _metrics(tmp_path)]
    assert s[-1] < 0.2 * s[0], s


def test_more_steps_resume_to_the_same_pixels_and_seeds_decide_them(run6, tmp_path, tiny_vgg):
    _, full = run6
    mdan.mdan(MDANConfig(**TINY, steps=3), tmp_path / "b", vgg_params=tiny_vgg, progress=False)
    again = mdan.mdan(MDANConfig(**TINY, steps=6), tmp_path / "b", vgg_params=tiny_vgg, progress=False)
    np.testing.assert_allclose(again.image, full.image, atol=1e-6)
    assert [r["step"] for r in _metrics(tmp_path / "b")] == list(range(1, 7))
    # A finished run answers at once with its image, and refuses other settings.
    np.testing.assert_array_equal(
        mdan.mdan(MDANConfig(**TINY, steps=6), tmp_path / "b", vgg_params=tiny_vgg, progress=False).image,
        again.image,
    )
    with pytest.raises(JtexError, match="other settings.*tv_weight"):
        mdan.mdan(MDANConfig(**TINY, steps=6, tv_weight=1e-3), tmp_path / "b", vgg_params=tiny_vgg, progress=False)
    other = mdan.mdan(MDANConfig(**TINY, steps=3, seed=1), tmp_path / "c", vgg_params=tiny_vgg, progress=False)
    assert np.abs(other.image - again.image).mean() > 1e-3


def test_the_spot_start_has_the_exemplars_colours_and_the_white_start_its_mean():
    from jtex import image

    style = image.load(EXAMPLES / "gravel.png", width=64)
    cfg = MDANConfig(**TINY)
    assert cfg.init_noise == "spot"
    start = np.asarray(mdan.start_image(cfg, style))
    assert start.shape == (80, 80, 3)  # the canvas: 8 px of margin on every side
    np.testing.assert_allclose(start.mean(axis=(0, 1)), style.mean(axis=(0, 1)), atol=0.03)
    np.testing.assert_allclose(start.std(axis=(0, 1)), style.std(axis=(0, 1)), rtol=0.25)  # not a flat start
    corr = np.corrcoef(start.reshape(-1, 3).T)  # gravel's channels move together; independent noise would not
    assert corr[0, 2] > 0.5 and np.corrcoef(style.reshape(-1, 3).T)[0, 2] > 0.5
    np.testing.assert_array_equal(start, np.asarray(mdan.start_image(cfg, style)))  # the seed decides it
    assert np.abs(start - np.asarray(mdan.start_image(MDANConfig(**TINY, seed=1), style))).mean() > 0.01
    white = np.asarray(mdan.start_image(MDANConfig(**TINY, init_noise="white"), style))
    np.testing.assert_allclose(white.std(axis=(0, 1)), 0.01, rtol=0.1)  # init_scale around the mean colour
    grey = np.repeat(style.mean(-1, keepdims=True), 3, -1)
    g = np.asarray(mdan.start_image(cfg, grey))
    np.testing.assert_allclose(g[..., 0], g[..., 2], atol=1e-6)  # a grey exemplar's start is grey


def test_the_gram_term_pulls_the_fine_grams_and_weight_0_is_the_authors_mdan(tmp_path, tiny_vgg):
    # From a flat start, D held (d_lr ~ 0): the Gram term, scaled to 4x the adversarial gradient, brings
    # relu1_1's and relu2_1's Grams towards the exemplar's.
    cfg = MDANConfig(**TINY, steps=8, d_lr=1e-9, gram_weight=4.0, init_noise="white")
    mdan.mdan(cfg, tmp_path / "g", vgg_params=tiny_vgg, progress=False)
    g = [r["gram_loss"] for r in _metrics(tmp_path / "g")]
    assert g[-1] < 0.7 * g[0], g
    mdan.mdan(MDANConfig(**TINY, steps=2, gram_weight=0.0), tmp_path / "a", vgg_params=tiny_vgg, progress=False)
    assert all("gram_loss" not in r for r in _metrics(tmp_path / "a"))


def test_a_grey_exemplar_gives_an_exactly_grey_output(tmp_path, tiny_vgg):
    # Per-channel histogram matching alone keeps MDAN's colour specks; a grey exemplar's output is greyed first.
    from jtex import colour, image

    grey = np.repeat(image.load(EXAMPLES / "gravel.png", width=64).mean(-1, keepdims=True), 3, -1)
    res = mdan.mdan(MDANConfig(**TINY, steps=3), tmp_path / "g", exemplar=grey, vgg_params=tiny_vgg, progress=False)
    assert colour.is_grey(res.image) and res.image.std() > 0.05
    np.testing.assert_allclose(np.sort(res.image[..., 0].ravel()), np.sort(grey[..., 0].ravel()), atol=1e-6)
    raw = mdan.mdan(MDANConfig(**TINY, steps=3, match_colour=False), tmp_path / "r", exemplar=grey,
                    vgg_params=tiny_vgg, progress=False)  # fmt: skip
    assert not colour.is_grey(raw.image)  # the specks are MDAN's: --no-match-colour keeps them


def test_guided_synthesis_starts_from_the_photo_and_keeps_its_layout(tmp_path, tiny_vgg):
    from jtex import image

    photo = image.load(EXAMPLES / "photos" / "chelsea.jpg", width=96)
    cfg = MDANConfig(**TINY, steps=3, content="cat")
    res = mdan.mdan(cfg, tmp_path, content=photo, vgg_params=tiny_vgg, progress=False)
    m = _metrics(tmp_path)
    assert m[0]["content_loss"] < 1e-6 < m[-1]["content_loss"] < 0.5  # starts on the photo's relu5_1 map
    small = image.resize(photo, width=64, height=64)

    def ranks(x):  # per channel: the output's histogram is matched to the style's, a monotone map
        return np.argsort(np.argsort(x.reshape(-1, 3), axis=0), axis=0).ravel()

    assert np.corrcoef(ranks(res.image), ranks(small))[0, 1] > 0.8
    assert "content_image_sha256" in json.loads((tmp_path / "config.json").read_text())["settings"]


def test_a_non_finite_loss_stops_with_one_line(tmp_path, tiny_vgg):
    bad = {**tiny_vgg, "conv1_1": {**tiny_vgg["conv1_1"], "bias": np.full_like(tiny_vgg["conv1_1"]["bias"], np.nan)}}
    with pytest.raises(JtexError, match=r"diverged at step 1: .*not finite") as e:
        mdan.mdan(MDANConfig(**TINY, steps=2), tmp_path, vgg_params=bad, progress=False)
    assert "\n" not in str(e.value) and (tmp_path / "FAILED").is_file()


def test_settings_mistakes_are_one_line_errors():
    from jtex import weights
    from jtex.mgan_config import DEFAULT_WEIGHTS

    assert DEFAULT_WEIGHTS == weights.DEFAULT
    for bad, match in [
        (dict(width=100), "multiples of 8"),
        (dict(height=16), "multiples of 8 from 32"),
        (dict(d_batch="mixed"), "--d-batch must be one of"),
        (dict(lr=float("nan")), "--lr must be a finite number"),
        (dict(steps=0), "at least 1"),
        (dict(source=""), "no exemplar"),
        (dict(exemplar_size=32), "--exemplar-size must be 64"),
        (dict(margin=4), "--margin must be a multiple of 8"),
        (dict(gram_weight=-1.0), "--gram-weight must be >= 0"),
        (dict(init_noise="pink"), "--init-noise must be one of spot, white, brown"),
    ]:
        with pytest.raises(JtexError, match=match):
            MDANConfig(**{**TINY, **bad}).validate()


def test_cli_errors_exit_1_with_one_line(tmp_path, capsys):
    from jtex import cli

    gravel = str(EXAMPLES / "gravel.png")
    for argv, match in [
        (["mdan", "-s", str(tmp_path / "none.png"), "--output-dir", str(tmp_path / "o")], "no such file"),
        (["mdan", "-s", gravel, "-ow", "100", "--output-dir", str(tmp_path / "o")], "multiples of 8"),
        (["mdan", "-s", gravel, "--content", str(tmp_path / "x.jpg"), "--output-dir", str(tmp_path)], "--content"),
    ]:
        assert cli.main(argv) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and match in err, err
    assert not (tmp_path / "o").exists()  # refused before any work


def test_cli_runs_mdan_on_the_real_network(tmp_path, capsys):
    from jtex import cli, image

    out = tmp_path / "run"
    argv = ["mdan", "-s", str(EXAMPLES / "gravel.png"), "-ow", "48", "-oh", "32", "-m", "2", "--exemplar-size", "64",
            "--no-augment", "--output-dir", str(out), "-q"]  # fmt: skip
    assert cli.main(argv) == 0
    assert "texture 48x32, 2 steps" in capsys.readouterr().out
    assert image.load(out / "output.png").shape == (32, 48, 3)
    assert len(_metrics(out)) == 2
