"""Image files in and out, with Pillow and numpy.

Every image jtex works with is a float32 numpy array of shape (H, W, 3), RGB,
with values in [0, 1]. This module converts files of any common format and
Pillow mode to that one representation and back:

* :func:`load` reads PNG, JPEG, WebP, TIFF, BMP and GIF files in any mode,
  keeping the full precision of 16-bit files;
* :func:`save` writes 8- or 16-bit files atomically;
* :func:`resize` resamples arrays in float;
* :func:`expand_sources` turns command-line paths into a list of image files.

Expected problems (a missing file, a truncated PNG, an unwritable directory)
raise :class:`jtex.errors.JtexError` with a one-line message that names the
path, the problem and the fix.
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

__all__ = ["EXTENSIONS", "expand_sources", "load", "resize", "save", "to_unit"]

#: File name extensions (lower case) that :func:`expand_sources` picks up from
#: a directory.
EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif")

_FORMATS_HINT = "PNG, JPEG, WebP, TIFF, BMP or GIF"

# Everything Pillow and the codecs it calls raise for unreadable or malformed
# files. Some plugins raise SyntaxError or struct.error for corrupt headers,
# so catching OSError alone is not enough.
_READ_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error)

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


def load(
    path: str | os.PathLike,
    *,
    width: int | None = None,
    scale: float | None = None,
) -> np.ndarray:
    """Reads an image file as a float32 RGB array.

    Reads PNG, JPEG, WebP, TIFF, BMP and GIF (the first frame of animations)
    in any Pillow mode: greyscale (``1``, ``L``, ``I;16``, ``I``, ``F``),
    palette, RGB, CMYK and YCbCr, with or without alpha. Greyscale images are
    repeated over the three channels. 16-bit PNG and TIFF greyscale and 16-bit
    PNG colour keep their full precision (they are not reduced to 8 bits).
    Value scaling by mode: 8-bit modes divide by 255, 16-bit modes by 65535;
    mode ``I`` (32-bit int) divides by 65535 when all values fit in 16 bits,
    else is stretched from its minimum to its maximum; mode ``F`` (float) is
    kept as is when within [0, 1], else stretched the same way.

    Transparency (an alpha channel or a transparent palette or colour key) is
    composited over the image's mean colour: the mean of the pixels weighted
    by their alpha, so the mean of the opaque pixels. A texture's
    transparent areas then hold its average colour rather than black or white
    that would bias its statistics. An EXIF orientation tag is applied.

    Args:
        path: The image file.
        width: If given, resize (Lanczos) to this width in pixels, keeping
            the aspect ratio.
        scale: If given, resize (Lanczos) by this factor. Give at most one
            of ``width`` and ``scale``.

    Returns:
        float32 array of shape (H, W, 3), RGB, values in [0, 1].

    Raises:
        JtexError: The file is missing, is a directory, is empty, truncated,
            not an image, too large, or ``width``/``scale`` is invalid.
    """
    path = Path(path)
    shown = show(path)
    if width is not None and scale is not None:
        raise JtexError(f"loading {shown}: give width or scale, not both; drop one of them")
    _check_readable_file(path)
    try:
        # Pillow only warns between MAX_IMAGE_PIXELS and twice that; a float
        # copy of such an image takes gigabytes, so treat it as an error too.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            _check_png_chunks(path)
            with Image.open(path) as im:
                rgb, alpha = _decode(im, path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise JtexError(f"{shown}: image too large ({one_line(e)}); downscale it, e.g. to 2048 pixels wide") from e
    except PermissionError as e:
        raise JtexError(f"{shown}: cannot read it ({one_line(e)}); check its permissions") from e
    except UnidentifiedImageError as e:
        raise JtexError(f"{shown}: not an image Pillow can read; convert it to {_FORMATS_HINT}") from e
    except _READ_ERRORS as e:
        raise JtexError(f"{shown}: corrupt or truncated image ({one_line(e)}); re-export or re-download it") from e

    if alpha is not None:
        rgb = _composite_over_mean(rgb, alpha)
    rgb = np.clip(rgb, 0.0, 1.0).astype(np.float32, copy=False)
    if width is not None:
        rgb = resize(rgb, width=width)
    elif scale is not None:
        rgb = resize(rgb, scale=scale)
    return rgb


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


def _decode(im: Image.Image, path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Decodes an opened image to float RGB (H, W, 3) and alpha (H, W) or None."""
    # Read the 16-bit samples first: load() consumes the tile information
    # that _read_png16_colour needs.
    samples = _read_png16_colour(im, path)
    im.load()  # the complete decode: its errors end the load
    orientation = _exif_orientation(im, show(path))  # after load(): parses metadata only
    if samples is not None:
        pixels = samples.astype(np.float32) / 65535.0
        rgb, alpha = _split_channels(pixels)
    else:
        rgb, alpha = _pil_to_float(im)
    rgb = _orient(rgb, orientation)
    if alpha is not None:
        alpha = _orient(alpha, orientation)
    return rgb, alpha


