"""Command line of the Texture Networks generator: ``jtex train-texnet``, ``jtex sample`` and ``jtex stylize``.

Parsing imports no JAX, so ``--help`` and argument mistakes answer at once.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from jtex.choices import NORMS, TEXNET_LOSSES, UPSAMPLES
from jtex.errors import JtexError


def train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="jtex train-texnet",
        description="Train a Texture Networks generator (Ulyanov et al. 2016) on one exemplar; "
        "rerunning the command resumes it. Presets: paper (256², batch 16, 1500 steps, lr 0.1 x0.8 "
        "every 300: for a GPU) and quick (128², batch 4, 400 steps: 2 CPU cores in about 7 minutes).",
    )
    a = p.add_argument
    a("-s", "--source", required=True, help="the exemplar image")
    a("--output-dir", required=True, help="the run folder (config, metrics, checkpoints, sample sheets)")
    a("--preset", default="quick", choices=("quick", "paper"))
    a("--size", type=int, default=None, help="training sample side in px (multiple of 2^(scales-1))")
    a("--batch", type=int, default=None)
    a("--steps", type=int, default=None, help="train up to this many steps (more than a finished run: go on)")
    a("--lr", type=float, default=None)
    a("--loss", default=None, choices=TEXNET_LOSSES, help="gatys: Grams of relu1_1..relu5_1 (the paper's); "
      "multiscale: Snelgrove's pool1 + relu3_2 over a 4-octave pyramid; swd: Heitz et al.'s sliced "
      "Wasserstein distance on relu1_1..relu5_1")  # fmt: skip
    a("--octaves", type=int, default=None, help="gatys/swd: the loss sees the sample and its Gaussian pyramid, "
      "this many octaves (1, the paper's: the sample alone; 3 also matches structure 2x and 4x as large)")  # fmt: skip
    a("--octave-weight", type=float, default=None, help="octave o of the loss counts this to the power o "
      "(default 1; quick: 0.5, so the sample's own scale leads; with multiscale: its own 4 octaves, 1 unless "
      "given)")  # fmt: skip
    a("--norm", default=None, choices=NORMS, help="batch (the paper's) or instance (Improved TN)")
    a("--upsample", default=None, choices=UPSAMPLES, help="the coarser stream's x2 upsampling: nearest (the "
      "paper's) or bilinear (on the torus)")  # fmt: skip
    a("--scales", type=int, default=None, help="noise scales K (default 6)")
    a("--channels", type=int, default=None, help="conv width per scale (default 8, the paper's; the stream at "
      "scale k has k times this)")  # fmt: skip
    a("--exemplar-size", type=int, default=None, help="resize the exemplar's longer side to this (default 256)")
    a("--save-every", type=int, default=None, help="checkpoint + sample sheet every N steps")
    a("--seed", type=int, default=None)
    a("--weights", default=None, help="descriptor VGG-19: a named source or a converted .npz (jtex weights list)")
    a("--content-dir", default=None, help="a folder of photos: train a stylisation network, the exemplar as style "
      "(paper preset then: batch 4, 3000 steps); apply it with jtex stylize")  # fmt: skip
    a("--content-weight", type=float, default=None, help="pull of the relu4_2 content term against 1 per texture "
      "layer (default 2; higher keeps more of the photo)")  # fmt: skip
    a("--mrf-weight", type=float, default=None, help="add CNNMRF's term (Li & Wand 2016) at relu4_1: each 3x3 "
      "window of the sample's map pulled to the exemplar's most alike, this hard against 1 per Gram layer "
      "(default 0: off; --loss gatys)")  # fmt: skip
    a(
        "--no-normalize-gradients",
        dest="normalize_gradients",
        action="store_const",
        const=False,
        default=None,
        help="sum the layers' raw gradients (v1 L1-normalises each layer's gradient, so all layers count)",
    )
    a("--overwrite", action="store_true", help="start again in a folder that holds another run")
    a("-q", "--quiet", action="store_true", help="no progress bar")
    return p


def cmd_train(argv):
    args = train_parser().parse_args(argv)
    if not Path(args.source).is_file():
        raise JtexError(f"--source {args.source}: no such file; give an exemplar image")
    if args.content_dir is not None and not Path(args.content_dir).is_dir():
        raise JtexError(f"--content-dir {args.content_dir}: no such folder; give a folder of photos")
    from jtex import texture_net

    keys = ("size", "batch", "steps", "lr", "loss", "octaves", "octave_weight", "norm", "upsample", "scales")
    keys += ("channels", "exemplar_size", "save_every", "seed")
    keys += ("weights", "normalize_gradients", "content_dir", "content_weight", "mrf_weight")
    cfg = texture_net.TexNetConfig.preset(args.preset, source=args.source, **{k: getattr(args, k) for k in keys})
    net = texture_net.train(cfg, args.output_dir, progress=not args.quiet, overwrite=args.overwrite)
    res = json.loads((Path(args.output_dir) / "result.json").read_text())
    use = "jtex stylize {} PHOTO --output-dir OUT" if net.config.stylization else "jtex sample {} --output-dir OUT"
    print(
        f"jtex: trained {args.output_dir}/ ({res['steps']} steps, loss {res['final_loss']:.4g}, "
        f"{res['parameters']} parameters, {net.config.norm} norm); use it with: {use.format(args.output_dir)}"
    )


def _output_folder(path: str) -> Path:
    """``--output-dir`` checked before any work: a folder, or a path where one can be made."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise JtexError(f"--output-dir {out} is a file; name a folder")
    return out


