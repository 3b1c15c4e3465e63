"""A photo MGAN (jtex train-mgan --content-dir): does its output keep the photo's layout and take the style?

    python experiments/mgan_photo.py --model runs/hubble-mgan --photos a.jpg b.png c.png
    python experiments/mgan_photo.py --markdown             # the table of the results file

Each photo (its longer side resized to SIDE) goes through ``jtex.mgan.stylize``. Layout: the content distance
at relu5_1 (MDAN's content layer: ||F(out) - F(photo)||² / ||F(photo)||² with the model's VGG-19) of the
output to its own photo, against the mean distance of the same output to every other photo (resized to its
size): a layout kept is far closer to its own photo. Style: jtex.metrics (ImageNet VGG-16 SWD at image scales
1, 1/2, 1/4, colour) of the output against the exemplar, against the photo's own distance to the exemplar.
Use photos the model was not trained on. Writes experiments/results/mgan_photo.json and, next to the model,
``photo_check.png`` (photos above their stylised outputs).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import results_file  # noqa: E402

RESULTS = ROOT / "experiments" / "results" / "mgan_photo.json"
KEYS = ("swd_s1", "swd_s2", "swd_s4", "colour")
LAYER = "relu5_1"


def run(model_dir: str, photo_paths: list[str], side: int) -> dict:
    import jax.numpy as jnp

    from jtex import figures, image, mdan, metrics, mgan, vgg

    model = mgan.load(model_dir)
    style = mdan.load_style(model.config.teacher(0))
    photos = [image.load(p) for p in photo_paths]
    photos = [image.resize(p, scale=side / max(p.shape[:2])) for p in photos]
    outs = [mgan.stylize(model, p, max_side=None) for p in photos]
    photos = [p[: o.shape[0], : o.shape[1]] for p, o in zip(photos, outs)]  # stylize floors sides to 8

    def feat(x):
        return np.asarray(vgg.features(model.vgg_params, jnp.asarray(x[None]), (LAYER,), pooling="max")[LAYER])

    def dist(f_out, shape, photo):
        photo = image.resize(photo, width=shape[1], height=shape[0]) if photo.shape != shape else photo
        g = feat(photo)
        return float(np.sum((f_out - g) ** 2) / np.sum(g**2))

    rows = {}
    for i, (path, p, o) in enumerate(zip(photo_paths, photos, outs)):
        f_out = feat(o)  # once per output, against its own photo and the others
        others = [dist(f_out, o.shape, q) for j, q in enumerate(photos) if j != i]
        m = metrics.report(style, [o, p], names=["output", "photo"])
        rows[Path(path).name] = {
            "content_own": dist(f_out, o.shape, p), "content_others": float(np.mean(others)),
            "output": {k: m[0][k] for k in KEYS}, "photo": {k: m[1][k] for k in KEYS}, "size": list(o.shape[:2]),
        }  # fmt: skip
    sheet = [image.resize(p, width=side, height=side) for p in photos]
    sheet += [image.resize(o, width=side, height=side) for o in outs]
    image.save(Path(model_dir) / "photo_check.png", figures.contact_sheet(sheet, columns=len(photos)))
    cfg = model.config
    return {"model": model_dir, "source": cfg.source, "content_dir": cfg.content_dir, "side": side, "photos": rows}


def markdown(res: dict) -> str:
    lines = [
        f"Photo MGAN check ({res.get('machine', '?')}, jax {res.get('jax', '?')}): content distance at {LAYER} "
        "to its own photo against the other photos (lower: closer); VGG-16 SWD and colour to the exemplar "
        "of the output against the photo itself.",
        "",
        "| model | photo | content own | content others | swd_s1 out / photo | swd_s2 | swd_s4 | colour |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, e in res.get("models", {}).items():
        for photo, r in e["photos"].items():
            cells = [f"{r['output'][k]:.3g} / {r['photo'][k]:.3g}" for k in KEYS]
            lines.append(f"| {name} | {photo} | {r['content_own']:.3f} | {r['content_others']:.3f} | "
                         + " | ".join(cells) + " |")  # fmt: skip
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--name", default=None, help="the entry's name (default: the model folder's)")
    ap.add_argument("--photos", nargs="+", default=[])
    ap.add_argument("--side", type=int, default=256)
    ap.add_argument("--markdown", action="store_true", help="print the table of the results file and exit")
    args = ap.parse_args()
    res = results_file.start(RESULTS, markdown, args.markdown, entries="models")
    if res is None:
        return
    if not args.model or len(args.photos) < 2:
        raise SystemExit("give --model DIR and at least two --photos")
    res["models"][args.name or Path(args.model).name] = run(args.model, args.photos, args.side)
    RESULTS.write_text(json.dumps(res, indent=2) + "\n")
    print(markdown(res))


if __name__ == "__main__":
    main()
