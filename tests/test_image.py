"""jtex.image: every format and mode in, atomic PNGs out, one-line errors."""

import os
import stat
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile, ImageOps

from jtex import image
from jtex.errors import JtexError

from conftest import EXAMPLES, ROOT


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
    raw = (tmp_path / "a.png").read_bytes()
    assert raw[24] == 16 and raw[25] == 2  # IHDR bit depth 16, colour type RGB
    # Pillow alone reads 16-bit RGB as 8-bit RGB; load() recovers the low bytes.
    np.testing.assert_allclose(image.load(tmp_path / "a.png"), x, atol=0.5 / 65535 + 1e-7)
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
    for path, pattern in [
        (tmp_path / "missing.png", "no such file"),
        (tmp_path, "folder"),
        (empty, "empty"),
        (text, "not an image"),
        (cut, "truncated"),
    ]:
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
    with pytest.raises(JtexError, match="disk full") as e:  # an OSError while writing becomes a one-line JtexError
        image.save(path, np.ones((4, 4, 3)))
    assert str(path) in str(e.value) and "\n" not in str(e.value)
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


# ---------------------------------------------------------------------------
# Every Pillow mode, with hand-made pixel values
# ---------------------------------------------------------------------------


def _load_saved(tmp_path, im, suffix=".tif", **save_args):
    path = tmp_path / f"{im.mode.replace(';', '')}{suffix}"
    im.save(path, **save_args)
    x = image.load(path)
    assert x.shape == (im.height, im.width, 3) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    return x


def test_greyscale_modes_repeat_over_channels(tmp_path):
    g = np.array([[0, 128, 255]], np.uint8)
    np.testing.assert_allclose(_load_saved(tmp_path, Image.fromarray(g))[0, 1], [128 / 255] * 3, atol=1e-7)
    one = Image.fromarray(np.array([[True, False]]))
    np.testing.assert_array_equal(_load_saved(tmp_path, one)[0], [[1.0] * 3, [0.0] * 3])
    sixteen = np.array([[0, 40000, 65535]], np.uint16)
    for mode, dtype in (("I;16", "<u2"), ("I;16B", ">u2")):
        im = Image.frombytes(mode, (3, 1), sixteen.astype(dtype).tobytes())
        np.testing.assert_allclose(_load_saved(tmp_path, im)[0, :, 0], sixteen[0] / 65535, atol=1e-7)
    wide16 = Image.fromarray(np.array([[0, 40000, 65535]], np.int32))  # mode I holding 16-bit data
    assert wide16.mode == "I"
    np.testing.assert_allclose(_load_saved(tmp_path, wide16)[0, :, 0], sixteen[0] / 65535, atol=1e-7)
    float_im = Image.fromarray(np.array([[0.0, 0.25, 1.0]], np.float32))
    np.testing.assert_allclose(_load_saved(tmp_path, float_im)[0, :, 1], [0.0, 0.25, 1.0])


def test_wide_int_and_float_ranges_are_stretched(tmp_path):
    # No standard white level beyond 16 bits / outside [0, 1]: min..max becomes 0..1.
    wide = Image.fromarray(np.array([[-100000, 0, 100000]], np.int32))
    np.testing.assert_allclose(_load_saved(tmp_path, wide)[0, :, 0], [0.0, 0.5, 1.0])
    hdr = Image.fromarray(np.array([[2.0, 4.0, 6.0]], np.float32))
    np.testing.assert_allclose(_load_saved(tmp_path, hdr)[0, :, 2], [0.0, 0.5, 1.0])


