"""VGG-16/19 as pure functions of a params dict (Simonyan & Zisserman 2014).

``features(params, images, layers)`` runs the network on NHWC RGB images in
[0, 1] and returns a dict of the named activations asked for; the pass stops
at the deepest of them. Layer names follow the original network:

* ``conv{b}_{i}``: the convolution's output before its ReLU,
* ``relu{b}_{i}``: after the ReLU,
* ``pool{b}``: after the 2x2, stride-2 pooling of block b.

Snelgrove's integer layer indices are accepted too: his sequence counts one
entry per conv (ReLU included) and per pool, conv1_1=0, conv1_2=1, pool1=2,
conv2_1=3, ..., so his default [2, 7] is ``pool1`` and ``relu3_2``.

Gatys et al. (2015) synthesise with *average* pooling; padding ``same`` (zero,
as Caffe and Keras), ``valid`` (no padding: each conv trims a pixel on every
side, Snelgrove's default), ``reflect`` or ``circular`` (wrap-around, so
statistics see no border and syntheses tile). Pooling uses floor division of
odd sizes, as Keras does.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from jtex.choices import PADDINGS, POOLINGS  # noqa: F401  (re-exported)

# JAX is imported inside the functions that run the network: naming and
# checking layers (what settings and the command line do) then answers
# without loading JAX, which keeps `jtex --help` and setting errors fast.

# The one architecture table: the output width of every 3x3 conv, block by block.
ARCHS = {
    "vgg19": ((64, 64), (128, 128), (256, 256, 256, 256), (512, 512, 512, 512), (512, 512, 512, 512)),
    "vgg16": ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)),
}


def convs(arch: str = "vgg19") -> tuple[tuple[str, int, int], ...]:
    """``(name, in_channels, out_channels)`` of every 3x3 conv of ``arch``, in order."""
    out, cin = [], 3
    for b, widths in enumerate(ARCHS[arch], start=1):
        for i, cout in enumerate(widths, start=1):
            out.append((f"conv{b}_{i}", cin, cout))
            cin = cout
    return tuple(out)


def arch_of(params) -> str:
    """``vgg19`` or ``vgg16``, from the conv names a params dict holds (pruned dicts too)."""
    names = {n for n in params if n.startswith("conv")}
    return "vgg19" if names & {"conv3_4", "conv4_4", "conv5_4"} or len(names) > 13 else "vgg16"


def channels(layer: str, arch: str = "vgg19") -> int:
    """Channels of a named layer's output (``relu3_2`` -> 256)."""
    return ARCHS[arch][int(layer[4]) - 1][0]  # conv3_2, relu3_2, pool3: the block digit


def init_params(key, arch: str = "vgg19", *, width: float = 1.0) -> dict:
    """Random VGG params of ``arch`` for fast tests, every conv ``width`` times as wide.

    He-normal kernels, small random biases, and an ``input`` map from RGB in
    [0, 1] to -127.5..127.5; the same dict layout as :func:`jtex.weights.load`, so any
    code that runs on the real network runs on these.
    """
    import jax

    rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel())
    # Input in 0..255 around 0, as Caffe's VGG sees it, so losses have the real network's scale.
    params = {
        "input": {"kernel": 255 * np.eye(3, dtype=np.float32)[None, None], "bias": np.full(3, -127.5, np.float32)}
    }
    scaled = {}
    for name, cin, cout in convs(arch):
        cin = 3 if cin == 3 else scaled[cin]
        cout = scaled.setdefault(cout, max(1, round(cout * width)))
        kernel = rng.normal(0.0, np.sqrt(2.0 / (9 * cin)), (3, 3, cin, cout)).astype(np.float32)
        params[name] = {"kernel": kernel, "bias": rng.normal(0.0, 0.01, cout).astype(np.float32)}
    return params


def layer_sequence(params_or_arch="vgg19") -> list[str]:
    """All layer names in forward order: conv, relu for each conv; pool per block.

    Takes an architecture name or a params dict (its architecture, see :func:`arch_of`).
    """
    arch = params_or_arch if isinstance(params_or_arch, str) else arch_of(params_or_arch)
    seq = []
    for b, widths in enumerate(ARCHS[arch], start=1):
        for i in range(1, len(widths) + 1):
            seq += [f"conv{b}_{i}", f"relu{b}_{i}"]
        seq.append(f"pool{b}")
    return seq