def _pil_to_float(im: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """Converts a Pillow image of any mode to float RGB and optional alpha."""
    mode = im.mode
    trns = im.info.get("transparency")

    if mode in _SIXTEEN_BIT_MODES or mode in ("I", "F"):
        # Pillow's own conversions of these modes to RGB clip to 8 bits or
        # wrap around, so scale the raw values here.
        raw = np.asarray(im)
        values = _scale_wide_greyscale(raw, mode)
        alpha = None
        if trns is not None and mode != "F":
            # A PNG tRNS colour key: pixels equal to this value are transparent.
            alpha = (raw != trns).astype(np.float32)
        return np.repeat(values[..., None], 3, axis=-1), alpha

    has_alpha = mode in ("LA", "La", "PA", "RGBA", "RGBa") or trns is not None
    # Pillow resolves palettes, colour keys, premultiplied alpha, CMYK and
    # YCbCr correctly in convert(); everything else here is 8 bits per sample.
    target = "RGBA" if has_alpha else "RGB"
    if mode == "La":
        im = im.convert("LA")  # Pillow cannot convert premultiplied La directly
    if im.mode != target:
        im = im.convert(target)
    pixels = np.asarray(im, dtype=np.float32) / 255.0
    return _split_channels(pixels)


def _scale_wide_greyscale(raw: np.ndarray, mode: str) -> np.ndarray:
    """Maps 16-bit, 32-bit int or float greyscale samples to [0, 1]."""
    values = raw.astype(np.float64)
    if mode in _SIXTEEN_BIT_MODES:
        return (values / 65535.0).astype(np.float32)
    values[~np.isfinite(values)] = 0.0
    low, high = values.min(), values.max()
    if mode == "I" and low >= 0 and high <= 65535:
        # Pillow gives many 16-bit files (TIFF, older Pillow's PNG) as mode I.
        return (values / 65535.0).astype(np.float32)
    if mode == "F" and low >= 0 and high <= 1:
        return values.astype(np.float32)
    # No standard white level: stretch the image's own range.
    if high > low:
        values = (values - low) / (high - low)
    else:
        values = np.zeros_like(values)
    return values.astype(np.float32)


def _split_channels(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Splits float (H, W), (H, W, 2), (H, W, 3) or (H, W, 4) into RGB and alpha."""
    if pixels.ndim == 2:
        return np.repeat(pixels[..., None], 3, axis=-1), None
    channels = pixels.shape[-1]
    if channels == 1:
        return np.repeat(pixels, 3, axis=-1), None
    if channels == 2:
        return np.repeat(pixels[..., :1], 3, axis=-1), pixels[..., 1]
    if channels == 3:
        return pixels, None
    return pixels[..., :3], pixels[..., 3]


def _composite_over_mean(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Composites RGB (H, W, 3) with alpha (H, W) over its alpha-weighted mean colour."""
    if alpha.min() >= 1.0:
        return rgb
    a = alpha.astype(np.float64)[..., None]
    total = a.sum()
    if total > 0:
        mean = (rgb * a).sum(axis=(0, 1)) / total
    else:
        mean = rgb.reshape(-1, 3).mean(axis=0)  # fully transparent: plain mean
    return (rgb * a + mean * (1.0 - a)).astype(np.float32)


def _read_png16_colour(im: Image.Image, path: Path) -> np.ndarray | None:
    """Reads the exact samples of a 16-bit colour PNG, or returns None for others.

    Pillow has no 16-bit RGB mode: for 16-bit RGB, RGBA and grey+alpha PNGs it
    unpacks each sample to its high byte. Its decoder (zlib and the PNG row
    filters, interlacing included) is still exact; only the final unpacker
    drops bits. So decode the same data again with unpackers that keep the
    other byte, and reassemble:

    * RGB / RGBA: the little-endian unpacker ("RGB;16L") keeps the second
      byte of each sample, which in PNG's big-endian data is the low byte.
    * grey+alpha (4 bytes per pixel): the plain 8-bit "RGBA" unpacker passes
      all four bytes through unchanged.

    16-bit greyscale PNGs need none of this: Pillow reads them as mode I;16.
    """
    if im.format != "PNG" or len(im.tile) != 1 or not isinstance(im.tile[0].args, str):
        return None
    rawmode = im.tile[0].args
    if rawmode in ("RGB;16B", "RGBA;16B"):
        high = _decode_with_rawmode(im, path, rawmode).astype(np.uint16)
        low = _decode_with_rawmode(im, path, rawmode[:-1] + "L").astype(np.uint16)
        samples = (high << 8) | low
        if rawmode == "RGB;16B":
            samples = samples[..., :3]  # Pillow pads RGB images to 4 bytes
        return _apply_colour_key(samples, im.info.get("transparency"))
    if rawmode == "LA;16B" and im.mode == "RGBA":
        raw = _decode_with_rawmode(im, path, "RGBA").astype(np.uint16)
        grey = (raw[..., 0] << 8) | raw[..., 1]
        alpha = (raw[..., 2] << 8) | raw[..., 3]
        return np.stack([grey, grey, grey, alpha], axis=-1)
    return None


def _decode_with_rawmode(im: Image.Image, path: Path, rawmode: str) -> np.ndarray:
    """Decodes the image in ``path`` (like ``im``) with another unpacker."""
    with Image.open(path) as again:
        again.tile = [tile._replace(args=rawmode) for tile in im.tile]
        again.load()
        return np.asarray(again)


def _apply_colour_key(samples: np.ndarray, trns: object) -> np.ndarray:
    """Adds an alpha channel from a PNG tRNS colour key to 16-bit RGB samples."""
    if samples.shape[-1] != 3 or not isinstance(trns, tuple):
        return samples
    alpha = np.where(np.all(samples == np.asarray(trns, np.uint16), axis=-1), 0, 65535)
    return np.concatenate([samples, alpha[..., None].astype(np.uint16)], axis=-1)


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


def _orient(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Applies an EXIF orientation to (H, W, ...) pixels, like ImageOps.exif_transpose."""
    swapped = np.swapaxes(pixels, 0, 1)
    oriented = {
        1: pixels,
        2: pixels[:, ::-1],  # mirrored left-right
        3: pixels[::-1, ::-1],  # rotated 180
        4: pixels[::-1],  # mirrored top-bottom
        5: swapped,  # transposed
        6: swapped[:, ::-1],  # rotated 90 clockwise
        7: swapped[::-1, ::-1],  # transversed
        8: swapped[::-1],  # rotated 90 counter-clockwise
    }[orientation]
    return np.ascontiguousarray(oriented)


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
        JtexError: No size given, ``scale`` given with a width or height, or a
            size or factor that is not positive.
    """
    image = np.asarray(image, dtype=np.float32)
    if image.ndim not in (2, 3):
        raise ValueError(f"resize expects an (H, W) or (H, W, C) array, got shape {image.shape}")
    old_h, old_w = image.shape[:2]
    new_h, new_w = _target_size(old_h, old_w, width=width, height=height, scale=scale)
    if (new_h, new_w) == (old_h, old_w):
        return np.clip(image, 0.0, 1.0)
    channels = image[..., None] if image.ndim == 2 else image
    resized = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(channels[..., c])).resize((new_w, new_h), Image.Resampling.LANCZOS)
        )
        for c in range(channels.shape[-1])
    ]
    out = np.clip(np.stack(resized, axis=-1), 0.0, 1.0).astype(np.float32, copy=False)
    return out[..., 0] if image.ndim == 2 else out