def test_colour_modes(tmp_path):
    rgb = np.array([[[255, 0, 0], [0, 128, 255]]], np.uint8)
    np.testing.assert_allclose(_load_saved(tmp_path, Image.fromarray(rgb))[0], rgb[0] / 255.0, atol=1e-7)
    cmyk = Image.frombytes("CMYK", (2, 1), bytes([255, 0, 0, 0, 0, 0, 0, 0]))  # pure cyan, white
    np.testing.assert_array_equal(_load_saved(tmp_path, cmyk)[0], [[0, 1, 1], [1, 1, 1]])
    ycbcr = Image.fromarray(rgb).convert("YCbCr")
    np.testing.assert_allclose(_load_saved(tmp_path, ycbcr)[0], rgb[0] / 255.0, atol=3 / 255)
    palette = Image.fromarray(np.array([[0, 1]], np.uint8), mode="L").convert("P")
    palette.putpalette([10, 20, 30, 200, 100, 50])
    expected = np.array([[10, 20, 30], [200, 100, 50]]) / 255
    np.testing.assert_allclose(_load_saved(tmp_path, palette, ".png")[0], expected, atol=1e-7)


def test_transparency_takes_the_mean_colour(tmp_path):
    # RGBA: two opaque pixels, one half transparent, one fully transparent.
    rgba = np.array([[[255, 0, 0, 255], [0, 0, 255, 255], [0, 255, 0, 0], [255, 255, 255, 128]]], np.uint8)
    x = _load_saved(tmp_path, Image.fromarray(rgba), ".png")
    a = rgba[0, :, 3:] / 255.0
    mean = (rgba[0, :, :3] / 255.0 * a).sum(0) / a.sum()
    np.testing.assert_allclose(x[0, 2], mean, atol=1e-6)
    np.testing.assert_allclose(x[0, 3], a[3] * 1.0 + (1 - a[3]) * mean, atol=1e-6)
    np.testing.assert_allclose(x[0, :2], [[1, 0, 0], [0, 0, 1]], atol=1e-6)
    # Palette with a transparent index: the opaque entries' mean.
    pal = Image.fromarray(np.array([[0, 1, 2]], np.uint8), mode="L").convert("P")
    pal.putpalette([255, 0, 0, 0, 0, 255, 0, 255, 0])
    path = tmp_path / "ptrns.png"
    pal.save(path, transparency=2)
    np.testing.assert_allclose(image.load(path)[0, 2], [0.5, 0, 0.5], atol=1e-6)
    # LA: a transparent pixel takes the opaque grey.
    la = Image.fromarray(np.array([[[200, 255], [10, 0]]], np.uint8), mode="LA")
    np.testing.assert_allclose(_load_saved(tmp_path, la, ".png")[0, 1], [200 / 255] * 3, atol=1e-6)
    # Fully transparent image: plain mean, no division by zero.
    clear = Image.fromarray(np.array([[[255, 0, 0, 0], [0, 0, 255, 0]]], np.uint8))
    np.testing.assert_allclose(_load_saved(tmp_path, clear, ".png")[0, 0], [0.5, 0, 0.5], atol=1e-6)


@pytest.mark.parametrize("channels", [2, 4])
def test_sixteen_bit_alpha_pngs_keep_precision(tmp_path, channels):
    # Grey+alpha and RGBA 16-bit PNGs (our encoder writes any channel count).
    rng = np.random.default_rng(4)
    samples = rng.integers(0, 65536, (5, 6, channels), dtype=np.uint16)
    samples[..., -1] = 65535  # opaque, so the colour values come back untouched
    path = tmp_path / "a.png"
    path.write_bytes(image._encode_png16(samples))
    colour = samples[..., :-1] / 65535.0
    np.testing.assert_allclose(image.load(path), np.broadcast_to(colour, (5, 6, 3)), atol=1e-7)


