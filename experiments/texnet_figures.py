"""README figures of a trained Texture Networks generator.

    python run.py train-texnet -s examples/brick.png --output-dir runs/brick-texnet --preset quick
    python experiments/texnet_figures.py runs/brick-texnet --name brick

Writes docs/texnet_<name>.png (exemplar, a 256² sample, that sample tiled 2x2),
docs/texnet_<name>_1024.jpg (a 1024² sample, JPEG to keep the repository small) and docs/texnet_<name>_loss.png
(the training curve), and prints the seconds each sample took.

A stylisation network (trained with --content-dir) gets docs/texnet_<name>.jpg instead: a row per
``--photos`` photo: the style exemplar, the photo, its stylisation at the photo's size.

    python experiments/texnet_figures.py runs/ihc-texnet runs/moon-texnet --name heldout \
        --against /tmp/jtex-bench-texnet

With ``--against`` (the --work folder of ``bench_texnet.py --parts quality``, run on every model
first) it writes docs/texnet_<name>.jpg instead: a row per model: exemplar, two 256² samples (the
quality part's key) and the first optimisation synthesis that part scored them against.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "experiments"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", nargs="+")
    ap.add_argument("--name", required=True)
    ap.add_argument("--against", default=None, help="bench_texnet's --work folder: a comparison row per model")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--photos", nargs="+", default=[str(ROOT / "examples/photos" / n) for n in ("chelsea.jpg", "coffee.jpg")]
    )
    args = ap.parse_args()

    import jax

    from jtex import figures, image, texture_net

    docs = ROOT / "docs"
    if args.against:
        cells = []
        for m in args.model:
            net = texture_net.load(m)
            ex = texture_net.load_exemplar(net.config)  # the array bench_texnet keyed its baseline by
            opt = _optimisation(Path(args.against), net.config.source, ex)
            cells += [ex, *texture_net.sample(net, jax.random.key(123), (2, 256, 256)), opt]
        image.save(docs / f"texnet_{args.name}.jpg", figures.contact_sheet(cells, columns=4))
        return
    args.model = args.model[0]
    net = texture_net.load(args.model)
    ex = image.load(Path(args.model) / "exemplar.png")
    key = jax.random.key(args.seed)
    if net.config.stylization:
        cells = []
        for p in args.photos:
            photo = image.load(p)
            texture_net.stylize(net, photo, key)  # compile
            t = time.perf_counter()
            cells += [ex, photo, texture_net.stylize(net, photo, key)]
            print(f"{p}: {photo.shape[1]}x{photo.shape[0]} stylised in {time.perf_counter() - t:.3f} s")
        image.save(docs / f"texnet_{args.name}.jpg", figures.contact_sheet(cells, columns=3))
        return
    texture_net.sample(net, key, (1, 256, 256))  # compile
    t = time.perf_counter()
    s256 = texture_net.sample(net, key, (1, 256, 256))[0]
    t256 = time.perf_counter() - t
    tiled = np.tile(s256, (2, 2, 1))
    image.save(docs / f"texnet_{args.name}.png", figures.contact_sheet([s256, tiled], exemplar=ex, columns=3))
    texture_net.sample(net, key, (1, 1024, 1024))  # compile
    t = time.perf_counter()
    s1024 = texture_net.sample(net, jax.random.fold_in(key, 1), (1, 1024, 1024))[0]
    t1024 = time.perf_counter() - t
    image.save(docs / f"texnet_{args.name}_1024.jpg", s1024)
    shutil.copyfile(Path(args.model) / "loss.png", docs / f"texnet_{args.name}_loss.png")
    print(f"256² sample {t256:.3f} s, 1024² sample {t1024:.3f} s; wrote docs/texnet_{args.name}*.png")


def _optimisation(work: Path, source: str, ex: np.ndarray) -> np.ndarray:
    """The first optimisation synthesis ``bench_texnet.py --parts quality`` kept in ``work`` for this exemplar."""
    from bench_texnet import optimisation_baseline

    _, cached = optimisation_baseline(source, ex, str(work))
    if not cached.exists():
        raise SystemExit(f"no optimisation synthesis of {source} in {work}; run bench_texnet --parts quality first")
    with np.load(cached) as z:
        return z["images"][0]


if __name__ == "__main__":
    main()
