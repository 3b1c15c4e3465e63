"""VGG's 3x3 convolutions on CPU through oneDNN's Winograd kernels (an XLA FFI custom call).

XLA:CPU computes a 3x3 convolution directly and already near this CPU's peak
(about 184 GFLOP/s on 2 AVX-512 cores for a 64-channel layer at 512²).
oneDNN's Winograd F(4x4, 3x3) kernels do the same layer with 2.25-4x fewer
multiplications: VGG's 64-256-channel layers ran 2-2.5x faster here (relative
error 1-3e-6 against XLA's). jtex compiles ``native/onednn_conv.cc`` once per
source, jaxlib and oneDNN version into ``$JTEX_CACHE_DIR/native`` (default
``~/.cache/jtex/native``) and uses it for :func:`jtex.vgg.features` on the
CPU backend in float32, when it can:

* oneDNN's headers and library (Debian/Ubuntu: ``apt-get install libdnnl-dev``)
  and a C++17 compiler (``$CXX``, else ``c++``/``g++``) are present;
* every convolution up to the deepest layer asked for has a multiple of 16
  output channels (all of VGG-16/19; not the tiny test networks).

Otherwise XLA's own convolutions run, as before, with the same results up to
float rounding. ``JTEX_CONV=xla`` turns the oneDNN path off; ``JTEX_CONV=onednn``
makes its absence an error instead of a silent fallback. :func:`status` says
which path runs and why; run folders record it (``versions()["conv"]``).

Layout: maps after the first convolution stay in oneDNN's blocked ``nChw16c``
layout, held as float32 arrays of shape (N * C/16, H, W, 16). Pooling, ReLU,
cropping and padding act on that shape as on NHWC; :func:`to_nhwc` converts a
map that is returned. Gradients flow to the input through oneDNN's backward
convolution; gradients to the kernel and bias (unused by jtex, which never
trains VGG) are XLA's, and XLA drops them when nothing reads them.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import jax

SOURCE = Path(__file__).with_name("native") / "onednn_conv.cc"
MODES = ("auto", "onednn", "xla")
_TARGETS = {"jtex_onednn_conv_fwd": "JtexOnednnConvFwd", "jtex_onednn_conv_bwd": "JtexOnednnConvBwd"}


def mode() -> str:
    """``JTEX_CONV``: ``auto`` (default: oneDNN where it builds), ``onednn`` (required) or ``xla``."""
    m = os.environ.get("JTEX_CONV", "auto").strip().lower() or "auto"
    if m not in MODES:
        from jtex.errors import JtexError

        raise JtexError(f"JTEX_CONV={m!r} is not one of {', '.join(MODES)}: unset it or pick one")
    return m


def native_dir() -> Path:
    """Where compiled native code is kept: beside the XLA cache (``$JTEX_CACHE_DIR/native``)."""
    from jtex import runtime

    return runtime.cache_dir().parent / "native"


def _compiler() -> str | None:
    return os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")


def _key(include: str, cxx: str | None) -> str:
    """Source, jaxlib, oneDNN's version header (absent: another key), the XLA headers' and the compiler's paths."""
    import jaxlib

    h = hashlib.sha256(SOURCE.read_bytes())
    h.update(f"{jaxlib.__version__}|{cxx}".encode())
    for header in ("/usr/include/oneapi/dnnl/dnnl_version.h", "/usr/local/include/oneapi/dnnl/dnnl_version.h"):
        if os.path.isfile(header):
            h.update(Path(header).read_bytes())
    h.update(include.encode())
    return h.hexdigest()[:16]


def _build() -> Path:
    """The compiled library's path, compiling it on first use; raises RuntimeError saying why not."""
    include, cxx = jax.ffi.include_dir(), _compiler()
    out = native_dir() / _key(include, cxx) / "libjtex_onednn.so"
    failed = out.with_name("failed.txt")  # a failed build is not retried until oneDNN's headers change the key
    if out.is_file():
        return out
    if failed.is_file():
        raise RuntimeError(failed.read_text().strip())
    if cxx is None or shutil.which(cxx) is None:
        raise RuntimeError(f"no C++ compiler{f' {cxx!r}' if cxx else ''} (set CXX or install g++)")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".so.part")
    os.close(fd)
    cmd = [cxx, "-O2", "-std=c++17", "-shared", "-fPIC", "-w", f"-I{include}", str(SOURCE), "-o", tmp, "-ldnnl"]
    try:
        print("jtex: compiling oneDNN convolutions (once, a few seconds)", file=sys.stderr, flush=True)
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            first = next((ln for ln in r.stderr.splitlines() if "error" in ln), r.stderr.strip()[:200])
            if "dnnl.hpp" in r.stderr or "-ldnnl" in r.stderr or "cannot find" in r.stderr:
                first = "oneDNN not found (Debian/Ubuntu: apt-get install libdnnl-dev)"
            failed.write_text(first + "\n")
            raise RuntimeError(first)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


