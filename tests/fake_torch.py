"""Write PyTorch-format files without torch, for reader tests.

A tiny stand-in ``torch`` module is put in ``sys.modules`` only while
pickling, so the pickles name the same globals that ``torch.save`` writes:
``torch._utils._rebuild_tensor_v2``, ``torch.FloatStorage`` and
``collections.OrderedDict``, and storages go through ``persistent_id``.
"""

import base64
import collections
import contextlib
import io
import pickle
import struct
import sys
import types
import zipfile
import zlib

import numpy as np

MAGIC = 0x1950A86A20F9469CFC6C


class FloatStorage:
    pass


def _rebuild_tensor_v2(*args):
    raise AssertionError("never called while writing")


class Tensor:
    """A tensor as ``torch.save`` writes it: a view of the storage ``key``.

    ``offset``, ``size``, ``stride`` (elements) and the storage's stated
    element count ``numel`` default to those of the contiguous ``data``;
    crafted files set them to anything.
    """

    def __init__(self, key, data, offset=0, size=None, stride=None, numel=None):
        self.key, self.array = str(key), np.ascontiguousarray(data, np.float32)
        self.offset = offset
        self.size = tuple(self.array.shape) if size is None else tuple(size)
        self.stride = tuple(s // 4 for s in self.array.strides) if stride is None else tuple(stride)
        self.numel = self.array.size if numel is None else numel

    def __reduce__(self):
        args = (_StorageRef(self), self.offset, self.size, self.stride, False, collections.OrderedDict())
        return (_rebuild_tensor_v2, args)


_Tensor = Tensor


class _StorageRef:
    def __init__(self, tensor):
        self.tensor = tensor


@contextlib.contextmanager
def _fake_torch():
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")
    torch.FloatStorage = FloatStorage
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    torch._utils = utils
    FloatStorage.__module__, FloatStorage.__qualname__ = "torch", "FloatStorage"
    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    saved = {k: sys.modules.get(k) for k in ("torch", "torch._utils")}
    sys.modules.update({"torch": torch, "torch._utils": utils})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


class _Pickler(pickle.Pickler):
    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.tensors = {}

    def persistent_id(self, obj):
        if isinstance(obj, _StorageRef):
            t = obj.tensor
            self.tensors.setdefault(t.key, t)
            return ("storage", FloatStorage, t.key, "cpu", t.numel)
        return None


def _tensors(state):
    return collections.OrderedDict((k, Tensor(str(i), v)) for i, (k, v) in enumerate(state.items()))


def dumps(obj):
    """(pickle bytes, {key: Tensor}) of ``obj`` as torch pickles it; ``Tensor`` objects anywhere in it."""
    buf = io.BytesIO()
    with _fake_torch():
        pickler = _Pickler(buf, protocol=2)
        pickler.dump(obj)
    return buf.getvalue(), pickler.tensors


def legacy_bytes(obj, counts=None, pkl=None):
    """The pre-1.6 format: magic, protocol, sys_info, object, keys, then per storage a count and raw data.

    ``counts`` overrides the element count written before a storage's data;
    ``pkl`` replaces the object pickle (its storages are then none).
    """
    data, tensors = dumps(obj)
    buf = io.BytesIO()
    sys_info = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}
    for header in (MAGIC, 1001, sys_info):
        pickle.dump(header, buf, protocol=2)
    buf.write(data if pkl is None else pkl)
    pickle.dump(list(tensors), buf, protocol=2)
    for key, t in tensors.items():
        buf.write(int((counts or {}).get(key, t.array.size)).to_bytes(8, "little", signed=True))
        buf.write(t.array.tobytes())
    return buf.getvalue()


def save_legacy(path, state):
    with open(path, "wb") as f:
        f.write(legacy_bytes(_tensors(state)))


def zip_bytes(obj, pkl=None, compression=zipfile.ZIP_STORED):
    """The >= 1.6 format: archive/data.pkl, archive/byteorder and archive/data/<key>."""
    data, tensors = dumps(obj)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        zf.writestr("archive/data.pkl", data if pkl is None else pkl)
        zf.writestr("archive/byteorder", "little")
        for key, t in tensors.items():
            zf.writestr(f"archive/data/{key}", t.array.tobytes())
    return buf.getvalue()


def save_zip(path, state):
    with open(path, "wb") as f:
        f.write(zip_bytes(_tensors(state)))


def raw_zip(members):
    """A zip assembled by hand from ``(name, stored bytes[, method, uncompressed size, crc])``.

    zipfile cannot store already-compressed data, nor lie about sizes; a
    member given only as name and bytes is stored, with its true size and crc.
    """
    out, central = io.BytesIO(), io.BytesIO()
    for name, data, *rest in members:
        method, size, crc = rest or (zipfile.ZIP_STORED, len(data), zlib.crc32(data))
        name = name.encode()
        offset = out.tell()
        fields = struct.pack("<HHHHHIIIH", 20, 0, method, 0, 0x21, crc, len(data), size, len(name))
        out.write(b"PK\x03\x04" + fields + b"\x00\x00" + name + data)
        central.write(b"PK\x01\x02" + struct.pack("<H", 20) + fields + struct.pack("<HHHHII", 0, 0, 0, 0, 0, offset))
        central.write(name)
    start = out.tell()
    out.write(central.getvalue())
    n = len(members)
    out.write(b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, n, n, len(central.getvalue()), start, 0))
    return out.getvalue()


