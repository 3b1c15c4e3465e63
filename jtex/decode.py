"""Image files to float arrays: the Pillow side of :func:`jtex.image.load`.

:func:`read` opens a file, decodes its pixel data once and completely, and
converts it to float32 RGB (H, W, 3) in [0, 1] at the size asked for:

* a walk over a PNG's chunks checks every critical chunk's CRC-32 (Pillow
  does not check the image data's);
* the samples come out of Pillow as compact as they are stored: 8-bit modes
  through Pillow's conversions, 16-bit grey and ``I``/``F`` scaled here,
  16-bit colour PNGs decoded twice (once for each byte);
* the EXIF orientation is applied as a numpy view;
* the float conversion runs a band of rows at a time: alpha composited over
  the alpha-weighted mean colour and, shrinking 8x or more, whole blocks
  averaged first (a JPEG decoding at 1/2, 1/4 or 1/8 size before that), so
  float memory follows the output size, not the file's;
* Lanczos in float (also :func:`jtex.image.resize`'s) finishes the resize.

Internal to :mod:`jtex.image`, which imports it on first use (so importing
that does not import Pillow); it never imports :mod:`jtex.image`, and takes
the pixel limit as a ``max_pixels`` argument.
Expected problems raise :class:`jtex.errors.JtexError` with a one-line
message naming the path.
"""

from __future__ import annotations

import math
import os
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, UnidentifiedImageError

from jtex.errors import JtexError
from jtex.files import one_line, show

__all__ = ["check_resize_args", "lanczos", "read", "target_size", "to_float"]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

_FORMATS_HINT = "PNG, JPEG, WebP, TIFF, BMP or GIF"
_LOAD_FIX = "load it smaller with --source-width (-sw) or --source-scale (-ss)"

# Everything Pillow and the codecs it calls raise for unreadable or malformed
# files. Some plugins raise SyntaxError or struct.error for corrupt headers,
# so catching OSError alone is not enough.
_READ_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error)

# Shrinking before the float conversion (and JPEG's draft decoding) leave at
# least this factor to the final Lanczos step, like Pillow's reducing_gap.
# The box filter then dims the output's finest detail by at most 3%, and
# loads that shrink by less than 8x are exactly a direct Lanczos resize.
_REDUCING_GAP = 4

_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")


def read(path: Path, *, width: int | None, scale: float | None, max_pixels: int) -> np.ndarray:
    """Reads an image file as float32 RGB (H, W, 3), as :func:`jtex.image.load` describes.

    ``path`` is a non-empty file (the caller checked) and ``width``/``scale``
    are valid (:func:`check_resize_args`). Pillow's errors become one-line
    :class:`JtexError` messages.
    """
    shown = show(path)
    try:
        # Pillow only warns between MAX_IMAGE_PIXELS and twice that; a float
        # copy of such an image takes gigabytes, so treat it as an error too.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            _check_png_chunks(path)
            with Image.open(path) as im:
                return _decode(im, path, width=width, scale=scale, max_pixels=max_pixels)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise JtexError(f"{shown}: image too large ({one_line(e)}); downscale it, e.g. to 2048 pixels wide") from e
    except PermissionError as e:
        raise JtexError(f"{shown}: cannot read it ({one_line(e)}); check its permissions") from e
    except MemoryError as e:
        raise JtexError(f"{shown}: not enough memory to open it; downscale it, e.g. to 2048 pixels wide") from e
    except UnidentifiedImageError as e:
        raise JtexError(f"{shown}: not an image Pillow can read; convert it to {_FORMATS_HINT}") from e
    except _READ_ERRORS as e:
        raise JtexError(f"{shown}: corrupt or truncated image ({one_line(e)}); re-export or re-download it") from e


