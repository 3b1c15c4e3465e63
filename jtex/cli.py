"""Command line: ``jtex synth ...`` (also plain ``python run.py ...``), ``jtex weights ...``,
``jtex train-texnet ...``, ``jtex sample ...`` and ``jtex stylize ...`` (see :mod:`jtex.cli_texnet`),
``jtex metrics ...`` (see :mod:`jtex.cli_metrics`), ``jtex mdan``, ``jtex train-mgan`` and ``jtex generate``
(see :mod:`jtex.cli_mgan`), ``jtex sweep`` (here; the sweep itself is :mod:`jtex.sweeps`), ``jtex batch``
(see :mod:`jtex.cli_batch`).

Synthesis flags follow Snelgrove's subjective-functions (``-s``, ``-ow``,
``-o``, ``-l``, ``-m``, ...). Expected mistakes print one line and exit 1;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

from jtex.errors import JtexError

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SUBCOMMANDS = (
    "synth",
    "weights",
    "features",
    "train-texnet",
    "sample",
    "stylize",
    "metrics",
    "mdan",
    "train-mgan",
    "generate",
    "sweep",
    "batch",
)


def synth_parser(prog="jtex synth") -> argparse.ArgumentParser:
    from jtex import choices
    from jtex.config import SynthConfig

    d = SynthConfig()
    p = argparse.ArgumentParser(
        prog=prog,
        description="Synthesise textures like the source image(s).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    a = p.add_argument
    a(
        "-s",
        "--source",
        nargs="+",
        default=None,
        help="exemplar image(s) or folder(s); default: the bundled examples/brick.png",
    )
    a("-ow", "--output-width", type=int, default=d.output_width)
    a("-oh", "--output-height", type=int, default=d.output_height)
    a("-o", "--octaves", type=int, default=d.octaves, help="Gaussian pyramid octaves (1 = Gatys)")
    a(
        "-l",
        "--layers",
        nargs="+",
        default=list(d.layers),
        help="VGG layers: Snelgrove indices (2 = pool1, 7 = relu3_2) or names (relu3_1, pool2, conv1_1)",
    )
    a(
        "--layer-weights",
        nargs="+",
        default=None,
        help="one weight per layer, or a schedule: uniform | linear (1..L) | geometric:Q (Q^0..Q^(L-1)); default all 1",
    )
    a(
        "--loss",
        default="gram=1",
        help="statistics and their weights, e.g. gram=1,swd=0.5; from: " + ", ".join(choices.STATISTICS),
    )
    a("--tv-weight", type=float, default=d.tv_weight, help="total variation of the image (mean |dx| + |dy|)")
    a(
        "--swd-projections",
        type=int,
        default=d.swd_projections,
        help=f"--loss swd: random directions per feature channel, drawn once per run (Heitz et al.: 1, redrawn "
        f"every step; default {d.swd_projections})",
    )
    a("-m", "--max-iter", type=int, default=d.max_iter, help="iterations (per stage with --coarse-to-fine)")
    a("-n", "--save-every", type=int, default=d.save_every, help="snapshot + checkpoint every N iterations (0: never)")
    a("-ss", "--source-scale", type=float, default=None, help="scale the source(s) by this factor")
    a("-sw", "--source-width", type=int, default=None, help="resize the source(s) to this width")
    a("-p", "--padding-mode", default=d.padding, choices=choices.PADDINGS)
    a("--pooling", default=d.pooling, choices=choices.POOLINGS)
    a(
        "--gram",
        default=d.gram,
        choices=choices.GRAM_NORMS,
        help="Gram normalisation: snelgrove = F'F/(MN), loss sum sq; gatys = F'F/M, loss sum sq/(4N^2)",
    )
    a("-j", "--join-mode", default=d.join, choices=choices.JOIN_MODES, help="how several sources' Grams are joined")
    a("--mul", type=float, default=d.mul, help="multiply the target Grams")
    a("--init", default="random", help="random | symmetric | PATH of a start image")
    a(
        "--init-scale",
        type=float,
        default=d.init_scale,
        help="standard deviation of the start noise (pixels in [0, 1]); small keeps fine grain like the exemplar's",
    )
    a(
        "--margin",
        type=int,
        default=None,
        help=f"px synthesised beyond each side and cropped, so borders carry texture (default "
        f"{choices.VALID_MARGIN} with 'valid' padding, else {choices.MARGIN}; 0 with --tile)",
    )
    a("--seed", type=int, default=d.seed)
    a("--tol", type=float, default=d.tol, help="stop when the relative loss decrease falls below this")
    a("--optimizer", default=d.optimizer, choices=choices.OPTIMIZERS)
    a("--lr", type=float, default=d.lr, help="learning rate (adam)")
    a("--batch", type=int, default=d.batch, help="independent syntheses, in one vmapped program")
    a("--separate", action="store_true", help="one synthesis per source instead of joining them")
    a("--tile", action="store_true", help="seamless tiles: circular padding for the synthesised image")
    a("--coarse-to-fine", action="store_true", help="synthesise the coarsest octave first, then refine")
    a(
        "--coarse-to-fine-above",
        type=int,
        default=d.coarse_to_fine_above,
        metavar="PX",
        help=f"still images this wide or tall go coarse-to-fine without the flag (default {d.coarse_to_fine_above}; "
        "0: only with --coarse-to-fine)",
    )
    a(
        "--gram-tile",
        type=int,
        default=d.gram_tile,
        help=f"Grams of pyramid levels wider than twice this are summed over tiles of this many px, rematerialised, "
        f"so large images fit in memory ('valid' padding, gram loss; exact; 0: never; default {d.gram_tile})",
    )
    a(
        "--compute-dtype",
        default=d.compute_dtype,
        choices=choices.COMPUTE_DTYPES,
        help="the VGG's convolutions in bfloat16 on accelerators: half the activation memory; Grams accumulate in "
        "float32, the image and optimiser stay float32 (on a CPU bfloat16 is slower)",
    )
    a("--match-histogram", action="store_true", help="match each colour channel's histogram to the source")
    a("--weights", default=d.weights, help="vgg19-normalized | vgg16 | PATH (.pth, .h5, .npz)")
    a("--output-dir", default=None, help="run folder (default runs/<source>-<hash of settings>)")
    a("--quiet", action="store_true", help="no progress bar")
    a("--overwrite", action="store_true", help="clear a run folder that holds another run instead of refusing it")
    a(
        "--no-compilation-cache",
        action="store_true",
        help="do not keep compiled programs in ~/.cache/jtex/xla (or $JTEX_CACHE_DIR/xla) for the next run",
    )
    g = p.add_argument_group("animation (Snelgrove's inter-frame loss)")
    g.add_argument("-c", "--count", type=int, default=d.count, help="frames of a looping animation")
    g.add_argument("--if-weight", type=float, default=d.if_weight)
    g.add_argument("--if-shift", type=float, default=d.if_shift, help="target motion in exemplar pixels per frame")
    g.add_argument("--if-order", type=int, default=d.if_order, help="tie each frame to the next N")
    g.add_argument("--if-distance-type", default=d.if_distance_type, choices=choices.IF_DISTANCES)
    g.add_argument("--if-octaves", type=int, default=d.if_octaves)
    g.add_argument("--fps", type=float, default=d.fps, help="animation frame rate")
    return p


def _layer_weights(values):
    """``--layer-weights 1 0 2`` -> numbers; ``--layer-weights linear`` -> the schedule's name."""
    if not values:
        return None
    try:
        return tuple(float(v) for v in values)
    except ValueError:
        if len(values) == 1:
            return values[0]  # a schedule, checked with the other settings
        raise JtexError(f"--layer-weights {' '.join(values)}: numbers, or one schedule (uniform, linear, geometric:Q)")