def test_sixteen_bit_colour_key(tmp_path):
    # A 16-bit RGB PNG with a tRNS colour key: matching pixels take the mean colour.
    samples = np.array([[[65535, 0, 0], [1, 2, 3], [0, 0, 65535]]], np.uint16)
    data = image._encode_png16(samples)
    trns = image._png_chunk(b"tRNS", struct.pack(">HHH", 1, 2, 3))
    path = tmp_path / "key.png"
    path.write_bytes(data[:33] + trns + data[33:])  # after the 8-byte signature and 25-byte IHDR
    np.testing.assert_allclose(image.load(path)[0, 1], [0.5, 0, 0.5], atol=1e-6)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(tmp_path, orientation):
    rgb = np.random.default_rng(5).integers(0, 256, (3, 5, 3), dtype=np.uint8)
    im = Image.fromarray(rgb)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "o.png"
    im.save(path, exif=exif)
    with Image.open(path) as reopened:
        expected = np.asarray(ImageOps.exif_transpose(reopened)) / np.float32(255)
    np.testing.assert_array_equal(image.load(path), expected)


def test_gif_first_frame_is_read(tmp_path):
    frames = [Image.new("RGB", (4, 4), c) for c in ((255, 0, 0), (0, 255, 0))]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    np.testing.assert_allclose(image.load(tmp_path / "a.gif")[0, 0], [1, 0, 0])


def test_load_resizes_by_width_or_scale(tmp_path):
    path = image.save(tmp_path / "a.png", np.full((20, 40, 3), 0.5))
    assert image.load(path, width=10).shape == (5, 10, 3)
    assert image.load(path, scale=0.25).shape == (5, 10, 3)
    with pytest.raises(JtexError, match="not both") as e:
        image.load(path, width=10, scale=0.5)
    assert str(path) in str(e.value)


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


def test_too_large_image_is_a_jtex_error(tmp_path, monkeypatch):
    path = image.save(tmp_path / "big.png", np.zeros((32, 32, 3)))
    for limit in (600, 100):  # over the limit (Pillow warns) and over twice it (Pillow raises)
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
        with pytest.raises(JtexError, match="too large") as e:
            image.load(path)
        assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_save_errors(tmp_path):
    x = np.zeros((2, 2, 3))
    (tmp_path / "d.png").mkdir()
    for path, bits, pattern in [
        (tmp_path / "a.jpg", 16, "only PNG"),
        (tmp_path / "a.xyz", 8, "unknown image extension"),
        (tmp_path / "a.png", 12, "8 or 16"),
        (tmp_path / "d.png", 8, "directory"),
    ]:
        with pytest.raises(JtexError, match=pattern) as e:
            image.save(path, x, bits=bits)
        assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_unwritable_directory_is_a_jtex_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(JtexError, match="directory") as e:
        image.save(blocker / "out.png", np.zeros((2, 2, 3)))
    assert str(blocker / "out.png") in str(e.value)


# ---------------------------------------------------------------------------
# Saving
# ---------------------------------------------------------------------------


def test_save_formats_parents_and_permissions(tmp_path):
    x = np.random.default_rng(6).random((6, 5, 3))
    for suffix in (".png", ".tif", ".bmp", ".webp"):  # lossless 8-bit formats
        path = image.save(tmp_path / "deep" / "er" / f"a{suffix}", x)
        assert isinstance(path, Path)
        np.testing.assert_allclose(image.load(path), x, atol=0.5 / 255 + 1e-6)
    assert np.abs(image.load(image.save(tmp_path / "a.jpg", x)) - x).mean() < 0.05
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(tmp_path / "deep" / "er" / "a.png").st_mode) == 0o666 & ~umask
    assert [p for p in (tmp_path / "deep" / "er").iterdir() if p.name.startswith(".")] == []


def test_save_clips_and_accepts_greyscale(tmp_path):
    x = np.array([[-1.0, 0.5, 2.0, np.nan]])
    back = image.load(image.save(tmp_path / "g.png", x))
    np.testing.assert_allclose(back[0, :, 0], [0.0, 128 / 255, 1.0, 0.0])


def test_png16_is_valid_for_pillow(tmp_path):
    samples = np.array([[[0, 1, 65535], [256, 255, 32768]]], np.uint16)
    (tmp_path / "a.png").write_bytes(image._encode_png16(samples))
    with Image.open(tmp_path / "a.png") as im:
        im.load()  # CRCs and zlib stream accepted
        assert im.size == (2, 1) and im.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(im), samples >> 8)  # Pillow keeps the high bytes


