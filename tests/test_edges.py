"""The canvas' trailing margin: the objective must see the last rows and columns as it sees the first."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jtex import objective, pyramid, sizes, synth, vgg
from jtex.config import SynthConfig

from conftest import EXAMPLES, SMALL_SYNTH, run_interrupted

BRICK = str(EXAMPLES / "brick.png")

# A linear VGG (every kernel a positive average, no bias): the gradient of the mean of a layer's map
# with respect to the canvas counts how much each canvas pixel is seen, through the pyramid, the convs
# and the poolings, exactly as the objective sees it.
_ONES = {
    k: ({"kernel": jnp.ones_like(v["kernel"]) / (9 * v["kernel"].shape[2]), "bias": jnp.zeros_like(v["bias"])}
        if k.startswith("conv") else v)
    for k, v in vgg.init_params(jax.random.key(0), width=1 / 32).items()
}  # fmt: skip


def _coverage(n: int, spec, octave: int, layer: str) -> np.ndarray:
    """How much the objective's ``layer`` at ``octave`` sees each row of an (n, 200) canvas."""

    def seen(x):
        level = pyramid.gaussian(x, octave + 1, padding=spec.pyr_padding)[octave]
        return vgg.features(_ONES, level, [layer], padding=spec.vgg_padding)[layer].mean()

    g = jax.grad(seen)(jnp.full((1, n, 200, 3), 5.0))  # 5 > the mean the VGG subtracts: the ReLUs pass
    return np.asarray(g)[0, :, 100].sum(-1)


def _shift(cov: np.ndarray) -> int:
    """How many px the bottom's coverage sits inside the top's: 'valid' sees the bottom as the mirror image
    of the top, shifted."""
    top, bottom = cov / cov.max(), cov[::-1] / cov.max()
    return next(s for s in range(40) if np.allclose(bottom[s : s + 20], top[:20], atol=1e-5))


def _crossing_shift(cov: np.ndarray) -> float:
    """Padded modes see the edges through their padding, not as mirror images: where the bottom's coverage
    reaches 80% of the interior's, minus where the top's does."""
    v = cov / cov.max()
    return float(np.interp(0.8, v[::-1][:100], np.arange(100)) - np.interp(0.8, v[:100], np.arange(100)))


@pytest.mark.parametrize("n", [140, 141, 146, 155])
def test_edge_lag_is_the_shift_of_the_objectives_coverage(n):
    spec = objective.output_spec(SynthConfig(octaves=3))  # 'valid'
    shifts = [_shift(_coverage(n, spec, k, layer)) for k in range(3) for layer in spec.layers]
    assert max(shifts) == sizes.edge_lag(n, spec) > 0, shifts


@pytest.mark.parametrize("n", [140, 141, 155])
def test_edge_lag_approximates_the_shift_with_padding(n):
    spec = objective.output_spec(SynthConfig(padding="same", octaves=3))  # a reflecting pyramid, 'same' convs
    shifts = [_crossing_shift(_coverage(n, spec, k, layer)) for k in range(3) for layer in spec.layers]
    assert abs(max(shifts) - sizes.edge_lag(n, spec)) <= 1.5, shifts


def test_trailing_margin_covers_the_lag():
    spec = objective.output_spec(SynthConfig())  # 'valid', 4 octaves, pool1 + relu3_2: Snelgrove's
    for n in (300, 312, 544, 545, 1056):
        e = sizes.trailing_margin(n, spec)
        assert sizes.edge_lag(n + e, spec) <= e and all(sizes.edge_lag(n + d, spec) > d for d in range(e))
    assert sizes.trailing_margin(544, spec) == 21  # 512² with its 16 px margins


def test_the_trail_is_cropped_from_the_bottom_and_right():
    p = synth.build(SynthConfig(sources=(BRICK,), max_iter=3, **SMALL_SYNTH))
    (tb, tr), m = p.trail, p.margin
    assert (tb, tr) == synth.frame(p.cfg)[1] and tb > 0
    assert p.canvas == (64 + 2 * m + tb, 64 + 2 * m + tr) == p.x0.shape[2:4]
    canvas = np.arange(np.prod(p.canvas) * 3, dtype=np.float32).reshape(1, 1, *p.canvas, 3)
    np.testing.assert_array_equal(p.crop(canvas), canvas[..., m : m + 64, m : m + 64, :])
    assert synth.frame(p.cfg.replace(margin=0)) == (0, (0, 0))  # no margin asked: the canvas is the output
    assert synth.frame(p.cfg.replace(tile=True)) == (0, (0, 0))


def test_a_checkpoint_of_another_canvas_is_refused_in_one_line(tmp_path, monkeypatch):
    from jtex.errors import JtexError

    cfg = SynthConfig(sources=(BRICK,), max_iter=6, save_every=3, **SMALL_SYNTH)
    run_interrupted(monkeypatch, cfg, tmp_path / "run", 3)
    monkeypatch.setattr(synth, "frame", lambda cfg, arch="vgg19": (8, (0, 0)))  # as jtex before the trail
    with pytest.raises(JtexError, match="checkpoint holds a 83x83 canvas.*--overwrite"):
        synth.run(cfg, tmp_path / "run", progress=False)