def config_from_args(args):
    from jtex.config import SynthConfig, parse_loss

    sources = args.source or [str(EXAMPLES / "brick.png")]
    layers = tuple(int(v) if str(v).lstrip("-").isdigit() else v for v in args.layers)
    init = "noise" if args.init == "random" else args.init
    return SynthConfig(
        sources=tuple(sources),
        output_width=args.output_width,
        output_height=args.output_height,
        octaves=args.octaves,
        layers=layers,
        layer_weights=_layer_weights(args.layer_weights),
        loss=parse_loss(args.loss),
        tv_weight=args.tv_weight,
        swd_projections=args.swd_projections,
        gram=args.gram,
        padding=args.padding_mode,
        pooling=args.pooling,
        join=args.join_mode,
        mul=args.mul,
        source_width=args.source_width,
        source_scale=args.source_scale,
        init=init,
        init_scale=args.init_scale,
        margin=args.margin,
        optimizer=args.optimizer,
        max_iter=args.max_iter,
        tol=args.tol,
        lr=args.lr,
        save_every=args.save_every,
        seed=args.seed,
        batch=args.batch,
        separate=args.separate,
        tile=args.tile,
        coarse_to_fine=args.coarse_to_fine,
        coarse_to_fine_above=args.coarse_to_fine_above,
        gram_tile=args.gram_tile,
        compute_dtype=args.compute_dtype,
        match_histogram=args.match_histogram,
        weights=args.weights,
        count=args.count,
        if_weight=args.if_weight,
        if_shift=args.if_shift,
        if_order=args.if_order,
        if_distance_type=args.if_distance_type,
        if_octaves=args.if_octaves,
        fps=args.fps,
    )


