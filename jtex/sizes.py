"""Sizes and memory, checked before anything is compiled: one-line errors instead of NaN or a crash.

With 'valid' padding every conv trims a pixel per side and every octave halves
the image, so a small output or exemplar can leave the deepest layer with no
pixels at the coarsest octave (Snelgrove's code then silently returned NaN).
:func:`check` names the minimum size; :func:`estimate_bytes` refuses outputs
that cannot fit in memory before XLA tries.
"""

from __future__ import annotations

import os

import jax
import numpy as np

from jtex import objective, pyramid, vgg
from jtex.config import SynthConfig
from jtex.errors import JtexError
from jtex.objective import Spec


def min_side(spec: Spec, octaves: int | None = None) -> int:
    """Smallest square side for which the deepest layer exists at the coarsest octave."""
    octaves = spec.octaves if octaves is None else octaves
    deepest = vgg.deepest(spec.layers)

    def fits(n: int) -> bool:
        h, _ = pyramid.level_sizes(n, n, octaves, spec.pyr_padding)[-1]
        return h >= 1 and vgg.output_size(h, h, deepest, spec.vgg_padding)[0] >= 1

    lo, hi = 1, 1
    while not fits(hi):  # fits() is monotone in n: double, then bisect
        lo, hi = hi + 1, hi * 2
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if fits(mid) else (mid + 1, hi)
    return lo


def _check_size(what: str, h: int, w: int, spec: Spec, octaves: int, fix: str):
    need = min_side(spec, octaves)
    if min(h, w) < need:
        raise JtexError(
            f"{what} is {w}x{h} px, but {octaves} octave(s) with layer {vgg.deepest(spec.layers)} and "
            f"'{spec.vgg_padding}' padding need at least {need} px per side; {fix}"
        )


RUNTIME_BYTES = 100 * 2**20  # the XLA runtime and the program's code, beyond its buffers


def estimate_bytes(h: int, w: int, n_images: int, spec: Spec) -> int:
    """Peak memory of one loss+gradient evaluation, in bytes.

    Backpropagation keeps every conv output (XLA fuses the ReLU into it) and
    every pool output, float32, at every octave; on top, the cotangents of
    the two largest maps are alive at once, plus a fixed allowance for the
    runtime. Without that allowance it is within 15% of XLA's own accounting
    of the compiled program (temporaries, arguments, outputs) at 300 to 768
    px (tests/test_synth_paths.py).
    """
    seq = vgg.layer_sequence("vgg19")
    kept = [n for n in seq[: seq.index(vgg.deepest(spec.layers)) + 1] if not n.startswith("relu")]
    total, largest = 0, 0
    for lh, lw in pyramid.level_sizes(h, w, spec.octaves, spec.pyr_padding):
        for name in kept:
            oh, ow = vgg.output_size(lh, lw, name, spec.vgg_padding)
            n = max(oh, 0) * max(ow, 0) * vgg.channels(name)
            total, largest = total + n, max(largest, n)
    return int((total + 2 * largest) * 4 * n_images + RUNTIME_BYTES)


def available_bytes() -> int:
    dev = jax.devices()[0]
    if dev.platform != "cpu":
        limit = (dev.memory_stats() or {}).get("bytes_limit")
        if limit:
            return int(limit)
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))
    except (ValueError, OSError):
        return 1 << 40


def check(cfg: SynthConfig, sources: list[np.ndarray], paths: list, margin: int, stages: list):
    """Sizes, tiling and memory, before anything is compiled; one-line errors."""
    spec = objective.exemplar_spec(cfg)
    for p, s in zip(paths, sources):
        _check_size(
            f"source {p}",
            s.shape[0],
            s.shape[1],
            spec,
            cfg.octaves,
            "use a larger --source-width, fewer --octaves or --padding-mode same",
        )
    out = objective.output_spec(cfg)
    for st in stages:
        if st.octave == 0:  # the canvas is larger: the size asked for is what must fit
            what, h, w = "the output", cfg.output_height, cfg.output_width
        else:
            what, h, w = f"coarse-to-fine stage {st.octave} ({st.width}x{st.height})", st.height, st.width
        _check_size(
            what, h, w, out, cfg.octaves - st.octave, "ask for a larger output, fewer --octaves or --padding-mode same"
        )
    if cfg.tile:
        seq = vgg.layer_sequence("vgg19")
        pools = sum(1 for n in seq[: seq.index(vgg.deepest(out.layers)) + 1] if n.startswith("pool"))
        step = 2 ** (cfg.octaves - 1 + pools)
        if cfg.output_width % step or cfg.output_height % step:
            raise JtexError(
                f"--tile needs output sides divisible by {step} ({cfg.octaves} octaves, {pools} poolings) "
                f"to wrap exactly; try {max(step, round(cfg.output_width / step) * step)}x"
                f"{max(step, round(cfg.output_height / step) * step)}"
            )
    n_images = (len(sources) if cfg.separate else 1) * cfg.batch * cfg.count
    if jax.local_devices()[0].platform != "cpu":  # each accelerator holds its share of the batch (jtex.sharding)
        from jtex import sharding

        p = sharding.plan((len(sources) if cfg.separate else 1) * cfg.batch)
        n_images = n_images if p is None else p.per_device * cfg.count
    h, w = cfg.output_height + 2 * margin, cfg.output_width + 2 * margin
    need = estimate_bytes(h, w, n_images, out)
    have = available_bytes()
    if need > have:
        raise JtexError(
            f"{cfg.output_width}x{cfg.output_height} x {n_images} image(s) needs about {need / 2**30:.1f} GiB, "
            f"only {have / 2**30:.1f} GiB is free; use a smaller output or --batch, or --coarse-to-fine"
        )
