"""The paths users run: Snelgrove's defaults ('valid', 4 octaves, L-BFGS-B), resume, colour, inits, networks.

Where the network itself is not the point, a small random VGG (``vgg.init_params``,
1/16 of the channels) keeps Snelgrove's default geometry -- 4 octaves, 'valid'
padding, pool1 + relu3_2, a 277 px minimum -- fast on two cores.
"""

import json

import jax
import numpy as np
import pytest

import jtex
from jtex import colour, image, objective, sizes, spectra, synth, vgg, weights
from jtex.config import SynthConfig
from jtex.errors import JtexError

from conftest import EXAMPLES, SMALL_SYNTH, run_interrupted

BRICK = str(EXAMPLES / "brick.png")
HUBBLE = str(EXAMPLES / "hubble_deep_field.jpg")
TINY = vgg.init_params(jax.random.key(0), "vgg19", width=1 / 16)


def _start_loss(p: synth.Problem) -> float:
    return float(objective.texture_loss(p.x0[0], p.element_targets(), p.params, p.spec)[0])


def test_snelgrove_defaults_end_to_end_on_a_small_net(tmp_path):
    cfg = SynthConfig(
        sources=(BRICK,), source_width=300, output_width=280, output_height=280, max_iter=12, save_every=6
    )
    assert (cfg.padding, cfg.octaves, cfg.optimizer, cfg.layers) == ("valid", 4, "lbfgs-b", (2, 7))
    p = synth.build(cfg, params=TINY)
    assert (
        p.margin == 16 and p.trail == (29, 29) and p.x0.shape == (1, 1, 341, 341, 3) and p.spec.vgg_padding == "valid"
    )
    res = synth.run(cfg, tmp_path / "run", progress=False, params=TINY)
    assert res.images.shape == (1, 280, 280, 3) and np.isfinite(res.images).all()
    assert res.losses[0] < _start_loss(p) / 5, (_start_loss(p), res.losses)
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["margin"] == 16 and result["iterations"] == 12 and result["optimizer_message"]
    spec = result["spectrum"][0]
    assert len(spec["exemplar"]) == len(spec["image"]) == spectra.BANDS and spec["fine_ratio"] > 0
    assert 0 < result["border_contrast"][0]
    assert json.loads((tmp_path / "run" / "config.json").read_text())["weights"]["name"] == "custom"


def test_lbfgs_b_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    cfg = SynthConfig(sources=(BRICK,), max_iter=10, save_every=5, **SMALL_SYNTH)
    out = tmp_path / "run"
    run_interrupted(monkeypatch, cfg, out, 5)
    assert not (out / "result.json").exists() and (out / "checkpoints").is_dir()
    res = synth.run(cfg, out, progress=False)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == list(range(1, 11))
    # The resumed run starts from the checkpointed image, not from noise: its first loss
    # is near the interrupted run's last, far below the first iteration's.
    assert rows[5]["loss"] < 2 * rows[4]["loss"] and rows[5]["loss"] < rows[0]["loss"] / 3
    assert res.losses[0] <= rows[4]["loss"]


def test_colour_exemplar_gives_a_colour_texture_of_its_colours():
    src = image.load(HUBBLE, width=128)
    assert not colour.is_grey(src)
    out = jtex.synthesize(
        src,
        output_width=64,
        output_height=64,
        octaves=2,
        layers=("pool1", "relu2_1"),
        padding="same",
        max_iter=30,
        progress=False,
    )[0]
    assert np.abs(out[..., 0] - out[..., 2]).mean() > 1e-3  # not grey
    np.testing.assert_allclose(out.reshape(-1, 3).mean(0), src.reshape(-1, 3).mean(0), atol=0.05)


def test_numpy_exemplar_equals_the_file():
    kw = dict(
        output_width=48, output_height=48, octaves=2, layers=("pool1",), padding="same", max_iter=4, progress=False
    )
    from_file = jtex.synthesize(BRICK, source_width=96, **kw)
    from_array = jtex.synthesize(image.load(BRICK, width=96), **kw)
    np.testing.assert_array_equal(from_file, from_array)
    as_uint8 = (image.load(BRICK, width=96) * 255).round().astype(np.uint8)[..., 0]  # (h, w) grey uint8
    assert jtex.synthesize(as_uint8, **kw).shape == (1, 48, 48, 3)
    with pytest.raises(JtexError, match="finite values in"):
        jtex.synthesize(np.full((64, 64, 3), 2.0), **kw)
    with pytest.raises(JtexError, match="either image files or numpy arrays"):
        jtex.synthesize([BRICK, np.zeros((64, 64, 3))], **kw)


def test_symmetric_init_is_mirrored_and_image_init_is_the_image(tmp_path):
    base = dict(
        sources=(BRICK,),
        source_width=128,
        output_width=64,
        output_height=64,
        octaves=2,
        layers=("pool1",),
        padding="same",
        margin=0,
        max_iter=8,
    )
    p = synth.build(SynthConfig(init="symmetric", **base))
    x = np.asarray(p.x0[0, 0])
    np.testing.assert_allclose(x, x[::-1], atol=1e-6)
    np.testing.assert_allclose(x, x[:, ::-1], atol=1e-6)
    assert x.std() > 1e-3
    start = np.random.default_rng(0).uniform(0.2, 0.8, (40, 40, 3)).astype(np.float32)
    image.save(tmp_path / "start.png", start)
    q = synth.build(SynthConfig(init=str(tmp_path / "start.png"), **base))
    np.testing.assert_allclose(
        np.asarray(q.x0[0, 0]), image.resize(image.load(tmp_path / "start.png"), width=64, height=64), atol=1e-6
    )
    for prob, init in ((p, "symmetric"), (q, str(tmp_path / "start.png"))):
        res = synth.run(SynthConfig(init=init, **base), progress=False)
        assert res.losses[0] < _start_loss(prob) / 3


