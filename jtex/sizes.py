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


def edge_lag(n: int, spec: Spec, arch: str = "vgg19") -> int:
    """How many px before the end of an axis of ``n`` px the objective's coverage ends, beyond its start.

    Every op of the objective sees the start of an axis (top, left) and its end
    (bottom, right) mirror-symmetrically, except where a stride-2 op leaves the
    last pixel out: a 'valid' pyramid REDUCE of an even axis, a 2x2 pooling of
    an odd one (a padded REDUCE of an even one). Each such pixel shifts the end's
    coverage inwards by the op's stride at the canvas. At the top all octaves'
    edges coincide; at the bottom they spread over up to ~30 px at 4 octaves,
    and the texture grows a row of dots along that band (the coarse octaves'
    own edge). Returns the largest shift over the octaves and layers used:
    exact for 'valid' (tests/test_edges.py measures it through the network);
    padded modes see the edges through their padding, not as mirror images,
    and there it is within 1.5 px of the shift measured at 80% coverage.
    """
    seq = vgg.layer_sequence(arch)
    worst = 0
    for octave in range(spec.octaves):
        lag, stride, s = 0, 1, n
        for _ in range(octave):
            m = pyramid.level_sizes(s, s, 2, spec.pyr_padding)[1][0]
            if m < 1:
                return worst
            lag += stride * ((s - 1) - (2 * m + 2) if spec.pyr_padding == "valid" else (s + 1) - 2 * m)
            s, stride = m, stride * 2
        for name in seq[: seq.index(vgg.deepest(spec.layers, arch)) + 1]:
            if name.startswith("conv"):
                s -= 2 * (spec.vgg_padding == "valid")
            elif name.startswith("pool"):
                lag, s, stride = lag + stride * (s % 2), s // 2, stride * 2
            if name in spec.layers and s >= 1:
                worst = max(worst, lag)
    return worst


def trailing_margin(n: int, spec: Spec, arch: str = "vgg19", limit: int = 64) -> int:
    """Extra px for the end of an axis whose canvas (margins included) is ``n`` px, so that the objective
    sees its last output pixels at least as well as its first: the smallest ``e`` with
    ``edge_lag(n + e) <= e`` (21 px for 'valid' at 4 octaves and canvases of a multiple of 32 px)."""
    return next((e for e in range(limit) if edge_lag(n + e, spec, arch) <= e), 0)


def _check_size(what: str, h: int, w: int, spec: Spec, octaves: int, fix: str):
    need = min_side(spec, octaves)
    if min(h, w) < need:
        raise JtexError(
            f"{what} is {w}x{h} px, but {octaves} octave(s) with layer {vgg.deepest(spec.layers)} and "
            f"'{spec.vgg_padding}' padding need at least {need} px per side; {fix}"
        )


def runtime_bytes() -> int:
    """What a run holds beyond its programs' buffers: on the CPU the whole process (Python, jaxlib, XLA's
    runtime, the weights; 0.5 GiB measured for a 64² run), on an accelerator the runtime's share of it."""
    return (512 if jax.local_devices()[0].platform == "cpu" else 128) * 2**20


def estimate_bytes(h: int, w: int, n_images: int, spec: Spec) -> int:
    """Peak memory of one loss+gradient evaluation, in bytes.

    Backpropagation keeps every conv output (XLA fuses the ReLU into it) and
    every pool output, float32, at every octave; on top, the cotangents of
    the two largest maps are alive at once. The runtime is not counted
    (:func:`need_bytes` adds it). It is within 15% of XLA's own accounting
    of the compiled program (temporaries, arguments, outputs) at 300 to 768
    px (tests/test_synth_paths.py). A level whose Grams are summed over tiles
    (:mod:`jtex.tiling`) keeps one tile's maps, and image-sized buffers;
    bfloat16 maps take half the bytes.
    """
    from jtex import tiling

    seq = vgg.layer_sequence("vgg19")
    kept = [n for n in seq[: seq.index(vgg.deepest(spec.layers)) + 1] if not n.startswith("relu")]

    def maps(lh, lw):
        sizes = [vgg.output_size(lh, lw, name, spec.vgg_padding) for name in kept]
        ns = [max(oh, 0) * max(ow, 0) * vgg.channels(name) for (oh, ow), name in zip(sizes, kept)]
        return sum(ns), max(ns)

    total, largest, extra = 0, 0, 0
    for lh, lw in pyramid.level_sizes(h, w, spec.octaves, spec.pyr_padding):
        if tiling.applies(spec.kinds, spec.vgg_padding, spec.gram_tile, lh, lw):
            t = tiling.plan(lh, lw, spec.layers, spec.gram_tile)
            lh, lw = t.core[0] + t.halo, t.core[1] + t.halo
            extra += 4 * (t.ny * t.core[0] + t.halo) * (t.nx * t.core[1] + t.halo) * 3
        n, big = maps(lh, lw)
        total, largest = total + n, max(largest, big)
    width = 2 if spec.dtype == "bfloat16" else 4  # bytes per activation; the image-sized buffers stay float32
    return int(((total + 2 * largest) * width + extra * 4) * n_images)


MEMORY = 10  # L-BFGS pairs kept, host (jtex.lbfgsb) and device (jtex.methods)


def optimizer_bytes(cfg: SynthConfig, h: int, w: int, n_images: int) -> int:
    """What the optimiser holds for n_images images of h x w px, at its peak in a run of cfg.max_iter.

    Host L-BFGS-B (float64, in this process: counted on the CPU only) fills one pair of its work array per
    iteration up to ``MEMORY``, on top of 5 work vectors, the iterate, gradient and bounds, the copies handed
    to the device and the active-set integers; a device L-BFGS holds its pairs in float32, Adam two moments.
    """
    n = n_images * h * w * 3
    k = min(cfg.max_iter, MEMORY)
    if cfg.optimizer == "lbfgs-b":
        if jax.local_devices()[0].platform != "cpu":
            return 0
        return 8 * n * (2 * k + 5) + 52 * n
    return 4 * n * ((2 * k + 4) if "lbfgs" in cfg.optimizer else 4)


def need_bytes(cfg: SynthConfig, sources: list[np.ndarray], canvas: tuple[int, int], n_images: int) -> int:
    """Peak memory of a run: the runtime, the largest exemplar's target program, the synthesis's
    loss+gradient (counted together: the allocator keeps what the first freed) and the optimiser's state.
    Within 20% of the peak RSS measured from 1024² to 4096², with and without tiles (experiments/bench_scale.py)."""
    src = objective.exemplar_spec(cfg)
    exemplars = max((estimate_bytes(s.shape[0], s.shape[1], 1, src) for s in sources), default=0)
    h, w = canvas
    synthesis = estimate_bytes(h, w, n_images, objective.output_spec(cfg))
    return runtime_bytes() + exemplars + synthesis + optimizer_bytes(cfg, h, w, n_images)


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


def check(cfg: SynthConfig, sources: list[np.ndarray], paths: list, stages: list) -> tuple[int, int]:
    """Sizes, tiling and memory, before anything is compiled; one-line errors.

    Returns ``(need, have)``: the estimated peak and the free memory, bytes.
    """
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
    need = need_bytes(cfg, sources, (stages[-1].height, stages[-1].width), n_images)
    have = available_bytes()
    if need > have:
        raise JtexError(
            f"{cfg.output_width}x{cfg.output_height} x {n_images} image(s) needs about {need / 2**30:.1f} GiB, "
            f"only {have / 2**30:.1f} GiB is free; use a smaller output or --batch, or --coarse-to-fine"
        )
    return need, have