def snelgrove_sequence(arch="vgg19") -> list[str]:
    """Snelgrove's indexable sequence: relu-included convs and pools."""
    return [n for n in layer_sequence(arch) if not n.startswith("conv")]


def resolve_layers(layers: Sequence[str | int], arch="vgg19") -> tuple[str, ...]:
    """Map names or Snelgrove indices to validated names, in the order given.

    Raises:
      ValueError naming the bad entry and the valid choices.
    """
    names = layer_sequence(arch)
    snel = snelgrove_sequence(arch)
    out = []
    for layer in layers:
        if isinstance(layer, int) or (isinstance(layer, str) and layer.strip().lstrip("-").isdigit()):
            i = int(layer)
            if not 0 <= i < len(snel):
                raise ValueError(f"layer index {i} out of range 0..{len(snel) - 1} ({snel[0]}..{snel[-1]})")
            out.append(snel[i])
        elif layer in names:
            out.append(layer)
        else:
            raise ValueError(
                f"unknown layer {layer!r}; use names like relu3_1, pool2, conv1_1 or indices 0..{len(snel) - 1}"
            )
    return tuple(out)


def deepest(layers: Sequence[str], arch="vgg19") -> str:
    """The layer of ``layers`` (resolved names) that comes last in the forward pass."""
    return max(layers, key=layer_sequence(arch).index)


def _pad(x, padding: str):
    import jax.numpy as jnp

    if padding in ("same", "valid"):
        return x
    mode = {"reflect": "reflect", "circular": "wrap"}[padding]
    return jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode=mode)


def conv(x, kernel, bias, padding: str = "same"):
    """3x3 conv, NHWC x HWIO, stride 1, with the named padding."""
    import jax

    x = _pad(x, padding)
    y = jax.lax.conv_general_dilated(
        x,
        kernel,
        window_strides=(1, 1),
        padding="SAME" if padding == "same" else "VALID",
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )
    return y + bias


_WINDOW = (1, 2, 2, 1)  # pooling windows and strides (NHWC): 2x2, stride 2


def pool(x, kind: str = "avg"):
    """2x2, stride-2 pooling (floor for odd sizes)."""
    import jax

    if kind == "max":
        return _max_pool()(x)
    return jax.lax.reduce_window(x, 0.0, jax.lax.add, _WINDOW, _WINDOW, "VALID") * 0.25


@functools.cache
def _max_pool():
    """2x2, stride-2 max pooling whose gradient is a mask product, not XLA's ``select_and_scatter``.

    The forward pass is ``reduce_window``. Its derivative, ``select_and_scatter``, is slow on XLA:CPU: 0.34 s
    for a (1, 512, 512, 64) map against 0.07 s for this one (3-8x over pool1-pool3's sizes). The gradient
    goes to every input equal to its window's maximum, split evenly among ties (as ``jnp.max``'s) where
    XLA's gives it all to one. Behind a ReLU most ties are zeros, whose gradient the ReLU stops either way;
    exactly equal positive maxima (flat regions of a flat start) are the only place the two differ.
    """
    import jax
    import jax.numpy as jnp

    @jax.custom_vjp
    def max_pool(x):
        return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, _WINDOW, _WINDOW, "VALID")

    def forward(x):
        y = max_pool(x)
        return y, (x, y)

    def backward(res, g):
        x, y = res
        n, h, w, c = y.shape
        blocks = x[:, : 2 * h, : 2 * w].reshape(n, h, 2, w, 2, c)
        hit = blocks == y[:, :, None, :, None]
        share = g / jnp.sum(hit, axis=(2, 4), dtype=g.dtype)
        gx = jnp.where(hit, share[:, :, None, :, None], 0).reshape(n, 2 * h, 2 * w, c)
        return (jnp.pad(gx, ((0, 0), (0, x.shape[1] - 2 * h), (0, x.shape[2] - 2 * w), (0, 0))),)

    max_pool.defvjp(forward, backward)
    return max_pool


def preprocess(params, images):
    """RGB in [0, 1] -> the network's own input space (see jtex.weights)."""
    import jax.numpy as jnp

    m = params["input"]
    return jnp.einsum("nhwc,cd->nhwd", images, m["kernel"][0, 0]) + m["bias"]


