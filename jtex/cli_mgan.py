"""Command line of the Markovian GANs: ``jtex mdan``, ``jtex train-mgan``, ``jtex generate`` (see :mod:`jtex.mgan`).

Parsing and checking the settings import no JAX, so ``--help`` and mistakes answer at once.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from jtex.errors import JtexError


def mdan_parser() -> argparse.ArgumentParser:
    from jtex.mgan_config import D_BATCHES, INIT_NOISE, MDANConfig

    d = MDANConfig()
    p = argparse.ArgumentParser(
        prog="jtex mdan",
        description="MDAN (Li & Wand 2016): optimise pixels against a discriminator of VGG-19 relu3_1 patches "
        "trained on the fly. From noise: a texture like the exemplar; with --content: the photo in the exemplar's "
        "style. Rerunning the command resumes it (more -m steps than a finished run: it goes on).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    a = p.add_argument
    a("-s", "--source", required=True, help="the exemplar (style) image")
    a("--content", default="", help="a photo: guided synthesis (style transfer), resized to -ow x -oh")
    a("-ow", "--output-width", type=int, default=d.width, help="a multiple of 8, at least 32")
    a("-oh", "--output-height", type=int, default=d.height, help="a multiple of 8, at least 32")
    a("-m", "--steps", type=int, default=d.steps, help="steps (each: discriminator update(s), one pixel update)")
    a("--seed", type=int, default=d.seed)
    a("--output-dir", required=True, help="the run folder (config, metrics, checkpoints, snapshots, output.png)")
    a("--lr", type=float, default=d.lr, help="pixels' Adam step, in [-1, 1] pixel units (beta1 0.5)")
    a("--d-lr", type=float, default=d.d_lr, help="the discriminator's Adam step (beta1 0.5)")
    a("--d-steps", type=int, default=d.d_steps, help="discriminator updates per pixel update")
    a("--d-batch", default=d.d_batch, choices=D_BATCHES, help="BatchNorm batches in D: reals and fakes together "
      "(they are then normalised alike) or apart (the authors')")  # fmt: skip
    a("--tv-weight", type=float, default=d.tv_weight, help="smoothness term, squared differences in [-1, 1] units")
    a("--content-weight", type=float, default=d.content_weight, help="relu5_1 content term (relative MSE) against "
      "the style term's 1; with --content only")  # fmt: skip
    a("--pooling", default=d.pooling, choices=("max", "avg"), help="the VGG's pooling")
    a("--exemplar-size", type=int, default=d.exemplar_size, help="resize the exemplar's longer side to this")
    a("--no-augment", dest="augment", action="store_false", help="real patches from the exemplar alone, not its "
      "18 rotated, scaled and mirrored copies")  # fmt: skip
    a("--gram-weight", type=float, default=d.gram_weight, help="Gram term on relu1_1 and relu2_1 (the grain the "
      "relu3_1 patches miss), its gradient this x the adversarial gradient's norm; 0: the authors' MDAN")  # fmt: skip
    a("--init-scale", type=float, default=d.init_scale, help="white/brown start: noise std around the mean colour")
    a("--no-match-colour", dest="match_colour", action="store_false", help="keep MDAN's own colours (flat, "
      "tinted) instead of matching the output's histogram to the exemplar's")  # fmt: skip
    a("--init-noise", default=d.init_noise, choices=INIT_NOISE, help="unguided start: spot (the exemplar's "
      "random-phase texture: its spectrum and colours), white or brown noise around its mean colour")  # fmt: skip
    a("--margin", type=int, default=d.margin, help="px optimised beyond each side and cropped (a multiple of 8)")
    a("--save-every", type=int, default=d.save_every, help="checkpoint + snapshot every N steps")
    a("--weights", default=d.weights, help="descriptor VGG-19: a named source or a converted .npz")
    a("--overwrite", action="store_true", help="start again in a folder that holds another run")
    a("-q", "--quiet", action="store_true", help="no progress bar")
    return p


def cmd_mdan(argv):
    args = mdan_parser().parse_args(argv)
    from jtex.mgan_config import MDANConfig

    cfg = MDANConfig(
        source=args.source, content=args.content, width=args.output_width, height=args.output_height,
        steps=args.steps, lr=args.lr, d_lr=args.d_lr, d_steps=args.d_steps, d_batch=args.d_batch,
        tv_weight=args.tv_weight, content_weight=args.content_weight, gram_weight=args.gram_weight,
        pooling=args.pooling, exemplar_size=args.exemplar_size, augment=args.augment, init_scale=args.init_scale,
        init_noise=args.init_noise,
        match_colour=args.match_colour, margin=args.margin,
        seed=args.seed,
        save_every=args.save_every, weights=args.weights,
    ).validate()  # fmt: skip
    for flag, path in (("--source", args.source), ("--content", args.content)):
        if path and not Path(path).is_file():
            raise JtexError(f"{flag} {path}: no such file; give an image file")
    out = Path(args.output_dir)
    if out.exists() and not out.is_dir():
        raise JtexError(f"--output-dir {out} is a file; name a folder")
    from jtex import mdan

    res = mdan.mdan(cfg, out, progress=not args.quiet, overwrite=args.overwrite)
    kind = "style transfer" if cfg.guided else "texture"
    print(f"jtex: wrote {out}/output.png ({kind} {cfg.width}x{cfg.height}, {res.steps} steps, {res.seconds:.1f} s)")


def train_parser() -> argparse.ArgumentParser:
    from jtex.mgan_config import DECODERS, METHODS, PRESETS, TRAIN_NOISE, WCT_PRESETS

    p = argparse.ArgumentParser(
        prog="jtex train-mgan",
        description="Train an MGAN (Li & Wand 2016): a decoder of VGG-19 relu4_1 features that makes textures "
        "from noise (or stylises photos) in one pass. --method wct (a noise model's default): the decoder learns "
        "to invert relu4_1 on the exemplar, and noise's relu4_1 is whitened and coloured to the exemplar's before "
        "decoding. --method mdan (the authors', the default with --content-dir): MDAN stylises noise fields or the "
        "photos into targets the decoder learns. Rerunning the command resumes it. Presets: "
        + "; ".join(f"{k}: {v}, with wct {WCT_PRESETS[k]}" for k, v in PRESETS.items()),
    )
    a = p.add_argument
    a("-s", "--source", required=True, help="the exemplar (style) image")
    a("--output-dir", required=True, help="the run folder (teachers, config, metrics, checkpoints, sample sheets)")
    a("--preset", default="quick", choices=tuple(PRESETS))
    a("--method", default=None, choices=METHODS, help="what the decoder learns (default: wct for noise, mdan "
      "with --content-dir)")  # fmt: skip
    a("--content-dir", default=None, help="a folder of photos: a photo -> stylised image model (else noise -> texture)")
    a("--noise", default=None, choices=TRAIN_NOISE, help="the noise a texture model learns from (default both)")
    a("--decoder", default=None, choices=DECODERS, help="upsampling: the authors' 4x4 transposed convs "
      "(default) or resize (nearest x2 + 3x3 conv: no checkerboard)")  # fmt: skip
    for flag, kind, text in [
        ("--size", int, "training crop side, a multiple of 8"), ("--teacher-size", int, "MDAN target side"),
        ("--teachers", int, "how many MDAN targets"), ("--teacher-steps", int, "MDAN steps per target"),
        ("--teacher-content-weight", float, "how closely a target keeps its input's layout (relu5_1)"),
        ("--batch", int, None), ("--steps", int, "decoder steps (more than a finished run: go on)"),
        ("--lr", float, "Adam step of decoder (beta1 0.5)"), ("--d-lr", float, "Adam step of the discriminator"),
        ("--adv-weight", float, "adversarial term against pixel MSE 1"), ("--exemplar-size", int, None),
        ("--feature-weight", float, "relu1_1..relu4_1 feature term (relative MSE) beside pixel MSE 1"),
        ("--save-every", int, None), ("--seed", int, None), ("--weights", str, "descriptor VGG-19"),
    ]:  # fmt: skip
        a(flag, type=kind, default=None, help=text)
    a("--overwrite", action="store_true", help="start again in a folder that holds another run")
    a("-q", "--quiet", action="store_true", help="no progress bar")
    return p


def cmd_train(argv):
    args = train_parser().parse_args(argv)
    from jtex.mgan_config import MGANConfig

    # every setting the parser has a flag for (-s/--source goes in by name), where the flag was given
    keys = [f.name for f in dataclasses.fields(MGANConfig) if f.name != "source" and hasattr(args, f.name)]
    given = {k: getattr(args, k) for k in keys if getattr(args, k) is not None}
    cfg = MGANConfig.preset(args.preset, source=args.source, **given).validate()
    if not Path(args.source).is_file():
        raise JtexError(f"--source {args.source}: no such file; give an exemplar image")
    if cfg.photo_mode and not Path(cfg.content_dir).is_dir():
        raise JtexError(f"--content-dir {cfg.content_dir}: no such folder; give a folder of photos")
    out = Path(args.output_dir)
    if out.exists() and not out.is_dir():
        raise JtexError(f"--output-dir {out} is a file; name a folder")
    from jtex import mgan

    model = mgan.train(cfg, out, progress=not args.quiet, overwrite=args.overwrite)
    res = json.loads((out / "result.json").read_text())
    use = "--content PHOTO" if model.config.photo_mode else f"--noise {model.config.kinds[0]}"
    use += " (or --content PHOTO)" if model.config.method == "wct" else ""
    print(
        f"jtex: trained {out}/ ({res['steps']} steps, pixel MSE {res['final_pixel_mse']:.4g}, {res['parameters']} "
        f"parameters); use it with: jtex generate {out} {use} --output-dir OUT"
    )


def generate_parser() -> argparse.ArgumentParser:
    from jtex.mgan_config import GENERATE_NOISE

    p = argparse.ArgumentParser(prog="jtex generate", description="Textures from noise, or a stylised photo, "
                                "with a model trained by jtex train-mgan (one pass of the network).")  # fmt: skip
    a = p.add_argument
    a("model", help="a run folder written by jtex train-mgan")
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "--noise",
        choices=GENERATE_NOISE,
        default=None,
        help="decode this noise (default: the model's; for a wct model swap: spot noise, a Gaussian relu4_1 field, "
        "its 3x3 windows swapped for the exemplar's; both tile)",
    )
    src.add_argument("--content", default=None, help="a photo to stylise (a model trained with --content-dir)")
    a("--size", nargs=2, type=int, default=(512, 512), metavar=("W", "H"), help="multiples of 8 (noise)")
    a("--count", type=int, default=4, help="textures to make (noise)")
    a("--seed", type=int, default=0)
    a("--max-size", type=int, default=1024, help="shrink a --content photo whose longer side is over this")
    a("--output-dir", required=True, help="writes sample_000.png ... and sheet.png (or NAME.png) here")
    return p


def cmd_generate(argv):
    args = generate_parser().parse_args(argv)
    w, h = args.size
    if not 1 <= args.count <= 1024:
        raise JtexError(f"--count must be 1..1024, got {args.count}")
    if args.content is not None and not Path(args.content).is_file():
        raise JtexError(f"--content {args.content}: no such file; give a photo")
    out = Path(args.output_dir)
    if out.exists() and not out.is_dir():
        raise JtexError(f"--output-dir {out} is a file; name a folder")
    import time

    import jax

    from jtex import figures, image, mgan

    model = mgan.load(args.model)
    t = time.perf_counter()
    if args.content is not None:
        result = mgan.stylize(model, image.load(args.content), max_side=args.max_size)
        out.mkdir(parents=True, exist_ok=True)
        image.save(out / f"{Path(args.content).stem}.png", result)
        rh, rw = result.shape[:2]
        print(f"jtex: wrote {out / (Path(args.content).stem + '.png')} ({rw}x{rh}, {time.perf_counter() - t:.2f} s)")
        return
    images = mgan.generate(model, jax.random.key(args.seed), (args.count, h, w), noise=args.noise)
    seconds = time.perf_counter() - t
    out.mkdir(parents=True, exist_ok=True)
    for i, im in enumerate(images):
        image.save(out / f"sample_{i:03d}.png", im)
    image.save(out / "sheet.png", figures.contact_sheet(list(images)))
    print(f"jtex: wrote {args.count} texture(s) {w}x{h} to {out}/ ({seconds:.2f} s with compilation)")


COMMANDS = {"mdan": cmd_mdan, "train-mgan": cmd_train, "generate": cmd_generate}
