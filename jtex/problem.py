"""What a synthesis is before and after it runs: its stages, the built problem, the result.

:func:`jtex.synth.build` makes a :class:`Problem`; :mod:`jtex.driver` optimises
it stage by stage; :mod:`jtex.outputs` turns the result into images and a run
folder. These types are shared by all three.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np

from jtex import objective
from jtex.config import SynthConfig
from jtex.errors import JtexError
from jtex.objective import Spec


class Stage(NamedTuple):
    """One optimisation stage: the first octave matched, and the canvas size (margin included)."""

    octave: int
    height: int
    width: int


@dataclass(frozen=True)
class Problem:
    """Everything a synthesis needs before optimising; see :func:`build`.

    ``targets`` are batched: ``[[{kind: {name: (B, ...)}}]]`` per octave and
    layer, B the number of batch elements, and so are the ``knobs``
    (:func:`jtex.objective.knobs`, leading axis B); each element holds
    F = ``count`` frames.
    """

    cfg: SynthConfig
    paths: list[Path]
    sources: list[np.ndarray]  # (h, w, 3) each, in [0, 1]
    spec: Spec  # how the synthesised image is seen
    params: dict  # the VGG, pruned to the deepest layer used
    weights_meta: dict
    targets: list[list[jax.Array]]
    x0: jax.Array  # (B, F, H, W, 3): the first stage's start
    stages: list[Stage]
    margin: int  # px added on every side of the output
    trail: tuple[int, int]  # and the extra px below and to the right (jtex.synth.frame)
    src_index: np.ndarray  # (B,): the source each element follows (all 0 unless ``separate``)
    knobs: dict  # the objective's traced settings, leading axis B
    memory: tuple[int, int] = (0, 0)  # (estimated peak, free) bytes, from jtex.sizes.check

    @property
    def batch(self) -> int:
        return len(self.src_index)

    def objective(self, stage: Stage):
        """The per-element objective of a stage (coarse-to-fine stages skip the finest octaves)."""
        spec = self.spec._replace(octaves=self.cfg.octaves - stage.octave)
        return objective.make(self.cfg, spec, self.sources)

    def targets_for(self, stage: Stage) -> dict:
        """The optimiser's per-element arguments of a stage: targets, knobs and Adam's rate."""
        return {"t": self.targets[stage.octave :], "k": self.knobs, "lr": self.knobs["lr"]}

    def shared(self) -> dict:
        """The optimiser's shared arguments: the (pruned) VGG."""
        return {"vgg": self.params}

    def element(self, i: int = 0, stage: Stage | None = None) -> tuple[dict, dict]:
        """``(batched, shared)`` of batch element i: the arguments of ``self.objective(stage)(x, ...)``."""
        batched = self.targets_for(stage or self.stages[0])
        return jax.tree.map(lambda t: t[i], batched), self.shared()

    def element_targets(self, i: int = 0) -> list:
        """Element i's target statistics ``[[{kind: {...}}]]`` (for :func:`jtex.objective.texture_loss`)."""
        return jax.tree.map(lambda t: t[i], self.targets)

    @property
    def canvas(self) -> tuple[int, int]:
        """(height, width) optimised at the last stage: the output, its margins and trail."""
        return self.stages[-1].height, self.stages[-1].width

    def crop(self, x) -> np.ndarray:
        """(..., H + 2m + tb, W + 2m + tr, 3) canvas -> (..., H, W, 3) output."""
        m, (tb, tr) = self.margin, self.trail
        x = np.asarray(x, np.float32)
        return x[..., m : x.shape[-3] - m - tb, m : x.shape[-2] - m - tr, :]


@dataclass
class SynthResult:
    images: np.ndarray  # (B, H, W, 3) in [0, 1]
    losses: np.ndarray  # (B,) final loss per image (before histogram matching)
    iterations: int
    evaluations: int
    seconds: float
    config: SynthConfig
    message: str = ""  # the optimiser's own word on why it stopped
    started_at: float | None = None  # epoch seconds when optimisation began (the end of start-up)


class NonFiniteLoss(JtexError):
    pass
