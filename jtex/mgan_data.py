"""What an MGAN's decoder learns from: MDAN teachers of noise fields or photos (``method="mdan"``), or
crops of the exemplar itself (``method="wct"``); see :mod:`jtex.mgan`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jtex.errors import JtexError
from jtex.mdan import mdan
from jtex.mgan_config import MGANConfig


def teacher_inputs(cfg: MGANConfig, photos=None) -> np.ndarray:
    """The ``teachers`` inputs (T, S, S, 3) in [0, 1], S = ``teacher_size``: noise fields, or photo centre crops."""
    from jtex import noisefields

    s, out = cfg.teacher_size, []
    for i in range(cfg.teachers):
        if photos is None:
            kind = cfg.train_kinds[i % len(cfg.train_kinds)]
            out.append(noisefields.field(kind, np.random.default_rng([cfg.seed, i]), s, s))
        else:
            p = photos.photos[i % len(photos)]
            top, left = (p.shape[0] - s) // 2, (p.shape[1] - s) // 2
            out.append(p[top : top + s, left : left + s].astype(np.float32) / 255)
    return np.stack(out)


def exemplar_crops(cfg: MGANConfig, style: np.ndarray) -> np.ndarray:
    """A ``wct`` model's training images: 8 seeded crops (up to ``2 size``²) of each augmented exemplar copy."""
    from jtex import patchbank

    try:
        return patchbank.crops(patchbank.augmented_copies(style), cfg.size, 8, cfg.seed, side=2 * cfg.size)
    except ValueError as e:
        raise JtexError(f"{e}: raise --exemplar-size or lower --size") from None


def make_teachers(cfg, run_path: Path, style, inputs, vgg_params, progress: bool) -> np.ndarray:
    """MDAN's target for every input (T, S, S, 3) in [0, 1]; each an MDAN run folder ``teachers/NNN``."""
    from tqdm.auto import tqdm

    out = []
    for i in tqdm(range(len(inputs)), desc="mdan teachers", unit="img", disable=not progress):
        res = mdan(cfg.teacher(i), run_path / "teachers" / f"{i:03d}", exemplar=style, content=inputs[i],
                   vgg_params=vgg_params, progress=False)  # fmt: skip
        out.append(res.image)
    return np.stack(out)