@functools.cache
def _load() -> tuple[bool, str]:
    """(usable, description): build and register the custom calls once per process."""
    if mode() == "xla":
        return False, "xla (JTEX_CONV=xla)"
    try:
        path = _build()
        lib = ctypes.cdll.LoadLibrary(str(path))
        for target, symbol in _TARGETS.items():
            jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(lib, symbol)), platform="cpu")
        v = lib.jtex_onednn_version()
        return True, f"onednn {v // 10000}.{v // 100 % 100}.{v % 100} (winograd)"
    except (OSError, RuntimeError, subprocess.SubprocessError, AttributeError) as e:
        if mode() == "onednn":
            from jtex.errors import JtexError

            raise JtexError(f"JTEX_CONV=onednn but oneDNN convolutions are unavailable: {e}") from None
        return False, f"xla (oneDNN unavailable: {e})"


def status() -> str:
    """Which convolutions :func:`jtex.vgg.features` runs here in float32, and why."""
    if mode() != "xla" and jax.default_backend() != "cpu":
        return f"xla ({jax.default_backend()} backend)"
    return _load()[1]


def hint() -> str | None:
    """A one-line tip when XLA's convolutions run on CPU only because oneDNN could not be built, else None."""
    if mode() != "auto" or jax.default_backend() != "cpu" or _load()[0]:
        return None
    return (
        f"convolutions: {status()}; with oneDNN (Debian/Ubuntu: apt-get install libdnnl-dev g++) "
        "CPU synthesis runs about 2x faster (README: Install)"
    )


def usable(dtype, couts) -> bool:
    """Whether a float32 forward pass on the CPU backend with these output channel counts runs here."""
    import jax.numpy as jnp

    if mode() == "xla" or jax.default_backend() != "cpu":
        return False
    if jnp.dtype(dtype) != jnp.float32 or any(c % 16 for c in couts):
        return False
    return _load()[0]


def to_nhwc(x, n: int):
    """A blocked (N * C/16, H, W, 16) map as (N, H, W, C)."""
    rows, h, w, _ = x.shape
    return x.reshape(n, rows // n, h, w, 16).transpose(0, 2, 3, 1, 4).reshape(n, h, w, -1)


def to_blocked(x):
    """An (N, H, W, C) map, C a multiple of 16, as blocked (N * C/16, H, W, 16)."""
    n, h, w, c = x.shape
    return x.reshape(n, h, w, c // 16, 16).transpose(0, 3, 1, 2, 4).reshape(n * c // 16, h, w, 16)


def conv(x, kernel, bias, pad: int, blocked: bool):
    """3x3 stride-1 convolution with ``pad`` zeros on each side; the output is blocked.

    x: blocked (N * C/16, H, W, 16) when ``blocked``, else (N, H, W, C); kernel HWIO; bias (Cout,).
    """
    y = _conv(x, kernel, bias, pad, blocked)
    return y if blocked else to_blocked(y)


def _call(target, out_shape, *args, pad, blocked, cin):
    import jax.numpy as jnp
    import numpy as np

    out = jax.ShapeDtypeStruct(out_shape, jnp.float32)
    attrs = dict(pad=np.int64(pad), cin=np.int64(cin), blocked=bool(blocked), winograd=True)
    return jax.ffi.ffi_call(target, out, vmap_method="expand_dims")(*args, **attrs)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _conv(x, kernel, bias, pad: int, blocked: bool):
    """The custom call: output in the input's layout."""
    rows, h, w, _ = x.shape
    cin, cout = kernel.shape[2], kernel.shape[3]
    if blocked:
        shape = (rows // (cin // 16) * (cout // 16), h + 2 * pad - 2, w + 2 * pad - 2, 16)
    else:
        shape = (rows, h + 2 * pad - 2, w + 2 * pad - 2, cout)
    return _call("jtex_onednn_conv_fwd", shape, x, kernel, bias, pad=pad, blocked=blocked, cin=cin)


def _conv_fwd(x, kernel, bias, pad, blocked):
    return _conv(x, kernel, bias, pad, blocked), (x, kernel)


def _conv_bwd(pad, blocked, res, g):
    x, kernel = res
    cin = kernel.shape[2]
    dx = _call("jtex_onednn_conv_bwd", x.shape, g, kernel, pad=pad, blocked=blocked, cin=cin)
    # The kernel's and bias's gradients, for completeness (XLA removes them when unused).
    if blocked:
        n = x.shape[0] // (cin // 16)
        x, g = to_nhwc(x, n), to_nhwc(g, n)

    def plain(k):
        return jax.lax.conv_general_dilated(
            x, k, (1, 1), [(pad, pad), (pad, pad)], dimension_numbers=("NHWC", "HWIO", "NHWC")
        )

    dk = jax.vjp(plain, kernel)[1](g)[0]
    return dx, dk, g.sum(axis=(0, 1, 2))


_conv.defvjp(_conv_fwd, _conv_bwd)
