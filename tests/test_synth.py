"""jtex.synth end to end on the real VGG-19, at small sizes and few iterations."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jtex
import jtex.synth
from jtex import colour, image, initial, objective, stats, synth
from jtex.config import GATYS_LAYERS, SynthConfig
from jtex.errors import JtexError

from conftest import EXAMPLES, SMALL_SYNTH

BRICK = str(EXAMPLES / "brick.png")
GRAVEL = str(EXAMPLES / "gravel.png")
SMALL = dict(SMALL_SYNTH, max_iter=25, progress=False)


def _problem(**kw):
    return synth.build(SynthConfig(sources=(BRICK,), **{**{k: v for k, v in SMALL.items() if k != "progress"}, **kw}))


def _unbatched(targets, i=0):
    return jax.tree.map(lambda t: t[i], targets)


def test_loss_falls_and_images_are_valid():
    cfg = SynthConfig(sources=(BRICK,), **{k: v for k, v in SMALL.items() if k != "progress"})
    res = synth.run(cfg, progress=False)
    assert res.images.shape == (1, 64, 64, 3) and res.images.dtype == np.float32
    assert 0.0 <= res.images.min() and res.images.max() <= 1.0
    # A grey exemplar gives a grey texture (no colour patches).
    np.testing.assert_array_equal(res.images[..., 0], res.images[..., 1])
    # The start's loss, for comparison: the same objective at the initial canvas.
    p = synth.build(cfg)
    assert p.x0.shape == (1, 1, 64 + 2 * p.margin + p.trail[0], 64 + 2 * p.margin + p.trail[1], 3)
    start = float(objective.texture_loss(p.x0[0], _unbatched(p.targets), p.params, p.spec)[0])
    assert res.losses[0] < start / 20, (start, res.losses)


def test_colour_init_follows_the_exemplar():
    grey = image.load(BRICK, width=64)
    assert colour.is_grey(grey) and not colour.is_grey(image.load(EXAMPLES / "hubble_deep_field.jpg", width=64))
    x = initial.noise(
        jax.random.key(0), 2, 16, 16, grey.reshape(-1, 3).mean(0), scale=0.1, colour=colour.colour_mixing(grey)
    )
    np.testing.assert_allclose(x[..., 0], x[..., 2], atol=1e-6)
    assert float(jnp.std(x)) > 0.05


def test_gatys_full_model_matches_the_exemplar_better_than_the_start():
    cfg = SynthConfig(
        sources=(BRICK,),
        source_width=96,
        output_width=48,
        output_height=48,
        octaves=1,
        layers=GATYS_LAYERS,
        gram="gatys",
        padding="same",
        max_iter=15,
    )
    p = synth.build(cfg)
    assert p.spec.layers == GATYS_LAYERS and p.spec.octaves == 1 and "conv4_4" in p.params
    res = synth.run(cfg, progress=False)
    start = float(objective.texture_loss(p.x0[0], _unbatched(p.targets), p.params, p.spec)[0])
    assert res.losses[0] < start / 10, (start, res.losses)


def test_same_seed_same_pixels_other_seed_other_pixels():
    a = jtex.synthesize(BRICK, seed=3, **{**SMALL, "max_iter": 5})
    b = jtex.synthesize(BRICK, seed=3, **{**SMALL, "max_iter": 5})
    c = jtex.synthesize(BRICK, seed=4, **{**SMALL, "max_iter": 5})
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).mean() > 0.01


def test_batch_gives_distinct_images_and_matches_single_runs():
    batch = jtex.synthesize(BRICK, batch=3, optimizer="lbfgs", **{**SMALL, "max_iter": 8})
    assert batch.shape == (3, 64, 64, 3)
    assert np.abs(batch[0] - batch[1]).mean() > 0.01 and np.abs(batch[1] - batch[2]).mean() > 0.01
    # Image 0 of a batch is the seed's first image: the device L-BFGS keeps
    # each image's optimisation independent of the others.
    single = jtex.synthesize(BRICK, batch=1, optimizer="lbfgs", **{**SMALL, "max_iter": 8})
    np.testing.assert_allclose(batch[0], single[0], atol=2e-3)


def test_separate_uses_each_source():
    imgs = jtex.synthesize([BRICK, GRAVEL], separate=True, **{**SMALL, "max_iter": 20})
    assert imgs.shape == (2, 64, 64, 3)
    p = synth.build(
        SynthConfig(sources=(BRICK, GRAVEL), separate=True, **{k: v for k, v in SMALL.items() if k != "progress"})
    )
    assert list(p.src_index) == [0, 1]
    # Each output is closer to its own source's statistics than to the other's.
    for i in range(2):
        x = jnp.asarray(imgs[i : i + 1])
        own = objective.texture_loss(x, _unbatched(p.targets, i), p.params, p.spec)
        other = objective.texture_loss(x, _unbatched(p.targets, 1 - i), p.params, p.spec)
        assert float(own[0]) < float(other[0]) / 2


@pytest.mark.parametrize("join", ["average", "max", "log_euclidean", "affine_invariant"])
def test_join_modes(join):
    cfg = SynthConfig(sources=(BRICK, GRAVEL), join=join, **{k: v for k, v in SMALL.items() if k != "progress"})
    p = synth.build(cfg)
    each = objective.targets(p.params, p.sources, cfg, separate=True)
    for row_j, row_e in zip(p.targets, each):
        for tj, te in zip(row_j, row_e):
            tj, te = tj["gram"]["gram"], te["gram"]["gram"]
            tj = np.asarray(tj[0], np.float64)
            a, b = np.asarray(te[0], np.float64), np.asarray(te[1], np.float64)
            if join == "average":
                np.testing.assert_allclose(tj, (a + b) / 2, rtol=1e-5, atol=1e-7)
            elif join == "max":
                np.testing.assert_allclose(tj, np.maximum(a, b), rtol=1e-6)
            else:
                # Geometric means of A = a + 0.05 I and B = b + 0.05 I (Snelgrove's loading): symmetric,
                # det = sqrt(det A det B), and below the arithmetic mean in trace.
                eye = 0.05 * np.eye(len(a))
                np.testing.assert_allclose(tj, tj.T, rtol=1e-4, atol=1e-6)
                logdets = [np.linalg.slogdet(m) for m in (tj, a + eye, b + eye)]
                assert all(sign > 0 for sign, _ in logdets)
                np.testing.assert_allclose(logdets[0][1], (logdets[1][1] + logdets[2][1]) / 2, rtol=2e-3)
                assert np.trace(tj) < np.trace((a + b) / 2 + eye)


def test_tile_objective_has_no_seam():
    # With --tile the objective sees the image as a torus: shifting it by a
    # multiple of the total stride leaves the loss unchanged.
    p = _problem(tile=True)
    assert p.spec.vgg_padding == "circular" and p.spec.pyr_padding == "circular" and p.margin == 0
    t = _unbatched(p.targets)
    x = jax.random.uniform(jax.random.key(0), (1, 64, 64, 3))
    a = objective.texture_loss(x, t, p.params, p.spec)
    b = objective.texture_loss(jnp.roll(x, (8, 24), axis=(1, 2)), t, p.params, p.spec)
    np.testing.assert_allclose(a, b, rtol=1e-4)


def test_coarse_to_fine_runs_every_stage_and_each_lowers_its_loss(tmp_path):
    cfg = dict(SMALL, coarse_to_fine=True, max_iter=6)
    imgs = jtex.synthesize(BRICK, output_dir=tmp_path / "run", **cfg)
    assert imgs.shape == (1, 64, 64, 3)
    p = _problem(coarse_to_fine=True)
    assert [s.octave for s in p.stages] == [1, 0] and p.stages[0].height == round(p.stages[1].height / 2)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    for stage in (0, 1):
        losses = [r["loss"] for r in rows if r["stage"] == stage]
        assert len(losses) == 6 and losses[-1] < losses[0] / 2, (stage, losses)


def test_histogram_matching_gives_the_exemplar_distribution():
    img = jtex.synthesize(BRICK, match_histogram=True, **{**SMALL, "max_iter": 3})[0]
    src = image.load(BRICK, width=128)
    for c in range(3):
        q = np.linspace(0.05, 0.95, 10)
        np.testing.assert_allclose(np.quantile(img[..., c], q), np.quantile(src[..., c], q), atol=0.02)


def test_run_folder_contents_and_finished_run_is_not_redone(tmp_path, capsys):
    out = tmp_path / "run"
    a = jtex.synthesize(BRICK, output_dir=out, batch=2, save_every=5, **{**SMALL, "max_iter": 10})
    for name in (
        "config.json",
        "metrics.jsonl",
        "output_000.png",
        "output_001.png",
        "sheet.png",
        "loss.png",
        "result.json",
    ):
        assert (out / name).is_file(), name
    assert sorted(p.name for p in (out / "snapshots").iterdir()) == ["iter_000005.png", "iter_000010.png"]
    manifest = json.loads((out / "config.json").read_text())
    assert manifest["seed"] == 0 and manifest["settings"]["batch"] == 2
    assert manifest["weights"]["source_sha256"].startswith("804ca283")
    assert {"jtex", "jax", "device"} <= set(manifest["versions"])
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in lines] == list(range(1, 11)) and len(lines[0]["losses"]) == 2
    b = jtex.synthesize(BRICK, output_dir=out, batch=2, save_every=5, **{**SMALL, "max_iter": 10})
    assert "already holds a finished run" in capsys.readouterr().err
    np.testing.assert_allclose(a, b, atol=1 / 255)
    with pytest.raises(JtexError, match="other settings"):
        jtex.synthesize(BRICK, output_dir=out, batch=3, **{**SMALL, "max_iter": 10})


def test_size_errors_name_the_minimum():
    with pytest.raises(JtexError, match=r"need at least \d+ px per side"):
        jtex.synthesize(BRICK, source_width=64, output_width=300, output_height=300, progress=False)
    with pytest.raises(JtexError, match=r"the output is 100x100 px.*at least 277"):
        jtex.synthesize(BRICK, output_width=100, output_height=100, progress=False)
    with pytest.raises(JtexError, match="divisible by"):
        jtex.synthesize(BRICK, tile=True, **{**SMALL, "output_width": 70})


def test_memory_estimate_refuses_huge_outputs():
    with pytest.raises(JtexError, match="GiB.*coarse-to-fine"):
        jtex.synthesize(BRICK, output_width=30000, output_height=30000, padding="same", progress=False)


def test_nonfinite_loss_stops_with_a_message(tmp_path):
    # Targets scaled by 1e38: the squared Gram differences overflow float32 to Inf.
    with pytest.raises(JtexError, match="NaN/Inf"):
        jtex.synthesize(BRICK, mul=1e38, output_dir=tmp_path / "r", **{**SMALL, "max_iter": 5})
    assert (tmp_path / "r" / "FAILED").is_file()
    with pytest.raises(JtexError, match="--mul must be a finite number"):
        jtex.synthesize(BRICK, mul=float("nan"), **SMALL)


def test_bad_settings():
    for kw, pattern in [
        ({"layers": ("relu9_9",)}, "unknown layer"),
        ({"gram": "x"}, "--gram"),
        ({"optimizer": "sgd"}, "--optimizer"),
        ({"init": "nope.png"}, "--init"),
        ({"if_octaves": 5, "octaves": 4}, "--if-octaves"),
        ({"fps": float("nan")}, "--fps must be a finite number"),
        ({"lr": float("inf")}, "--lr must be a finite number"),
        ({"if_shift": -1.0}, "--if-shift must be"),
        ({"tol": float("nan")}, "--tol must be"),
        ({"layer_weights": (float("nan"), 1.0)}, "--layer-weights must be finite"),
        ({"output_width": "256"}, "whole number"),
        ({"output_width": 256.0}, "whole number"),
        ({"tile": "yes"}, "True or False"),
        ({"mul": "2"}, "must be a number"),
    ]:
        with pytest.raises(JtexError, match=pattern):
            jtex.synthesize(BRICK, **{**SMALL, **kw})
    with pytest.raises(JtexError, match="no such file"):
        jtex.synthesize("missing.png", **SMALL)
    with pytest.raises(JtexError, match="bad setting"):
        jtex.synthesize(BRICK, colour="red")


def test_gram_normalisations_differ_by_n():
    f = jax.random.uniform(jax.random.key(0), (1, 5, 5, 8))
    np.testing.assert_allclose(stats.gram(f, norm="gatys") / 8, stats.gram(f, norm="snelgrove"), rtol=1e-6)
