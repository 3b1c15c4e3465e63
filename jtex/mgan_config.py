"""The settings of an MDAN synthesis (:func:`jtex.mgan.mdan`): defaults from the authors' code, checks.

:class:`MDANConfig` decides everything a run computes; the run folder stores
it (``config.json``, and every checkpoint's metadata) and refuses other
settings on reuse (``steps`` and ``save_every`` aside: more steps go on).
Importing this module loads no JAX, so the command line checks settings at once.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from jtex.errors import JtexError

DEFAULT_WEIGHTS = "vgg19-normalized"  # jtex.weights.DEFAULT, kept here so checking settings imports nothing heavy
FEATURE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")  # MGAN's optional feature term (not the authors')
STYLE_LAYER = "relu3_1"  # the discriminator's neural patches (MDAN_wrapper.lua: layer 12, plus its TV module)
CONTENT_LAYER = "relu5_1"  # the guided synthesis' content term (layer 30, plus the TV module)
D_BATCHES = ("joint", "separate")
INIT_NOISE = ("spot", "white", "brown")  # MDAN's unguided starts; spot: the exemplar's random-phase texture
GRAM_LAYERS = ("relu1_1", "relu2_1")  # MDAN's grain term (not the authors'): what relu3_1's patches miss
ATOM = 8  # output sides are multiples of 8 (the authors' stand_atom); relu5_1 is then whole
MARGIN = 8  # the canvas' extra pixels per side: keeps the VGG's zero-padding fringe out of the output


@dataclass(frozen=True)
class MDANConfig:
    """Everything that decides what an MDAN run computes (``steps`` and ``save_every`` aside).

    Pixel units are the authors' RGB in [-1, 1] (``lr`` 0.02 is the same step as
    theirs); jtex's VGG sees them as RGB in [0, 1] (see :mod:`jtex.mgan`).
    """

    source: str = ""  # the exemplar (style) image
    content: str = ""  # a photo: guided synthesis (style transfer), the pixels start from it
    width: int = 128
    height: int = 128
    steps: int = 500  # each: d_steps discriminator updates, then one pixel update
    lr: float = 0.02  # pixels' Adam (MDAN_wrapper.lua: netG_lr 0.02, beta1 0.5)
    beta1: float = 0.5
    d_lr: float = 0.02  # the discriminator's Adam (netD_lr 0.02, beta1 0.5)
    d_beta1: float = 0.5
    d_steps: int = 1  # discriminator updates per pixel update (the authors': 1)
    d_batch: str = "separate"  # joint: real and fake patches in one BatchNorm batch; separate: two (the authors')
    tv_weight: float = 1e-4  # squared-difference smoothness term, in [-1, 1] pixel units (the authors' 1e-4)
    content_weight: float = 1.0  # relu5_1 content term (relative MSE) against the style term's 1
    pooling: str = "max"  # the VGG's pooling: max (as trained, the authors'; sharper here) or avg (Gatys')
    patch: int = 8  # neural patch side in relu3_1 cells
    stride: int = 4
    exemplar_size: int = 256  # the exemplar's longer side is resized to this before augmenting
    augment: bool = True  # 18 copies: rotations -10, 0, 10 degrees x scales 1.1^-1, 1, 1.1 x flip
    gram_weight: float = 1.0  # Gram term on GRAM_LAYERS, its gradient this x the adversarial one's norm; 0: off
    init_noise: str = "spot"  # unguided start: spot (the exemplar's spectrum and colours, jtex.spotnoise), white, brown
    init_scale: float = 0.01  # white/brown starts: the exemplar's mean colour plus this x unit noise ([0, 1] units)
    match_colour: bool = True  # the output gets the exemplar's colour histogram (the authors: a contrast stretch)
    margin: int = MARGIN  # px optimised beyond each side, then cropped: the zero-padding frame falls outside
    seed: int = 0
    save_every: int = 50
    weights: str = DEFAULT_WEIGHTS

    def validate(self) -> MDANConfig:
        def number(v):
            return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

        for name in ("lr", "beta1", "d_lr", "d_beta1", "tv_weight", "content_weight", "gram_weight", "init_scale"):
            if not number(getattr(self, name)):
                raise JtexError(f"{_flag(name)} must be a finite number, got {getattr(self, name)!r}")
        for name in (
            "width",
            "height",
            "steps",
            "d_steps",
            "patch",
            "stride",
            "exemplar_size",
            "seed",
            "save_every",
            "margin",
        ):
            if not isinstance(getattr(self, name), int) or isinstance(getattr(self, name), bool):
                raise JtexError(f"{_flag(name)} must be a whole number, got {getattr(self, name)!r}")
        low = 4 * self.patch  # relu3_1 (1/4 of the side) must hold one patch
        checks = [
            (self.d_batch in D_BATCHES, f"--d-batch must be one of {', '.join(D_BATCHES)}, got {self.d_batch!r}"),
            (self.pooling in ("avg", "max"), f"--pooling must be avg or max, got {self.pooling!r}"),
            (isinstance(self.match_colour, bool), f"match_colour must be True or False, got {self.match_colour!r}"),
            (
                self.init_noise in INIT_NOISE,
                f"--init-noise must be one of {', '.join(INIT_NOISE)}, got {self.init_noise!r}",
            ),
            (bool(self.source), "no exemplar: pass -s/--source IMAGE"),
            (
                all(low <= s <= 4096 and s % ATOM == 0 for s in (self.width, self.height)),
                f"-ow/-oh must be multiples of {ATOM} from {max(low, ATOM)} to 4096 (relu3_1 must hold one "
                f"{self.patch}-cell patch), got {self.width}x{self.height}",
            ),
            (self.steps >= 1 and self.d_steps >= 1, "-m/--steps and --d-steps must be at least 1"),
            (self.save_every >= 1, f"--save-every must be at least 1, got {self.save_every}"),
            (self.lr > 0 and self.d_lr > 0, f"--lr and --d-lr must be positive, got {self.lr} and {self.d_lr}"),
            (0 <= self.beta1 < 1 and 0 <= self.d_beta1 < 1, "beta1 and d_beta1 must be in [0, 1)"),
            (self.tv_weight >= 0, f"--tv-weight must be >= 0, got {self.tv_weight}"),
            (self.content_weight >= 0, f"--content-weight must be >= 0, got {self.content_weight}"),
            (self.gram_weight >= 0, f"--gram-weight must be >= 0, got {self.gram_weight}"),
            (self.init_scale >= 0, f"--init-scale must be >= 0, got {self.init_scale}"),
            (1 <= self.patch <= 64 and 1 <= self.stride <= self.patch, "patch must be 1..64 and stride 1..patch"),
            (
                0 <= self.margin <= 64 and self.margin % ATOM == 0,
                f"--margin must be a multiple of {ATOM} from 0 to 64, got {self.margin}",
            ),
            (64 <= self.exemplar_size <= 2048, f"--exemplar-size must be 64..2048, got {self.exemplar_size}"),
        ]
        for ok, message in checks:
            if not ok:
                raise JtexError(message)
        return self

    @property
    def canvas(self) -> tuple[int, int]:
        """(height, width) of the pixels optimised: the output plus ``margin`` on every side."""
        return self.height + 2 * self.margin, self.width + 2 * self.margin

    @property
    def guided(self) -> bool:
        """A content photo is given: style transfer rather than texture synthesis from noise."""
        return bool(self.content)

    def settings(self) -> dict:
        """What the run folder compares on reuse (``steps``/``save_every`` may change: more steps continue)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in ("steps", "save_every")}


