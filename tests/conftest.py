from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="session")
def vgg19():
    """The real normalised VGG-19 (converted once into the cache)."""
    import jtex.weights

    return jtex.weights.load()


@pytest.fixture
def rng():
    return np.random.default_rng(0)
