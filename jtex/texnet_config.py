"""The settings of a Texture Networks training run (:mod:`jtex.texture_net`): presets, checks, losses' layers.

:class:`TexNetConfig` decides everything a run computes; a run folder stores
it (``config.json``, and in every checkpoint's metadata) and refuses other
settings on reuse (``steps`` and ``save_every`` aside: more steps go on).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from jtex import generators, weights
from jtex.choices import NORMS, TEXNET_LOSSES, UPSAMPLES
from jtex.config import SynthConfig
from jtex.errors import JtexError

LOSSES = TEXNET_LOSSES
PAPER_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


def octaves_that_fit(size: int) -> int:
    """How many octaves of a ``size`` px sample's pyramid keep the coarsest 32 px or more (1, the sample, at least)."""
    return max(1, (size // 32).bit_length())


@dataclass(frozen=True)
class TexNetConfig:
    """Everything that decides what a training run computes (``save_every`` and ``steps`` aside)."""

    source: str = ""
    size: int = 256  # training samples are size x size
    batch: int = 16
    steps: int = 1500
    lr: float = 0.1
    lr_decay: float = 0.8
    decay_every: int = 300
    loss: str = "gatys"
    octaves: int = 1  # gatys / swd: the loss sees this many octaves of the sample's Gaussian pyramid (1: the paper's)
    octave_weight: float = 1.0  # octave o of the loss counts octave_weight ** o (its gradient's L1 norm too)
    norm: str = "batch"
    upsample: str = "nearest"  # the coarser stream's x2 upsampling: nearest (the paper's) or bilinear
    scales: int = 6
    channels: int = 8
    noise_depth: int = 3
    exemplar_size: int = 256  # the exemplar's longer side is resized to this
    seed: int = 0
    save_every: int = 100
    calibration_batches: int = 8
    normalize_gradients: bool = True  # v1's -normalize_gradients: each layer's gradient L1-normalised
    weights: str = weights.DEFAULT
    content_dir: str = ""  # a folder of photos: train a stylisation network (the exemplar is the style)
    content_weight: float = 2.0  # the relu4_2 content term's pull, against 1 per texture layer
    mrf_weight: float = 0.0  # CNNMRF's relu4_1 window term (texture_net.MRF_LAYER), its pull against 1 per layer

    PRESETS = {
        "paper": {},
        # One 256^2 sample a step, the exemplar's size, so the generator learns structure as large as the
        # exemplar's; instance norm, as batch norm over one sample is instance norm in training and only
        # instance norm samples the function trained; the loss over 3 octaves at weight 0.5, for the coarse
        # scales. 1200 steps (lr x0.8 every 250): 18-19 minutes on 2 CPU cores with oneDNN (0.84-0.92 s a
        # step). See the README's held-out table for what each part brings.
        "quick": dict(
            size=256,
            batch=1,
            norm="instance",
            octaves=3,
            octave_weight=0.5,
            steps=1200,
            decay_every=250,
            save_every=200,
        ),
    }
    # With --content-dir: the v1 stylisation script's batch 4 and 3000 steps; quick: 128^2 crops, batch 4.
    STYLE_PRESETS = {
        "paper": {"batch": 4, "steps": 3000},
        "quick": dict(
            size=128, batch=4, norm="batch", octaves=1, octave_weight=1.0, steps=400, decay_every=150, save_every=50
        ),
    }

    @classmethod
    def preset(cls, name: str, **overrides) -> TexNetConfig:
        if name not in cls.PRESETS:
            raise JtexError(f"unknown preset {name!r}; use one of {', '.join(cls.PRESETS)}")
        given = {k: v for k, v in overrides.items() if v is not None}
        style = cls.STYLE_PRESETS[name] if given.get("content_dir") else {}
        kw = {**cls.PRESETS[name], **style, **given}
        multiscale = kw.get("loss", cls.loss) == "multiscale"  # Snelgrove's own 4 equal octaves
        if "octaves" not in given:  # a preset's pyramid: as many of its octaves as --size and --loss allow
            kw["octaves"] = 1 if multiscale else min(kw.get("octaves", 1), octaves_that_fit(kw.get("size", cls.size)))
        if "octave_weight" not in given and multiscale:
            kw["octave_weight"] = 1.0
        return cls(**kw).validate()

    def validate(self) -> TexNetConfig:
        m = 2 ** (self.scales - 1)
        checks = [
            (self.loss in LOSSES, f"--loss must be one of {', '.join(LOSSES)}, got {self.loss!r}"),
            (self.norm in NORMS, f"--norm must be one of {', '.join(NORMS)}, got {self.norm!r}"),
            (self.upsample in UPSAMPLES, f"--upsample must be one of {', '.join(UPSAMPLES)}, got {self.upsample!r}"),
            (1 <= self.scales <= 8, f"--scales must be 1..8, got {self.scales}"),
            (self.size >= m and self.size % m == 0, f"--size must be a multiple of {m} ({self.scales} scales)"),
            (self.size <= 1024, f"--size {self.size} is over 1024; train smaller, sample at any size"),
            (self.batch >= 1 and self.steps >= 1, "--batch and --steps must be at least 1"),
            (self.save_every >= 1 and self.decay_every >= 1, "--save-every and decay_every must be at least 1"),
            (np.isfinite(self.lr) and self.lr > 0, f"--lr must be a positive number, got {self.lr}"),
            (0 < self.lr_decay <= 1, f"lr_decay must be in (0, 1], got {self.lr_decay}"),
            (0 < self.octave_weight <= 4, f"--octave-weight must be in (0, 4], got {self.octave_weight}"),
            (32 <= self.exemplar_size <= 4096, f"--exemplar-size must be 32..4096, got {self.exemplar_size}"),
            (1 <= self.channels <= 128, f"--channels must be 1..128, got {self.channels}"),
            (self.noise_depth >= 1, "noise_depth must be at least 1"),
            (
                np.isfinite(self.content_weight) and self.content_weight >= 0,
                f"--content-weight must be a number >= 0, got {self.content_weight}",
            ),
            (
                np.isfinite(self.mrf_weight) and self.mrf_weight >= 0,
                f"--mrf-weight must be a number >= 0, got {self.mrf_weight}",
            ),
            (self.mrf_weight == 0 or self.loss == "gatys", "--mrf-weight goes with --loss gatys (relu4_1 is its)"),
        ]
        for ok, message in checks:
            if not ok:
                raise JtexError(message)
        if self.loss == "multiscale" and self.octaves != 1:
            raise JtexError("--octaves is for --loss gatys or swd; multiscale always sees 4 octaves")
        if not 1 <= self.octaves <= 4 or self.octaves > octaves_that_fit(self.size):
            raise JtexError(f"--octaves must be 1..4 and leave the coarsest octave 32 px or more, got {self.octaves} "
                            f"at --size {self.size}")  # fmt: skip
        if self.loss == "multiscale" and self.size < 64:
            raise JtexError("--loss multiscale needs --size 64 or more (4 octaves)")
        return self

    def settings(self) -> dict:
        """What the run folder compares on reuse (``steps``/``save_every`` may change: more steps continue)."""
        d = dataclasses.asdict(self)
        return {k: v for k, v in d.items() if k not in ("steps", "save_every")}

    @property
    def stylization(self) -> bool:
        """A stylisation network (photo + noise in), not a texture network (noise in)."""
        return bool(self.content_dir)

    def generator(self) -> generators.PyramidGenerator:
        return generators.PyramidGenerator(self.scales, self.channels, norm=self.norm, upsample=self.upsample)

    def synth_config(self) -> SynthConfig:
        """The engine's settings for this loss (see the module docstring); samples are seen as tiles."""
        if self.loss == "gatys":
            from jtex import vgg

            w = tuple(1.0 / vgg.channels(layer) ** 2 for layer in PAPER_LAYERS)
            kw = dict(layers=PAPER_LAYERS, layer_weights=w, octaves=self.octaves)
        elif self.loss == "swd":
            kw = dict(layers=PAPER_LAYERS, octaves=self.octaves, loss=(("swd", 1.0),), swd_projections=1)
        else:
            kw = dict(layers=(2, 7), octaves=4)
        return SynthConfig(
            sources=(self.source,), output_width=self.size, output_height=self.size, gram="snelgrove",
            padding="same", tile=True, weights=self.weights, **kw,
        ).validate()  # fmt: skip
