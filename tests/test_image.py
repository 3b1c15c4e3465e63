"""jtex.image: every format and mode in, atomic PNGs out, one-line errors."""

import os

import numpy as np
import pytest
from PIL import Image

from jtex import image
from jtex.errors import JtexError

from conftest import EXAMPLES


def grey_ramp(h=8, w=12):
    return (np.arange(h * w).reshape(h, w) * 255 // (h * w - 1)).astype(np.uint8)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp", ".tif", ".bmp", ".gif"])
def test_formats_load_as_float_rgb(tmp_path, suffix):
    rgb = np.stack([grey_ramp(), grey_ramp()[::-1], np.full((8, 12), 77, np.uint8)], -1)
    path = tmp_path / f"x{suffix}"
    Image.fromarray(rgb).save(path)
    x = image.load(path)
    assert x.shape == (8, 12, 3) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    tol = 0.5 / 255 if suffix in (".png", ".tif", ".bmp", ".webp") else 0.2
    np.testing.assert_allclose(x, rgb / 255.0, atol=tol if suffix != ".webp" else 0.1)


def test_modes(tmp_path):
    g = grey_ramp()
    cases = {
        "L": (Image.fromarray(g), np.repeat(g[..., None] / 255.0, 3, -1)),
        "1": (Image.fromarray(g > 127), np.repeat((g > 127)[..., None] * 1.0, 3, -1)),
        "I;16": (Image.fromarray(g.astype(np.uint16) * 257), np.repeat(g[..., None] / 255.0, 3, -1)),
        "F": (Image.fromarray(g.astype(np.float32) / 255.0), np.repeat(g[..., None] / 255.0, 3, -1)),
        "CMYK": (Image.fromarray(np.stack([g] * 3, -1)).convert("CMYK"), None),
        "YCbCr": (Image.fromarray(np.stack([g] * 3, -1)).convert("YCbCr"), None),
        "P": (Image.fromarray(np.stack([g] * 3, -1)).convert("P", palette=Image.Palette.ADAPTIVE), None),
    }
    for mode, (im, expected) in cases.items():
        path = tmp_path / f"{mode.replace(';', '')}.{'tif' if mode in ('F', 'CMYK', 'YCbCr') else 'png'}"
        im.save(path)
        x = image.load(path)
        assert x.shape == (8, 12, 3) and x.dtype == np.float32, mode
        if expected is not None:
            np.testing.assert_allclose(x, expected, atol=1e-3, err_msg=mode)
        else:
            np.testing.assert_allclose(x, np.repeat(g[..., None] / 255.0, 3, -1), atol=0.05, err_msg=mode)


def test_sixteen_bit_keeps_precision(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((9, 7, 3), dtype=np.float32)
    image.save(tmp_path / "a.png", x, bits=16)
    with Image.open(tmp_path / "a.png") as im:
        assert im.mode.startswith("RGB") or im.mode.startswith("I")  # Pillow reads 16-bit RGB as 8-bit RGB
    # Our reader goes through Pillow too, so check the file's bytes decode to 16-bit values:
    raw = (tmp_path / "a.png").read_bytes()
    assert raw[24] == 16 and raw[25] == 2  # IHDR bit depth 16, colour type RGB
    grey = rng.random((9, 7), dtype=np.float32)
    image.save(tmp_path / "g.png", grey, bits=16)
    back = image.load(tmp_path / "g.png")
    np.testing.assert_allclose(back[..., 0], grey, atol=1 / 65535 + 1e-7)


def test_eight_bit_round_trip(tmp_path):
    x = np.random.default_rng(1).random((10, 11, 3), dtype=np.float32)
    image.save(tmp_path / "a.png", x)
    np.testing.assert_allclose(image.load(tmp_path / "a.png"), x, atol=0.5 / 255 + 1e-6)


def test_alpha_composited_on_mean_colour(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[:2] = (200, 100, 50, 255)
    rgba[2:] = (0, 0, 0, 0)  # fully transparent black
    Image.fromarray(rgba).save(tmp_path / "a.png")
    x = image.load(tmp_path / "a.png")
    np.testing.assert_allclose(x[3, 3], np.array([200, 100, 50]) / 255, atol=1e-6)
    la = Image.fromarray(rgba).convert("LA")
    la.save(tmp_path / "la.png")
    lum = np.asarray(la)[0, 0, 0] / 255  # the opaque pixels' grey value
    np.testing.assert_allclose(image.load(tmp_path / "la.png")[3, 3], lum, atol=1e-6)


def test_gif_first_frame(tmp_path):
    frames = [np.full((6, 6, 3), v, np.float32) for v in (0.2, 0.8, 0.5)]
    image.save_animation(tmp_path / "a.gif", frames, fps=10)
    np.testing.assert_allclose(image.load(tmp_path / "a.gif"), 0.2, atol=2 / 255)


@pytest.mark.parametrize("suffix", [".gif", ".webp", ".png"])
def test_animation_loops_with_all_frames(tmp_path, suffix):
    rng = np.random.default_rng(2)
    frames = [rng.random((8, 8, 3), dtype=np.float32) for _ in range(5)]
    path = image.save_animation(tmp_path / f"a{suffix}", frames, fps=8)
    with Image.open(path) as im:
        assert im.n_frames == 5
        assert im.info.get("loop", 0) == 0
        if suffix != ".webp":  # Pillow reports no duration for WebP files it reads
            assert abs(im.info.get("duration") - 125) <= 10  # GIF stores centiseconds


def test_resize_and_load_width():
    x = image.load(EXAMPLES / "brick.png", width=128)
    assert x.shape == (128, 128, 3)
    y = image.resize(x, scale=0.5)
    assert y.shape == (64, 64, 3) and y.dtype == np.float32
    assert image.resize(x, width=64, height=32).shape == (32, 64, 3)


def test_errors_are_one_line_and_name_the_path(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "notes.png"
    text.write_text("hello")
    data = (EXAMPLES / "brick.png").read_bytes()
    cut = tmp_path / "cut.png"
    cut.write_bytes(data[: len(data) // 2])
    for path, pattern in [(tmp_path / "missing.png", "no such file"), (tmp_path, "folder"), (empty, "empty"),
                          (text, "not an image"), (cut, "truncated")]:
        with pytest.raises(JtexError, match=pattern) as e:
            image.load(path)
        assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_atomic_save_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "out.png"
    image.save(path, np.zeros((4, 4, 3)))
    before = path.read_bytes()

    def boom(self, *a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", boom)
    with pytest.raises(OSError):
        image.save(path, np.ones((4, 4, 3)))
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["out.png"]  # no temporary left behind


def test_expand_sources(tmp_path):
    (tmp_path / "b.png").write_bytes((EXAMPLES / "brick.png").read_bytes())
    (tmp_path / "a.jpg").write_bytes((EXAMPLES / "hubble_deep_field.jpg").read_bytes())
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in image.expand_sources([tmp_path])] == ["a.jpg", "b.png"]
    with pytest.raises(JtexError, match="holds no images"):
        image.expand_sources([tmp_path / "sub"] if (tmp_path / "sub").mkdir() is None else [])
    with pytest.raises(JtexError, match="no such file or folder"):
        image.expand_sources([tmp_path / "nope"])


def test_match_histogram():
    rng = np.random.default_rng(3)
    img = rng.random((16, 16, 3), dtype=np.float32)
    ref = rng.random((16, 16, 3), dtype=np.float32) ** 3
    out = image.match_histogram(img, ref)
    for c in range(3):
        np.testing.assert_array_equal(np.sort(out[..., c].ravel()), np.sort(ref[..., c].ravel()))
        # monotone: the order of pixels is kept
        order = np.argsort(img[..., c].ravel())
        assert np.all(np.diff(out[..., c].ravel()[order]) >= 0)
    small = image.match_histogram(img, ref[:5, :7])
    assert small.shape == img.shape and small.min() >= ref[:5, :7].min() - 1e-6


def test_contact_sheet_shape():
    tiles = [np.zeros((10, 12, 3)), np.ones((8, 8, 3)), np.zeros((10, 12, 3))]
    sheet = image.contact_sheet(tiles, exemplar=np.ones((10, 10, 3)), pad=2)
    assert sheet.shape == (2 * 10 + 3 * 2, 2 * 12 + 3 * 2, 3)
