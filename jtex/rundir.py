"""A self-describing, resumable run folder, for any job that runs long (synthesis, training).

    DIR/config.json      settings, seed, command, versions, device, weights sha256 (written first)
    DIR/metrics.jsonl    one JSON line per step
    DIR/checkpoints/     orbax checkpoint: a JSON meta and a pytree of arrays (latest only)
    DIR/*.png            named images (outputs, snapshots, curves)
    DIR/result.json      the final numbers; its presence marks the run finished

A :class:`RunDir` writes these; the job decides what goes in them (see
:mod:`jtex.synth`). Reopening a folder with other settings is refused.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np

from jtex import files, image
from jtex.errors import JtexError


def versions() -> dict:
    import flax
    import optax

    import jtex
    from jtex import onednn

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
        "conv": onednn.status(),
    }


class RunDir:
    """A run folder: settings checked on reuse, metrics, checkpoints, images, a result.

    Args:
      path: the folder (made if missing).
      settings: JSON-able dict of everything that decides what the run
        computes; a folder holding other settings is refused.
      seed: the run's seed, written to the manifest.
      weights: metadata of the weights used (name, arch, sha256s).
      cosmetic: setting names that only change how a run reports (ignored
        when comparing with an existing folder).
      manifest: more entries for config.json (how the run is laid out:
        ``mesh``), not compared on reuse.
      added: settings added to jtex after folders were written without them,
        each with the value those older runs computed with: a folder that
        lacks one is compared as if it held that value.
    """

    def __init__(
        self,
        path,
        settings: dict,
        *,
        seed: int,
        weights: dict | None = None,
        cosmetic: tuple[str, ...] = (),
        overwrite: bool = False,
        manifest: dict | None = None,
        added: dict | None = None,
    ):
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise JtexError(f"--output-dir {self.path} is a file; name a folder")
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock = lock_folder(self.path)
        self.config_path = self.path / "config.json"
        if overwrite:
            _clear(self.path)
        # A new attempt: the marker of an earlier failure goes, and so do checkpoint
        # folders orbax left half-written when a process was killed mid-save.
        (self.path / "FAILED").unlink(missing_ok=True)
        for tmp in (self.path / "checkpoints").glob("*.orbax-checkpoint-tmp*"):
            shutil.rmtree(tmp, ignore_errors=True)
        settings = json.loads(json.dumps(settings))
        if self.config_path.is_file():
            try:
                old = (added or {}) | json.loads(self.config_path.read_text())["settings"]
            except (ValueError, KeyError, TypeError):
                raise JtexError(f"{self.config_path} is unreadable; delete it or use another --output-dir") from None
            diff = sorted(k for k in set(old) | set(settings) if k not in cosmetic and old.get(k) != settings.get(k))
            if diff == ["content_sha256"]:
                raise JtexError(
                    f"{self.path} holds a run made from other file contents (a source, --init image or weights "
                    "file changed since); use a new --output-dir, or --overwrite to start it again"
                )
            if diff:
                raise JtexError(
                    f"{self.path} holds a run with other settings ({', '.join(diff)}); "
                    "use a new --output-dir, or --overwrite to start it again"
                )
        else:
            manifest = {
                "settings": settings,
                "seed": seed,
                "command": sys.argv,
                "versions": versions(),
                "weights": {k: (weights or {}).get(k) for k in ("name", "arch", "source_sha256", "npz_sha256")},
                **(manifest or {}),
            }
            files.atomic_write_text(self.config_path, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        self._manager = None

    def close(self):
        """Release the folder's lock (also released when the process ends)."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    @property
    def finished(self) -> bool:
        """``result.json`` exists: the run ended and wrote its outputs."""
        return (self.path / "result.json").is_file()

    # ---- checkpoints -----------------------------------------------------

    @property
    def manager(self):
        if self._manager is None:
            import jax
            import orbax.checkpoint as ocp

            # Under jax.distributed (jtex batch over processes) each process checkpoints its own folder alone.
            rank, many = jax.process_index(), jax.process_count() > 1
            alone = ocp.options.MultiprocessingOptions(primary_host=rank, active_processes={rank})
            if many:
                (self.path / "checkpoints").mkdir(exist_ok=True)
            self._manager = ocp.CheckpointManager(
                (self.path / "checkpoints").absolute(),
                options=ocp.CheckpointManagerOptions(
                    max_to_keep=1,
                    enable_async_checkpointing=False,
                    **({"multiprocessing_options": alone, "create": False} if many else {}),
                ),
                item_names=("meta", "arrays"),
            )
        return self._manager

    def checkpoint(self, step: int, meta: dict, arrays: dict):
        """Save ``arrays`` (a pytree) with a JSON ``meta`` as checkpoint ``step``; keep only the latest.

        A checkpoint of the same step is replaced (e.g. a trainer's final, calibrated state).
        """
        import jax
        import orbax.checkpoint as ocp

        if jax.process_count() > 1:  # host-local device arrays are refused there; numpy is this process's own
            arrays = jax.device_get(arrays)
        try:
            if step in self.manager.all_steps():
                self.manager.delete(step)
            self.manager.save(
                step,
                args=ocp.args.Composite(meta=ocp.args.JsonSave(meta), arrays=ocp.args.StandardSave(arrays)),
                force=True,
            )
            self.manager.wait_until_finished()
        except OSError as e:
            raise JtexError(
                f"cannot write a checkpoint in {self.path / 'checkpoints'}: {e.strerror}; free space or use "
                "another --output-dir (rerun to resume from the last checkpoint)"
            ) from None

    def restore(self, target: Callable[[dict], dict | None]) -> tuple[dict, dict] | None:
        """The latest checkpoint as ``(meta, arrays)``, or None.

        ``target(meta)`` returns the pytree of arrays to restore into (shapes
        and dtypes), or None when the checkpoint cannot be used.
        """
        if not (self.path / "checkpoints").is_dir():
            return None
        import orbax.checkpoint as ocp

        step = self.manager.latest_step()
        if step is None:
            return None
        meta = self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
        like = target(meta)
        if like is None:
            return None
        arrays = self.manager.restore(step, args=ocp.args.Composite(arrays=ocp.args.StandardRestore(like)))
        return meta, arrays["arrays"]

    # ---- metrics, images, result -----------------------------------------

    def log(self, records: list[dict]):
        """Append one JSON line per record to ``metrics.jsonl``."""
        try:
            with open(self.path / "metrics.jsonl", "a") as f:
                f.write("".join(json.dumps(r) + "\n" for r in records))
        except OSError as e:
            raise JtexError(
                f"cannot append to {self.path / 'metrics.jsonl'}: {e.strerror}; free space or use another "
                "--output-dir (rerun to resume)"
            ) from None

    def metrics(self) -> list[dict]:
        """The records of ``metrics.jsonl`` (a line cut by a kill is skipped)."""
        path = self.path / "metrics.jsonl"
        if not path.is_file():
            return []
        out = []
        for line in path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def keep_metrics(self, keep: Callable[[dict], bool]):
        """Rewrite ``metrics.jsonl`` with only the records ``keep`` accepts (on resume)."""
        if (self.path / "metrics.jsonl").is_file():
            files.atomic_write_text(
                self.path / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in self.metrics() if keep(r))
            )

    def save_image(self, name: str, img: np.ndarray) -> Path:
        """Write an (H, W, 3) image in [0, 1] to ``name`` inside the folder."""
        path = self.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return image.save(path, img)

    def note_failed(self, message: str):
        (self.path / "FAILED").write_text(message + "\n")

    def write_result(self, result: dict):
        """Write ``result.json``, last: its presence marks the run finished."""
        files.atomic_write_text(self.path / "result.json", json.dumps(result, indent=2) + "\n")

    def read_result(self) -> dict:
        return json.loads((self.path / "result.json").read_text())


