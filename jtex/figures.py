"""Pictures made from results: contact sheets, animations and loss curves.

Inputs are float arrays (H, W, 3) RGB or (H, W) grey with values in [0, 1]
(values outside are clipped, NaN becomes 0), as :mod:`jtex.image` uses.
Files are written atomically (:func:`jtex.files.atomic_write`): a reader
sees the old file or the complete new one. Drawing uses Pillow only.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from jtex import image
from jtex.errors import JtexError
from jtex.files import atomic_write, show

__all__ = ["contact_sheet", "labelled_grid", "plot_loss", "save_animation"]


def contact_sheet(
    images: Sequence[np.ndarray],
    *,
    exemplar: np.ndarray | None = None,
    columns: int | None = None,
    pad: int = 4,
    background: float | Sequence[float] = 1.0,
) -> np.ndarray:
    """Tiles images into one grid image, e.g. an exemplar and its syntheses.

    Every cell is as large as the largest image; smaller images are centred
    in their cell. Cells are separated, and surrounded, by ``pad`` pixels of
    ``background``.

    Args:
        images: Sequence of float arrays (H_i, W_i, 3) or (H_i, W_i), sizes
            may differ.
        exemplar: Optional image placed first (top left).
        columns: Cells per row; default ceil(sqrt(number of images)).
        pad: Gap in pixels between and around cells.
        background: Grey level, or an RGB triple, in [0, 1] for the gaps.

    Returns:
        float32 array (rows * (cell_H + pad) + pad,
        columns * (cell_W + pad) + pad, 3), values in [0, 1].

    Raises:
        ValueError: No images, a negative ``pad``, ``columns`` below 1, or an
            array that is not an image.
    """
    tiles = ([] if exemplar is None else [exemplar]) + list(images)
    if not tiles:
        raise ValueError("contact_sheet needs at least one image")
    if pad < 0:
        raise ValueError(f"contact_sheet pad must be >= 0, got {pad}")
    tiles = [image.to_unit(tile, allow_grey=True) for tile in tiles]
    tiles = [t if t.ndim == 3 else np.repeat(t[..., None], 3, axis=-1) for t in tiles]

    count = len(tiles)
    if columns is None:
        columns = math.ceil(math.sqrt(count))
    if columns < 1:
        raise ValueError(f"contact_sheet columns must be >= 1, got {columns}")
    columns = min(columns, count)
    rows = math.ceil(count / columns)
    cell_h = max(t.shape[0] for t in tiles)
    cell_w = max(t.shape[1] for t in tiles)

    shape = (pad + rows * (cell_h + pad), pad + columns * (cell_w + pad), 3)
    sheet = np.empty(shape, dtype=np.float32)
    sheet[...] = np.clip(np.asarray(background, dtype=np.float32), 0.0, 1.0)
    for index, tile in enumerate(tiles):
        row, col = divmod(index, columns)
        h, w = tile.shape[:2]
        top = pad + row * (cell_h + pad) + (cell_h - h) // 2
        left = pad + col * (cell_w + pad) + (cell_w - w) // 2
        sheet[top : top + h, left : left + w] = tile
    return sheet


def labelled_grid(
    images: Sequence[np.ndarray],
    *,
    rows: int,
    columns: int,
    row_labels: Sequence[str],
    column_labels: Sequence[str],
    pad: int = 4,
) -> np.ndarray:
    """A contact sheet of ``rows x columns`` images (row-major) with a label left of each row and above each column."""
    if len(images) != rows * columns:
        raise ValueError(f"labelled_grid: {len(images)} images for a {rows}x{columns} grid")
    grid = contact_sheet(list(images), columns=columns, pad=pad)
    cell_h = (grid.shape[0] - pad) // rows - pad
    cell_w = (grid.shape[1] - pad) // columns - pad
    import textwrap

    line = 12  # Pillow's default bitmap font is about 11 px high, 6 px a character
    wrapped = [textwrap.wrap(t, max(4, cell_w // 6), break_on_hyphens=False)[:3] for t in column_labels]
    left = 6 * max([len(t) for t in row_labels] + [1]) + 2 * pad
    top = line * max([len(w) for w in wrapped] + [0]) + 2 * pad if any(column_labels) else 0
    canvas = Image.new("RGB", (grid.shape[1] + left, grid.shape[0] + top), (255, 255, 255))
    canvas.paste(Image.fromarray(np.round(grid * 255).astype(np.uint8)), (left, top))
    draw = ImageDraw.Draw(canvas)
    for c, lines in enumerate(wrapped):
        for k, text in enumerate(lines):
            draw.text((left + pad + c * (cell_w + pad), pad + k * line), text, fill=(0, 0, 0))
    for r, text in enumerate(row_labels):
        draw.text((pad, top + pad + r * (cell_h + pad) + cell_h // 2 - line // 2), text, fill=(0, 0, 0))
    return np.asarray(canvas, np.float32) / 255.0


def save_animation(path: str | os.PathLike, frames: Sequence[np.ndarray], *, fps: float = 12) -> Path:
    """Writes frames as a looping animation, atomically like :func:`jtex.image.save`.

    The extension picks the format:

    * ``.gif``: one adaptive 256-colour palette (median cut) computed from
      all frames together, no dithering: per-frame palettes and dither
      patterns change from frame to frame and make flat areas flicker. GIF
      stores delays in hundredths of a second, and Pillow merges identical
      consecutive frames into one longer frame.
    * ``.webp``: lossless animated WebP.
    * ``.png``: animated PNG (APNG), lossless 8-bit.

    All loop forever (loop=0).

    Args:
        path: Output file ending in .gif, .webp or .png.
        frames: Sequence of N float arrays (H, W, 3) or (H, W), all the same
            size, values clipped to [0, 1].
        fps: Frames per second; each frame shows for 1000 / fps ms.

    Returns:
        The path written, as a Path.

    Raises:
        JtexError: Unsupported extension, no frames, a bad fps, or the file
            cannot be written.
        ValueError: The frames differ in size or are not images.
    """
    path = Path(path)
    shown = show(path)
    suffix = path.suffix.lower()
    if suffix not in (".gif", ".webp", ".png"):
        raise JtexError(
            f"cannot save animation {shown}: unknown extension {path.suffix!r}; use .gif, .webp or .png (APNG)"
        )
    if len(frames) == 0:
        raise JtexError(f"cannot save animation {shown}: there are no frames to write")
    if not fps > 0 or not math.isfinite(fps):
        raise JtexError(f"cannot save animation {shown}: fps must be positive, got {fps}")

    images = []
    for frame in frames:
        pixels = image.to_unit(frame, allow_grey=True)
        if pixels.ndim == 2:
            pixels = np.repeat(pixels[..., None], 3, axis=-1)
        images.append(Image.fromarray(np.round(pixels * 255.0).astype(np.uint8)))
    if len({im.size for im in images}) > 1:
        sizes = sorted({im.size for im in images})
        raise ValueError(f"animation frames differ in size (width, height): {sizes}")

    duration = 1000.0 / fps
    if suffix == ".gif":
        images = _quantize_shared(images)
        fmt, options = "GIF", {"duration": round(duration)}
    elif suffix == ".webp":
        fmt, options = "WEBP", {"duration": round(duration), "lossless": True}
    else:
        fmt, options = "PNG", {"duration": duration}

    first, rest = images[0], images[1:]
    atomic_write(path, lambda f: first.save(f, format=fmt, save_all=True, append_images=rest, loop=0, **options))
    return path


def _quantize_shared(images: list[Image.Image]) -> list[Image.Image]:
    """Quantises RGB frames to one 256-colour palette built from all of them."""
    # Build the palette from a strip of (subsampled) frames, so colours that
    # only appear late in the animation get palette entries too.
    step = max(1, math.ceil(math.sqrt(len(images) * images[0].width * images[0].height / 1_000_000)))
    strip = np.concatenate([np.asarray(im)[::step, ::step] for im in images], axis=0)
    palette = Image.fromarray(strip).quantize(256, method=Image.Quantize.MEDIANCUT)
    return [im.quantize(palette=palette, dither=Image.Dither.NONE) for im in images]


def plot_loss(path: Path, metrics: list[dict], size=(640, 400)):
    """A log-scale loss curve drawn with Pillow (no plotting dependency).

    Args:
        path: The PNG (or other :func:`jtex.image.save` format) to write.
        metrics: One dict per iteration, in order, as in a run's
            metrics.jsonl; entries whose ``"loss"`` is missing, zero,
            negative or not finite are skipped.
        size: (width, height) of the picture in pixels.

    The x axis is the position in ``metrics``, the y axis log10(loss) with a
    tick at each power of ten; with fewer than two usable losses only the
    frame and title are drawn.
    """
    path = Path(path)
    w, h = size
    left, right, top, bottom = 70, 20, 20, 40
    im = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(im)
    vals = [(i, m["loss"]) for i, m in enumerate(metrics) if m.get("loss") and np.isfinite(m["loss"]) and m["loss"] > 0]
    d.rectangle([left, top, w - right, h - bottom], outline="black")
    if len(vals) >= 2:
        xs = np.array([v[0] for v in vals], float)
        ys = np.log10([v[1] for v in vals])
        lo, hi = float(ys.min()), float(ys.max())
        hi = hi if hi > lo else lo + 1
        px = left + (xs - xs[0]) / max(xs[-1] - xs[0], 1) * (w - left - right)
        py = top + (hi - ys) / (hi - lo) * (h - top - bottom)
        d.line(list(zip(px.tolist(), py.tolist())), fill=(200, 30, 30), width=2)
        for e in range(int(np.floor(lo)), int(np.ceil(hi)) + 1):
            if lo <= e <= hi:
                y = top + (hi - e) / (hi - lo) * (h - top - bottom)
                d.line([left - 5, y, left, y], fill="black")
                d.text((5, y - 6), f"1e{e}", fill="black")
        d.text((left, h - bottom + 8), f"iterations 0..{len(metrics)}  (loss {vals[-1][1]:.4g} at end)", fill="black")
    d.text((left + 5, top + 5), "loss (log scale)", fill="black")
    image.save(path, np.asarray(im, np.float32) / 255.0)