def features(
    params, images, layers: Sequence[str | int], *, padding: str = "same", pooling: str = "avg", dtype=None
) -> dict:
    """Named activations of a VGG for a batch of images.

    Args:
      params: from :func:`jtex.weights.load` (numpy or jax arrays).
      images: (N, H, W, 3) RGB in [0, 1].
      layers: names (``relu3_1``, ``pool2``, ``conv1_1``) or Snelgrove indices.
      padding: ``same`` | ``valid`` | ``reflect`` | ``circular``.
      pooling: ``avg`` (Gatys' choice for synthesis) or ``max`` (as trained).
      dtype: compute the convolutions in this dtype (``"bfloat16"`` on accelerators: half the
        activation memory, the matrix units' own type); None: the images' (float32). The maps
        come back in it; :func:`jtex.stats.gram` accumulates their products in float32.

    Returns:
      ``{name: (N, h, w, C)}`` for each requested layer. Pure, jittable,
      vmappable and differentiable in ``images`` and ``params``.
    """
    import jax

    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    names = resolve_layers(layers, arch_of(params))
    wanted = set(names)
    order = layer_sequence(params)
    last = max(order.index(n) for n in names)
    x = preprocess(params, images)
    if dtype is not None:
        x = x.astype(dtype)
    convs_run = [n for n in order[: last + 1] if n.startswith("conv")]
    from jtex import onednn

    shrinks = padding == "valid" and min(output_size(*images.shape[1:3], order[last], padding, arch_of(params))) < 1
    if not shrinks and onednn.usable(x.dtype, [params[n]["kernel"].shape[3] for n in convs_run]):
        return _features_onednn(params, x, order[: last + 1], names, padding, pooling)
    out = {}
    # 'valid' is computed exactly, but faster: each conv runs as a 'same' conv on
    # the whole map and the valid part -- `trim` pixels in from every side,
    # untouched by the zero padding -- is cut out only where it is needed (before
    # a pool, and for the maps returned). XLA:CPU runs 'same' convolutions, and
    # their gradients, several times faster than 'valid' ones of the same size.
    trim = 0
    for name in order[: last + 1]:
        if name.startswith("conv"):
            mode = "same" if padding == "valid" else padding
            k, b = params[name]["kernel"], params[name]["bias"]
            x = conv(x, k.astype(x.dtype), b.astype(x.dtype), mode)
            trim += padding == "valid"
        elif name.startswith("relu"):
            x = jax.nn.relu(x)
        else:
            x = pool(_crop(x, trim), pooling)
            trim = 0
        if name in wanted:
            out[name] = _crop(x, trim)
    return {n: out[n] for n in names}


def _features_onednn(params, x, order, names, padding, pooling) -> dict:
    """:func:`features` through oneDNN's convolutions (see :mod:`jtex.onednn`): the same maps.

    Maps after the first convolution are blocked, (N * C/16, H, W, 16), on which padding, ReLU and
    pooling act as on NHWC; 'valid' runs as oneDNN's own unpadded convolution.
    """
    import jax

    from jtex import onednn

    n, wanted, out, blocked = x.shape[0], set(names), {}, False
    for name in order:
        if name.startswith("conv"):
            k, b = params[name]["kernel"], params[name]["bias"]
            x = onednn.conv(_pad(x, padding), k.astype(x.dtype), b.astype(x.dtype), int(padding == "same"), blocked)
            blocked = True
        elif name.startswith("relu"):
            x = jax.nn.relu(x)
        else:
            x = pool(x, pooling)
        if name in wanted:  # every layer comes after conv1_1, so its map is blocked
            out[name] = onednn.to_nhwc(x, n)
    return {name: out[name] for name in names}


def _crop(x, t: int):
    """Drop ``t`` pixels from every side of (N, H, W, C)."""
    return x[:, t : x.shape[1] - t, t : x.shape[2] - t] if t else x


def output_size(h: int, w: int, layer: str, padding: str = "same", arch: str = "vgg19") -> tuple[int, int]:
    """Spatial size of a layer's output for an (h, w) input, in plain Python.

    Used to reject too-small inputs before compiling: with ``valid`` padding a
    map can shrink to nothing (Snelgrove's code then silently returned NaN).
    """
    for name in layer_sequence(arch):
        if name.startswith("conv") and padding == "valid":
            h, w = h - 2, w - 2
        elif name.startswith("pool"):
            h, w = h // 2, w // 2
        if name == layer:
            return h, w
    raise ValueError(f"unknown layer {layer!r}")
