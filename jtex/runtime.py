"""Process-wide settings jtex applies: XLA:CPU's convolution library, huge pages, the compilation cache.

**Convolutions on CPU.** Importing jtex adds
``--xla_cpu_experimental_ynn_fusion_type=`` to ``XLA_FLAGS`` (unless the flag
is there already, or ``JTEX_XLA_CPU_DEFAULTS=0``): XLA:CPU then runs
convolutions through its Eigen kernels instead of YNNPACK fusions, which run
the convolutions jtex needs 2-5x slower on x86 (measured on a 2-core AVX2
CPU, jax 0.10.2: a 3x3 48-channel convolution at 512² in 117 ms instead of
270 ms; at 256² with 40 channels 18 ms instead of 89 ms). The flag only
matters on CPU and is read when JAX starts its CPU backend, so it applies
when jtex is imported before the first JAX computation of the process.

**Huge pages for big arrays (Linux).** glibc hands each allocation over 32 MB
(a 512² 64-channel map is 67 MB) fresh pages from the kernel, and the process
faults each 4 KB page in on first touch, on every evaluation. With glibc's
``glibc.malloc.hugetlb=1`` tunable it asks for transparent huge pages (2 MB)
instead: one evaluation of Snelgrove's objective at 512² 'valid' went from
0.76-0.78 s to 0.62-0.65 s (2-core AMD EPYC, oneDNN convolutions). glibc reads
tunables only when a process starts, so the ``jtex`` command (and ``run.py``,
``python -m jtex``) restarts itself once with it added to ``GLIBC_TUNABLES``,
before anything heavy is imported; ``JTEX_HUGEPAGES=0`` turns that off. From
Python, start the interpreter with ``GLIBC_TUNABLES=glibc.malloc.hugetlb=1``.
Nothing happens where it cannot help: not Linux, glibc older than 2.35, or
transparent huge pages set to ``never``.

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
import sys
from pathlib import Path

_configured = False
XLA_CPU_FLAG = "--xla_cpu_experimental_ynn_fusion_type="


def xla_cpu_defaults() -> None:
    """Add jtex's XLA:CPU flag to ``XLA_FLAGS`` (see the module docstring); called on ``import jtex``."""
    if _off("JTEX_XLA_CPU_DEFAULTS"):
        return
    flags = os.environ.get("XLA_FLAGS", "")
    if XLA_CPU_FLAG.rstrip("=") not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {XLA_CPU_FLAG}".strip()


HUGEPAGES = "glibc.malloc.hugetlb=1"


def _off(name: str) -> bool:
    return os.environ.get(name, "1").strip().lower() in ("0", "false", "no", "off")


def hugepage_env() -> dict | None:
    """The environment with glibc's huge-page tunable added, or None where it is there, off or of no use."""
    if not sys.platform.startswith("linux") or _off("JTEX_HUGEPAGES"):
        return None
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if "glibc.malloc.hugetlb" in tunables:
        return None
    libc = (os.confstr("CS_GNU_LIBC_VERSION") or "") if hasattr(os, "confstr") else ""
    try:
        if not libc.startswith("glibc ") or tuple(map(int, libc.split()[1].split(".")[:2])) < (2, 35):
            return None
    except ValueError:
        return None
    try:
        if "[never]" in Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text():
            return None
    except OSError:
        pass
    return {**os.environ, "GLIBC_TUNABLES": f"{tunables}:{HUGEPAGES}" if tunables else HUGEPAGES}


def restart_with_hugepages() -> None:
    """Replace this process by the same command with :data:`HUGEPAGES` in ``GLIBC_TUNABLES`` (see above).

    Only for a command's own process (the ``jtex`` entry points), before heavy imports; returns
    without doing anything where :func:`hugepage_env` says so or the restart cannot be made.
    """
    env, argv = hugepage_env(), getattr(sys, "orig_argv", None)
    if env is None or not argv or not sys.executable:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(sys.executable, argv, env)
    except OSError:
        return


def cache_dir() -> Path:
    base = os.environ.get("JTEX_CACHE_DIR")
    if base:
        return Path(base).expanduser() / "xla"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "jtex" / "xla"


def cache_enabled() -> bool:
    return not _off("JTEX_COMPILATION_CACHE")


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
