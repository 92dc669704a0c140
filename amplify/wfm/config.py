"""The world model's one config dataclass, its named sizes, and the control and condition vocab.

Every size derives from a few dials: `dim` (token width), `depth` (blocks), `heads`, `patch`
(latent cells per token side). A clip of 1 + 4k frames at H x W has 1 + k latent frames of
`latent_channels` x H/8 x W/8 (the tokenizer's 4x8x8), so (H/8/patch) * (W/8/patch) tokens per
latent frame: 128 at the default 128x256 with patch 2.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

from amplify.conditions import TIMES_OF_DAY, WEATHERS
from amplify.errors import ConfigError

# Structure controls: name -> (channels per frame, pixel pooling factor). A control map of
# (T, H, W, C) becomes (4C, 1+k, H/f, W/f): 4 frames per latent frame stacked on channels.
CONTROLS: dict[str, tuple[int, int]] = {
    "edges": (1, 4),
    "blur": (3, 4),
    "layout": (5, 8),  # car, truck, pedestrian, cyclist, other
    "depth": (1, 8),
}
# The source clip's own tokenizer latents (C, 1+k, H/8, W/8): already on the latent grid.
SOURCE = "source"
ALL_CONTROLS: tuple[str, ...] = (*CONTROLS, SOURCE)
LAYOUT_CATEGORIES: tuple[str, ...] = ("car", "truck", "pedestrian", "cyclist")
HEADS: tuple[str, ...] = ("flow", "grade")
# (weather id, time-of-day id) of a source whose condition is not known (`source_condition`)
UNKNOWN_SOURCE: tuple[int, int] = (len(WEATHERS), len(TIMES_OF_DAY))


@dataclass(frozen=True)
class WFMConfig:
    """Shape of the conditional diffusion transformer over tokenizer latents.

    dim, depth, heads: transformer width, blocks, attention heads (head dim = dim / heads).
    patch: latent cells per token side. latent_channels: the tokenizer's latent channels.
    rope_split: head-dim channels given to (time, height, width) rotary positions; sums to the
    head dim, each even. scenarios: size of the scenario/agent-edit embedding table (id 0 = none,
    ids from `amplify.conditions.scenario_id`).
    controls: the structure controls the model accepts (names in ALL_CONTROLS).
    """

    name: str = "custom"
    dim: int = 256
    depth: int = 6
    heads: int = 4
    mlp_ratio: float = 4.0
    patch: int = 2
    latent_channels: int = 16
    rope_split: tuple[int, int, int] = (16, 24, 24)
    rope_theta: float = 100.0
    # Not len(SCENARIOS) + 1 (= 13, amplify.conditions): the committed checkpoints hold a
    # 16-row embedding table, so ids 13..15 are spare rows for scenarios yet to come.
    scenarios: int = 16
    controls: tuple[str, ...] = ("edges", "blur", "layout", "depth", "source")
    tokenizer: str = "tok-small"  # the tokenizer whose latents this model was trained on
    # What the model predicts: "flow" = the velocity of noisy target latents (sampled in steps,
    # decoded by the tokenizer); "grade" = an appearance transform of the source pixels (a
    # bilateral grid of colour transforms plus a weather layer, `appearance.py`), in one pass.
    head: str = "flow"
    grade_bins: int = 8  # luma bins of the bilateral grid (head = "grade")
    # Gaussian low-pass of the grade's cells (std in cells; 0 = off), in training and generation:
    # unsmoothed 8-px cells left blocks in real skies (seen on the demo's contact sheet).
    grade_smooth: float = 1.0
    # The model also reads the SOURCE clip's condition (weather, time of day) when the caller
    # knows it, an "unknown" row when not (zero-initialised embeddings), so that it need not
    # judge the source by its look alone. Off in the committed models: measured, it changed
    # little (docs/WFM.md).
    source_condition: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "rope_split", tuple(int(v) for v in self.rope_split))
        object.__setattr__(self, "controls", tuple(str(c) for c in self.controls))
        if self.dim < 8 or self.heads < 1 or self.dim % self.heads:
            raise ConfigError("dim", self.dim, f"must be >= 8 and divisible by heads={self.heads}")
        if self.depth < 1:
            raise ConfigError("depth", self.depth, "must be >= 1")
        if self.patch < 1:
            raise ConfigError("patch", self.patch, "must be >= 1")
        if len(self.rope_split) != 3 or any(v % 2 or v < 0 for v in self.rope_split):
            raise ConfigError("rope_split", self.rope_split, "need three even sizes")
        if sum(self.rope_split) != self.head_dim:
            raise ConfigError(
                "rope_split", self.rope_split, f"must sum to head dim {self.head_dim}"
            )
        for c in self.controls:
            if c not in ALL_CONTROLS:
                raise ConfigError("controls", self.controls, f"{c!r} not in {ALL_CONTROLS}")
        if self.head not in HEADS:
            raise ConfigError("head", self.head, f"must be one of {list(HEADS)}")
        if self.head == "grade" and SOURCE in self.controls:
            raise ConfigError("controls", self.controls, "a grade model reads the source "
                              "latents as its input tokens: drop 'source'")  # fmt: skip
        if self.grade_bins < 1:
            raise ConfigError("grade_bins", self.grade_bins, "must be >= 1")
        if self.scenarios < 1:
            raise ConfigError("scenarios", self.scenarios, "must be >= 1 (id 0 = none)")

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads

    @property
    def num_weathers(self) -> int:
        return len(WEATHERS)

    @property
    def num_times(self) -> int:
        return len(TIMES_OF_DAY)

    @property
    def out_channels(self) -> int:
        """Channels per latent cell the model predicts: latents, or grade coefficients."""
        if self.head == "grade":
            from amplify.wfm.appearance import grade_channels

            return grade_channels(self.grade_bins)
        return self.latent_channels

    def tokens_per_frame(self, h: int, w: int) -> int:
        """Tokens per latent frame for a latent grid of h x w cells."""
        if h % self.patch or w % self.patch:
            raise ValueError(f"latent grid {h}x{w} is not a multiple of patch={self.patch}")
        return (h // self.patch) * (w // self.patch)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> WFMConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


WFM_CONFIGS: dict[str, WFMConfig] = {
    # Tests: a forward pass in milliseconds; pairs with tok-tiny (16 latent channels too).
    "wfm-tiny": WFMConfig(
        name="wfm-tiny", dim=32, depth=2, heads=2, rope_split=(4, 6, 6), tokenizer="tok-tiny"
    ),
    # The shipped default: ~9 GFLOP per forward over 640 tokens (17x128x256), 12 steps x 2 (CFG)
    # passes in a few seconds on 2 CPU cores.
    "wfm-small": WFMConfig(name="wfm-small", dim=256, depth=6, heads=4, rope_split=(16, 24, 24)),
    # Appearance transform of the source pixels (real detail kept by construction): the
    # wfm-small trunk with a grade head; one pass per variation instead of 12 x 2.
    "wfm-grade": WFMConfig(
        name="wfm-grade",
        dim=256,
        depth=6,
        heads=4,
        rope_split=(16, 24, 24),
        head="grade",
        controls=("edges", "blur", "layout", "depth"),
    ),  # fmt: skip
    "wfm-grade-tiny": WFMConfig(
        name="wfm-grade-tiny",
        dim=32,
        depth=2,
        heads=2,
        rope_split=(4, 6, 6),
        head="grade",
        controls=("edges", "blur", "layout", "depth"),
        tokenizer="tok-tiny",
        grade_bins=4,
    ),  # fmt: skip
    # A wider sibling for GPU runs.
    "wfm-base": WFMConfig(name="wfm-base", dim=384, depth=8, heads=6, rope_split=(16, 24, 24)),
}


def get_config(name: str) -> WFMConfig:
    if name not in WFM_CONFIGS:
        raise ConfigError("wfm", name, f"unknown size; known: {sorted(WFM_CONFIGS)}")
    return WFM_CONFIGS[name]
