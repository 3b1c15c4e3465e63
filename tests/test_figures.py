"""jtex.figures: contact sheets, GIF/WebP/APNG animations and the loss plot."""

import numpy as np
import pytest
from PIL import Image

from jtex import figures, image
from jtex.errors import JtexError


def test_gif_first_frame(tmp_path):
    frames = [np.full((6, 6, 3), v, np.float32) for v in (0.2, 0.8, 0.5)]
    figures.save_animation(tmp_path / "a.gif", frames, fps=10)
    np.testing.assert_allclose(image.load(tmp_path / "a.gif"), 0.2, atol=2 / 255)


@pytest.mark.parametrize("suffix", [".gif", ".webp", ".png"])
def test_animation_loops_with_all_frames(tmp_path, suffix):
    rng = np.random.default_rng(2)
    frames = [rng.random((8, 8, 3), dtype=np.float32) for _ in range(5)]
    path = figures.save_animation(tmp_path / f"a{suffix}", frames, fps=8)
    with Image.open(path) as im:
        assert im.n_frames == 5
        assert im.info.get("loop", 0) == 0
        if suffix != ".webp":  # Pillow reports no duration for WebP files it reads
            assert abs(im.info.get("duration") - 125) <= 10  # GIF stores centiseconds


def test_contact_sheet_shape():
    tiles = [np.zeros((10, 12, 3)), np.ones((8, 8, 3)), np.zeros((10, 12, 3))]
    sheet = figures.contact_sheet(tiles, exemplar=np.ones((10, 10, 3)), pad=2)
    assert sheet.shape == (2 * 10 + 3 * 2, 2 * 12 + 3 * 2, 3)


def test_contact_sheet_layout():
    a, b = np.zeros((4, 6, 3)), np.full((2, 2), 0.5)  # a greyscale tile is accepted
    sheet = figures.contact_sheet([a, b, a], exemplar=np.ones((4, 4, 3)), columns=3, pad=1, background=0.25)
    assert sheet.shape == (1 + 2 * (4 + 1), 1 + 3 * (6 + 1), 3) and sheet.dtype == np.float32
    assert sheet[0, 0, 0] == 0.25  # padding
    assert np.all(sheet[1:5, 2:6] == 1.0)  # exemplar first, centred in its 6-wide cell
    assert np.all(sheet[2:4, 17:19] == 0.5)  # 2x2 tile centred in the third cell (left edge 1 + 2 * 7)
    assert figures.contact_sheet([a] * 5).shape[1] == 4 + 3 * (6 + 4)  # default: ceil(sqrt(5)) = 3 columns


def test_animation_details(tmp_path):
    frames = [np.full((6, 6, 3), v) for v in np.linspace(0, 1, 4)]
    path = figures.save_animation(tmp_path / "x" / "a.webp", frames, fps=4)
    with Image.open(path) as im:
        assert im.n_frames == 4 and im.info["loop"] == 0
        im.seek(3)
        np.testing.assert_array_equal(np.asarray(im.convert("RGB"))[0, 0], [255, 255, 255])  # lossless
    with Image.open(figures.save_animation(tmp_path / "a.gif", frames, fps=4)) as im:
        assert im.n_frames == 4 and im.info["loop"] == 0 and im.info["duration"] == 250
    for bad, pattern in [((tmp_path / "a.mp4", frames), "extension"), ((tmp_path / "b.gif", []), "no frames")]:
        with pytest.raises(JtexError, match=pattern):
            figures.save_animation(*bad)
    assert not (tmp_path / "b.gif").exists()


def test_animation_frames_of_different_sizes_are_refused(tmp_path):
    with pytest.raises(ValueError, match="differ in size"):
        figures.save_animation(tmp_path / "a.gif", [np.zeros((4, 4, 3)), np.zeros((4, 5, 3))])
    with pytest.raises(JtexError, match="fps"):
        figures.save_animation(tmp_path / "a.gif", [np.zeros((4, 4, 3))], fps=0)
    assert list(tmp_path.iterdir()) == []


def test_plot_loss_draws_a_falling_curve(tmp_path):
    metrics = [{"stage": 0, "iteration": i, "loss": 10.0 ** (3 - i / 10)} for i in range(31)]
    metrics.insert(5, {"stage": 0, "iteration": 99, "loss": float("nan")})  # skipped, not plotted
    path = tmp_path / "plots" / "loss.png"
    figures.plot_loss(path, metrics, size=(320, 200))
    pic = image.load(path)
    assert pic.shape == (200, 320, 3)
    red = (pic[..., 0] > 0.6) & (pic[..., 1] < 0.4)  # the curve's colour, (200, 30, 30)
    cols = np.flatnonzero(red.any(axis=0))
    assert cols.min() < 90 and cols.max() > 280  # spans the plot from left to right
    first = np.flatnonzero(red[:, cols.min()]).mean()
    last = np.flatnonzero(red[:, cols.max()]).mean()
    assert first < last  # falls: the first loss is drawn higher up


def test_plot_loss_with_too_few_points_draws_the_frame(tmp_path):
    for metrics in ([], [{"loss": 1.0}], [{"loss": 0.0}, {"loss": -1.0}]):
        figures.plot_loss(tmp_path / "loss.png", metrics)
        assert image.load(tmp_path / "loss.png").shape == (400, 640, 3)
