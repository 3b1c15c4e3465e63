"""A self-describing, resumable run folder.

    DIR/config.json      every setting, seed, versions, device, weights sha256 (written first)
    DIR/metrics.jsonl    one line per iteration: stage, iteration, loss(es), seconds
    DIR/snapshots/       iter_NNNNNN.png every save_every iterations
    DIR/checkpoints/     orbax checkpoint of the image(s) and optimiser state (latest only)
    DIR/output.png       or output_000.png ... and sheet.png for a batch
    DIR/loss.png         the loss curve
    DIR/result.json      final losses and timings; its presence marks the run finished

Running the same command on the same DIR resumes from the checkpoint; a
finished run is not redone; a different config in the same DIR is refused.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from jtex import image
from jtex.config import SynthConfig
from jtex.errors import JtexError

# Settings that change how a run reports, not what it computes.
_COSMETIC = {"save_every", "fps"}


def _atomic_write_text(path: Path, text: str):
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def versions() -> dict:
    import flax
    import optax

    import jtex

    dev = jax.devices()[0]
    return {
        "jtex": jtex.__version__,
        "jax": jax.__version__,
        "jaxlib": getattr(jax.lib, "__version__", None) or __import__("jaxlib").__version__,
        "optax": optax.__version__,
        "flax": flax.__version__,
        "numpy": np.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "device": f"{dev.platform}: {dev.device_kind}",
        "device_count": jax.device_count(),
    }


class Checkpoint(NamedTuple):
    stage: int
    iteration: int
    x: Any
    state: Any
    seconds: float


class RunDir:
    def __init__(self, path, cfg: SynthConfig, weights_meta: dict):
        self.path = Path(path)
        self.cfg = cfg
        if self.path.exists() and not self.path.is_dir():
            raise JtexError(f"--output-dir {self.path} is a file; name a folder")
        self.path.mkdir(parents=True, exist_ok=True)
        self.snapshots = self.path / "snapshots"
        self.config_path = self.path / "config.json"
        settings = cfg.to_dict()
        if self.config_path.is_file():
            try:
                old = json.loads(self.config_path.read_text())["settings"]
            except (ValueError, KeyError):
                raise JtexError(f"{self.config_path} is unreadable; delete it or use another --output-dir") from None
            diff = sorted(k for k in set(old) | set(settings)
                          if k not in _COSMETIC and old.get(k) != json.loads(json.dumps(settings.get(k))))
            if diff:
                raise JtexError(
                    f"{self.path} holds a run with other settings ({', '.join(diff)}); "
                    "use another --output-dir or delete that folder"
                )
        else:
            manifest = {
                "settings": settings,
                "seed": cfg.seed,
                "command": sys.argv,
                "versions": versions(),
                "weights": {k: weights_meta.get(k) for k in ("name", "arch", "source_sha256", "npz_sha256")},
            }
            _atomic_write_text(self.config_path, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        self.finished = (self.path / "result.json").is_file()
        self._manager = None

    # ---- checkpoints -----------------------------------------------------

    @property
    def manager(self):
        if self._manager is None:
            import orbax.checkpoint as ocp

            self._manager = ocp.CheckpointManager(
                (self.path / "checkpoints").absolute(),
                options=ocp.CheckpointManagerOptions(max_to_keep=1, enable_async_checkpointing=False),
                item_names=("meta", "arrays"),
            )
        return self._manager

    def checkpoint(self, stage: int, iteration: int, x, state, seconds: float, cfg: SynthConfig):
        import orbax.checkpoint as ocp

        x = np.asarray(x)
        self._snapshot(iteration, x)
        step = stage * cfg.max_iter + iteration
        arrays = {"x": x, "state": state} if state is not None else {"x": x}
        meta = {"stage": stage, "iteration": iteration, "seconds": seconds, "has_state": state is not None,
                "x_shape": list(x.shape)}
        self.manager.save(step, args=ocp.args.Composite(meta=ocp.args.JsonSave(meta),
                                                        arrays=ocp.args.StandardSave(arrays)), force=True)
        self.manager.wait_until_finished()

    def restore(self, like_state=None) -> Checkpoint | None:
        """The latest checkpoint; ``like_state(x)`` builds a state tree to restore into."""
        if not (self.path / "checkpoints").is_dir():
            return None
        import orbax.checkpoint as ocp

        step = self.manager.latest_step()
        if step is None:
            return None
        meta = self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
        x_like = np.zeros(meta["x_shape"], np.float32)
        target = {"x": x_like}
        if meta["has_state"]:
            if like_state is None:
                return None
            target["state"] = like_state(x_like, meta["stage"])
        arrays = self.manager.restore(step, args=ocp.args.Composite(arrays=ocp.args.StandardRestore(target)))
        arrays = arrays["arrays"]
        self._truncate_metrics(meta["stage"], meta["iteration"])
        return Checkpoint(meta["stage"], meta["iteration"], np.asarray(arrays["x"]), arrays.get("state"),
                          meta["seconds"])

    # ---- metrics and images ----------------------------------------------

    def log(self, stage: int, iteration: int, losses: np.ndarray, seconds: float):
        """losses (k, B): the last k iterations' per-image losses, ending at ``iteration``."""
        with open(self.path / "metrics.jsonl", "a") as f:
            first = iteration - len(losses) + 1
            for i, row in enumerate(np.asarray(losses, np.float64)):
                rec = {"stage": stage, "iteration": first + i, "loss": float(np.nansum(row)),
                       "seconds": round(seconds, 4)}
                if row.size > 1:
                    rec["losses"] = [float(v) for v in row]
                f.write(json.dumps(rec) + "\n")

    def _truncate_metrics(self, stage: int, iteration: int):
        path = self.path / "metrics.jsonl"
        if not path.is_file():
            return
        keep = []
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue  # a line cut by a kill
            if (rec["stage"], rec["iteration"]) <= (stage, iteration):
                keep.append(line)
        _atomic_write_text(path, "".join(s + "\n" for s in keep))

    def metrics(self) -> list[dict]:
        path = self.path / "metrics.jsonl"
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def _snapshot(self, iteration: int, x: np.ndarray):
        imgs = x.reshape((-1,) + x.shape[-3:])
        pic = imgs[0] if len(imgs) == 1 else image.contact_sheet(list(imgs))
        image.save(self.snapshots / f"iter_{iteration:06d}.png", pic)

    def note_nonfinite(self):
        (self.path / "FAILED").write_text("the loss became NaN/Inf; see the last snapshot\n")

    def finish(self, res, sources, paths):
        imgs = res.images
        cfg = self.cfg
        if cfg.count > 1:
            from jtex import animation

            animation.save_outputs(self.path, imgs, cfg)
        elif len(imgs) == 1:
            image.save(self.path / "output.png", imgs[0])
        else:
            for i, im in enumerate(imgs):
                image.save(self.path / f"output_{i:03d}.png", im)
            image.save(self.path / "sheet.png", image.contact_sheet(list(imgs), exemplar=sources[0]))
        plot_loss(self.path / "loss.png", self.metrics())
        result = {
            "losses": [float(v) for v in np.ravel(res.losses)],
            "iterations": res.iterations,
            "evaluations": res.evaluations,
            "seconds": round(res.seconds, 3),
            "sources": [str(p) for p in paths],
        }
        _atomic_write_text(self.path / "result.json", json.dumps(result, indent=2) + "\n")

    def load_result(self):
        from jtex.synth import SynthResult

        result = json.loads((self.path / "result.json").read_text())
        if self.cfg.count > 1:
            files = sorted(self.path.glob("frame_*.png"))
        else:
            files = [self.path / "output.png"] if (self.path / "output.png").is_file() else sorted(
                self.path.glob("output_*.png"))
        images = np.stack([image.load(f) for f in files])
        return SynthResult(images, np.asarray(result["losses"]), result["iterations"], result["evaluations"],
                           result["seconds"], self.cfg)


