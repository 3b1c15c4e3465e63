"""jtex.vgg: structure, layer naming, and parity with PyTorch on the real weights."""

import importlib.util
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

import jtex.vgg as vgg
import jtex.weights

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "golden" / "vgg19_normalized.npz"
ALL_LAYERS = ["relu1_1", "pool1", "relu2_1", "pool2", "relu3_1", "relu3_2", "pool3", "relu4_1", "pool4", "relu5_1"]
HAVE_TORCH = importlib.util.find_spec("torch") is not None


def rel_err(a, b):
    """max |a - b| / max |b|: the parity measure of the issue."""
    return float(np.max(np.abs(np.asarray(a) - b)) / max(np.max(np.abs(b)), 1e-12))


def test_snelgrove_indices_map_to_names():
    assert vgg.resolve_layers([2, 7]) == ("pool1", "relu3_2")
    assert vgg.resolve_layers(["0", "pool4", "conv1_1"]) == ("relu1_1", "pool4", "conv1_1")
    assert vgg.snelgrove_sequence()[:7] == ["relu1_1", "relu1_2", "pool1", "relu2_1", "relu2_2", "pool2", "relu3_1"]
    with pytest.raises(ValueError, match="unknown layer"):
        vgg.resolve_layers(["relu9_1"])
    with pytest.raises(ValueError, match="out of range"):
        vgg.resolve_layers([21])
    # VGG-16 has no conv3_4.
    with pytest.raises(ValueError):
        vgg.resolve_layers(["relu3_4"], "vgg16")


def test_shapes_and_early_stop(vgg19):
    x = jnp.zeros((2, 40, 36, 3))
    f = vgg.features(vgg19, x, ["relu1_1", "pool2", "conv3_1"], padding="same")
    assert list(f) == ["relu1_1", "pool2", "conv3_1"]
    assert f["relu1_1"].shape == (2, 40, 36, 64)
    assert f["pool2"].shape == (2, 10, 9, 128)
    assert f["conv3_1"].shape == (2, 10, 9, 256)
    fv = vgg.features(vgg19, x, ["pool1"], padding="valid")
    assert fv["pool1"].shape == (2, 18, 16, 64) and vgg.output_size(40, 36, "pool1", "valid") == (18, 16)
    # The pass stops at the deepest layer asked: the jaxpr has exactly 2 convs (XLA's or oneDNN's).
    jaxpr = str(jax.make_jaxpr(lambda x: vgg.features(vgg19, x, ["relu1_2"]))(x))
    assert jaxpr.count("conv_general_dilated") + jaxpr.count("jtex_onednn_conv_fwd") == 2


def test_jit_vmap_grad(vgg19):
    x = jax.random.uniform(jax.random.key(0), (3, 24, 24, 3))
    f = jax.jit(lambda x: vgg.features(vgg19, x, ["relu2_1"])["relu2_1"])
    batched = f(x)
    mapped = jax.vmap(lambda xi: f(xi[None])[0])(x)
    np.testing.assert_allclose(mapped, batched, rtol=1e-5, atol=1e-4)
    g = jax.grad(lambda x: jnp.mean(f(x) ** 2))(x)
    assert g.shape == x.shape and bool(jnp.all(jnp.isfinite(g))) and float(jnp.abs(g).max()) > 0


def test_circular_padding_is_shift_equivariant(vgg19):
    # With wrap-around padding, shifting the input by a multiple of the total
    # stride shifts every map: no border exists, which is what makes tiles seamless.
    x = jax.random.uniform(jax.random.key(1), (1, 32, 32, 3))
    f = lambda x: vgg.features(vgg19, x, ["relu3_1"], padding="circular")["relu3_1"]  # noqa: E731
    shifted = f(jnp.roll(x, (8, 4), axis=(1, 2)))
    np.testing.assert_allclose(shifted, jnp.roll(f(x), (2, 1), axis=(1, 2)), rtol=1e-4, atol=1e-3)


def _select_and_scatter_pool(x):
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")


def test_max_pool_gradient_is_xla_s_through_the_network(vgg19, monkeypatch):
    # Odd sizes (the last row/column dropped) and a distinct maximum per window: the mask gradient is
    # select_and_scatter's exactly; with ties it is shared evenly (as jnp.max's), and behind a ReLU (zeros
    # are the only ties) the network's input gradient is XLA's to the last bit.
    x = jax.random.normal(jax.random.key(0), (2, 7, 9, 3))
    w = jax.random.normal(jax.random.key(1), (2, 3, 4, 3))
    ours = jax.grad(lambda x: jnp.sum(vgg.pool(x, "max") * w))(x)
    np.testing.assert_array_equal(ours, jax.grad(lambda x: jnp.sum(_select_and_scatter_pool(x) * w))(x))
    assert bool(jnp.all(ours[:, 6] == 0)) and bool(jnp.all(ours[:, :, 8] == 0))
    tie = jax.grad(lambda x: jnp.sum(vgg.pool(x, "max")))(jnp.zeros((1, 2, 2, 1)))
    np.testing.assert_array_equal(tie, np.full((1, 2, 2, 1), 0.25))

    def input_grad():
        def loss(x):
            f = vgg.features(vgg19, x, ("relu3_1", "relu5_1"), pooling="max")
            return jnp.sum(f["relu3_1"] ** 2) * 1e-3 + jnp.sum(f["relu5_1"])

        return np.asarray(jax.jit(jax.grad(loss))(jax.random.uniform(jax.random.key(2), (1, 40, 44, 3))))

    ours = input_grad()
    monkeypatch.setattr(vgg, "pool", lambda x, kind: _select_and_scatter_pool(x))
    np.testing.assert_array_equal(ours, input_grad())


