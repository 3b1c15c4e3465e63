"""Seeded fuzzing of every weights reader: only JtexError may ever escape.

A few hundred mutations (byte flips, truncations, inserted pickle opcodes) of
small valid files in each format -- legacy and zip .pth, numpy pickle, .npz,
Keras .h5 -- are read by ``jtex.weights.load_file`` and by the format's own
reader in one child process, capped in memory and time, so that a crash or a
hang fails the test and names the case instead of taking pytest down.
"""

import io
import json
import os
import pickle
import random
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

import jtex.weights as W

import fake_torch as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED, PER_SEED_FILE = 8, 60
OPCODES = b"().0123456789:BCFGIJKLMNPQRSTUVX]abcdeghijklmopqrstu}\x80\x81\x82\x83\x84\x85\x86\x87\x88\x89\x8a\x8b\x8c\x8d\x8e\x8f\x90\x91\x92\x93\x94\x95\x96\x97\x98"  # noqa: E501


def _state():
    rng = np.random.default_rng(0)
    return {
        "0.weight": rng.random((3, 3, 1, 1), np.float32),
        "0.bias": rng.random(3, np.float32),
        "2.weight": rng.random((4, 3, 3, 3), np.float32),
        "2.bias": rng.random(4, np.float32),
    }


def _zip_with(pkl_member, data, compression=zipfile.ZIP_STORED):
    """Rebuild a zip with one member's bytes replaced, so the CRC still matches the mutation."""
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(buf, "w", compression) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, pkl_member[1] if info.filename == pkl_member[0] else src.read(info))
    return buf.getvalue()


def _seeds(tmp):
    """(name, suffix, reader, bytes, inner member to mutate through a rebuilt zip or None)."""
    state = _state()
    legacy = F.legacy_bytes(F._tensors(state))
    stored = F.zip_bytes(F._tensors(state))
    deflated = F.zip_bytes(F._tensors(state), compression=zipfile.ZIP_DEFLATED)
    tree = {"VGG16_0": {"Conv_0": {"kernel": state["2.weight"].transpose(2, 3, 1, 0), "bias": state["2.bias"]}}}
    params = {"input": {"kernel": state["0.weight"].transpose(2, 3, 1, 0), "bias": state["0.bias"]},
              "conv1_1": {"kernel": state["2.weight"].transpose(2, 3, 1, 0), "bias": state["2.bias"]}}  # fmt: skip
    W.save_npz(tmp / "seed.npz", params, {"arch": "vgg19"})
    seeds = [
        ("legacy", ".pth", "read_legacy_pth", legacy, None),
        ("zip", ".pth", "read_zip_pth", stored, None),
        ("zip-pkl", ".pth", "read_zip_pth", stored, "archive/data.pkl"),
        ("zip-deflated", ".pth", "read_zip_pth", deflated, None),
        ("numpy-p3", ".ckpt", "read_numpy_pickle", pickle.dumps(tree, protocol=3), None),
        ("numpy-p4", ".ckpt", "read_numpy_pickle", pickle.dumps(tree, protocol=4), None),
        ("npz", ".npz", "read_npz", (tmp / "seed.npz").read_bytes(), None),
        ("npz-member", ".npz", "read_npz", (tmp / "seed.npz").read_bytes(), "conv1_1/kernel.npy"),
    ]
    try:
        import h5py

        with h5py.File(tmp / "seed.h5", "w") as f:
            for name, arr in (("block1_conv1/block1_conv1_W_1:0", params["conv1_1"]["kernel"]),
                              ("block1_conv1/block1_conv1_b_1:0", params["conv1_1"]["bias"])):  # fmt: skip
                f[name] = arr
        seeds.append(("h5", ".h5", "read_h5_convs", (tmp / "seed.h5").read_bytes(), None))
    except ImportError:
        pass
    return seeds


def _mutate(rng, data):
    kind = rng.choice(["flip", "flip", "truncate", "insert", "insert"])
    data = bytearray(data)
    if kind == "flip":
        for _ in range(rng.choice([1, 2, 4, 8])):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif kind == "truncate":
        del data[rng.randrange(len(data)) :]
    else:
        at = rng.randrange(len(data) + 1)
        data[at:at] = bytes([rng.choice(OPCODES)]) + rng.randbytes(rng.choice([0, 1, 2, 4, 8]))
    return kind, bytes(data)


CHILD = r"""
import json, resource, sys, time
import jtex.readers as R, jtex.weights as W
from jtex.errors import JtexError

def vm():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmSize:"))

limit = vm() + (3 << 29)
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
for case, path, reader in json.loads(open(sys.argv[1]).read()):
    print(json.dumps({"start": case}), flush=True)
    for fn in (W.load_file, getattr(R, reader)):
        t = time.perf_counter()
        try:
            fn(path)
            error = None
        except JtexError as e:
            error = None if "\n" not in str(e) and "MemoryError" not in str(e) else "bad message: " + str(e)[:300]
        except BaseException as e:
            error = f"{type(e).__name__}: {str(e)[:300]}"
        if error or time.perf_counter() - t > 15:
            print(json.dumps({"case": case, "fn": fn.__name__, "error": error, "seconds": time.perf_counter() - t}),
                  flush=True)
print(json.dumps({"done": True}), flush=True)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the memory cap reads /proc/self/status")
def test_fuzzed_files_only_ever_raise_jtex_error(tmp_path):
    rng = random.Random(SEED)
    todo = []
    for name, suffix, reader, data, member in _seeds(tmp_path):
        inner = zipfile.ZipFile(io.BytesIO(data)).read(member) if member else None
        for i in range(PER_SEED_FILE):
            if member:
                kind, mutated = _mutate(rng, inner)
                mutated = _zip_with((member, mutated), data)
            else:
                kind, mutated = _mutate(rng, data)
            case = f"{name}-{i}-{kind}"
            path = tmp_path / f"{case}{suffix}"
            path.write_bytes(mutated)
            todo.append((case, str(path), reader))
    (tmp_path / "todo.json").write_text(json.dumps(todo))
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), "JAX_PLATFORMS": "cpu"}
    t = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "todo.json")], env=env,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
    except subprocess.TimeoutExpired as e:
        lines = (e.stdout or b"").decode().splitlines()
        pytest.fail(f"the fuzz child hung; last case started: {lines[-1] if lines else None}")
    seconds = time.perf_counter() - t
    lines = [json.loads(x) for x in proc.stdout.splitlines()]
    started = [x["start"] for x in lines if "start" in x]
    assert proc.returncode == 0 and lines and lines[-1] == {"done": True}, (
        f"the fuzz child died (rc {proc.returncode}) in case {started[-1] if started else None}: {proc.stderr[-1500:]}"
    )
    assert len(started) == len(todo) >= 300
    failures = [x for x in lines if "case" in x]
    assert not failures, f"{len(failures)} of {len(todo)} fuzzed files escaped as other errors: {failures[:5]}"
    assert seconds < 60, f"fuzzing took {seconds:.0f} s"