def plot_loss(path: Path, metrics: list[dict], size=(640, 400)):
    """A log-scale loss curve drawn with Pillow (no plotting dependency)."""
    from PIL import Image, ImageDraw

    w, h = size
    left, right, top, bottom = 70, 20, 20, 40
    im = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(im)
    vals = [(i, m["loss"]) for i, m in enumerate(metrics) if m.get("loss") and np.isfinite(m["loss"]) and m["loss"] > 0]
    d.rectangle([left, top, w - right, h - bottom], outline="black")
    if len(vals) >= 2:
        xs = np.array([v[0] for v in vals], float)
        ys = np.log10([v[1] for v in vals])
        lo, hi = float(ys.min()), float(ys.max())
        hi = hi if hi > lo else lo + 1
        px = left + (xs - xs[0]) / max(xs[-1] - xs[0], 1) * (w - left - right)
        py = top + (hi - ys) / (hi - lo) * (h - top - bottom)
        d.line(list(zip(px.tolist(), py.tolist())), fill=(200, 30, 30), width=2)
        for e in range(int(np.floor(lo)), int(np.ceil(hi)) + 1):
            if lo <= e <= hi:
                y = top + (hi - e) / (hi - lo) * (h - top - bottom)
                d.line([left - 5, y, left, y], fill="black")
                d.text((5, y - 6), f"1e{e}", fill="black")
        d.text((left, h - bottom + 8), f"iterations 0..{len(metrics)}  (loss {vals[-1][1]:.4g} at end)", fill="black")
    d.text((left + 5, top + 5), "loss (log scale)", fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, np.asarray(im, np.float32) / 255.0)