def _flag(name: str) -> str:
    return {"width": "-ow", "height": "-oh", "steps": "-m/--steps"}.get(name, "--" + name.replace("_", "-"))


NOISE_KINDS = ("brown", "perlin")  # jtex.noisefields.KINDS, kept here so checking settings imports nothing heavy
SPOT = "spot"  # a Gaussian relu4_1 field drawn from the exemplar's (jtex.spotnoise.field)
SWAP = "swap"  # a wct model's default noise: a spot field, its windows swapped for the exemplar's (spotnoise.swap)
GENERATE_NOISE = (SWAP, SPOT, *NOISE_KINDS)  # what jtex generate --noise takes
TRAIN_NOISE = (*NOISE_KINDS, "both")
DECODERS = ("transposed", "resize")  # jtex.decoders.UPSAMPLERS, kept here so checking settings imports nothing heavy
METHODS = ("wct", "mdan")  # what the decoder learns: see MGANConfig.method
PRESETS = {
    # On 2 CPU cores in well under 30 minutes (teachers included).
    "quick": dict(size=128, teacher_size=128, teachers=6, teacher_steps=125, batch=4, steps=400, save_every=100),
    # The authors' scale: MDAN teachers of 125 steps, 128² patches; batch 16 (theirs: 64).
    "paper": dict(size=128, teacher_size=256, teachers=16, teacher_steps=125, batch=16, steps=3000, save_every=250),
}
# What the presets change for method "wct": no teachers to make, so more decoder steps; the authors' Adam
# step 0.02 made the decoder collapse to the targets' mean (README), 0.002 does not; the feature term
# sharpens what pixel MSE blurs (README: MGAN noise -> texture).
WCT_PRESETS = {
    "quick": dict(steps=800, lr=0.002, d_lr=0.002, feature_weight=1.0),
    "paper": dict(lr=0.002, d_lr=0.002, feature_weight=1.0),
}


