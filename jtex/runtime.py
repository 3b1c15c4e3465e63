"""Process-wide JAX settings jtex applies: XLA:CPU's convolution library, the persistent compilation cache.

**Convolutions on CPU.** Importing jtex adds
``--xla_cpu_experimental_ynn_fusion_type=`` to ``XLA_FLAGS`` (unless the flag
is there already, or ``JTEX_XLA_CPU_DEFAULTS=0``): XLA:CPU then runs
convolutions through its Eigen kernels instead of YNNPACK fusions, which run
the convolutions jtex needs 2-5x slower on x86 (measured on a 2-core AVX2
CPU, jax 0.10.2: a 3x3 48-channel convolution at 512² in 117 ms instead of
270 ms; at 256² with 40 channels 18 ms instead of 89 ms). The flag only
matters on CPU and is read when JAX starts its CPU backend, so it applies
when jtex is imported before the first JAX computation of the process.

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
XLA_CPU_FLAG = "--xla_cpu_experimental_ynn_fusion_type="


def xla_cpu_defaults() -> None:
    """Add jtex's XLA:CPU flag to ``XLA_FLAGS`` (see the module docstring); called on ``import jtex``."""
    if os.environ.get("JTEX_XLA_CPU_DEFAULTS", "1").strip().lower() in ("0", "false", "no", "off"):
        return
    flags = os.environ.get("XLA_FLAGS", "")
    if XLA_CPU_FLAG.rstrip("=") not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {XLA_CPU_FLAG}".strip()


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
