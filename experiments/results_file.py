"""The results file of an experiment: read it, reprint its table, or stamp it with this machine before a run."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path


def start(path: Path, markdown: Callable[[dict], str], reprint: bool) -> dict | None:
    """The results so far, stamped with this machine and jax; None after printing the table when ``reprint``."""
    res = json.loads(path.read_text()) if path.exists() else {}
    if reprint:
        print(markdown(res))
        return None
    import jax

    dev = jax.devices()[0]
    res.update(machine=f"{dev.platform}: {dev.device_kind}, {os.cpu_count()} CPU cores", jax=jax.__version__)
    res.setdefault("exemplars", {})
    return res
