"""Batches and animation frames sharded over (forced) host devices give the images one device gives."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from jtex import image, sharding

ROOT = Path(__file__).resolve().parents[1]


class _Dev:
    platform = "cpu"


def test_plan_uses_few_devices_and_pads_to_them():
    devs = [_Dev() for _ in range(8)]
    p = sharding.plan((10, 1, 8, 8, 3), devs)
    assert (len(p.devices), p.per_device, p.padded, p.axis) == (5, 2, 10, 0)
    p = sharding.plan((9, 1, 8, 8, 3), devs)
    assert (len(p.devices), p.per_device, p.padded) == (5, 2, 10)
    assert sharding.plan((6, 1, 8, 8, 3), devs).padded == 6
    assert sharding.plan((3, 1, 8, 8, 3), devs[:1]) is None  # one device: left alone
    assert sharding.plan((1, 1, 8, 8, 3), devs) is None  # one still image
    frames = sharding.plan((1, 6, 8, 8, 3), devs)  # an animation: the largest divisor of F that fits
    assert (len(frames.devices), frames.axis, frames.padded) == (6, 1, 1)
    assert sharding.plan((1, 7, 8, 8, 3), devs[:4]) is None  # 7 frames on 4 devices: no even split
    x = {"a": np.arange(9.0)[:, None]}
    padded = sharding.pad(x, p)
    assert padded["a"].shape == (10, 1) and padded["a"][-1, 0] == 8.0
    assert np.array_equal(sharding.trim(padded, p)["a"], x["a"])
    assert sharding.describe((1, 1, 8, 8, 3))["devices"] >= 1


_TOY = """
import os, sys, json
import jax, jax.numpy as jnp, numpy as np
from jtex import optimize, sharding

class Fun:  # per image: a smooth non-quadratic pull towards the element's own target
    def __hash__(self): return 1
    def __eq__(self, o): return isinstance(o, Fun)
    def __call__(self, x, batched, shared):
        d = x - batched["t"]
        return jnp.sum(d ** 2 + shared["w"] * jnp.sin(3 * d) ** 2)

rng = np.random.default_rng(0)
B = int(sys.argv[1])
x0 = rng.uniform(0.2, 0.8, (B, 1, 4, 4, 3)).astype(np.float32)
batched = {"t": rng.uniform(0, 1, (B, 1, 4, 4, 3)).astype(np.float32)}
out = {"devices": jax.local_device_count()}
for method in ("lbfgs-b", "lbfgs", "adam"):
    seen = []
    cb = lambda p: seen.append(p.losses.shape[1])
    a = optimize.minimize(Fun(), x0, batched, {"w": 0.1}, method=method, max_iter=12, chunk=5, callback=cb)
    b = optimize.minimize(Fun(), x0, batched, {"w": 0.1}, method=method, max_iter=12, chunk=5, shard=False)
    out[method] = {"dx": float(np.abs(a.x - b.x).max()), "shape": list(a.x.shape), "seen": sorted(set(seen)),
                   "evals": [a.evaluations, b.evaluations]}
p = sharding.plan(x0.shape)
laid = sharding.lay_out(x0, batched, {"w": 0.1}, None, p)
out["x_devices"] = len(laid[0].sharding.device_set)
out["padded"] = laid[0].shape[0]
f = sharding.plan((1, 4, 4, 4, 3))
frames = sharding.lay_out(np.zeros((1, 4, 4, 4, 3), np.float32), None, None, None, f)[0]
out["frame_devices"] = len(frames.sharding.device_set)
print(json.dumps(out))
"""


def _forced(devices: int, code: str, *args) -> str:
    env = os.environ | {"XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_every_optimiser_gives_the_same_result_sharded_and_padded():
    out = json.loads(_forced(4, textwrap.dedent(_TOY), "7").splitlines()[-1])
    assert out["devices"] == 4 and out["x_devices"] == 4 and out["padded"] == 8 and out["frame_devices"] == 4
    for method in ("lbfgs-b", "lbfgs", "adam"):
        r = out[method]
        assert r["shape"] == [7, 1, 4, 4, 3] and r["seen"] == [7], (method, r)  # padding never shows
        assert r["dx"] < 1e-5 and r["evals"][0] == r["evals"][1], (method, r)


_SYNTH = """
import sys, json
import jtex
from jtex.config import SynthConfig
from jtex import synth
cfg = SynthConfig(sources=("examples/brick.png",), output_width=40, output_height=40, source_width=64, octaves=1,
                  padding="same", max_iter=4, save_every=0, batch=int(sys.argv[1]), count=int(sys.argv[2]),
                  optimizer=sys.argv[3], seed=1, loss=sys.argv[5])
synth.run(cfg, sys.argv[4], progress=False)
print(json.dumps(json.load(open(sys.argv[4] + "/config.json"))["mesh"]))
"""


@pytest.mark.parametrize(
    "batch,count,optimizer,axes,loss",
    [
        (8, 1, "lbfgs-b", {"batch": 8}, "gram"),
        (6, 1, "lbfgs", {"batch": 6}, "gram"),
        (1, 4, "lbfgs", {"frames": 4}, "gram"),
        (4, 1, "lbfgs", {"batch": 4}, "swd"),  # its sort's numpy callback inside a sharded program
    ],
)
def test_synthesis_on_8_devices_equals_one_device(tmp_path, batch, count, optimizer, axes, loss):
    code = textwrap.dedent(_SYNTH)
    args = (str(batch), str(count), optimizer)
    one = json.loads(_forced(1, code, *args, str(tmp_path / "one"), loss).splitlines()[-1])
    eight = json.loads(_forced(8, code, *args, str(tmp_path / "eight"), loss).splitlines()[-1])
    assert one["devices"] == 1 and eight["axes"] == axes
    names = sorted(p.name for p in (tmp_path / "one").glob("*_0*.png"))
    assert len(names) == max(batch, count)
    for name in names:
        a, b = image.load(tmp_path / "one" / name), image.load(tmp_path / "eight" / name)
        assert np.abs(a - b).max() <= 2 / 255, name
