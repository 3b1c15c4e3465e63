"""Image files in and out: float32 RGB in [0, 1], (H, W, 3).

Reading goes through Pillow for every format it knows (PNG, JPEG, WebP, TIFF,
BMP, GIF -- first frame) and every mode (1, L, LA, P, RGB, RGBA, CMYK, YCbCr,
I;16, I, F ...). 16-bit and float images keep their precision. Transparent
pixels are composited over the image's mean colour (the alpha-weighted mean
of its pixels), so they do not pull texture statistics towards black or white.

Writing is atomic: a temporary file in the same folder, then ``os.replace``,
so a crash never leaves a half-written image and an existing file survives a
failed write.
"""

from __future__ import annotations

import os
import struct
import tempfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageSequence, UnidentifiedImageError

from jtex.errors import JtexError

EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif")
Image.MAX_IMAGE_PIXELS = 1 << 30  # 32k x 32k; larger raises DecompressionBombError


def _to_float_rgba(im: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """Any Pillow mode -> (H, W, 3) float in [0, 1] and an optional (H, W) alpha."""
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        a = np.asarray(im, dtype=np.uint16).astype(np.float32) / 65535.0
        return np.repeat(a[..., None], 3, axis=2), None
    if mode == "I":
        a = np.asarray(im, dtype=np.int64).astype(np.float64)
        # 16-bit PNGs open as mode I holding 0..65535; wider ranges are scaled to their maximum.
        top = 65535.0 if a.max(initial=0) <= 65535 else float(a.max())
        a = np.clip(a / top, 0, 1).astype(np.float32)
        return np.repeat(a[..., None], 3, axis=2), None
    if mode == "F":
        a = np.asarray(im, dtype=np.float32)
        top = float(a.max(initial=0))
        a = np.clip(a / top if top > 1 else a, 0, 1)
        return np.repeat(a[..., None], 3, axis=2), None
    has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in im.info)
    if has_alpha:
        rgba = np.asarray(im.convert("RGBA"), dtype=np.float32) / 255.0
        return rgba[..., :3], rgba[..., 3]
    return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0, None


