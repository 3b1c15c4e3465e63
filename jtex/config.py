"""Synthesis settings as one frozen dataclass.

Defaults are Snelgrove's (subjective-functions): 512x512 output, 4 octaves,
layers [2, 7] = pool1 + relu3_2, Gram / (M N), 'valid' padding, average
pooling, L-BFGS-B, 500 iterations, noise near the exemplar's mean colour.
Gatys' full model is ``octaves=1, layers=("conv1_1", "pool1", "pool2",
"pool3", "pool4"), gram="gatys"``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import numbers
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from jtex import choices
from jtex.choices import IF_DISTANCES, INIT_MODES
from jtex.errors import JtexError

GATYS_LAYERS = ("conv1_1", "pool1", "pool2", "pool3", "pool4")

_INTS = {
    "output_width",
    "output_height",
    "octaves",
    "source_width",
    "max_iter",
    "save_every",
    "seed",
    "batch",
    "count",
    "if_order",
    "if_octaves",
    "margin",
    "gram_tile",
    "swd_projections",
    "coarse_to_fine_above",
}
_FLOATS = {"mul", "source_scale", "init_scale", "tol", "lr", "if_weight", "if_shift", "fps", "tv_weight"}
_BOOLS = {"separate", "tile", "coarse_to_fine", "match_histogram"}
# (setting, lower bound, strictly above it): NaN and infinity are refused too.
_FINITE_RANGES = (
    ("mul", 0.0, True),
    ("tol", 0.0, False),
    ("lr", 0.0, True),
    ("if_weight", 0.0, False),
    ("if_shift", 0.0, True),
    ("fps", 0.0, True),
    ("init_scale", 0.0, False),
    ("source_scale", 0.0, True),
    ("tv_weight", 0.0, False),
)


def parse_loss(text: str) -> tuple[tuple[str, float], ...]:
    """``"gram=1,swd=0.5"`` (or ``"swd"``: weight 1) -> ``(("gram", 1.0), ("swd", 0.5))``."""
    out = []
    for part in str(text).split(","):
        name, _, w = part.strip().partition("=")
        try:
            out.append((name.strip(), float(w) if w.strip() else 1.0))
        except ValueError:
            raise JtexError(f"--loss {text!r}: weight {w!r} of {name!r} is not a number; e.g. --loss gram=1,swd=0.5")
    return tuple(out)


def layer_schedule(weights, n: int) -> tuple[float, ...]:
    """Per-layer weights: numbers, or a schedule ``uniform``, ``linear`` (1..n), ``geometric:q`` (q^0..q^(n-1))."""
    if weights is None:
        return (1.0,) * n
    if not isinstance(weights, str):
        return tuple(float(w) for w in weights)
    name, _, q = weights.partition(":")
    if name == "uniform" and not q:
        return (1.0,) * n
    if name == "linear" and not q:
        return tuple(float(i) for i in range(1, n + 1))
    if name == "geometric":
        try:
            ratio = float(q)
        except ValueError:
            ratio = math.nan
        if math.isfinite(ratio) and ratio > 0:
            return tuple(ratio**i for i in range(n))
    raise JtexError(
        f"--layer-weights {weights!r}: give one number per layer or a schedule: uniform, linear, geometric:Q (Q > 0)"
    )


@dataclass(frozen=True)
class SynthConfig:
    sources: tuple[str, ...] = ()
    output_width: int = 512
    output_height: int = 512
    octaves: int = 4
    layers: tuple = (2, 7)
    layer_weights: tuple[float, ...] | str | None = None  # numbers, or uniform | linear | geometric:Q
    loss: tuple = (("gram", 1.0),)  # (statistic, weight) pairs, see jtex.losses
    tv_weight: float = 0.0  # total variation of the image, mean |dx| + |dy| per pixel
    swd_projections: int = choices.SWD_PROJECTIONS  # sliced Wasserstein directions per feature channel
    gram: str = "snelgrove"
    padding: str = "valid"
    pooling: str = "avg"
    join: str = "average"
    mul: float = 1.0
    source_width: int | None = None
    source_scale: float | None = None
    init: str = "noise"  # 'noise' (or 'random'), 'symmetric' or an image path
    init_scale: float = 0.01  # standard deviation of the start noise, in [0, 1] pixel units
    margin: int | None = None  # px synthesised beyond each side and cropped; None: automatic
    optimizer: str = "lbfgs-b"
    max_iter: int = 500
    tol: float = 1e-9
    lr: float = 0.02
    save_every: int = 50
    seed: int = 0
    batch: int = 1
    separate: bool = False
    tile: bool = False
    coarse_to_fine: bool = False
    coarse_to_fine_above: int = 2048  # px: still images this wide or tall run coarse-to-fine anyway; 0: never
    gram_tile: int = 1024  # px per tile side for Grams of levels larger than twice that (jtex.tiling); 0: whole
    compute_dtype: str = "float32"  # the VGG's convolutions: float32 or bfloat16 (accelerators); Grams in float32
    match_histogram: bool = False
    weights: str = "vgg19-normalized"
    # Animation (Snelgrove's inter-frame loss); count=1 is a still image.
    count: int = 1
    if_weight: float = 1.0
    if_shift: float = 5.0
    if_order: int = 2
    if_distance_type: str = "l2"
    if_octaves: int = 1
    fps: float = 12.0
    extra: dict = field(default_factory=dict, compare=False, repr=False)
    # Exemplars given as arrays (Python API) instead of files: (h, w, 3) float32 in [0, 1].
    arrays: tuple | None = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        if isinstance(self.loss, str):  # the Python API may pass "gram=1,swd=0.5" as on the command line
            object.__setattr__(self, "loss", parse_loss(self.loss))
        elif isinstance(self.loss, (list, tuple)) and all(isinstance(p, (list, tuple)) for p in self.loss):
            object.__setattr__(self, "loss", tuple(tuple(p) for p in self.loss))

    def replace(self, **kw) -> SynthConfig:
        return dataclasses.replace(self, **kw)

    def to_dict(self) -> dict:
        """JSON-able settings; exemplars given as arrays appear as their sha256."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("extra", "arrays")}
        d = json.loads(json.dumps(d))
        if self.arrays is not None:
            d["array_sha256"] = [
                hashlib.sha256(np.ascontiguousarray(a, np.float32).tobytes()).hexdigest() for a in self.arrays
            ]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> SynthConfig:
        names = {f.name for f in dataclasses.fields(cls)} - {"arrays", "extra"}
        unknown = set(d) - names
        if unknown:
            raise JtexError(f"unknown setting(s) {', '.join(sorted(unknown))}")
        d = dict(d)
        for key in ("sources", "layers", "layer_weights"):
            if d.get(key) is not None and not isinstance(d[key], str):
                d[key] = tuple(d[key])
        if d.get("loss") is not None:
            d["loss"] = tuple((str(k), float(w)) for k, w in d["loss"])
        return cls(**d)

    def validate(self) -> SynthConfig:
        """Raise a one-line JtexError for any bad setting; return self."""

        def bad(msg):
            raise JtexError(msg)

        self._check_types()
        for name, low, strict in _FINITE_RANGES:
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and (value > low if strict else value >= low)):
                bad(f"--{name.replace('_', '-')} must be a finite number {'>' if strict else '>='} {low}, got {value}")
        layer_w = layer_schedule(self.layer_weights, len(self.layers))
        if not all(math.isfinite(w) and w >= 0 for w in layer_w):
            bad(f"--layer-weights must be finite and >= 0, got {list(layer_w)}")
        self._check_loss()
        if self.output_width < 1 or self.output_height < 1:
            bad(f"output size must be positive, got {self.output_width}x{self.output_height}")
        if self.octaves < 1:
            bad(f"--octaves must be at least 1, got {self.octaves}")
        side = min(self.output_width, self.output_height)
        if self.octaves > max(1, side.bit_length() - 1):
            bad(
                f"--octaves {self.octaves} is too many for a {self.output_width}x{self.output_height} output: each "
                f"octave halves it, so at most {max(1, side.bit_length() - 1)}; use fewer octaves or a larger output"
            )
        if not self.layers:
            bad("--layers is empty: name at least one layer, e.g. -l 2 7 or -l relu3_1")
        from jtex import vgg

        try:
            vgg.resolve_layers(self.layers)
        except ValueError as e:
            bad(f"--layers: {e}")
        if len(layer_w) != len(self.layers):
            bad(f"--layer-weights has {len(self.layer_weights)} values for {len(self.layers)} layers")
        named = {
            "gram": (self.gram, choices.GRAM_NORMS),
            "padding-mode": (self.padding, choices.PADDINGS),
            "pooling": (self.pooling, choices.POOLINGS),
            "compute-dtype": (self.compute_dtype, choices.COMPUTE_DTYPES),
            "join-mode": (self.join, choices.JOIN_MODES),
            "optimizer": (self.optimizer, choices.OPTIMIZERS),
            "if-distance-type": (self.if_distance_type, IF_DISTANCES),
        }
        for flag, (value, allowed) in named.items():
            if value not in allowed:
                bad(f"--{flag} {value!r} is not one of: {', '.join(allowed)}")
        if self.max_iter < 1:
            bad(f"--max-iter must be at least 1, got {self.max_iter}")
        if self.coarse_to_fine_above < 0:
            bad(f"--coarse-to-fine-above must be 0 (never) or a side in px, got {self.coarse_to_fine_above}")
        if not 1 <= self.swd_projections <= 64:
            bad(f"--swd-projections must be 1 to 64 directions per channel, got {self.swd_projections}")
        if self.gram_tile < 0:
            bad(f"--gram-tile must be 0 (off) or a tile side in px, got {self.gram_tile}")
        if self.batch < 1:
            bad(f"--batch must be at least 1, got {self.batch}")
        if self.count < 1:
            bad(f"--count must be at least 1, got {self.count}")
        if self.count > 1 and (self.batch > 1 or self.separate):
            bad("--count (animation) cannot be combined with --batch or --separate")
        if self.count > 1 and self.coarse_to_fine:
            bad("--count (animation) cannot be combined with --coarse-to-fine")
        if self.source_width is not None and self.source_width < 1:
            bad(f"--source-width must be positive, got {self.source_width}")
        if self.source_scale is not None and self.source_scale <= 0:
            bad(f"--source-scale must be positive, got {self.source_scale}")
        if self.lr <= 0:
            bad(f"--lr must be positive, got {self.lr}")
        if self.save_every < 0:
            bad(f"--save-every must be >= 0, got {self.save_every}")
        if self.if_octaves < 1 or self.if_octaves > self.octaves:
            bad(f"--if-octaves {self.if_octaves} must be between 1 and --octaves ({self.octaves})")
        if self.if_order < 1:
            bad(f"--if-order must be at least 1, got {self.if_order}")
        if self.count > 1 and self.if_order >= self.count:
            bad(f"--if-order {self.if_order} must be smaller than --count {self.count}")
        if self.fps <= 0:
            bad(f"--fps must be positive, got {self.fps}")
        if self.init not in INIT_MODES and not Path(self.init).is_file():
            bad(f"--init {self.init!r}: not 'random', 'symmetric' or an existing image file")
        if not (self.init_scale >= 0 and self.init_scale <= 1):
            bad(f"--init-scale must be between 0 and 1, got {self.init_scale}")
        if self.margin is not None and not 0 <= self.margin <= 256:
            bad(f"--margin must be between 0 and 256 px, got {self.margin}")
        return self

    def _check_loss(self):
        kinds = [k for k, _ in self.loss]
        if not kinds:
            raise JtexError("--loss is empty: name at least one statistic, e.g. --loss gram=1")
        for k, w in self.loss:
            if k not in choices.STATISTICS:
                raise JtexError(f"--loss {k!r} is not one of: {', '.join(choices.STATISTICS)}")
            if not (math.isfinite(w) and w >= 0):
                raise JtexError(f"--loss {k}={w}: weights must be finite and >= 0")
        if len(set(kinds)) != len(kinds):
            raise JtexError(f"--loss names a statistic twice: {','.join(kinds)}")
        if not any(w > 0 for _, w in self.loss):
            raise JtexError("--loss: every weight is 0; give at least one statistic a positive weight")

    def _check_types(self):
        """Ints where ints belong, numbers where numbers belong: one line instead of a deep traceback."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if (
                f.name in _INTS
                and value is not None
                and (isinstance(value, bool) or not isinstance(value, numbers.Integral))
            ):
                raise JtexError(f"setting {f.name} must be a whole number, got {value!r} ({type(value).__name__})")
            if (
                f.name in _FLOATS
                and value is not None
                and (isinstance(value, bool) or not isinstance(value, numbers.Real))
            ):
                raise JtexError(f"setting {f.name} must be a number, got {value!r} ({type(value).__name__})")
            if f.name in _BOOLS and not isinstance(value, bool):
                raise JtexError(f"setting {f.name} must be True or False, got {value!r}")
        if not isinstance(self.loss, tuple) or not all(
            isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str) for p in self.loss
        ):
            raise JtexError(f"setting loss must be (statistic, weight) pairs, got {self.loss!r}")
        if (
            self.layer_weights is not None
            and not isinstance(self.layer_weights, str)
            and not all(isinstance(w, numbers.Real) and not isinstance(w, bool) for w in self.layer_weights)
        ):
            raise JtexError(f"setting layer_weights must be numbers, got {list(self.layer_weights)!r}")

    def dumps(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)
