"""The results file of an experiment: read it, reprint its table, or stamp it with this machine before a run."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from pathlib import Path


def start(path: Path, markdown: Callable[[dict], str], reprint: bool, entries: str | None = "exemplars") -> dict | None:
    """The results so far, stamped with this machine and jax; None after printing the table when ``reprint``.

    ``entries``: the key of the per-item dict the experiment fills (made empty if missing), or None for none.
    """
    res = json.loads(path.read_text()) if path.exists() else {}
    if reprint:
        print(markdown(res))
        return None
    import jax

    dev = jax.devices()[0]
    res.update(machine=f"{dev.platform}: {dev.device_kind}, {os.cpu_count()} CPU cores", jax=jax.__version__)
    if entries is not None:
        res.setdefault(entries, {})
    return res


def study(path: Path, markdown: Callable[[dict], str], exemplars: list[str], extra=None):
    """A study's command line (``--exemplars --size --iters --markdown``, and what ``extra(parser)`` adds) and its
    results file, stamped and holding ``size`` and ``iters``: ``(args, results)``, or None after ``--markdown``."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--exemplars", nargs="+", default=exemplars)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--markdown", action="store_true")
    if extra is not None:
        extra(ap)
    args = ap.parse_args()
    res = start(path, markdown, args.markdown)
    if res is None:
        return None
    res.update(size=args.size, iters=args.iters)
    return args, res
