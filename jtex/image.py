"""Image files in and out, with Pillow and numpy.

Every image jtex works with is a float32 numpy array of shape (H, W, 3), RGB,
with values in [0, 1]. This module converts files of any common format and
Pillow mode to that one representation and back:

* :func:`load` reads PNG, JPEG, WebP, TIFF, BMP and GIF files in any mode,
  keeping the full precision of 16-bit files, shrinking before it converts
  to float when asked for a smaller size;
* :func:`save` writes 8- or 16-bit files atomically;
* :func:`resize` resamples arrays in float;
* :func:`expand_sources` turns command-line paths into a list of image files.

Expected problems (a missing file, a corrupt or truncated file, an image too
large for memory, an unwritable directory) raise
:class:`jtex.errors.JtexError` with a one-line message that names the path,
the problem and the fix. Files are only ever fully decoded, never used half
read: Pillow's ``ImageFile.LOAD_TRUNCATED_IMAGES`` is left False.
"""

from __future__ import annotations

import math
import os
import struct
import warnings
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, UnidentifiedImageError

from jtex.errors import JtexError
from jtex.files import atomic_write, one_line, show

__all__ = ["EXTENSIONS", "MAX_PIXELS", "expand_sources", "load", "resize", "save", "to_unit"]

#: File name extensions (lower case) that :func:`expand_sources` picks up from
#: a directory.
EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif")

#: The most pixels :func:`load` holds as float at once and :func:`resize`
#: makes (64 megapixels: 768 MB as float32 RGB). Larger files load only when
#: asked for a smaller size, which is reached before the float conversion.
MAX_PIXELS = 64_000_000

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

# Pillow formats and save options for 8-bit output, by file extension.
# JPEG at quality 95 with no chroma subsampling and lossless WebP: outputs
# are textures whose fine detail is the point, so do not blur the colour.
_SAVE_FORMATS = {
    ".png": ("PNG", {}),
    ".jpg": ("JPEG", {"quality": 95, "subsampling": 0}),
    ".jpeg": ("JPEG", {"quality": 95, "subsampling": 0}),
    ".webp": ("WEBP", {"lossless": True}),
    ".tif": ("TIFF", {"compression": "tiff_deflate"}),
    ".tiff": ("TIFF", {"compression": "tiff_deflate"}),
    ".bmp": ("BMP", {}),
}

_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------


def load(path: str | os.PathLike, *, width: int | None = None, scale: float | None = None) -> np.ndarray:
    """Reads an image file as a float32 RGB array.

    Reads PNG, JPEG, WebP, TIFF, BMP and GIF (the first frame of animations)
    in any Pillow mode: greyscale (``1``, ``L``, ``I;16``, ``I``, ``F``),
    palette, RGB, CMYK and YCbCr, with or without alpha. Greyscale images are
    repeated over the three channels. 16-bit PNG and TIFF greyscale and 16-bit
    PNG colour keep their full precision (they are not reduced to 8 bits).
    Value scaling by mode: 8-bit modes divide by 255, 16-bit modes by 65535;
    mode ``I`` (32-bit int) divides by 65535 when all values fit in 16 bits,
    else is stretched from its minimum to its maximum; mode ``F`` (float) is
    kept as is when within [0, 1], else stretched the same way (NaN and
    infinities count as 0).

    Transparency (an alpha channel or a transparent palette or colour key) is
    composited over the image's mean colour: the mean of the pixels weighted
    by their alpha, so the mean of the opaque pixels. A texture's
    transparent areas then hold its average colour rather than black or white
    that would bias its statistics. An EXIF orientation tag is applied.

    The pixel data is decoded once (16-bit colour PNGs twice, once for each
    byte of their samples), completely, and a decoding error ends the load:
    a corrupt or truncated file (PNG chunk CRCs are checked too) is an
    error, never a partly decoded image. Asked for a size 8 times smaller or
    more, ``load`` shrinks before converting to float (a JPEG decodes at 1/2,
    1/4 or 1/8 size, then whole blocks are averaged, alpha premultiplied)
    and finishes with Lanczos, so float memory follows the output size, not
    the file's. At full size, files over :data:`MAX_PIXELS` are refused.

    Args:
        path: The image file.
        width: If given, resize to this width in pixels, keeping the aspect
            ratio.
        scale: If given, resize by this factor. Give at most one of ``width``
            and ``scale``.

    Returns:
        float32 array of shape (H, W, 3), RGB, values in [0, 1].

    Raises:
        JtexError: The file is missing, is a directory, is empty, corrupt,
            truncated or not an image; it is a decompression bomb; or the
            image, at the size asked for, is over :data:`MAX_PIXELS`; or
            ``width``/``scale`` is invalid.
    """
    path = Path(path)
    shown = show(path)
    if width is not None and scale is not None:
        raise JtexError(f"loading {shown}: give width or scale, not both; drop one of them")
    _check_resize_args(width=width, height=None, scale=scale, where=f"loading {shown}")
    _check_readable_file(path)
    try:
        # Pillow only warns between MAX_IMAGE_PIXELS and twice that; a float
        # copy of such an image takes gigabytes, so treat it as an error too.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            _check_png_chunks(path)
            with Image.open(path) as im:
                return _read(im, path, width=width, scale=scale)
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


