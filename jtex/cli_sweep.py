"""``jtex sweep``: a grid of synthesis settings, shape-preserving keys in one compiled program (:mod:`jtex.sweeps`)."""

from __future__ import annotations

import os
from pathlib import Path

from jtex.errors import JtexError


def cmd_sweep(argv):
    from jtex import cli

    p = cli.synth_parser(prog="jtex sweep")
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
    cfg = cli.config_from_args(args).validate()
    from jtex import image

    image.expand_sources(cfg.sources)
    out = Path(args.output_dir)
    rows = sweeps.run(cfg, grid, out, progress=not args.quiet, metrics=not args.no_metrics, overwrite=args.overwrite)
    print(f"jtex: wrote {out}/ ({len(rows)} points: sweep.csv, sweep.json, sheet.png, point_NNN/)")


COMMANDS = {"sweep": cmd_sweep}