@pytest.mark.parametrize(
    "kw",
    [dict(gram="none"), dict(pooling="max"), dict(weights="vgg16"), dict(weights="cached-npz")],
    ids=["gram-none", "max-pool", "vgg16", "user-npz"],
)
def test_objective_variants_synthesise(kw):
    if kw.get("weights") == "cached-npz":  # a file the user brings: the converted VGG-19 .npz
        kw = dict(weights=str(weights.convert()))
    cfg = SynthConfig(
        sources=(BRICK,),
        source_width=96,
        output_width=48,
        output_height=48,
        octaves=2,
        layers=("pool1", "relu2_1"),
        padding="same",
        max_iter=15,
        **kw,
    )
    p = synth.build(cfg)
    if "weights" in kw:
        assert p.weights_meta["arch"] == ("vgg16" if kw["weights"] == "vgg16" else "vgg19")
    res = synth.run(cfg, progress=False)
    assert res.losses[0] < _start_loss(p) / 5, (_start_loss(p), res.losses)


def test_margin_is_cropped_and_tiles_have_none():
    base = dict(sources=(BRICK,), max_iter=3, **SMALL_SYNTH)
    p = synth.build(SynthConfig(**base))
    assert p.margin == 8 and p.stages[0].height == 80 + p.trail[0]
    canvas = np.arange(np.prod(p.canvas) * 3, dtype=np.float32).reshape(1, 1, *p.canvas, 3)
    np.testing.assert_array_equal(p.crop(canvas), canvas[..., 8:72, 8:72, :])
    assert synth.build(SynthConfig(tile=True, **base)).margin == 0
    assert (
        synth.build(SynthConfig(margin=3, **base)).stages[0].width
        == 70 + synth.frame(SynthConfig(margin=3, **base))[1][1]
    )
    assert synth.run(SynthConfig(margin=3, **base), progress=False).images.shape == (1, 64, 64, 3)


@pytest.mark.parametrize("size", [300, 512])
def test_memory_estimate_matches_xla(size):
    # XLA's own accounting of the compiled loss+gradient (temporaries, arguments, outputs) of
    # Snelgrove's default, against sizes.estimate_bytes (the program alone, no runtime allowance).
    cfg = SynthConfig(sources=(BRICK,), source_width=280, output_width=size, output_height=size, margin=0)
    p = synth.build(cfg)
    stats = jax.jit(jax.value_and_grad(p.objective(p.stages[0]))).lower(p.x0[0], *p.element()).compile()
    m = stats.memory_analysis()
    measured = m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes
    estimate = sizes.estimate_bytes(size, size, 1, p.spec)
    assert 0.8 < estimate / measured < 1.25, (estimate / 2**20, measured / 2**20)


def test_edited_exemplar_is_never_resumed_and_overwrite_redoes(tmp_path):
    src = tmp_path / "ex.png"
    image.save(src, image.load(BRICK, width=96))
    kw = dict(
        output_width=48,
        output_height=48,
        octaves=2,
        layers=("pool1",),
        padding="same",
        max_iter=3,
        progress=False,
        output_dir=tmp_path / "run",
    )
    first = jtex.synthesize(str(src), **kw)
    image.save(src, image.load(HUBBLE, width=96))  # the same path, other contents
    with pytest.raises(JtexError, match="other file contents.*--overwrite"):
        jtex.synthesize(str(src), **kw)
    again = jtex.synthesize(str(src), overwrite=True, **kw)
    assert np.abs(again - first).mean() > 0.01  # redone from the new exemplar, not the stale images
    digests = json.loads((tmp_path / "run" / "config.json").read_text())["settings"]["content_sha256"]
    assert digests["sources"] == [weights.sha256_file(src)] and digests["weights"]


def test_a_run_folder_is_locked_while_in_use(tmp_path):
    from jtex import rundir

    held = rundir.RunDir(tmp_path / "run", {"a": 1}, seed=0)
    with pytest.raises(JtexError, match="in use by a running jtex .pid"):
        rundir.RunDir(tmp_path / "run", {"a": 1}, seed=0)
    held.close()
    rundir.RunDir(tmp_path / "run", {"a": 1}, seed=0).close()  # free again once released


def test_a_new_attempt_clears_the_failure_marker_and_orbax_leftovers(tmp_path):
    from jtex import rundir

    run = tmp_path / "run"
    rundir.RunDir(run, {"a": 1}, seed=0).note_failed("the loss became NaN/Inf")
    (run / "checkpoints" / "5.orbax-checkpoint-tmp-123").mkdir(parents=True)
    assert (run / "FAILED").is_file()
    rundir.RunDir(run, {"a": 1}, seed=0).close()
    assert not (run / "FAILED").exists() and not list((run / "checkpoints").iterdir())