@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("pooling", ["avg", "max"])
def test_parity_with_committed_torch_golden(vgg19, padding, pooling):
    gold = np.load(GOLDEN)
    x = gold[f"{padding}/input"]
    keys = [k for k in gold.files if k.startswith(f"{padding}/{pooling}/")]
    names = [k.split("/")[-1] for k in keys]
    assert len(names) >= 7
    ours = vgg.features(vgg19, x, names, padding=padding, pooling=pooling)
    for k, name in zip(keys, names):
        ref = gold[k]
        got = np.asarray(ours[name])[..., : ref.shape[-1]]
        assert got.shape == ref.shape, name
        assert rel_err(got, ref) <= 1e-4, (name, rel_err(got, ref))


@pytest.mark.skipif(not HAVE_TORCH, reason="torch not installed (the golden-file test covers CI)")
@pytest.mark.parametrize("padding", ["same", "valid", "reflect", "circular"])
@pytest.mark.parametrize("pooling", ["avg", "max"])
def test_parity_with_live_torch(vgg19, padding, pooling):
    sys.path.insert(0, str(HERE))
    import torch_vgg

    state = torch_vgg.load_state(jtex.weights.source_path("vgg19-normalized"))
    size = 160  # the smallest size with relu5_1 under 'valid' padding is 156
    brick = np.asarray(Image.open(HERE.parent / "examples" / "brick.png").convert("RGB"), np.float32) / 255
    x = np.stack([np.random.default_rng(0).random((size, size, 3), dtype=np.float32), brick[:size, :size]])
    ref = torch_vgg.features(state, x, ALL_LAYERS, padding, pooling)
    ours = jax.jit(lambda x: vgg.features(vgg19, x, ALL_LAYERS, padding=padding, pooling=pooling))(x)
    for name in ALL_LAYERS:
        assert ours[name].shape == ref[name].shape, name
        assert rel_err(ours[name], ref[name]) <= 1e-4, (name, rel_err(ours[name], ref[name]))


def test_one_architecture_table_and_random_nets():
    assert [n for n, _, _ in vgg.convs("vgg16")] == [
        n for n, _, _ in vgg.convs("vgg19") if n not in ("conv3_4", "conv4_4", "conv5_4")
    ]
    assert vgg.convs("vgg19")[4] == ("conv3_1", 128, 256) and len(vgg.convs("vgg19")) == 16
    assert vgg.channels("relu3_2") == 256 and vgg.channels("pool1") == 64
    seq = vgg.layer_sequence("vgg19")
    assert seq[:5] == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"] and seq[-1] == "pool5" and len(seq) == 37
    assert len(vgg.layer_sequence("vgg16")) == 31
    small = vgg.init_params(jax.random.key(0), "vgg16", width=1 / 16)
    assert vgg.arch_of(small) == "vgg16" and small["conv3_1"]["kernel"].shape == (3, 3, 8, 16)
    f = vgg.features(small, jnp.ones((1, 32, 32, 3)) * 0.5, ["relu5_3"])["relu5_3"]
    assert f.shape == (1, 2, 2, 32) and bool(jnp.all(jnp.isfinite(f)))
    # Seeded: the same key gives the same net, another key another one.
    again = vgg.init_params(jax.random.key(0), "vgg16", width=1 / 16)
    other = vgg.init_params(jax.random.key(1), "vgg16", width=1 / 16)
    np.testing.assert_array_equal(small["conv1_1"]["kernel"], again["conv1_1"]["kernel"])
    assert not np.allclose(small["conv1_1"]["kernel"], other["conv1_1"]["kernel"])


def _xla_flags_after_import(env: dict) -> str:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JTEX_XLA_CPU_DEFAULTS")} | env
    code = "import os, jtex; print(os.environ.get('XLA_FLAGS', ''))"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout


def test_importing_jtex_moves_cpu_convolutions_off_ynnpack():
    # XLA:CPU's YNNPACK fusions run these convolutions 2-5x slower than its Eigen kernels (jtex.runtime).
    from jtex.runtime import XLA_CPU_FLAG

    assert _xla_flags_after_import({}).split() == [XLA_CPU_FLAG]
    mine = "--xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_DOT"
    assert _xla_flags_after_import({"XLA_FLAGS": f"--xla_force_host_platform_device_count=2 {mine}"}).split() == [
        "--xla_force_host_platform_device_count=2",
        mine,
    ]  # the user's own choice stands
    assert _xla_flags_after_import({"XLA_FLAGS": "--xla_dump_to=/tmp/x"}).split() == [
        "--xla_dump_to=/tmp/x",
        XLA_CPU_FLAG,
    ]
    assert _xla_flags_after_import({"JTEX_XLA_CPU_DEFAULTS": "0"}).strip() == ""
