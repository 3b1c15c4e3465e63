"""A folder of training photos in memory, and seeded random crops of them.

The stylisation trainers (Texture Networks' ``--content-dir``; later the
Markovian GANs) learn from photos: :meth:`PhotoSet.load` reads every image of
a folder once, each shrunk (or enlarged) so that its shorter side is ``side``
pixels, and keeps it as uint8 (a 128-pixel side costs about 65 kB a photo).
:meth:`PhotoSet.batch` cuts ``n`` random ``size`` x ``size`` crops, flipped
left-right at random, from photos drawn at random; the draw depends on the
step's key alone, so a resumed run sees the same batches.

Files that cannot be read are skipped, counted and named in one warning line;
a folder with no readable image is an error.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np

from jtex.errors import JtexError
from jtex.files import one_line, show


class PhotoSet:
    """Photos (H_i, W_i, 3) uint8, every one at least ``side`` pixels on its shorter side."""

    def __init__(self, photos: list[np.ndarray], names: list[str]):
        if not photos:
            raise JtexError("no training photos; give a folder that holds some")
        self.photos, self.names = photos, names

    def __len__(self) -> int:
        return len(self.photos)

    @classmethod
    def load(cls, folder, side: int, *, progress: bool = False) -> PhotoSet:
        """Every image in ``folder`` (not recursing), its shorter side resized to ``side``."""
        from jtex import image

        folder = Path(folder)
        if not folder.is_dir():
            raise JtexError(f"--content-dir {show(folder)}: not a folder; give a folder of photos")
        files = image.expand_sources(folder)
        from tqdm.auto import tqdm

        photos, names, bad = [], [], []
        for f in tqdm(files, desc="photos", unit="img", disable=not progress or len(files) < 20, leave=False):
            try:
                photos.append(_load_one(f, side))
                names.append(f.name)
            except JtexError as e:
                bad.append(one_line(e))
        if not photos:
            n = len(files)
            raise JtexError(f"--content-dir {show(folder)}: none of its {n} image files can be read ({bad[0]})")
        if bad:
            print(f"jtex: skipped {len(bad)} unreadable file(s) in {show(folder)}; first: {bad[0]}", file=sys.stderr)
        return cls(photos, names)

    def digest(self) -> str:
        """SHA-256 over the photos as held (names, shapes and pixels): what a run folder compares."""
        h = hashlib.sha256()
        for name, p in zip(self.names, self.photos):
            h.update(f"{name}:{p.shape}".encode())
            h.update(np.ascontiguousarray(p).tobytes())
        return h.hexdigest()

    def batch(self, seed, n: int, size: int) -> np.ndarray:
        """``n`` random crops (n, size, size, 3) float32 in [0, 1]; ``seed``: ints or a JAX key."""
        rng = np.random.default_rng(_seed_words(seed))
        out = np.empty((n, size, size, 3), np.float32)
        for i in range(n):
            p = self.photos[rng.integers(len(self.photos))]
            h, w = p.shape[:2]
            top, left = rng.integers(h - size + 1), rng.integers(w - size + 1)
            crop = p[top : top + size, left : left + size]
            out[i] = (crop[:, ::-1] if rng.integers(2) else crop) / np.float32(255)
        return out


def _seed_words(seed) -> list[int]:
    if hasattr(seed, "dtype") and "key" in str(seed.dtype):
        import jax

        seed = jax.random.key_data(seed)
    return [int(v) for v in np.ravel(np.asarray(seed)).astype(np.uint64)]


def _load_one(path: Path, side: int) -> np.ndarray:
    from PIL import Image

    from jtex import image

    try:
        with Image.open(path) as im:  # the header only: the size, to load at the right scale
            short = min(im.size)
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise JtexError(f"{show(path)}: not a readable image ({one_line(e)})") from None
    if short < 1:
        raise JtexError(f"{show(path)}: empty image")
    x = image.load(path, scale=side / short) if short != side else image.load(path)
    h, w = x.shape[:2]
    if min(h, w) != side:  # rounding: make the shorter side exact
        x = image.resize(x, height=side) if h <= w else image.resize(x, width=side)
    return np.round(x * 255).astype(np.uint8)