def sample_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jtex sample", description="Sample textures from a trained generator.")
    a = p.add_argument
    a("model", help="a run folder written by jtex train-texnet")
    a("--size", nargs=2, type=int, default=(512, 512), metavar=("W", "H"), help="multiples of 2^(scales-1)")
    a("--count", type=int, default=4)
    a("--seed", type=int, default=0)
    a("--output-dir", required=True, help="writes sample_000.png ... and sheet.png here")
    return p


def cmd_sample(argv):
    args = sample_parser().parse_args(argv)
    w, h = args.size
    if args.count < 1 or args.count > 1024:
        raise JtexError(f"--count must be 1..1024, got {args.count}")
    out = _output_folder(args.output_dir)
    import time

    import jax

    from jtex import figures, image, texture_net

    model = texture_net.load(args.model)
    t = time.perf_counter()
    images = texture_net.sample(model, jax.random.key(args.seed), (args.count, h, w))
    seconds = time.perf_counter() - t
    out.mkdir(parents=True, exist_ok=True)
    for i, im in enumerate(images):
        image.save(out / f"sample_{i:03d}.png", im)
    image.save(out / "sheet.png", figures.contact_sheet(list(images)))
    print(f"jtex: wrote {args.count} sample(s) {w}x{h} to {out}/ ({seconds:.2f} s with compilation)")


def stylize_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="jtex stylize", description="Stylise photos with a network trained with jtex train-texnet --content-dir."
    )
    a = p.add_argument
    a("model", help="a run folder written by jtex train-texnet --content-dir")
    a("photos", nargs="+", help="photos or folders of photos")
    a("--output-dir", required=True, help="writes NAME.png for each photo NAME.* here")
    a("--max-size", type=int, default=1024, help="shrink photos whose longer side is over this (default 1024)")
    a("--seed", type=int, default=0, help="the noise's seed")
    return p


def cmd_stylize(argv):
    args = stylize_parser().parse_args(argv)
    if not 32 <= args.max_size <= 8192:
        raise JtexError(f"--max-size must be 32..8192, got {args.max_size}")
    out = _output_folder(args.output_dir)
    import time

    import jax

    from jtex import image, texture_net

    files = image.expand_sources(args.photos)
    model = texture_net.load(args.model)
    if not model.config.stylization:
        raise JtexError(f"{args.model} holds a texture network (no --content-dir); sample it with: jtex sample")
    out.mkdir(parents=True, exist_ok=True)
    names: set[str] = set()
    for f in files:  # one at a time: a bad file stops the command, what was written stays whole
        t = time.perf_counter()
        photo = image.load(f)
        result = texture_net.stylize(model, photo, jax.random.key(args.seed), max_side=args.max_size)
        name = f.stem
        while name in names:
            name += "_"
        names.add(name)
        image.save(out / f"{name}.png", result)
        h, w = result.shape[:2]
        print(f"jtex: {f} -> {out / (name + '.png')} ({w}x{h}, {time.perf_counter() - t:.2f} s)")


COMMANDS = {"train-texnet": cmd_train, "sample": cmd_sample, "stylize": cmd_stylize}
