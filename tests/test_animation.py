"""Looping animations: the inter-frame loss, cyclic pairs, outputs in the run folder."""

import json

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

import jtex
from jtex import animation, image, objective
from jtex.config import SynthConfig
from jtex.errors import JtexError

from conftest import EXAMPLES, SMALL_SYNTH

BRICK = str(EXAMPLES / "brick.png")
SMALL = dict(SMALL_SYNTH, progress=False)


def test_pair_distances_are_cyclic():
    frames = jnp.stack([jnp.full((8, 8, 3), v) for v in (0.0, 0.1, 0.3, 0.6)])
    d = np.asarray(animation.pair_distances(frames, order=2, octaves=1, kind="l2", padding="reflect"))
    np.testing.assert_allclose(d[0], [0.1, 0.2, 0.3, 0.6], atol=1e-5)  # 3 -> 0 closes the loop
    np.testing.assert_allclose(d[1], [0.3, 0.5, 0.3, 0.5], atol=1e-5)


def test_lap1_weights_levels():
    a = jnp.zeros((1, 16, 16, 3))
    b = jnp.full((1, 16, 16, 3), 0.5)
    # A constant difference lives only in the Laplacian's low-pass residual (the last level).
    d = float(animation.frame_distance(a, b, octaves=3, kind="lap1", padding="reflect")[0])
    np.testing.assert_allclose(d, 0.5 * 2.0**-2, rtol=1e-4)


def test_shift_distance_interpolates_fractional_shifts():
    src = image.load(BRICK, width=128)
    kw = dict(octaves=1, kind="l2", padding="valid")
    d2, d3 = (animation.exemplar_shift_distance(src, s, **kw) for s in (2, 3))
    np.testing.assert_allclose(animation.exemplar_shift_distance(src, 2.25, **kw), 0.75 * d2 + 0.25 * d3, rtol=1e-6)
    assert animation.exemplar_shift_distance(src, 0, **kw) == 0.0 and d2 < d3


def test_animation_hits_its_distances_and_loops(tmp_path):
    out = tmp_path / "anim"
    frames = jtex.synthesize(BRICK, count=4, if_shift=3.0, max_iter=60, fps=5, output_dir=out, **SMALL)
    assert frames.shape == (4, 64, 64, 3)
    assert all(np.abs(frames[i] - frames[j]).mean() > 1e-3 for i in range(4) for j in range(i + 1, 4))
    cfg = SynthConfig(sources=(BRICK,), count=4, if_shift=3.0, **{k: v for k, v in SMALL.items() if k != "progress"})
    obj = objective.make(cfg, objective.output_spec(cfg), [image.load(BRICK, width=128)])
    d = np.asarray(animation.pair_distances(jnp.asarray(frames), order=2, octaves=1, kind="l2", padding=obj.padding))
    ratios = d[0] / obj.targets[0]
    assert np.all(np.abs(ratios - 1) < 0.3), ratios  # every step, including 3 -> 0
    for i in range(4):
        assert (out / f"frame_{i:03d}.png").is_file()
    with Image.open(out / "animation.gif") as gif:
        assert gif.n_frames == 4 and gif.info["loop"] == 0 and gif.info["duration"] == 200
    with Image.open(out / "animation.webp") as webp:
        assert webp.n_frames == 4
    assert json.loads((out / "config.json").read_text())["settings"]["count"] == 4


def test_tiling_animation_frames_tile_and_move():
    frames = jtex.synthesize(BRICK, count=3, if_order=1, tile=True, max_iter=40, **SMALL)
    assert frames.shape == (3, 64, 64, 3)
    for f in frames:
        # The wrap-around seam (last column next to the first, last row next to the first) is no
        # stronger than the steps between neighbouring columns (rows) inside the frame.
        for g in (f, f.transpose(1, 0, 2)):
            inside = np.abs(np.diff(g, axis=1)).mean(axis=(0, 2))  # one score per neighbouring column pair
            seam = np.abs(g[:, -1] - g[:, 0]).mean()
            assert seam <= np.quantile(inside, 0.95), (seam, np.quantile(inside, [0.5, 0.95]))
    assert all(np.abs(frames[i] - frames[(i + 1) % 3]).mean() > 1e-3 for i in range(3))


def test_animation_errors():
    with pytest.raises(JtexError, match="--if-octaves 3 must be between 1 and --octaves"):
        jtex.synthesize(BRICK, count=4, if_octaves=3, **SMALL)
    with pytest.raises(JtexError, match="--if-order 4 must be smaller than --count 4"):
        jtex.synthesize(BRICK, count=4, if_order=4, **SMALL)
    with pytest.raises(JtexError, match="cannot be combined with --batch"):
        jtex.synthesize(BRICK, count=4, batch=2, **SMALL)
