"""An independent PyTorch VGG, for parity tests and for making the golden file.

It reads the ``.pth`` with ``torch.load`` (not jtex's reader) and follows
AdaIN's ``net.py`` layout: a 1x1 preprocessing conv, then 3x3 convs with the
padding asked for, ReLU, and 2x2 pooling (floor, as Keras). Test-only: torch is
never a runtime dependency of jtex.
"""

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
TORCH_PAD = {"reflect": "reflect", "circular": "circular"}


def load_state(path):
    sd = torch.load(path, map_location="cpu", weights_only=True)
    keys = sorted((k for k in sd if k.endswith(".weight")), key=lambda k: int(k.split(".")[0]))
    pre = (sd[keys[0]], sd[keys[0][:-6] + "bias"])
    convs = {n: (sd[k], sd[k[:-6] + "bias"]) for n, k in zip(NAMES, keys[1:])}
    return pre, convs


@torch.no_grad()
def features(state, images_nhwc, layers, padding="same", pooling="avg"):
    """images_nhwc: numpy (N, H, W, 3) RGB in [0, 1] -> {layer: numpy NHWC}."""
    pre, convs = state
    x = torch.from_numpy(images_nhwc).permute(0, 3, 1, 2).contiguous().double()
    x = F.conv2d(x, pre[0].double(), pre[1].double())
    out, wanted = {}, set(layers)
    block = 1
    for name in NAMES:
        if len(out) == len(wanted):
            break
        b = int(name[4])
        if b != block:
            x = F.avg_pool2d(x, 2) if pooling == "avg" else F.max_pool2d(x, 2)
            if f"pool{block}" in wanted:
                out[f"pool{block}"] = x
            if len(out) == len(wanted):
                break
            block = b
        w, bias = convs[name]
        if padding in TORCH_PAD:
            x = F.pad(x, (1, 1, 1, 1), mode=TORCH_PAD[padding])
            x = F.conv2d(x, w.double(), bias.double())
        else:
            x = F.conv2d(x, w.double(), bias.double(), padding=1 if padding == "same" else 0)
        if name in wanted:
            out[name] = x
        x = F.relu(x)
        if "relu" + name[4:] in wanted:
            out["relu" + name[4:]] = x
    if "pool5" in wanted:
        x = F.avg_pool2d(x, 2) if pooling == "avg" else F.max_pool2d(x, 2)
        out["pool5"] = x
    return {k: v.permute(0, 2, 3, 1).float().numpy() for k, v in out.items()}
