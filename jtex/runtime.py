"""Process-wide JAX settings jtex applies before compiling: the persistent compilation cache.

XLA compiles each objective for its shapes; on 2 CPU cores that takes several
seconds a run. With the persistent cache a second run of the same shapes (the
same command again, a resumed run, the next seed) loads the compiled program
from disk instead. The cache lives in ``$JTEX_CACHE_DIR/xla`` (default
``~/.cache/jtex/xla``); ``JTEX_COMPILATION_CACHE=0`` (or ``jtex synth
--no-compilation-cache``) turns it off. A cache folder that cannot be written
only costs the speed-up: JAX warns and compiles as usual.
"""

from __future__ import annotations

import os
from pathlib import Path

_configured = False


def cache_dir() -> Path:
    base = os.environ.get("JTEX_CACHE_DIR")
    if base:
        return Path(base).expanduser() / "xla"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "jtex" / "xla"


def cache_enabled() -> bool:
    return os.environ.get("JTEX_COMPILATION_CACHE", "1").strip().lower() not in ("0", "false", "no", "off")


def configure() -> None:
    """Point JAX's persistent compilation cache at jtex's folder, once per process.

    Leaves a cache the user configured for JAX itself
    (``JAX_COMPILATION_CACHE_DIR``) as it is.
    """
    global _configured
    if _configured:
        return
    _configured = True
    import jax

    if not cache_enabled() or jax.config.jax_compilation_cache_dir:
        return
    jax.config.update("jax_compilation_cache_dir", str(cache_dir()))
    # Cache every program that took a noticeable time to compile, however small.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
