"""oneDNN's Winograd convolutions behind jtex.vgg.features on CPU (jtex.onednn).

The parity tests need oneDNN's headers and a C++ compiler (``apt-get install libdnnl-dev``, which
.ci/run installs); where they are missing they skip, and the fallback tests still run.
"""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jtex import onednn, vgg
from jtex.errors import JtexError

LAYERS = ["conv1_1", "pool1", "relu2_2", "relu3_2", "relu4_1"]


def _needs_onednn():
    if not onednn.usable(jnp.float32, [64]):
        pytest.skip(f"oneDNN convolutions unavailable here: {onednn.status()}")


def _features_and_grad(params, x, monkeypatch, conv, **kw):
    monkeypatch.setenv("JTEX_CONV", conv)

    def loss(x):
        f = vgg.features(params, x, LAYERS, **kw)
        return sum(jnp.mean(v**2) for v in f.values()), f

    (_, f), g = jax.jit(jax.value_and_grad(loss, has_aux=True))(x)
    return f, g


@pytest.mark.parametrize("padding,pooling", [("valid", "avg"), ("same", "max"), ("circular", "avg")])
def test_same_maps_and_input_gradient_as_xla(vgg19, rng, monkeypatch, padding, pooling):
    _needs_onednn()
    x = jnp.asarray(rng.random((2, 90, 84, 3), np.float32))
    f0, g0 = _features_and_grad(vgg19, x, monkeypatch, "xla", padding=padding, pooling=pooling)
    f1, g1 = _features_and_grad(vgg19, x, monkeypatch, "onednn", padding=padding, pooling=pooling)
    for name in LAYERS:
        assert f1[name].shape == f0[name].shape
        scale = float(jnp.max(jnp.abs(f0[name])))
        assert float(jnp.max(jnp.abs(f1[name] - f0[name]))) < 2e-5 * scale, name
    assert float(jnp.max(jnp.abs(g1 - g0))) < 1e-4 * float(jnp.max(jnp.abs(g0)))


def test_the_custom_call_is_what_runs(vgg19, rng, monkeypatch):
    """The compiled program calls oneDNN and has no XLA convolution left in the forward pass."""
    _needs_onednn()
    monkeypatch.setenv("JTEX_CONV", "auto")
    x = jnp.asarray(rng.random((1, 32, 32, 3), np.float32))
    hlo = jax.jit(lambda x: vgg.features(vgg19, x, ["relu3_1"], padding="valid")).lower(x).as_text()
    assert hlo.count("jtex_onednn_conv_fwd") == 5  # conv1_1 ... conv3_1
    assert "convolution" not in hlo.replace("jtex_onednn_conv", "")


def test_vmap_matches_the_batch(vgg19, rng, monkeypatch):
    _needs_onednn()
    monkeypatch.setenv("JTEX_CONV", "onednn")
    x = jnp.asarray(rng.random((3, 40, 36, 3), np.float32))

    def f(x):
        return vgg.features(vgg19, x, ["relu3_1"], padding="valid")["relu3_1"]

    one_by_one = jax.jit(jax.vmap(f))(x[:, None])[:, 0]
    np.testing.assert_allclose(np.asarray(one_by_one), np.asarray(jax.jit(f)(x)), rtol=0, atol=1e-5)