def _target_size(
    old_h: int, old_w: int, *, width: int | None, height: int | None, scale: float | None
) -> tuple[int, int]:
    """Works out (height, width) from the resize arguments."""
    if scale is not None:
        if width is not None or height is not None:
            raise JtexError("resize: give scale or width/height, not both; drop one of them")
        if not scale > 0 or not math.isfinite(scale):
            raise JtexError(f"resize: scale must be a positive number, got {scale}")
        return max(1, round(old_h * scale)), max(1, round(old_w * scale))
    for name, value in (("width", width), ("height", height)):
        if value is not None and (int(value) != value or value < 1):
            raise JtexError(f"resize: {name} must be a positive whole number, got {value}")
    if width is None and height is None:
        raise JtexError("resize: give a width, a height or a scale")
    if height is None:
        height = max(1, round(old_h * width / old_w))
    if width is None:
        width = max(1, round(old_w * height / old_h))
    return int(height), int(width)


# --------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------


def save(path: str | os.PathLike, image: np.ndarray, *, bits: int = 8) -> Path:
    """Writes an image file atomically.

    The file is written to a temporary file in the same directory and then
    renamed over ``path`` (:func:`jtex.files.atomic_write`), so readers never see a half-written image and, if
    writing fails, an existing file at ``path`` is left untouched. Missing
    parent directories are created.

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
    return b"".join(
        [
            b"\x89PNG\r\n\x1a\n",
            _png_chunk(b"IHDR", ihdr),
            _png_chunk(b"IDAT", idat),
            _png_chunk(b"IEND", b""),
        ]
    )


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