def _read(im: Image.Image, path: Path, *, width: int | None, scale: float | None) -> np.ndarray:
    """Decodes an opened image once and converts it, shrunk if asked, to float RGB (H, W, 3)."""
    shown, where = show(path), f"loading {show(path)}"
    file_w, file_h = im.size
    too_large = JtexError(
        f"{shown}: {file_w}x{file_h} pixels ({file_w * file_h / 1e6:.1f} megapixels) is over the "
        f"{MAX_PIXELS / 1e6:.0f}-megapixel limit for loading at full size; {_LOAD_FIX}"
    )
    resizing = width is not None or scale is not None
    if not resizing and file_w * file_h > MAX_PIXELS:
        raise too_large
    if scale is not None:  # the output's pixel count does not depend on the orientation: check it now
        _target_size(file_h, file_w, width=None, height=None, scale=scale, where=where, fix=_LOAD_FIX)
    if im.format == "JPEG" and resizing:
        # Decode at 1/2, 1/4 or 1/8 size where that leaves the gap to the
        # output. JPEG's EXIF block is read with the header: nothing decodes.
        turned = _exif_orientation(im, shown) >= 5
        full_h, full_w = (file_w, file_h) if turned else (file_h, file_w)
        out_h, out_w = _target_size(full_h, full_w, width=width, height=None, scale=scale, where=where, fix=_LOAD_FIX)
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
            out_h, out_w = _target_size(*full, width=width, height=None, scale=scale, where=where, fix=_LOAD_FIX)
        ratio = min(h / out_h, w / out_w)
        factor = max(1, int(ratio // _REDUCING_GAP))
        if -(-h // factor) * -(-w // factor) > MAX_PIXELS:
            factor = max(factor, int(ratio))  # no gap: memory first
        if -(-h // factor) * -(-w // factor) > MAX_PIXELS:
            raise too_large
        pixels = _to_float(colour, alpha, offset, denom, factor)
        del colour, alpha
        if pixels.shape[:2] != (out_h, out_w):  # the box: the image's own extent, edge blocks may be partial
            pixels = _lanczos(pixels, out_h, out_w, box=(0, 0, w / factor, h / factor))
    except MemoryError as e:
        raise JtexError(f"{shown}: not enough memory to load its {file_w}x{file_h} pixels; {_LOAD_FIX}") from e
    return np.repeat(pixels, 3, axis=-1) if pixels.shape[-1] == 1 else pixels


def _check_readable_file(path: Path) -> None:
    """Gives clear messages for the common mistakes before Pillow sees the path."""
    shown = show(path)
    if not path.exists():
        raise JtexError(f"{shown}: no such file; check the path and its spelling")
    if path.is_dir():
        raise JtexError(f"{shown}: is a folder, not an image; pass an image file inside it")
    try:
        size = path.stat().st_size
    except OSError as e:
        raise JtexError(f"{shown}: cannot read it ({one_line(e)}); check its permissions") from e
    if size == 0:
        raise JtexError(f"{shown}: file is empty (0 bytes); re-export or re-download it")


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


def _to_float(colour: np.ndarray, alpha: np.ndarray | None, offset: float, denom: float, factor: int) -> np.ndarray:
    """Converts samples to float32 in [0, 1], composited and box-averaged, a band of rows at a time.

    Args:
        colour: (H, W, C) samples, mapped to [0, 1] as (colour - offset) / denom.
        alpha: (H, W) samples, 0 transparent, dtype maximum (True) opaque; or None.
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
        a_max = 1 if alpha.dtype == bool else np.iinfo(alpha.dtype).max
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


# --------------------------------------------------------------------------
# Resizing
# --------------------------------------------------------------------------


def resize(
    image: np.ndarray,
    *,
    width: int | None = None,
    height: int | None = None,
    scale: float | None = None,
) -> np.ndarray:
    """Resizes an image with Lanczos resampling, in float.

    Each channel is resampled as a Pillow mode ``F`` (32-bit float) image, so
    there is no 8-bit quantisation. Give ``width`` and/or ``height`` (one
    alone keeps the aspect ratio), or ``scale``.

    Args:
        image: float array (H, W, C) or (H, W), values in [0, 1].
        width: Output width in pixels.
        height: Output height in pixels.
        scale: Factor for both sides; sizes are rounded, at least 1 pixel.

    Returns:
        float32 array (new_H, new_W, C) or (new_H, new_W), clipped to [0, 1]
        (Lanczos rings slightly outside the input range at sharp edges).

    Raises:
        JtexError: No size given, ``scale`` given with a width or height, a
            size or factor that is not positive, or an output over
            :data:`MAX_PIXELS` pixels.
    """
    image = np.asarray(image, dtype=np.float32)
    if image.ndim not in (2, 3):
        raise ValueError(f"resize expects an (H, W) or (H, W, C) array, got shape {image.shape}")
    old_h, old_w = image.shape[:2]
    new_h, new_w = _target_size(old_h, old_w, width=width, height=height, scale=scale)
    if (new_h, new_w) == (old_h, old_w):
        return np.clip(image, 0.0, 1.0)
    return _lanczos(image, new_h, new_w)


def _lanczos(image: np.ndarray, new_h: int, new_w: int, box: tuple[float, ...] | None = None) -> np.ndarray:
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


def _check_resize_args(*, width: int | None, height: int | None, scale: float | None, where: str) -> None:
    """Refuses a scale given with a size, or a size or scale that is not positive."""
    if scale is not None:
        if width is not None or height is not None:
            raise JtexError(f"{where}: give scale or width/height, not both; drop one of them")
        if not isinstance(scale, (int, float)) or not scale > 0 or not math.isfinite(scale):
            raise JtexError(f"{where}: scale must be a positive number, got {scale}")
    for name, value in (("width", width), ("height", height)):
        if value is not None and (not isinstance(value, (int, float)) or int(value) != value or value < 1):
            raise JtexError(f"{where}: {name} must be a positive whole number, got {value}")


def _target_size(
    old_h: int,
    old_w: int,
    *,
    width: int | None,
    height: int | None,
    scale: float | None,
    where: str = "resize",
    fix: str = "ask for a smaller size",
) -> tuple[int, int]:
    """Works out (height, width) from the resize arguments, at most MAX_PIXELS pixels."""
    _check_resize_args(width=width, height=height, scale=scale, where=where)
    if scale is not None:
        new_h, new_w = max(1, round(old_h * scale)), max(1, round(old_w * scale))
    elif width is None and height is None:
        raise JtexError(f"{where}: give a width, a height or a scale")
    else:
        new_h = int(height) if height is not None else max(1, round(old_h * width / old_w))
        new_w = int(width) if width is not None else max(1, round(old_w * height / old_h))
    if new_h * new_w > MAX_PIXELS:
        raise JtexError(
            f"{where}: the result would be {new_w}x{new_h} pixels ({new_w * new_h / 1e6:.0f} megapixels), "
            f"over the {MAX_PIXELS / 1e6:.0f}-megapixel limit; {fix}"
        )
    return new_h, new_w


# --------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------


def save(path: str | os.PathLike, image: np.ndarray, *, bits: int = 8) -> Path:
    """Writes an image file atomically.

    The file is written to a temporary file in the same directory and then
    renamed over ``path`` (:func:`jtex.files.atomic_write`), so readers never
    see a half-written image and, if writing fails, an existing file at
    ``path`` is left untouched. Missing parent directories are created.

    Args:
        path: Output file. With ``bits=8`` the extension picks the format:
            .png, .jpg/.jpeg (quality 95), .webp (lossless), .tif/.tiff, .bmp.
            With ``bits=16`` it must be .png.
        image: float array (H, W, 3) RGB or (H, W) / (H, W, 1) greyscale;
            values are clipped to [0, 1] (NaN becomes 0).
        bits: 8 or 16 bits per sample.

    Returns:
        The path written, as a Path.

    Raises:
        JtexError: Unsupported extension or bit depth, or the file cannot be
            written (permissions, full disk).
    """
    path = Path(path)
    shown = show(path)
    suffix = path.suffix.lower()
    if bits not in (8, 16):
        raise JtexError(f"cannot save {shown}: bits must be 8 or 16, got {bits}")
    if bits == 16 and suffix != ".png":
        raise JtexError(f"cannot save {shown} with 16 bits: only PNG supports it; use a .png name")
    if suffix not in _SAVE_FORMATS:
        raise JtexError(
            f"cannot save {shown}: unknown image extension {path.suffix!r}; "
            f"use one of {', '.join(sorted(_SAVE_FORMATS))}"
        )
    pixels = to_unit(image, allow_grey=True)

    if bits == 16:
        data = _encode_png16(np.round(pixels * 65535.0).astype(np.uint16))
        atomic_write(path, lambda f: f.write(data))
    else:
        pil = Image.fromarray(np.round(pixels * 255.0).astype(np.uint8))
        fmt, options = _SAVE_FORMATS[suffix]
        atomic_write(path, lambda f: pil.save(f, format=fmt, **options))
    return path


def to_unit(image: np.ndarray, *, allow_grey: bool) -> np.ndarray:
    """Validates an image array and returns it as float64 in [0, 1].

    Args:
        image: array (H, W, 3), or with ``allow_grey`` also (H, W) or
            (H, W, 1); values are clipped to [0, 1] and NaN becomes 0.

    Returns:
        float64 array (H, W, 3) or (H, W).

    Raises:
        ValueError: Any other shape, or an empty image.
    """
    pixels = np.asarray(image, dtype=np.float64)
    if pixels.ndim == 3 and pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    if pixels.ndim == 2 and allow_grey:
        pass
    elif pixels.ndim != 3 or pixels.shape[-1] != 3:
        raise ValueError(f"expected an (H, W, 3) image array, got shape {np.shape(image)}")
    if pixels.shape[0] == 0 or pixels.shape[1] == 0:
        raise ValueError(f"expected a non-empty image array, got shape {np.shape(image)}")
    return np.clip(np.nan_to_num(pixels, nan=0.0), 0.0, 1.0)


def _encode_png16(samples: np.ndarray) -> bytes:
    """Encodes uint16 samples as a 16-bit PNG file.

    Pillow can write 16-bit greyscale but not 16-bit colour PNGs, so write the
    file here: an IHDR, one zlib-compressed IDAT and an IEND chunk. Rows use
    the "Up" filter (byte-wise difference to the row above), which is cheap
    to compute with numpy and compresses smooth images well.

    Args:
        samples: uint16 array (H, W) grey, or (H, W, C) with C = 1 grey,
            2 grey+alpha, 3 RGB or 4 RGBA.

    Returns:
        The PNG file's bytes.
    """
    if samples.ndim == 2:
        samples = samples[..., None]
    height, width, channels = samples.shape
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    # PNG stores 16-bit samples big-endian.
    rows = np.ascontiguousarray(samples, dtype=">u2").view(np.uint8).reshape(height, -1)
    above = np.zeros_like(rows)
    above[1:] = rows[:-1]
    filtered = rows - above  # uint8 arithmetic wraps modulo 256, as PNG specifies
    up_filter = np.full((height, 1), 2, dtype=np.uint8)
    idat = zlib.compress(np.hstack([up_filter, filtered]).tobytes(), 6)
    ihdr = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    chunks = [_png_chunk(b"IHDR", ihdr), _png_chunk(b"IDAT", idat), _png_chunk(b"IEND", b"")]
    return _PNG_SIGNATURE + b"".join(chunks)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC-32 of type and data."""
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


# --------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------


def expand_sources(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """Expands files and directories into a list of image files.

    Args:
        paths: One path or several. A file is kept as given (whatever its
            extension; :func:`load` checks it). A directory contributes its
            image files (extensions in :data:`EXTENSIONS`, any case),
            sorted by name, not recursing into subdirectories and skipping
            hidden files (such as macOS ``._name.png`` metadata files).

    Returns:
        The image files, in the order given, directories expanded in place.

    Raises:
        JtexError: A path does not exist, a directory holds no image files,
            or no paths were given.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files: list[Path] = []
    for path in map(Path, paths):
        shown = show(path)
        if path.is_dir():
            found = sorted(
                (
                    child
                    for child in path.iterdir()
                    if child.suffix.lower() in EXTENSIONS and not child.name.startswith(".") and child.is_file()
                ),
                key=lambda child: child.name,
            )
            if not found:
                raise JtexError(
                    f"{shown}: folder holds no images ({', '.join(EXTENSIONS)}); add some or pass image files directly"
                )
            files.extend(found)
        elif path.exists():
            files.append(path)
        else:
            raise JtexError(f"{shown}: no such file or folder; check the path and its spelling")
    if not files:
        raise JtexError("no image sources given; pass at least one image file or directory")
    return files