def _decode(im: Image.Image, path: Path, *, width: int | None, scale: float | None, max_pixels: int) -> np.ndarray:
    """Decodes an opened image once and converts it, shrunk if asked, to float RGB (H, W, 3)."""
    shown, where = show(path), f"loading {show(path)}"
    file_w, file_h = im.size

    def out_size(full_h: int, full_w: int) -> tuple[int, int]:  # the output's size, from the full image's
        return target_size(
            full_h, full_w, width=width, height=None, scale=scale, where=where, fix=_LOAD_FIX, max_pixels=max_pixels
        )

    too_large = JtexError(
        f"{shown}: {file_w}x{file_h} pixels ({file_w * file_h / 1e6:.1f} megapixels) is over the "
        f"{max_pixels / 1e6:.0f}-megapixel limit for loading at full size; {_LOAD_FIX}"
    )
    resizing = width is not None or scale is not None
    if not resizing and file_w * file_h > max_pixels:
        raise too_large
    if scale is not None:  # the output's pixel count does not depend on the orientation: check it now
        out_size(file_h, file_w)
    if im.format == "JPEG" and resizing:
        # Decode at 1/2, 1/4 or 1/8 size where that leaves the gap to the
        # output. JPEG's EXIF block is read with the header: nothing decodes.
        turned = _exif_orientation(im, shown) >= 5
        full_h, full_w = (file_w, file_h) if turned else (file_h, file_w)
        out_h, out_w = out_size(full_h, full_w)
        out_w, out_h = (out_h, out_w) if turned else (out_w, out_h)  # back to the file's axes
        im.draft(None, (out_w * _REDUCING_GAP, out_h * _REDUCING_GAP))
    rawmode = im.tile[0].args if im.format == "PNG" and len(im.tile) == 1 else None
    rawmode16 = rawmode if rawmode in ("RGB;16B", "RGBA;16B", "LA;16B") and im.mode in ("RGB", "RGBA") else None
    tiles = list(im.tile)
    if rawmode16 == "LA;16B":  # 16-bit grey+alpha: the plain 4-byte unpacker passes all bytes through
        im.tile = [tile._replace(args="RGBA") for tile in im.tile]
    try:
        im.load()  # the one complete decode: its errors end the load
        orientation = _exif_orientation(im, shown)  # after load(): parses metadata only
        colour, alpha, offset, denom = _samples(im, path, tiles, rawmode16)
        colour, alpha = _orient(colour, orientation), _orient(alpha, orientation)
        h, w = colour.shape[:2]
        out_h, out_w = h, w
        if resizing:  # from the file's size, before any JPEG draft scaling
            full = (file_w, file_h) if orientation >= 5 else (file_h, file_w)
            out_h, out_w = out_size(*full)
        ratio = min(h / out_h, w / out_w)
        factor = max(1, int(ratio // _REDUCING_GAP))
        if -(-h // factor) * -(-w // factor) > max_pixels:
            factor = max(factor, int(ratio))  # no gap: memory first
        if -(-h // factor) * -(-w // factor) > max_pixels:
            raise too_large
        pixels = to_float(colour, alpha, offset, denom, factor)
        del colour, alpha
        if pixels.shape[:2] != (out_h, out_w):  # the box: the image's own extent, edge blocks may be partial
            pixels = lanczos(pixels, out_h, out_w, box=(0, 0, w / factor, h / factor))
    except MemoryError as e:
        raise JtexError(f"{shown}: not enough memory to load its {file_w}x{file_h} pixels; {_LOAD_FIX}") from e
    return np.repeat(pixels, 3, axis=-1) if pixels.shape[-1] == 1 else pixels


def _check_png_chunks(path: Path) -> None:
    """Checks a PNG's chunk structure and the CRC-32 of its critical chunks.

    Pillow checks the CRCs of the chunks before the image data but not of the
    IDAT chunks, and its zlib decoder stops once it has every row, before
    zlib's own Adler-32 check: a flipped byte in the compressed data could
    decode to wrong pixels without an error. Critical chunks (IHDR, PLTE,
    IDAT, IEND: upper-case first letter) must match their CRC, as libpng
    requires; the file must end with IEND. Other files are left to Pillow.
    """

    def fail(problem: str) -> JtexError:
        return JtexError(f"{show(path)}: {problem}; re-export or re-download it")

    with open(path, "rb") as f:
        if f.read(8) != _PNG_SIGNATURE:
            return
        while True:
            start, head = f.tell(), f.read(8)
            if len(head) < 8:
                raise fail(f"truncated PNG (it ends at byte {start}, before IEND)")
            length, kind = struct.unpack(">I4s", head)
            if length > 0x7FFFFFFF or not kind.isalpha():
                raise fail(f"corrupt PNG (bad chunk header at byte {start})")
            critical, left, crc = not kind[0] & 0x20, length, zlib.crc32(kind)
            if critical:
                while left and (block := f.read(min(left, 1 << 20))):
                    crc, left = zlib.crc32(block, crc), left - len(block)
            else:
                f.seek(length, os.SEEK_CUR)  # past the end, the CRC read below comes up short
                left = 0
            stored = f.read(4)
            if left or len(stored) < 4:
                raise fail(f"truncated PNG (it ends inside its {kind.decode()} chunk)")
            if critical and struct.unpack(">I", stored)[0] != crc:
                raise fail(f"corrupt PNG (CRC mismatch in its {kind.decode()} chunk at byte {start})")
            if kind == b"IEND":
                return


def _samples(
    im: Image.Image, path: Path, tiles: list, rawmode16: str | None
) -> tuple[np.ndarray, np.ndarray | None, float, float]:
    """Takes a loaded image's samples out of Pillow, as compact as they are stored.

    Returns:
        colour (H, W, 1) grey or (H, W, 3) RGB, uint8, uint16, int32 or
        float32; alpha (H, W) uint8, uint16 or bool (max = opaque), or None;
        and (offset, denom) with ``(colour - offset) / denom`` in [0, 1].
    """
    mode, trns = im.mode, im.info.get("transparency")
    if rawmode16 == "LA;16B":  # decoded as raw bytes: grey high, low, alpha high, low
        raw = np.asarray(im).astype(np.uint16)
        return (raw[..., :1] << 8) | raw[..., 1:2], (raw[..., 2] << 8) | raw[..., 3], 0.0, 65535.0
    if rawmode16 is not None:
        # Pillow has no 16-bit RGB mode: it keeps each sample's high byte. Its
        # decoder (zlib, row filters, interlacing) is exact, so decode again
        # with the little-endian unpacker, which keeps the second, low byte.
        channels = len(rawmode16.split(";")[0])
        samples = np.asarray(im)[..., :channels].astype(np.uint16)
        samples <<= 8
        samples |= _decode_with_rawmode(path, tiles, rawmode16[:-1] + "L")[..., :channels]
        if channels == 4:
            return samples[..., :3], samples[..., 3], 0.0, 65535.0
        alpha = None
        if isinstance(trns, tuple):  # a tRNS colour key: pixels of this colour are transparent
            alpha = np.any(samples != np.asarray(trns, np.uint16), axis=-1)
        return samples, alpha, 0.0, 65535.0
    if mode in _SIXTEEN_BIT_MODES or mode in ("I", "F"):
        # Pillow's own conversions of these modes to RGB clip to 8 bits or
        # wrap around, so scale the raw values here.
        raw = np.asarray(im)
        alpha = raw != trns if trns is not None and mode != "F" else None
        if mode == "F" and not np.all(np.isfinite(raw)):
            raw = np.where(np.isfinite(raw), raw, np.float32(0))
        low, high = (0, 65535) if mode in _SIXTEEN_BIT_MODES else (raw.min(), raw.max())
        if (mode != "F" and low >= 0 and high <= 65535) or (mode == "F" and low >= 0 and high <= 1):
            offset, denom = 0.0, (1.0 if mode == "F" else 65535.0)
        else:  # no standard white level: stretch the image's own range
            offset, denom = float(low), (float(high) - float(low)) or 1.0
        return raw[..., None], alpha, offset, denom
    # Everything else is 8 bits per sample. Pillow resolves palettes, colour
    # keys, premultiplied alpha, CMYK and YCbCr correctly in convert().
    if trns is not None or mode in ("PA", "RGBA", "RGBa"):
        target = "RGBA"
    else:
        target = {"1": "L", "L": "L", "LA": "LA", "La": "LA"}.get(mode, "RGB")
    if mode == "La":
        im = im.convert("LA")  # Pillow cannot convert premultiplied La directly
    raw = np.asarray(im if im.mode == target else im.convert(target))
    if raw.ndim == 2:
        return raw[..., None], None, 0.0, 255.0
    if target in ("LA", "RGBA"):
        return raw[..., :-1], raw[..., -1], 0.0, 255.0
    return raw, None, 0.0, 255.0


def _decode_with_rawmode(path: Path, tiles: list, rawmode: str) -> np.ndarray:
    """Decodes the image in ``path`` again, with ``tiles`` given another unpacker."""
    with Image.open(path) as again:
        again.tile = [tile._replace(args=rawmode) for tile in tiles]
        again.load()
        return np.asarray(again)


def to_float(colour: np.ndarray, alpha: np.ndarray | None, offset: float, denom: float, factor: int) -> np.ndarray:
    """Converts samples to float32 in [0, 1], composited and box-averaged, a band of rows at a time.

    Args:
        colour: (H, W, C) samples, mapped to [0, 1] as (colour - offset) / denom.
        alpha: (H, W) samples, 0 transparent, opaque at an integer dtype's maximum, True or 1.0; or None.
        factor: Average factor x factor blocks (the last row and column of
            blocks may be smaller), giving (ceil(H / factor), ceil(W / factor)).

    Returns:
        float32 (ceil(H / factor), ceil(W / factor), C): each block's mean of
        the colour composited over the alpha-weighted mean colour of the
        whole image. Compositing is linear, so averaging the premultiplied
        colour and the alpha first gives exactly that. Only one band of rows
        is ever held as float at full resolution.
    """
    flat = False
    if alpha is not None:
        a_max = np.iinfo(alpha.dtype).max if alpha.dtype.kind in "ui" else 1
        flat = not alpha.max()  # fully transparent: every pixel takes the plain mean colour
        if flat or alpha.min() == a_max:
            alpha = None  # nothing to composite
    height, width, channels = colour.shape
    out = np.empty((-(-height // factor), -(-width // factor), channels), np.float32)
    cover = None if alpha is None else np.empty(out.shape[:2], np.float32)
    weighted, area = np.zeros(channels), 0.0
    rows = max(1, (1 << 22) // (width * channels * factor)) * factor
    for top in range(0, height, rows):
        band = colour[top : top + rows]
        done = slice(top // factor, top // factor + -(-len(band) // factor))  # the rows of out it gives
        if offset:  # stretching a wide range: float64, as float32 could overflow
            band = ((band.astype(np.float64) - offset) / denom).astype(np.float32)
        else:
            band = band.astype(np.float32)
            band /= np.float32(denom)
        if alpha is not None:
            a = alpha[top : top + rows].astype(np.float32)
            a /= np.float32(a_max)
            band *= a[..., None]
            a, count = _box_sums(a[..., None], factor)
            area += a.sum(dtype=np.float64)
            cover[done] = a[..., 0] / count[..., 0]
        band, count = _box_sums(band, factor)
        if alpha is not None:
            weighted += np.einsum("ijk->k", band, dtype=np.float64)
        out[done] = band / count
    if flat:
        out[...] = out.mean(axis=(0, 1), dtype=np.float64)
    elif alpha is not None and area > 0:
        mean, rest = weighted / area, 1.0 - cover
        for c in range(channels):
            out[..., c] += np.float32(mean[c]) * rest
    return np.clip(out, 0.0, 1.0, out=out)


def _box_sums(x: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """Sums of factor x factor blocks of float32 (h, w, C), and their pixel counts (edge blocks are smaller)."""
    if factor == 1:
        return x, np.ones((1, 1, 1), np.float32)
    h, w = x.shape[:2]
    rows, cols = np.arange(0, h, factor), np.arange(0, w, factor)
    sums = np.add.reduceat(np.add.reduceat(x, cols, axis=1), rows, axis=0)
    counts = np.minimum(factor, h - rows)[:, None] * np.minimum(factor, w - cols)[None, :]
    return sums, counts[..., None].astype(np.float32)


def _exif_orientation(im: Image.Image, shown: str) -> int:
    """Returns the EXIF orientation (1 to 8), 1 when absent or out of range.

    Call it after ``im.load()`` (or for a JPEG, whose EXIF block is read with
    its header): for a PNG not yet loaded, ``getexif()`` decodes the image.
    """
    try:
        orientation = im.getexif().get(ExifTags.Base.Orientation, 1)
    except _READ_ERRORS as e:
        raise JtexError(
            f"{shown}: corrupt EXIF metadata ({one_line(e)}), so its orientation is unknown; "
            "re-export it, or strip its metadata"
        ) from e
    return orientation if orientation in range(1, 9) else 1


def _orient(pixels: np.ndarray | None, orientation: int) -> np.ndarray | None:
    """Applies an EXIF orientation to (H, W, ...) pixels, like ImageOps.exif_transpose (a view)."""
    if pixels is None:
        return None
    swapped = np.swapaxes(pixels, 0, 1)
    return {
        1: pixels,
        2: pixels[:, ::-1],  # mirrored left-right
        3: pixels[::-1, ::-1],  # rotated 180
        4: pixels[::-1],  # mirrored top-bottom
        5: swapped,  # transposed
        6: swapped[:, ::-1],  # rotated 90 clockwise
        7: swapped[::-1, ::-1],  # transversed
        8: swapped[::-1],  # rotated 90 counter-clockwise
    }[orientation]


def lanczos(image: np.ndarray, new_h: int, new_w: int, box: tuple[float, ...] | None = None) -> np.ndarray:
    """Lanczos-resamples float (H, W, C) or (H, W) to (new_h, new_w), clipped to [0, 1].

    ``box`` (left, top, right, bottom), in pixels and possibly fractional,
    is the region of ``image`` to resample; default all of it.
    """
    channels = image[..., None] if image.ndim == 2 else image
    out = np.empty((new_h, new_w, channels.shape[-1]), np.float32)
    for c in range(channels.shape[-1]):
        channel = Image.fromarray(np.ascontiguousarray(channels[..., c], dtype=np.float32))
        out[..., c] = np.asarray(channel.resize((new_w, new_h), Image.Resampling.LANCZOS, box=box))
    np.clip(out, 0.0, 1.0, out=out)
    return out[..., 0] if image.ndim == 2 else out


def check_resize_args(*, width: int | None, height: int | None, scale: float | None, where: str) -> None:
    """Refuses a scale given with a size, or a size or scale that is not positive."""
    if scale is not None:
        if width is not None or height is not None:
            raise JtexError(f"{where}: give scale or width/height, not both; drop one of them")
        if not isinstance(scale, (int, float)) or not scale > 0 or not math.isfinite(scale):
            raise JtexError(f"{where}: scale must be a positive number, got {scale}")
    for name, value in (("width", width), ("height", height)):
        if value is not None and (not isinstance(value, (int, float)) or int(value) != value or value < 1):
            raise JtexError(f"{where}: {name} must be a positive whole number, got {value}")


def target_size(
    old_h: int,
    old_w: int,
    *,
    width: int | None,
    height: int | None,
    scale: float | None,
    where: str = "resize",
    fix: str = "ask for a smaller size",
    max_pixels: int,
) -> tuple[int, int]:
    """Works out (height, width) from the resize arguments, at most ``max_pixels`` pixels."""
    check_resize_args(width=width, height=height, scale=scale, where=where)
    if scale is not None:
        new_h, new_w = max(1, round(old_h * scale)), max(1, round(old_w * scale))
    elif width is None and height is None:
        raise JtexError(f"{where}: give a width, a height or a scale")
    else:
        new_h = int(height) if height is not None else max(1, round(old_h * width / old_w))
        new_w = int(width) if width is not None else max(1, round(old_w * height / old_h))
    if new_h * new_w > max_pixels:
        raise JtexError(
            f"{where}: the result would be {new_w}x{new_h} pixels ({new_w * new_h / 1e6:.0f} megapixels), "
            f"over the {max_pixels / 1e6:.0f}-megapixel limit; {fix}"
        )
    return new_h, new_w