def _composite_on_mean(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    weight = alpha.sum()
    mean = (rgb * alpha[..., None]).sum(axis=(0, 1)) / weight if weight > 0 else np.full(3, 0.5, np.float32)
    return rgb * alpha[..., None] + mean * (1.0 - alpha[..., None])


def load(path: str | os.PathLike, *, width: int | None = None, scale: float | None = None) -> np.ndarray:
    """Read an image as float32 RGB in [0, 1], shape (H, W, 3).

    Args:
      path: PNG, JPEG, WebP, TIFF, BMP or GIF (first frame) in any Pillow mode.
      width: resize to this width, keeping the aspect ratio (Lanczos).
      scale: or resize by this factor.

    Alpha is composited over the mean colour of the opaque pixels.

    Raises:
      JtexError: missing, empty, truncated or non-image file (one line, naming the path).
    """
    path = Path(path)
    if not path.exists():
        raise JtexError(f"{path}: no such file")
    if path.is_dir():
        raise JtexError(f"{path}: is a folder, not an image")
    if path.stat().st_size == 0:
        raise JtexError(f"{path}: file is empty")
    try:
        with Image.open(path) as im:
            frame = next(ImageSequence.Iterator(im)) if getattr(im, "is_animated", False) else im
            frame.load()
            rgb, alpha = _to_float_rgba(frame)
    except UnidentifiedImageError:
        raise JtexError(f"{path}: not an image Pillow can read (PNG, JPEG, WebP, TIFF, BMP, GIF)") from None
    except Image.DecompressionBombError:
        raise JtexError(f"{path}: image too large (over {Image.MAX_IMAGE_PIXELS} pixels)") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise JtexError(f"{path}: unreadable or truncated image ({e})") from None
    if alpha is not None:
        rgb = _composite_on_mean(rgb, alpha)
    rgb = np.ascontiguousarray(rgb, dtype=np.float32)
    if width is not None or scale is not None:
        rgb = resize(rgb, width=width, scale=scale)
    return rgb


def resize(img: np.ndarray, *, width: int | None = None, height: int | None = None,
           scale: float | None = None) -> np.ndarray:
    """Lanczos resize of float (H, W, 3) without 8-bit quantisation; keeps the aspect
    ratio when only one of width/height is given."""
    h, w = img.shape[:2]
    if scale is not None:
        width, height = max(1, round(w * scale)), max(1, round(h * scale))
    elif width is not None and height is None:
        height = max(1, round(h * width / w))
    elif height is not None and width is None:
        width = max(1, round(w * height / h))
    if width is None or (width, height) == (w, h):
        return img.astype(np.float32)
    chans = [np.asarray(Image.fromarray(np.ascontiguousarray(img[..., c], np.float32), mode="F")
                        .resize((int(width), int(height)), Image.Resampling.LANCZOS)) for c in range(img.shape[2])]
    return np.clip(np.stack(chans, axis=-1), 0.0, 1.0).astype(np.float32)


def _png16(rgb16: np.ndarray) -> bytes:
    """A minimal 16-bit RGB PNG (Pillow cannot write 16-bit RGB)."""
    h, w, _ = rgb16.shape
    raw = b"".join(b"\x00" + rgb16[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def _atomic(path: Path, write):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save(path: str | os.PathLike, img: np.ndarray, *, bits: int = 8) -> Path:
    """Write (H, W, 3) or (H, W) floats in [0, 1] (clipped) as an 8- or 16-bit PNG, atomically."""
    path = Path(path)
    a = np.clip(np.nan_to_num(np.asarray(img, np.float32)), 0.0, 1.0)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if bits == 16:
        q = np.round(a * 65535).astype(np.uint16)
        if q.ndim == 2:
            return _atomic(path, lambda t: Image.fromarray(q).save(t, format="PNG"))  # uint16 -> I;16
        data = _png16(q)
        return _atomic(path, lambda t: Path(t).write_bytes(data))
    if bits != 8:
        raise ValueError(f"bits must be 8 or 16, got {bits}")
    q = np.round(a * 255).astype(np.uint8)
    return _atomic(path, lambda t: Image.fromarray(q).save(t, format="PNG"))


def expand_sources(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """Files stay; a folder becomes its image files (by extension, sorted, not recursive)."""
    out = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in EXTENSIONS)
            if not found:
                raise JtexError(f"{p}: folder holds no images ({', '.join(EXTENSIONS)})")
            out += found
        elif p.exists():
            out.append(p)
        else:
            raise JtexError(f"{p}: no such file or folder")
    return out


def match_histogram(img: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Give each colour channel of ``img`` the value distribution of ``reference``.

    Rank-based (exact when sizes agree; quantiles interpolated otherwise), as
    the post-processing of Gatys' DeepTextures notebook.
    """
    out = np.empty_like(img, dtype=np.float32)
    for c in range(img.shape[-1]):
        src = img[..., c].ravel()
        ref = np.sort(reference[..., c].ravel())
        ranks = np.empty(src.size, np.int64)
        ranks[np.argsort(src, kind="stable")] = np.arange(src.size)
        if ref.size == src.size:
            vals = ref[ranks]
        else:
            q = (ranks + 0.5) / src.size
            vals = np.interp(q, (np.arange(ref.size) + 0.5) / ref.size, ref)
        out[..., c] = vals.reshape(img.shape[:-1])
    return out


def contact_sheet(images: Sequence[np.ndarray], *, exemplar: np.ndarray | None = None, columns: int | None = None,
                  pad: int = 4, background: float = 1.0) -> np.ndarray:
    """Tile images (exemplar first, if given) into one (H, W, 3) grid."""
    tiles = ([exemplar] if exemplar is not None else []) + list(images)
    n = len(tiles)
    cols = columns or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    th = max(t.shape[0] for t in tiles)
    tw = max(t.shape[1] for t in tiles)
    sheet = np.full((rows * th + (rows + 1) * pad, cols * tw + (cols + 1) * pad, 3), background, np.float32)
    for i, t in enumerate(tiles):
        r, c = divmod(i, cols)
        y, x = pad + r * (th + pad), pad + c * (tw + pad)
        sheet[y:y + t.shape[0], x:x + t.shape[1]] = t[..., :3]
    return sheet


def save_animation(path: str | os.PathLike, frames: Sequence[np.ndarray], *, fps: float = 12.0) -> Path:
    """Looping animation (.gif, .webp lossless, or .png = APNG), written atomically."""
    path = Path(path)
    ims = [Image.fromarray(np.round(np.clip(f, 0, 1) * 255).astype(np.uint8)) for f in frames]
    duration = int(round(1000 / fps))
    suffix = path.suffix.lower()
    if suffix == ".gif":
        # One adaptive palette for all frames keeps colours from flickering.
        palette = ims[0].quantize(colors=256, method=Image.Quantize.MEDIANCUT)
        ims = [im.quantize(palette=palette, dither=Image.Dither.NONE) for im in ims]
        opts = dict(format="GIF", disposal=1)
    elif suffix == ".webp":
        opts = dict(format="WEBP", lossless=True)
    elif suffix == ".png":
        opts = dict(format="PNG")
    else:
        raise JtexError(f"{path}: animations are .gif, .webp or .png (APNG)")
    return _atomic(path, lambda t: ims[0].save(t, save_all=True, append_images=ims[1:], duration=duration,
                                               loop=0, **opts))
