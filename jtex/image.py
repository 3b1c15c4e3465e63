"""Image files in and out, with Pillow and numpy.

Every image jtex works with is a float32 numpy array of shape (H, W, 3), RGB,
with values in [0, 1]. This module converts files of any common format and
Pillow mode to that one representation and back:

* :func:`load` reads PNG, JPEG, WebP, TIFF, BMP and GIF files in any mode,
  keeping the full precision of 16-bit files, shrinking before it converts
  to float when asked for a smaller size;
* :func:`from_array` checks an exemplar given as a numpy array instead;
* :func:`save` writes 8- or 16-bit files atomically;
* :func:`resize` resamples arrays in float;
* :func:`expand_sources` turns command-line paths into a list of image files.

Expected problems (a missing file, a corrupt or truncated file, an image too
large for memory, an unwritable directory) raise
:class:`jtex.errors.JtexError` with a one-line message that names the path,
the problem and the fix. Files are only ever fully decoded, never used half
read: Pillow's ``ImageFile.LOAD_TRUNCATED_IMAGES`` is left False.

This module is the entry point; the decoding itself (PNG CRC checks, Pillow
modes, 16-bit samples, alpha, shrinking while loading, Lanczos) is in
:mod:`jtex.decode`, which it imports when it first reads or resizes, so that
importing this module costs numpy but not Pillow.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from jtex.errors import JtexError
from jtex.files import atomic_write, one_line, show

__all__ = ["EXTENSIONS", "MAX_PIXELS", "expand_sources", "from_array", "load", "resize", "save", "to_unit"]

#: File name extensions (lower case) that :func:`expand_sources` picks up from
#: a directory.
EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif")

#: The most pixels :func:`load` holds as float at once and :func:`resize`
#: makes (64 megapixels: 768 MB as float32 RGB). Larger files load only when
#: asked for a smaller size, which is reached before the float conversion.
MAX_PIXELS = 64_000_000

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
    from jtex import decode  # here, not at the top: importing jtex.image does not import Pillow

    decode.check_resize_args(width=width, height=None, scale=scale, where=f"loading {shown}")
    _check_readable_file(path)
    return decode.read(path, width=width, scale=scale, max_pixels=MAX_PIXELS)


def from_array(a: np.ndarray) -> np.ndarray:
    """Checks an exemplar given as an array (by a Python API user) and returns it as float32 RGB.

    Args:
        a: numpy array (or anything ``np.asarray`` takes) of shape (h, w) or
            (h, w, 1) grey, repeated over three channels; (h, w, 3) RGB; or
            (h, w, 4) RGBA, its alpha composited (not dropped) over the
            alpha-weighted mean colour as :func:`load` does for files. dtype
            uint8 (divided by 255), uint16 (by 65535) or float (finite and
            within [0, 1], kept as is).

    Returns:
        A new float32 array (h, w, 3), values in [0, 1].

    Raises:
        JtexError: Any other shape or dtype (bool, signed integers), values
            not finite or outside [0, 1], no pixels or over :data:`MAX_PIXELS`.
    """
    try:
        a = np.asarray(a)
    except (TypeError, ValueError) as e:  # ragged nested lists, say
        raise JtexError(
            f"an exemplar must be a numpy array; numpy cannot make one from this {type(a).__name__} "
            f"({one_line(e)}); pass one (h, w, 3) image"
        ) from e
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (1, 3, 4)):
        raise JtexError(
            f"an exemplar array must be (h, w), (h, w, 1), (h, w, 3) or (h, w, 4), got shape {a.shape}; "
            "pass one grey, RGB or RGBA image, channels last"
        )
    h, w = a.shape[:2]
    if not h or not w:
        raise JtexError(f"an exemplar array must not be empty, got shape {a.shape}; pass an image of 1x1 or more")
    if h * w > MAX_PIXELS:
        raise JtexError(
            f"an exemplar array of {w}x{h} pixels ({w * h / 1e6:.1f} megapixels) is over the "
            f"{MAX_PIXELS / 1e6:.0f}-megapixel limit; downscale it first, e.g. to 2048 pixels wide"
        )
    if a.dtype.kind == "u" and a.dtype.itemsize <= 2:  # uint8 or uint16, either byte order
        denom = float(np.iinfo(a.dtype).max)
    elif a.dtype.kind == "f":
        denom, low, high = 1.0, a.min(), a.max()  # NaN and infinities show in the min or max
        if not (np.isfinite(low) and np.isfinite(high) and 0 <= low and high <= 1):
            raise JtexError(
                "an exemplar array must hold finite values in [0, 1] (or uint8 0..255), got values from "
                f"{low:g} to {high:g}; divide by 255 if it holds 0..255 values, else rescale, clip or np.nan_to_num it"
            )
    else:
        raise JtexError(
            f"an exemplar array must be uint8 (0..255), uint16 (0..65535) or float (0..1), got dtype {a.dtype}; "
            "convert it, e.g. a.astype(np.uint8) if it holds 0..255"
        )
    from jtex import decode  # here, not at the top: importing jtex.image does not import Pillow

    colour, alpha = (a[..., :3], a[..., 3]) if a.ndim == 3 and a.shape[-1] == 4 else (a.reshape(h, w, -1), None)
    pixels = decode.to_float(colour, alpha, 0.0, denom, 1)
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
    from jtex import decode  # here, not at the top: importing jtex.image does not import Pillow

    image = np.asarray(image, dtype=np.float32)
    if image.ndim not in (2, 3):
        raise ValueError(f"resize expects an (H, W) or (H, W, C) array, got shape {image.shape}")
    old_h, old_w = image.shape[:2]
    new_h, new_w = decode.target_size(old_h, old_w, width=width, height=height, scale=scale, max_pixels=MAX_PIXELS)
    if (new_h, new_w) == (old_h, old_w):
        return np.clip(image, 0.0, 1.0)
    return decode.lanczos(image, new_h, new_w)


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
        from PIL import Image  # here, not at the top: importing jtex.image does not import Pillow

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
    return b"\x89PNG\r\n\x1a\n" + b"".join(chunks)  # the PNG signature


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