# ---------------------------------------------------------------------------
# Resize and sources
# ---------------------------------------------------------------------------


def test_resize_sizes_and_precision():
    x = np.linspace(0, 1, 40 * 30 * 3, dtype=np.float32).reshape(40, 30, 3)
    assert image.resize(x, width=15).shape == (20, 15, 3)
    assert image.resize(x, height=10).shape == (10, 8, 3)
    assert image.resize(x[..., 0], scale=0.5).shape == (20, 15)
    smooth = image.resize(x, scale=2.0)
    assert smooth.dtype == np.float32 and 0 <= smooth.min() and smooth.max() <= 1
    # No 8-bit quantisation: a smooth ramp keeps values between the 1/255 steps.
    assert np.any(np.abs(smooth * 255 - np.round(smooth * 255)) > 0.01)
    for kwargs in ({}, {"width": 0}, {"scale": -1.0}, {"scale": 2.0, "width": 3}):
        with pytest.raises(JtexError):
            image.resize(x, **kwargs)


def test_expand_sources_details(tmp_path):
    for name in ("b.PNG", "a.jpeg", "c.tiff", "._a.png", "skip.txt"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub.png").mkdir()  # a folder named like an image is not a file
    single = tmp_path / "skip.txt"
    found = image.expand_sources([single, str(tmp_path)])
    assert [p.name for p in found] == ["skip.txt", "a.jpeg", "b.PNG", "c.tiff"]
    assert image.expand_sources(str(single)) == [single]  # one path, not a list
    with pytest.raises(JtexError, match="no image sources"):
        image.expand_sources([])


# ---------------------------------------------------------------------------
# Corrupt, truncated and huge files
# ---------------------------------------------------------------------------


def _png_chunks(data):
    """(offset, type) of each chunk of a PNG file's bytes."""
    pos, found = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        found.append((pos, data[pos + 4 : pos + 8]))
        pos += 12 + length
    return found


def _assert_one_line_error(path, pattern, **kwargs):
    with pytest.raises(JtexError, match=pattern) as e:
        image.load(path, **kwargs)
    assert str(path) in str(e.value) and "\n" not in str(e.value)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    return str(e.value)


def test_flipped_byte_in_png_data_is_an_error(tmp_path):
    x = np.random.default_rng(10).random((32, 48, 3))
    data = image.save(tmp_path / "a.png", x).read_bytes()
    start = next(pos for pos, kind in _png_chunks(data) if kind == b"IDAT") + 8
    length = struct.unpack(">I", data[start - 8 : start - 4])[0]
    for offset in np.linspace(2, length - 5, 12).astype(int):  # across the compressed data
        bad = bytearray(data)
        bad[start + offset] ^= 0x10
        (tmp_path / "bad.png").write_bytes(bad)
        _assert_one_line_error(tmp_path / "bad.png", "corrupt PNG .CRC mismatch in its IDAT chunk")


def test_decode_errors_surface_even_with_valid_crcs(tmp_path):
    # Damage made before the CRCs were computed: the CRC check passes, and the
    # zlib error Pillow raises while decoding must end the load (it used to be
    # swallowed by the EXIF lookup, and the partly decoded image was used).
    x = np.random.default_rng(11).random((32, 48, 3))
    data = image.save(tmp_path / "a.png", x).read_bytes()
    pos = next(pos for pos, kind in _png_chunks(data) if kind == b"IDAT")
    idat = data[pos + 8 : pos + 8 + struct.unpack(">I", data[pos : pos + 4])[0]]
    found = 0
    for offset in range(len(idat) // 4, len(idat), 37):
        bad = bytearray(idat)
        bad[offset] ^= 0xFF
        path = tmp_path / "bad.png"
        path.write_bytes(data[:pos] + image._png_chunk(b"IDAT", bytes(bad)) + data[pos + 12 + len(idat) :])
        try:
            with Image.open(path) as im:
                im.load()
            continue  # this flip still decodes (zlib cannot tell): not the case tested here
        except OSError:
            found += 1
        _assert_one_line_error(path, "corrupt or truncated image")
    assert found >= 3


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")  # Pillow's, for a TIFF cut in its metadata
@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp", ".tif", ".bmp"])
def test_truncated_files_are_errors(tmp_path, suffix):
    rgb = (np.random.default_rng(12).random((24, 32, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / f"a{suffix}")
    data = (tmp_path / f"a{suffix}").read_bytes()
    # (A JPEG cut just before its 2-byte end marker still holds all its data, and loads.)
    for keep in (len(data) - 3, len(data) - 20, len(data) * 2 // 3, len(data) // 3, 40):
        cut = tmp_path / f"cut{suffix}"
        cut.write_bytes(data[:keep])
        _assert_one_line_error(cut, "truncated|corrupt|not an image")


def test_png_without_iend_or_with_a_bad_chunk_length_is_an_error(tmp_path):
    data = image.save(tmp_path / "a.png", np.zeros((4, 4, 3))).read_bytes()
    iend = next(pos for pos, kind in _png_chunks(data) if kind == b"IEND")
    (tmp_path / "b.png").write_bytes(data[:iend])
    _assert_one_line_error(tmp_path / "b.png", "truncated PNG .it ends at byte")
    bad = bytearray(data)
    bad[33:37] = struct.pack(">I", 0xFFFFFFF0)  # the first chunk after IHDR
    (tmp_path / "c.png").write_bytes(bad)
    _assert_one_line_error(tmp_path / "c.png", "corrupt PNG .bad chunk header")


def _huge_png(path, width, height):
    """An RGBA PNG of ``width`` x ``height`` pixels that is small on disk: row y is (v, v/2, 255 - v, 255)."""
    deflate = zlib.compressobj(1)  # fast; 1.4 MB for 9000 x 9000
    parts = []
    for y in range(height):
        v = y * 255 // (height - 1)
        parts.append(deflate.compress(b"\0" + bytes([v, v // 2, 255 - v, 255]) * width))
    parts.append(deflate.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    chunks = [
        image._png_chunk(b"IHDR", ihdr),
        image._png_chunk(b"IDAT", b"".join(parts)),
        image._png_chunk(b"IEND", b""),
    ]
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"".join(chunks))
    return path


_BOUNDED = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))  # 3 GB of address space
import numpy as np
from jtex import image
from jtex.errors import JtexError
x = image.load(sys.argv[1], width=256)
assert x.shape == (256, 256, 3) and x.dtype == np.float32, x.shape
ramp = np.linspace(0, 1, 256)  # each row's colour, from the top row to the bottom one
np.testing.assert_allclose(x[:, 100, 0], ramp, atol=0.01)
np.testing.assert_allclose(x[:, 100, 2], 1 - ramp, atol=0.01)
try:
    image.load(sys.argv[1])
except JtexError as e:
    print(e)
"""


def test_huge_png_loads_small_in_bounded_memory(tmp_path):
    # 9000 x 9000 RGBA (81 megapixels, 1.3 GB as float32) in a 1.4 MB file.
    path = _huge_png(tmp_path / "huge.png", 9000, 9000)
    assert path.stat().st_size < 2_000_000
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, "-c", _BOUNDED, str(path)], capture_output=True, text=True, env=env, timeout=120
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    message = run.stdout.strip()
    assert "\n" not in message and str(path) in message
    assert "9000x9000 pixels (81.0 megapixels)" in message and "--source-width (-sw)" in message


def test_pixel_limits(tmp_path, monkeypatch):
    path = image.save(tmp_path / "a.png", np.full((60, 80, 3), 64 / 255))
    monkeypatch.setattr(image, "MAX_PIXELS", 1000)
    _assert_one_line_error(path, r"80x60 pixels \(0.0 megapixels\) is over the 0-megapixel limit")
    np.testing.assert_allclose(image.load(path, width=20), 64 / 255, atol=1e-6)  # shrunk before the float conversion
    _assert_one_line_error(path, "result would be 400x300 pixels", scale=5)
    with pytest.raises(JtexError, match="result would be"):
        image.resize(np.zeros((60, 80, 3)), scale=5)


def test_enormous_resizes_are_refused_fast():
    start = time.perf_counter()
    _assert_one_line_error(EXAMPLES / "brick.png", "result would be 512000x512000 pixels", scale=1000)
    _assert_one_line_error(EXAMPLES / "hubble_deep_field.jpg", "over the 64-megapixel limit", width=10**6)
    with pytest.raises(JtexError, match="over the 64-megapixel limit"):
        image.resize(np.zeros((4, 4, 3)), scale=10**4)
    with pytest.raises(JtexError, match="scale must be a positive number"):
        image.load(EXAMPLES / "brick.png", scale=float("nan"))
    assert time.perf_counter() - start < 2


def test_shrinking_while_loading_matches_a_direct_resize(tmp_path):
    # Loads that shrink by 8x or more average whole blocks (and JPEGs decode
    # smaller) before the float conversion; the result stays close to
    # resizing the full image, transparency and orientation included.
    rng = np.random.default_rng(13)
    base = image.resize(rng.random((8, 12, 3)), width=600)  # smooth, 400 x 600
    rgba = np.concatenate([base, 0.2 + 0.8 * base[..., :1]], axis=-1)
    Image.fromarray((rgba * 255).round().astype(np.uint8)).save(tmp_path / "a.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees
    Image.fromarray((base * 255).round().astype(np.uint8)).save(tmp_path / "o.jpg", quality=98, exif=exif)
    image.save(tmp_path / "g16.png", base[..., 1], bits=16)
    for name, kwargs in [("a.png", {"width": 50}), ("o.jpg", {"width": 40}), ("g16.png", {"scale": 0.1})]:
        full = image.load(tmp_path / name)
        direct = image.resize(full, width=kwargs.get("width"), scale=kwargs.get("scale"))
        small = image.load(tmp_path / name, **kwargs)
        assert small.shape == direct.shape and small.dtype == np.float32, name
        assert np.abs(small - direct).mean() < 0.001 and np.abs(small - direct).max() < 0.01, name
    assert image.load(tmp_path / "o.jpg", width=40).shape == (60, 40, 3)  # portrait after the EXIF rotation


def test_fully_transparent_image_takes_its_plain_mean_when_shrunk(tmp_path):
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:, :32, 1] = 100  # green in the left half only: plain mean 50
    Image.fromarray(rgba).save(tmp_path / "clear.png")
    for kwargs in ({}, {"width": 8}):
        np.testing.assert_allclose(
            image.load(tmp_path / "clear.png", **kwargs)[3, 5], [200 / 255, 50 / 255, 0], atol=1e-6
        )


def test_from_array_kinds(tmp_path):
    rng = np.random.default_rng(5)
    rgb8 = (rng.random((6, 7, 3)) * 255).astype(np.uint8)
    rgb16 = (rng.random((6, 7, 3)) * 65535).astype(np.uint16)
    unit = rng.random((6, 7, 3))
    cases = [
        (rgb8, rgb8 / 255),
        (rgb16, rgb16 / 65535),
        (rgb16.astype(">u2"), rgb16 / 65535),  # big-endian
        (unit, unit),  # float64
        (unit.astype(np.float16), unit.astype(np.float16)),
        (unit[..., 0], np.repeat(unit[..., :1], 3, -1)),  # (h, w) grey
        (rgb8[..., :1], np.repeat(rgb8[..., :1] / 255, 3, -1)),  # (h, w, 1) grey
        (np.dstack([rgb8, np.full((6, 7), 255, np.uint8)]), rgb8 / 255),  # opaque RGBA
        (np.dstack([unit, np.ones((6, 7))]), unit),
        (unit.tolist(), unit),  # anything np.asarray takes
    ]
    for given, expected in cases:
        x = image.from_array(given)
        assert x.shape == (6, 7, 3) and x.dtype == np.float32
        np.testing.assert_allclose(x, expected, atol=1e-6)
    x = image.from_array(unit)
    x[...] = 0  # a new array, never a view of the input
    assert unit.max() > 0
    # Alpha is composited over the alpha-weighted mean colour, exactly as load() does for files.
    rgba = (rng.random((6, 7, 4)) * 255).astype(np.uint8)
    rgba[:2, :, 3] = 0
    Image.fromarray(rgba).save(tmp_path / "a.png")
    np.testing.assert_allclose(image.from_array(rgba), image.load(tmp_path / "a.png"), atol=1e-6)
    np.testing.assert_allclose(image.from_array(rgba / 255), image.load(tmp_path / "a.png"), atol=1e-6)
    rgba16 = (rng.random((6, 7, 4)) * 65535).astype(np.uint16)
    (tmp_path / "b.png").write_bytes(image._encode_png16(rgba16))
    np.testing.assert_allclose(image.from_array(rgba16), image.load(tmp_path / "b.png"), atol=1e-6)
    np.testing.assert_allclose(image.from_array(rgba16 / 65535), image.load(tmp_path / "b.png"), atol=1e-6)


@pytest.mark.parametrize(
    ("given", "pattern"),
    [
        (np.zeros((4, 4, 2)), r"must be \(h, w\), \(h, w, 1\), \(h, w, 3\) or \(h, w, 4\), got shape \(4, 4, 2\)"),
        (np.zeros((1, 4, 4, 3)), r"got shape \(1, 4, 4, 3\); pass one grey, RGB or RGBA image, channels last"),
        (np.zeros(5), r"got shape \(5,\)"),
        (np.float32(0.5), r"got shape \(\)"),
        (np.zeros((0, 4, 3)), r"must not be empty, got shape \(0, 4, 3\)"),
        (np.zeros((4, 0)), r"must not be empty"),
        (np.ones((4, 4, 3), bool), r"must be uint8 \(0..255\), uint16 \(0..65535\) or float \(0..1\), got dtype bool"),
        (np.ones((4, 4, 3), np.int64), r"got dtype int64; convert it, e.g. a.astype\(np.uint8\)"),
        (np.ones((4, 4, 3), np.int8), r"got dtype int8"),
        (np.ones((4, 4, 3), complex), r"got dtype complex128"),
        (np.full((4, 4, 3), np.nan), r"must hold finite values in \[0, 1\] \(or uint8 0..255\), got values from nan"),
        (np.full((4, 4, 3), np.inf), r"finite values in \[0, 1\].*np.nan_to_num"),
        (np.arange(48.0).reshape(4, 4, 3) * 5, r"got values from 0 to 235; divide by 255"),
        (np.full((4, 4), -0.5, np.float32), r"got values from -0.5 to -0.5"),
        ([[0.5], [0.5, 0.5]], r"an exemplar must be a numpy array; numpy cannot make one from this list"),
    ],
)
def test_from_array_refusals(given, pattern):
    with pytest.raises(JtexError, match=pattern) as e:
        image.from_array(given)
    assert "\n" not in str(e.value) and "; " in str(e.value)  # one line, with the fix


def test_from_array_pixel_limit(monkeypatch):
    monkeypatch.setattr(image, "MAX_PIXELS", 1000)
    image.from_array(np.zeros((25, 40, 3), np.uint8))
    with pytest.raises(JtexError, match=r"41x25 pixels \(0.0 megapixels\) is over the 0-megapixel limit; downscale"):
        image.from_array(np.zeros((25, 41, 3), np.uint8))