# 1,677,721,600 zero bytes as one bzip2 stream (level 9): 1,201 bytes; crc32 0x8081278D.
BZ2_BOMB = base64.b64decode(
    "QlpoOTFBWSZTWQ4J4t8BX45AAMAAAAggADCATUZCoCWpCoCXMUFZJlNZDgni3wFfjkAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1kO"
    "CeLfAV+OQADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWQ4J4t8BX45AAMAAAAggADCATUZCoCWpCoCXMUFZJlNZDgni3wFfjkAAwAAA"
    "CCAAMIBNRkKgJakKgJcxQVkmU1kOCeLfAV+OQADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWQ4J4t8BX45AAMAAAAggADCATUZCoCWp"
    "CoCXMUFZJlNZDgni3wFfjkAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1kOCeLfAV+OQADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWQ4J"
    "4t8BX45AAMAAAAggADCATUZCoCWpCoCXMUFZJlNZDgni3wFfjkAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1kOCeLfAV+OQADAAAAI"
    "IAAwgE1GQqAlqQqAlzFBWSZTWQ4J4t8BX45AAMAAAAggADCATUZCoCWpCoCXMUFZJlNZDgni3wFfjkAAwAAACCAAMIBNRkKgJakK"
    "gJcxQVkmU1kOCeLfAV+OQADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWQ4J4t8BX45AAMAAAAggADCATUZCoCWpCoCXMUFZJlNZDgni"
    "3wFfjkAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1kOCeLfAV+OQADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWQ4J4t8BX45AAMAAAAgg"
    "ADCATUZCoCWpCoCXMUFZJlNZDgni3wFfjkAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1kOCeLfAV+OQADAAAAIIAAwgE1GQqAlqQqA"
    "lzFBWSZTWQ4J4t8BX45AAMAAAAggADCATUZCoCWpCoCXMUFZJlNZDgni3wFfjkAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1kOCeLf"
    "AV+OQADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWQ4J4t8BX45AAMAAAAggADCATUZCoCWpCoCXMUFZJlNZDgni3wFfjkAAwAAACCAA"
    "MIBNRkKgJakKgJcxQVkmU1kOCeLfAV+OQADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWQ4J4t8BX45AAMAAAAggADCATUZCoCWpCoCX"
    "MUFZJlNZDgni3wFfjkAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1kOCeLfAV+OQADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWQ4J4t8B"
    "X45AAMAAAAggADCATUZCoCWpCoCXMUFZJlNZDgni3wFfjkAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1kOCeLfAV+OQADAAAAIIAAw"
    "gE1GQqAlqQqAlzFBWSZTWQ4J4t8BX45AAMAAAAggADCATUZCoCWpCoCXMUFZJlNZDgni3wFfjkAAwAAACCAAMIBNRkKgJakKgJcx"
    "QVkmU1kOCeLfAV+OQADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWakZS8sAwihBAMAAQAAACCAAMMwFKaYJCC2ISEF4u5IpwoSA7+Hw"
    "CA=="
)
BZ2_BOMB_SIZE, BZ2_BOMB_CRC = 1_677_721_600, 0x8081278D


class Evil:
    """A pickle payload that would create ``path`` when unpickled."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.path}",))


# ---- a pickle assembler, for pickles no pickler would write -----------------


def G(module, name):
    """GLOBAL: push ``module.name`` (resolved by the unpickler's find_class)."""
    return f"c{module}\n{name}\n".encode()


def S(text):
    """BINUNICODE."""
    data = text.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def I(n):  # noqa: E743
    """LONG1: any int, negative or huge."""
    data = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(data)]) + data


def B(data):
    """BINBYTES (protocol 3)."""
    return b"B" + struct.pack("<I", len(data)) + data


def T(*items):
    """MARK items TUPLE."""
    return b"(" + b"".join(items) + b"t"


def L(*items):
    """EMPTY_LIST MARK items APPENDS."""
    return b"](" + b"".join(items) + b"e"


def D(*pairs):
    """EMPTY_DICT MARK key value ... SETITEMS."""
    return b"}(" + b"".join(k + v for k, v in pairs) + b"u"


def call(fn, *args):
    """fn(*args) via REDUCE."""
    return fn + T(*args) + b"R"


def build(obj, state):
    """obj, then BUILD with state (what pickle does for __setstate__)."""
    return obj + state + b"b"


def pickle_of(*body):
    """PROTO 3, the body, STOP."""
    return b"\x80\x03" + b"".join(body) + b"."


def dag_lists(depth):
    """depth lists, each holding the one below twice (2**depth paths, depth+1 objects), memoised.

    Each level: POP the level below (it stays in the memo), EMPTY_LIST, MARK,
    BINGET it twice, APPENDS, BINPUT.
    """
    ops = b"]q\x00"  # EMPTY_LIST, BINPUT 0
    for i in range(1, depth + 1):
        ops += b"0](h" + bytes([i - 1]) + b"h" + bytes([i - 1]) + b"eq" + bytes([i])
    return ops


def self_list():
    """A list that holds itself: EMPTY_LIST BINPUT 0 BINGET 0 APPEND."""
    return b"]q\x00h\x00a"
