from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
# A small, quick synthesis on the real VGG: 2 octaves, 'same' padding, layers up to relu2_1.
SMALL_SYNTH = dict(
    source_width=128,
    output_width=64,
    output_height=64,
    octaves=2,
    layers=("pool1", "relu2_1"),
    padding="same",
)


@pytest.fixture(scope="session")
def vgg19():
    """The real normalised VGG-19 (converted once into the cache)."""
    import jtex.weights

    return jtex.weights.load()


@pytest.fixture
def rng():
    return np.random.default_rng(0)
