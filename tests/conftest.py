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


def run_interrupted(monkeypatch, cfg, out, iteration: int) -> None:
    """Run a synthesis into the run folder ``out`` and stop it (KeyboardInterrupt) after ``iteration``,
    as a user's Ctrl-C would: a checkpoint is left, no result."""
    from jtex import driver, synth

    real = driver._Reporter.__call__

    def stop(self, prog):
        real(self, prog)
        if prog.iteration == iteration:
            raise KeyboardInterrupt

    monkeypatch.setattr(driver._Reporter, "__call__", stop)
    with pytest.raises(KeyboardInterrupt):
        synth.run(cfg, out, progress=False)
    monkeypatch.setattr(driver._Reporter, "__call__", real)