def lock_folder(path: Path):
    """An exclusive OS lock on ``path/.lock`` for the run's life: a second process gets one line, not a race."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        return None
    f = open(path / ".lock", "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        holder = f.read().strip() or "another process"
        f.close()
        raise JtexError(
            f"{path} is in use by a running jtex ({holder}); wait for it to finish or use another --output-dir"
        ) from None
    f.seek(0)
    f.truncate()
    f.write(f"pid {os.getpid()}\n")
    f.flush()
    return f


# What a run folder holds; --overwrite removes these and nothing else.
_RUN_FILES = (
    "config.json",
    "metrics.jsonl",
    "result.json",
    "FAILED",
    "loss.png",
    "output.png",
    "sheet.png",
    "animation.gif",
    "animation.webp",
    "exemplar.png",
    "samples.png",
    "teachers.png",
)
_RUN_GLOBS = ("output_*.png", "frame_*.png")
_RUN_DIRS = ("checkpoints", "snapshots", "samples", "teachers")  # teachers: an MGAN's MDAN runs


def _clear(path: Path):
    for name in _RUN_DIRS:
        shutil.rmtree(path / name, ignore_errors=True)
    for name in _RUN_FILES:
        (path / name).unlink(missing_ok=True)
    for pattern in _RUN_GLOBS:
        for f in path.glob(pattern):
            f.unlink(missing_ok=True)
