"""Make tests/golden/vgg19_normalized.npz: activations computed once by PyTorch.

Run from the repository root (needs torch; CI does not):
    python tests/golden/make_golden.py
Inputs: a 32x32 random image and a 32x32 crop of examples/brick.png ('same'),
and 64x64 versions of both ('valid', which shrinks maps). Shallow layers keep
their first 16 channels to keep the file small.
"""

import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
import jtex.weights  # noqa: E402

import torch_vgg  # noqa: E402

LAYERS = {
    "same": ["relu1_1", "pool1", "relu2_1", "pool2", "relu3_1", "relu3_2", "pool3", "relu4_1", "pool4", "relu5_1"],
    "valid": ["relu1_1", "pool1", "relu2_1", "pool2", "relu3_1", "relu3_2", "pool3"],
}
SIZES = {"same": 32, "valid": 64}


def inputs(size):
    rng = np.random.default_rng(0)
    brick = np.asarray(Image.open(ROOT / "examples" / "brick.png").convert("RGB"), np.float32) / 255
    return np.stack([rng.random((size, size, 3), dtype=np.float32), brick[100 : 100 + size, 200 : 200 + size]])


def main():
    state = torch_vgg.load_state(jtex.weights.source_path("vgg19-normalized"))
    out = {}
    for padding, layers in LAYERS.items():
        x = inputs(SIZES[padding])
        out[f"{padding}/input"] = x
        for pooling in ("avg", "max"):
            feats = torch_vgg.features(state, x, layers, padding, pooling)
            for name, f in feats.items():
                out[f"{padding}/{pooling}/{name}"] = f[..., :16] if f.shape[-1] <= 128 else f
    np.savez_compressed(ROOT / "tests" / "golden" / "vgg19_normalized.npz", **out)


if __name__ == "__main__":
    main()
