"""What a finished synthesis hands back and writes: cropped images, the run folder's outputs.

``result.json`` holds the final losses, the work done, the optimiser's stop
message, and for every image its spectrum comparison with its exemplar and
its border contrast (:mod:`jtex.spectra`), so grain or a flat frame shows as
a number next to the loss.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from jtex import colour, figures, image, spectra
from jtex.choices import INIT_MODES
from jtex.config import SynthConfig
from jtex.problem import Problem, SynthResult


def finalise(problem: Problem, x) -> np.ndarray:
    """Crop the margin, make grey exemplars' outputs exactly grey, match histograms: (B*F, H, W, 3)."""
    cfg = problem.cfg
    images = problem.crop(x).reshape((-1, cfg.output_height, cfg.output_width, 3))
    if problem.spec.grey:
        images = colour.to_grey(images)
    if cfg.match_histogram:
        refs = (
            [problem.sources[i] for i in np.repeat(problem.src_index, cfg.count)]
            if cfg.separate
            else [np.concatenate([s.reshape(-1, 3) for s in problem.sources])[:, None]] * len(images)
        )
        images = np.stack([colour.match_histogram(im, ref) for im, ref in zip(images, refs)])
    return images


def report(problem: Problem, res: SynthResult) -> dict:
    """The numbers ``result.json`` holds: losses, work done, and how each image compares with its exemplar."""
    per_image = np.repeat(problem.src_index, problem.cfg.count)
    return {
        "losses": [float(v) for v in np.ravel(res.losses)],
        "iterations": res.iterations,
        "evaluations": res.evaluations,
        "seconds": round(res.seconds, 3),
        "optimiser_started_at": res.started_at,
        "optimizer_message": res.message,
        "sources": [str(p) for p in problem.paths],
        "margin": problem.margin,
        "trail": list(problem.trail),  # extra px below and to the right (jtex.synth.frame)
        "spectrum": [spectra.spectrum_report(problem.sources[i], im) for i, im in zip(per_image, res.images)],
        "border_contrast": [round(spectra.ring_contrast(im), 4) for im in res.images],
    }


def write_outputs(run_dir, problem: Problem, res: SynthResult):
    """Images, sheet or animation, loss curve, and ``result.json`` last."""
    from jtex import animation

    cfg, imgs = problem.cfg, res.images
    if cfg.count > 1:
        animation.save_outputs(run_dir.path, imgs, cfg)
    elif len(imgs) == 1:
        run_dir.save_image("output.png", imgs[0])
    else:
        for i, im in enumerate(imgs):
            run_dir.save_image(f"output_{i:03d}.png", im)
        run_dir.save_image("sheet.png", figures.contact_sheet(list(imgs), exemplar=problem.sources[0]))
    figures.plot_loss(run_dir.path / "loss.png", run_dir.metrics())
    run_dir.write_result(report(problem, res))


def content_digests(problem: Problem) -> dict:
    """sha256 of what the run reads besides its settings: source files, the --init image, the weights.

    Part of the settings a run folder checks on resume, so an exemplar edited in
    place is never resumed against (or answered with) a run made from the old one.
    """
    from jtex import weights

    cfg = problem.cfg
    sources = [weights.sha256_file(p) if p.is_file() else None for p in problem.paths]
    init = weights.sha256_file(cfg.init) if cfg.init not in INIT_MODES else None
    meta = problem.weights_meta
    return {
        "sources": sources,
        "init": init,
        "weights": meta.get("content_sha256") or meta.get("npz_sha256") or meta.get("source_sha256"),
    }


def open_run_dir(output_dir, problem: Problem, *, overwrite: bool = False, mesh: dict | None = None):
    from jtex import rundir, sharding

    cfg = problem.cfg
    settings = cfg.to_dict() | {"content_sha256": content_digests(problem)}
    return rundir.RunDir(
        output_dir,
        settings,
        seed=cfg.seed,
        weights=problem.weights_meta,
        cosmetic=("save_every", "fps"),
        overwrite=overwrite,
        manifest={"mesh": mesh or sharding.describe(np.shape(problem.x0))},
    )


def finished(path: Path, cfg: SynthConfig) -> bool:
    """Whether ``path`` holds a finished run of ``cfg`` (its settings, save_every and fps aside, and a result)."""
    try:
        settings = json.loads((path / "config.json").read_text())["settings"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    settings.pop("content_sha256", None)
    mine = json.loads(json.dumps(cfg.to_dict()))
    same = all(settings.get(k) == v for k, v in mine.items() if k not in ("save_every", "fps"))
    return same and (path / "result.json").is_file()


def load_finished(run_dir, cfg: SynthConfig) -> SynthResult:
    result = run_dir.read_result()
    if cfg.count > 1:
        files = sorted(run_dir.path.glob("frame_*.png"))
    elif (run_dir.path / "output.png").is_file():
        files = [run_dir.path / "output.png"]
    else:
        files = sorted(run_dir.path.glob("output_*.png"))
    return SynthResult(
        np.stack([image.load(f) for f in files]),
        np.asarray(result["losses"]),
        result["iterations"],
        result["evaluations"],
        result["seconds"],
        cfg,
        result.get("optimizer_message", ""),
    )