def default_output_dir(cfg) -> Path:
    """runs/<first source>-<hash of the settings and of the sources' contents>."""
    h = hashlib.sha256(cfg.dumps().encode())
    for path in cfg.sources:
        p = Path(path)
        if p.is_file():
            h.update(p.read_bytes())
    digest = h.hexdigest()[:8]
    return Path("runs") / f"{Path(cfg.sources[0]).stem}-{digest}"


def cmd_synth(argv):
    args = synth_parser().parse_args(argv)
    if args.no_compilation_cache:
        os.environ["JTEX_COMPILATION_CACHE"] = "0"
    cfg = config_from_args(args).validate()
    from jtex import image

    image.expand_sources(cfg.sources)  # a missing or empty source fails here, before JAX loads
    from jtex import synth

    out = Path(args.output_dir) if args.output_dir else default_output_dir(cfg)
    res = synth.run(cfg, out, progress=not args.quiet, overwrite=args.overwrite)
    losses = ", ".join(f"{v:.4g}" for v in res.losses[:8])
    print(
        f"jtex: wrote {out}/ ({len(res.images)} image(s) {cfg.output_width}x{cfg.output_height}, "
        f"loss {losses}, {res.iterations} iterations, {res.seconds:.1f} s)"
    )


def cmd_weights(argv):
    from jtex import weights

    p = argparse.ArgumentParser(prog="jtex weights", description="List, verify and convert VGG weights.")
    p.add_argument("action", choices=("list", "verify", "convert"))
    p.add_argument("--name", default=weights.DEFAULT, help="a named source: " + ", ".join(weights.SOURCES))
    p.add_argument("--from", dest="path", default=None, help="convert a file you bring (.pth, .h5, .npz)")
    p.add_argument("--out", default=None, help="where convert --from writes its .npz")
    p.add_argument(
        "--convention",
        default=None,
        choices=tuple(weights.CONVENTIONS),
        help="input convention of a --from file without its own",
    )
    args = p.parse_args(argv)
    if args.action == "list":
        print(f"cache: {weights.cache_dir()}")
        for name, src in weights.SOURCES.items():
            try:
                path = weights.source_path(name)
                state = "cached" if (weights.cache_dir() / f"{name}.npz").is_file() else "installed"
            except JtexError:
                path, state = None, f"not installed ({src.install})"
            print(f"{name:18s} {state:10s} {src.description}" + (f"\n{'':18s} {path}" if path else ""))
    elif args.action == "verify":
        info = weights.verify(args.name)
        print(json.dumps(info, indent=2))
        if not info["source_ok"]:
            raise JtexError(f"{info['source']}: sha256 does not match the pin; reinstall the package")
        if not info["cache_ok"]:
            weights.load(args.name)
            print(f"jtex: cache was missing or stale; converted again into {info['cache']}")
    else:
        if args.path:
            params, meta = weights.load_file_with_meta(args.path, convention=args.convention)
            out = Path(args.out) if args.out else weights.cache_dir() / (Path(args.path).stem + ".npz")
            digest = weights.save_npz(out, params, meta)
            print(f"jtex: converted {args.path} ({meta['arch']}) -> {out} (sha256 {digest})")
        else:
            out = weights.convert(args.name, force=True)
            print(f"jtex: converted {args.name} -> {out}")


