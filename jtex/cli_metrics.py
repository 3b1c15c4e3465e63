"""Command line: ``jtex metrics EXEMPLAR IMAGE... [--json]``, how close images are to their exemplar.

Parsing imports no JAX, so ``--help`` and argument mistakes answer at once.
The numbers are those of :func:`jtex.metrics.report`.
"""

from __future__ import annotations

import argparse
import json
import textwrap

NETWORKS = ("vgg16", "vgg19")  # jtex.metrics.NETWORKS, kept here so parsing imports nothing heavy
COLUMNS = ("swd_s1", "swd_s2", "swd_s4", "spectrum", "colour", "gram")
LEGEND = (
    "lower is better, 0 = the exemplar itself. swd_sN: sliced Wasserstein distance of deep features at scale 1/N "
    "(about 1 for an unrelated texture); spectrum: mean |log2| ratio of octave band powers; colour: per-channel "
    "Wasserstein distance of pixel values in [0, 1]; gram: relative Gram distance. Baselines: crop = pieces of the "
    "exemplar itself, its odd checkerboard tiles, scored as the image is (what copying it would score), noise = the "
    "exemplar's pixels shuffled (no structure); a texture sits between the two."
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="jtex metrics",
        description="Score images against their exemplar, with a network other than the one synthesis optimises: "
        "sliced Wasserstein distance of VGG-16 features at scales 1, 1/2, 1/4, power-spectrum, colour-histogram "
        "and Gram distances; next to two baselines at each image's size, pieces of the exemplar itself and its "
        "pixels shuffled. Lower is better.",
    )
    a = p.add_argument
    a("exemplar", help="the exemplar image")
    a("images", nargs="+", metavar="IMAGE", help="images to score, or folders of them")
    a("--exemplar-width", type=int, default=None, help="resize the exemplar to this width first (as synth's -sw)")
    a("--json", action="store_true", help="print a JSON list, one object per image, instead of a table")
    a("--network", default="vgg16", choices=NETWORKS, help="vgg19 is the network jtex synthesis optimises")
    a("--seed", type=int, default=0, help="seeds the projections, the baseline crop's positions and the shuffle")
    return p


def _cell(v) -> str:
    return "-" if v is None else f"{v:.4g}"


def table(rows: list[dict], sizes: list[tuple[int, int]]) -> str:
    """One line per image, then the two baselines of each image size."""
    lines = [(str(r["image"]), f"{w}x{h}", *map(_cell, (r[c] for c in COLUMNS))) for r, (h, w) in zip(rows, sizes)]
    seen = set()
    for r, (h, w) in zip(rows, sizes):
        if (h, w) not in seen:
            seen.add((h, w))
            for kind in ("crop", "noise"):
                base = r[f"baseline_{kind}"]
                cells = [_cell(base[c]) if base else "-" for c in COLUMNS]
                lines.append((f"baseline: {kind}", f"{w}x{h}", *cells))
    head = ("image", "size", *COLUMNS)
    widths = [max(len(line[i]) for line in [head, *lines]) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(n) for c, n in zip(line, widths)).rstrip() for line in [head, *lines])


def cmd_metrics(argv):
    p = parser()
    args = p.parse_args(argv)
    if args.seed < 0:
        p.error(f"--seed must be 0 or more, got {args.seed}")
    from jtex import image, metrics

    exemplar = image.load(args.exemplar, width=args.exemplar_width)
    files = image.expand_sources(args.images)
    imgs = [image.load(f) for f in files]
    rows = metrics.report(exemplar, imgs, names=[str(f) for f in files], network=args.network, key=args.seed)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    h, w = exemplar.shape[:2]
    print(f"exemplar {args.exemplar} ({w}x{h}), network {args.network}, seed {args.seed}")
    print(table(rows, [im.shape[:2] for im in imgs]))
    print(textwrap.fill(LEGEND, 100))


COMMANDS = {"metrics": cmd_metrics}