def test_kernel_gradient_is_xla_s(rng):
    """jtex never trains VGG, but a kernel gradient through the custom call is still right."""
    _needs_onednn()
    x = jnp.asarray(rng.random((1, 12, 12, 32), np.float32))
    k = jnp.asarray(rng.standard_normal((3, 3, 32, 16), np.float32))
    b = jnp.asarray(rng.standard_normal(16, np.float32))

    def ours(k, b):
        return jnp.sum(onednn.to_nhwc(onednn.conv(onednn.to_blocked(x), k, b, 0, True), 1) ** 2)

    def xla(k, b):
        y = jax.lax.conv_general_dilated(x, k, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")) + b
        return jnp.sum(y**2)

    for a, e in zip(jax.grad(ours, (0, 1))(k, b), jax.grad(xla, (0, 1))(k, b), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(e), rtol=1e-4, atol=1e-3)


def test_layouts_round_trip(rng):
    x = jnp.asarray(rng.random((2, 5, 7, 48), np.float32))
    b = onednn.to_blocked(x)
    assert b.shape == (6, 5, 7, 16)
    np.testing.assert_array_equal(np.asarray(b[4]), np.asarray(x[1, :, :, 16:32]))  # image 1, channels 16-31
    np.testing.assert_array_equal(np.asarray(onednn.to_nhwc(b, 2)), np.asarray(x))


def test_falls_back_to_xla_where_it_cannot_run(monkeypatch):
    monkeypatch.setenv("JTEX_CONV", "xla")
    assert not onednn.usable(jnp.float32, [64])
    assert onednn.mode() == "xla"
    monkeypatch.setenv("JTEX_CONV", "auto")
    assert not onednn.usable(jnp.bfloat16, [64])  # float32 only
    assert not onednn.usable(jnp.float32, [64, 8])  # tiny test networks: channels not a multiple of 16
    params = vgg.init_params(jax.random.key(0), width=1 / 16)
    x = jnp.ones((1, 24, 24, 3))
    hlo = jax.jit(lambda x: vgg.features(params, x, ["relu2_1"])).lower(x).as_text()
    assert "jtex_onednn" not in hlo and "convolution" in hlo


def test_a_bad_mode_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("JTEX_CONV", "fast")
    with pytest.raises(JtexError, match="JTEX_CONV='fast' is not one of auto, onednn, xla"):
        onednn.mode()


def test_build_failure_says_why(monkeypatch, tmp_path):
    """No compiler: the build raises a one-line reason (jtex then runs XLA's convolutions)."""
    monkeypatch.setenv("JTEX_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    with pytest.raises((RuntimeError, OSError)):
        onednn._build()
    assert not list(tmp_path.rglob("*.so")) and not list(tmp_path.rglob("*.part"))


def test_required_but_missing_is_an_error_in_a_fresh_process(tmp_path):
    """JTEX_CONV=onednn with no way to build it fails loudly instead of silently running XLA."""
    code = "from jtex import onednn\nprint(onednn.status())"
    env = {"JTEX_CONV": "onednn", "JTEX_CACHE_DIR": str(tmp_path), "CXX": str(tmp_path / "nope")}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "JTEX_CONV=onednn but oneDNN convolutions are unavailable" in r.stderr


def test_the_tip_names_the_fix_only_when_it_applies(monkeypatch):
    monkeypatch.setenv("JTEX_CONV", "xla")
    assert onednn.hint() is None  # the user's own choice: no tip
    monkeypatch.setenv("JTEX_CONV", "auto")
    monkeypatch.setattr(onednn, "_load", lambda: (False, "xla (oneDNN unavailable: oneDNN not found)"))
    assert "apt-get install libdnnl-dev" in onednn.hint() and "oneDNN not found" in onednn.hint()
    monkeypatch.setattr(onednn, "_load", lambda: (True, "onednn 2.6.3 (winograd)"))
    assert onednn.hint() is None


def test_a_failed_build_is_remembered_until_the_headers_change(monkeypatch, tmp_path):
    """A compiler that fails (here: a fake one) is tried once per key, not on every run."""
    fake = tmp_path / "fake-cxx"
    fake.write_text("#!/bin/sh\necho 'fatal error: oneapi/dnnl/dnnl.hpp: No such file or directory' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("JTEX_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CXX", str(fake))
    with pytest.raises(RuntimeError, match="apt-get install libdnnl-dev"):
        onednn._build()
    fake.write_text("#!/bin/sh\nexit 3\n")  # would fail differently if it ran again
    with pytest.raises(RuntimeError, match="apt-get install libdnnl-dev"):
        onednn._build()
    assert len(list((tmp_path / "cache").rglob("failed.txt"))) == 1