@dataclass(frozen=True)
class MGANConfig:
    """Everything that decides what an MGAN training computes (``steps`` and ``save_every`` aside).

    Training has two stages, as the authors': MDAN (:class:`MDANConfig`) turns
    each of ``teachers`` inputs — noise fields, or the photos of
    ``content_dir`` — into a stylised target of ``teacher_size``²; then the
    decoder learns ``input -> target`` on ``size``² crops (pixel MSE + ``adv_weight`` x the
    patch discriminator's hinge loss, both weights normalised to sum 1).
    """

    source: str = ""  # the exemplar (style) image
    # wct: the decoder learns to invert relu4_1 on crops of the exemplar; noise (or a photo) is encoded, its
    # relu4_1 whitened and coloured to the exemplar's (jtex.wct), then decoded. mdan: the authors' — the
    # decoder learns MDAN teachers of noise fields or photos. auto: wct for noise models, mdan with content_dir.
    method: str = "auto"
    content_dir: str = ""  # photos: a photo -> stylised image decoder; empty: noise -> texture
    noise: str = "both"  # the training inputs of a noise model: brown, perlin or both (alternating)
    size: int = 128  # training crops (the authors' 128² patches)
    teacher_size: int = 128  # MDAN targets, teacher_size² (crops of size² are cut from them)
    teachers: int = 6  # how many MDAN targets
    teacher_steps: int = 125  # MDAN steps per target (the authors')
    teacher_content_weight: float = 1.0  # MDAN's relu5_1 content term: how closely a target follows its input
    batch: int = 4
    steps: int = 400
    lr: float = 0.02  # the decoder's Adam (MGAN_wrapper.lua: lr 0.02, beta1 0.5)
    beta1: float = 0.5
    d_lr: float = 0.02  # the discriminator's Adam
    adv_weight: float = 0.01  # against pixel MSE 1 (the authors' MGAN_netS_weight)
    # + this x the relative MSE of the output's FEATURE_LAYERS maps to the target's, beside pixel MSE (authors: 0)
    feature_weight: float = 0.0
    decoder: str = "transposed"  # upsampling: the authors' 4x4 transposed convs, or resize (nearest x2 + 3x3 conv)
    pooling: str = "max"
    exemplar_size: int = 256
    calibration_batches: int = 8  # BatchNorm statistics recomputed with the final weights over this many batches
    seed: int = 0
    save_every: int = 100
    weights: str = DEFAULT_WEIGHTS

    @classmethod
    def preset(cls, name: str, **overrides) -> MGANConfig:
        if name not in PRESETS:
            raise JtexError(f"--preset must be one of {', '.join(PRESETS)}, got {name!r}")
        method = cls(**{k: v for k, v in overrides.items() if k in ("method", "content_dir")}).resolved_method
        extra = WCT_PRESETS[name] if method == "wct" else {}
        return cls(**{**PRESETS[name], **extra, **overrides, "method": method})

    @property
    def resolved_method(self) -> str:
        """``method`` with ``auto`` decided: mdan for a photo model, wct for a noise model."""
        if self.method != "auto":
            return self.method
        return "mdan" if self.content_dir else "wct"

    @property
    def photo_mode(self) -> bool:
        return bool(self.content_dir)

    @property
    def train_kinds(self) -> tuple[str, ...]:
        """The noise fields ``noise`` names: what MDAN teachers of a noise model start from."""
        return NOISE_KINDS if self.noise == "both" else (self.noise,)

    @property
    def kinds(self) -> tuple[str, ...]:
        """The noise kinds the model decodes, its default first (empty for a photo model; every kind for wct,
        swapped spot noise first)."""
        if self.resolved_method == "wct":
            return (SWAP, SPOT, *self.train_kinds, *(k for k in NOISE_KINDS if k not in self.train_kinds))
        return () if self.photo_mode else self.train_kinds

    def teacher(self, index: int) -> MDANConfig:
        """The MDAN settings of target ``index`` (the input is its content; seeds differ per target)."""
        return MDANConfig(
            source=self.source, content=f"input {index}", width=self.teacher_size, height=self.teacher_size,
            steps=self.teacher_steps, content_weight=self.teacher_content_weight, pooling=self.pooling,
            exemplar_size=self.exemplar_size, seed=self.seed * 1000 + index, weights=self.weights, save_every=50,
        )  # fmt: skip

    def validate(self) -> MGANConfig:
        def whole(v):
            return isinstance(v, int) and not isinstance(v, bool)

        for name in ("lr", "beta1", "d_lr", "adv_weight", "feature_weight", "teacher_content_weight"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
                raise JtexError(f"--{name.replace('_', '-')} must be a finite number, got {v!r}")
        for name in ("size", "teacher_size", "teachers", "teacher_steps", "batch", "steps", "seed", "save_every"):
            if not whole(getattr(self, name)):
                raise JtexError(f"--{name.replace('_', '-')} must be a whole number, got {getattr(self, name)!r}")
        checks = [
            (bool(self.source), "no exemplar: pass -s/--source IMAGE"),
            (
                self.method in ("auto", *METHODS),
                f"--method must be one of {', '.join(METHODS)}, got {self.method!r}",
            ),
            (
                not (self.method == "wct" and self.content_dir),
                "--method wct learns from the exemplar alone and stylises any photo: drop --content-dir",
            ),
            (self.noise in TRAIN_NOISE, f"--noise must be one of {', '.join(TRAIN_NOISE)}, got {self.noise!r}"),
            (self.decoder in DECODERS, f"--decoder must be one of {', '.join(DECODERS)}, got {self.decoder!r}"),
            (
                32 <= self.size <= 1024 and self.size % ATOM == 0,
                f"--size must be a multiple of {ATOM} from 32 to 1024, got {self.size}",
            ),
            (
                self.size <= self.teacher_size <= 2048 and self.teacher_size % ATOM == 0,
                f"--teacher-size must be a multiple of {ATOM} from --size ({self.size}) to 2048, "
                f"got {self.teacher_size}",
            ),
            (1 <= self.teachers <= 10000, f"--teachers must be at least 1, got {self.teachers}"),
            (self.teacher_steps >= 1 and self.steps >= 1, "--teacher-steps and --steps must be at least 1"),
            (1 <= self.batch <= 1024, f"--batch must be 1..1024, got {self.batch}"),
            (self.save_every >= 1, f"--save-every must be at least 1, got {self.save_every}"),
            (self.lr > 0 and self.d_lr > 0, f"--lr and --d-lr must be positive, got {self.lr} and {self.d_lr}"),
            (0 <= self.beta1 < 1, f"--beta1 must be in [0, 1), got {self.beta1}"),
            (self.adv_weight >= 0, f"--adv-weight must be >= 0, got {self.adv_weight}"),
            (self.feature_weight >= 0, f"--feature-weight must be >= 0, got {self.feature_weight}"),
            (self.teacher_content_weight >= 0, "--teacher-content-weight must be >= 0"),
            (self.pooling in ("avg", "max"), f"--pooling must be avg or max, got {self.pooling!r}"),
            (64 <= self.exemplar_size <= 2048, f"--exemplar-size must be 64..2048, got {self.exemplar_size}"),
            (0 <= self.calibration_batches <= 1000, "--calibration-batches must be 0..1000"),
        ]
        for ok, message in checks:
            if not ok:
                raise JtexError(message)
        self.teacher(0).validate()
        if self.method == "auto":
            return dataclasses.replace(self, method=self.resolved_method)
        return self

    def settings(self) -> dict:
        """What the run folder compares on reuse (``steps``/``save_every`` may change: more steps continue)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in ("steps", "save_every")}