def cmd_features(argv):
    """Print a summary of the VGG-19 features of an image (a quick check of the install)."""
    import jax
    import numpy as np

    from jtex import image, vgg, weights

    p = argparse.ArgumentParser(prog="jtex features", description="Summarise VGG features of an image.")
    p.add_argument("image", nargs="?", default=str(EXAMPLES / "brick.png"))
    p.add_argument(
        "--layers",
        nargs="+",
        default=["relu1_1", "pool1", "relu2_1", "pool2", "relu3_1", "pool3", "relu4_1", "pool4", "relu5_1"],
    )
    p.add_argument("--width", type=int, default=256)
    args = p.parse_args(argv)
    params, meta = weights.load_with_meta()
    x = image.load(args.image, width=args.width)[None]
    feats = jax.jit(lambda x: vgg.features(params, x, args.layers))(x)
    print(f"{args.image}: {x.shape[2]}x{x.shape[1]}, weights {meta['name']} sha256 {meta['source_sha256'][:16]}...")
    for name, f in feats.items():
        f = np.asarray(f)
        print(
            f"  {name:8s} {str(f.shape[1:]):18s} mean {f.mean():9.4f}  max {f.max():10.3f}  "
            f"active {np.mean(f > 0) * 100:5.1f}%"
        )


def cmd_sweep(argv):
    p = synth_parser(prog="jtex sweep")
    p.description = (
        "Synthesise every point of a grid of settings. Keys that keep shapes (layer_weights, loss, mul, tv_weight, "
        "lr, seed, init_scale) run in one compiled program; others (sizes, octaves, layers, padding...) loop."
    )
    p.add_argument(
        "--grid",
        action="append",
        required=True,
        metavar="KEY=V1,V2",
        help="a setting and its values, e.g. --grid mul=0.5,1,2 --grid seed=0,1; separate values by ';' when they "
        "are lists: --grid 'layer_weights=1,0;linear' --grid 'loss=gram=1;swd=1'",
    )
    p.add_argument("--no-metrics", action="store_true", help="do not score the outputs with jtex.metrics (VGG-16)")
    p.set_defaults(optimizer="lbfgs")
    args = p.parse_args(argv)
    if not args.output_dir:
        raise JtexError("jtex sweep needs --output-dir DIR")
    if args.no_compilation_cache:
        os.environ["JTEX_COMPILATION_CACHE"] = "0"
    from jtex import sweeps

    grid = sweeps.parse_grid(args.grid)
    cfg = config_from_args(args).validate()
    from jtex import image

    image.expand_sources(cfg.sources)
    out = Path(args.output_dir)
    rows = sweeps.run(cfg, grid, out, progress=not args.quiet, metrics=not args.no_metrics, overwrite=args.overwrite)
    print(f"jtex: wrote {out}/ ({len(rows)} points: sweep.csv, sweep.json, sheet.png, point_NNN/)")


def console() -> int:
    """The ``jtex`` command, ``run.py`` and ``python -m jtex``: :func:`main`, in a process with huge pages."""
    from jtex import runtime

    runtime.restart_with_hugepages()
    return main()


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv.pop(0) if argv and argv[0] in SUBCOMMANDS else "synth"
    try:
        from jtex import cli_batch, cli_metrics, cli_mgan, cli_texnet

        commands = {"synth": cmd_synth, "weights": cmd_weights, "features": cmd_features, "sweep": cmd_sweep}
        commands |= cli_texnet.COMMANDS | cli_metrics.COMMANDS | cli_mgan.COMMANDS | cli_batch.COMMANDS
        commands[command](argv)
    except JtexError as e:
        print(f"jtex: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("jtex: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
