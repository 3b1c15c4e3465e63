"""Write PyTorch-format files without torch, for reader tests.

A tiny stand-in ``torch`` module is put in ``sys.modules`` only while
pickling, so the pickles name the same globals that ``torch.save`` writes:
``torch._utils._rebuild_tensor_v2``, ``torch.FloatStorage`` and
``collections.OrderedDict``, and storages go through ``persistent_id``.
"""

import collections
import contextlib
import io
import pickle
import sys
import types
import zipfile

import numpy as np

MAGIC = 0x1950A86A20F9469CFC6C


class FloatStorage:
    pass


def _rebuild_tensor_v2(*args):
    raise AssertionError("never called while writing")


class _Tensor:
    def __init__(self, key, array):
        self.key, self.array = key, array

    def __reduce__(self):
        a = self.array
        stride = tuple(s // a.itemsize for s in a.strides)
        return (_rebuild_tensor_v2, (_StorageRef(self), 0, a.shape, stride, False, collections.OrderedDict()))


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
    def persistent_id(self, obj):
        if isinstance(obj, _StorageRef):
            t = obj.tensor
            return ("storage", FloatStorage, t.key, "cpu", t.array.size)
        return None


def _tensors(state):
    return collections.OrderedDict(
        (k, _Tensor(str(i), np.ascontiguousarray(v, np.float32))) for i, (k, v) in enumerate(state.items())
    )


def save_legacy(path, state):
    """The pre-1.6 format: magic, protocol, sys_info, object, keys, raw data."""
    tensors = _tensors(state)
    buf = io.BytesIO()
    with _fake_torch():
        for obj in (
            MAGIC,
            1001,
            {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}},
        ):
            pickle.dump(obj, buf, protocol=2)
        _Pickler(buf, protocol=2).dump(tensors)
        pickle.dump([t.key for t in tensors.values()], buf, protocol=2)
    for t in tensors.values():
        buf.write(int(t.array.size).to_bytes(8, "little"))
        buf.write(t.array.tobytes())
    with open(path, "wb") as f:
        f.write(buf.getvalue())


def save_zip(path, state):
    """The >= 1.6 format: archive/data.pkl plus archive/data/<key>."""
    tensors = _tensors(state)
    buf = io.BytesIO()
    with _fake_torch():
        _Pickler(buf, protocol=2).dump(tensors)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", buf.getvalue())
        zf.writestr("archive/byteorder", "little")
        for t in tensors.values():
            zf.writestr(f"archive/data/{t.key}", t.array.tobytes())


class Evil:
    """A pickle payload that would create ``path`` when unpickled."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.path}",))
