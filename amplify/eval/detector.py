"""The agent detector: a tiny CenterNet trained on synthetic ground truth, used to judge whether
an inserted agent shows where its label says (and whether a removed one is really gone).

Design (Zhou, Wang and Kraehenbuehl 2019, "Objects as Points"):
- Input: an RGB frame resized to `INPUT_H x INPUT_W` = 128 x 256, scaled to [-0.5, 0.5].
- Backbone: four 3x3 conv stages (stride 2 each, conv + BN + ReLU twice) to strides 2, 4, 8, 16,
  then a small top-down path (upsample x2 + 1x1 lateral, add, 3x3 conv) back to stride 4:
  a 32 x 64 feature map that keeps pedestrians 8 px tall a couple of cells high.
- Heads (3x3 conv + ReLU + 1x1 each) at stride 4: a centre heatmap per category
  (`AGENT_CATEGORIES`, sigmoid, penalty-reduced focal loss with elliptical Gaussian targets),
  the box size as log(width), log(height) in input pixels (L1), and the sub-cell centre offset (L1).
- Decode: 3x3 max-pool keeps local peaks, the top `MAX_DETS` above a score threshold become boxes,
  scaled back to the caller's frame size.
- Data: synthetic scenes (`amplify.synth`) under random conditions and intensities, a few frames
  spread over a few seconds per scene; with probability `edits`, also a random scenario edit of
  the scene (`amplify.scenarios`: inserted, removed, swapped agents, vans, animals, debris)
  rendered as a twin under another condition. Train and held-out scenes come from disjoint seed
  ranges that avoid the seeds `eval scenarios` uses (0-999 and 20_000-20_999).
- Metrics count only boxes at least `min_box_px` pixels tall (at 256 x 128): smaller labelled
  boxes are ignored (neither missed nor matched), and so are unmatched detections that small.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from amplify.checkpoints import ROOT as CHECKPOINTS_ROOT
from amplify.errors import ConfigError
from amplify.synth.classes import AGENT_CATEGORIES

INPUT_H, INPUT_W = 128, 256
STRIDE = 4
WIDTHS = (16, 32, 64, 96)  # stages at strides 2, 4, 8, 16
NECK = 48  # channels of the stride-4 feature map and the heads
MAX_DETS = 100
RARE_CATEGORIES, RARE_BOOST = ("van", "animal", "debris"), 3.0
TRAIN_MIN_BOX_PX = 4.0  # labelled boxes shorter than this are not trained on (too few pixels)
CHECKPOINT_DIR = CHECKPOINTS_ROOT / "detector"
FORMAT = "amplify.eval.detector"
# Scene seed ranges: eval scenarios renders seeds 0-999 and 20_000-20_999; never train there.
TRAIN_SEED0, VAL_SEED0 = 50_000, 90_000
# Focus sets: every scene edited by one of `focus_templates` (the small road users that
# `eval scenarios` inserts: crossing pedestrians and cyclists seen side-on, animals, debris).
FOCUS_SEED0, VAL_FOCUS_SEED0 = 70_000, 95_000
FOCUS_TEMPLATES = ("pedestrian_crossing", "cyclist_crossing", "animal_on_road", "debris_in_lane")
RESERVED_SEEDS = (range(0, 1000), range(20_000, 21_000))

Detection = tuple[str, float, float, float, float, float]  # category, score, x0, y0, x1, y1


def _block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True),
        nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True),
    )  # fmt: skip


def _head(c_in: int, c_out: int, bias: float = 0.0) -> nn.Sequential:
    h = nn.Sequential(nn.Conv2d(c_in, c_in, 3, 1, 1), nn.ReLU(True), nn.Conv2d(c_in, c_out, 1))
    nn.init.constant_(h[-1].bias, bias)
    return h


class AgentDetector(nn.Module):
    """CenterNet over frames resized to `input_size` (128 x 256, or 256 x 512 for a detector
    trained with `input_scale=2`): per-category centre heatmap, log size and offset at stride 4."""

    def __init__(
        self,
        widths: tuple[int, ...] = WIDTHS,
        neck: int = NECK,
        categories: tuple[str, ...] = AGENT_CATEGORIES,
        input_size: tuple[int, int] = (INPUT_H, INPUT_W),
    ) -> None:
        super().__init__()
        self.widths, self.neck, self.categories = tuple(widths), neck, tuple(categories)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        chans = (3, *widths)
        self.stages = nn.ModuleList(_block(chans[i], chans[i + 1], 2) for i in range(len(widths)))
        # Top-down: stride 16 -> 8 -> 4, each level adds a 1x1 lateral of the backbone stage.
        self.lat = nn.ModuleList(nn.Conv2d(c, neck, 1) for c in widths[1:])
        self.smooth = nn.ModuleList(_block(neck, neck, 1)[:3] for _ in widths[1:-1])
        # Focal loss starts from p = 0.01 everywhere (Lin et al. 2017): the background dominates.
        self.heatmap = _head(neck, len(self.categories), -math.log(99.0))
        self.size = _head(neck, 2)
        self.offset = _head(neck, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x: (B, 3, 128, 256) in [-0.5, 0.5] -> heatmap logits (B, K, 32, 64), log size in input
        pixels (B, 2, 32, 64) as (log w, log h), centre offset in cells (B, 2, 32, 64)."""
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)  # strides 2, 4, 8, 16
        h = self.lat[-1](feats[-1])  # (B, N, H/16, W/16)
        for i in range(len(self.lat) - 2, -1, -1):
            h = F.interpolate(h, scale_factor=2.0, mode="nearest") + self.lat[i](feats[i + 1])
            h = self.smooth[i](h)  # (B, N, H/8, W/8), then (B, N, H/4, W/4)
        return self.heatmap(h), self.size(h), self.offset(h)


def prepare(
    frames: np.ndarray | torch.Tensor, size: tuple[int, int] = (INPUT_H, INPUT_W)
) -> torch.Tensor:
    """(N, H, W, 3) or (H, W, 3) uint8 -> (N, 3, *size) float in [-0.5, 0.5] (bilinear,
    antialiased when shrinking)."""
    x = torch.as_tensor(np.asarray(frames))
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected (N, H, W, 3) RGB frames, got shape {tuple(x.shape)}")
    x = x.permute(0, 3, 1, 2).float() / 255.0  # (N, 3, H, W)
    if tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x, tuple(size), mode="bilinear", antialias=True)
    return x - 0.5


@torch.no_grad()
def decode(
    heat: torch.Tensor,
    size: torch.Tensor,
    offset: torch.Tensor,
    categories: Sequence[str],
    score: float = 0.3,
    max_dets: int = MAX_DETS,
) -> list[list[Detection]]:
    """Network outputs -> per-frame detections in input pixels (128 x 256): local maxima of the
    sigmoid heatmap (3x3 max-pool), the top `max_dets` at or above `score`."""
    p = heat.sigmoid()  # (B, K, h, w)
    B, K, h, w = p.shape
    peaks = p * (F.max_pool2d(p, 3, 1, 1) == p)
    top, idx = peaks.reshape(B, -1).topk(min(max_dets, K * h * w))  # (B, D)
    out: list[list[Detection]] = []
    for b in range(B):
        keep = top[b] >= score
        i = idx[b][keep]
        k, cell = i // (h * w), i % (h * w)
        cy, cx = cell // w, cell % w
        ox, oy = offset[b, 0].flatten()[cell], offset[b, 1].flatten()[cell]
        bw, bh = size[b, 0].flatten()[cell].exp(), size[b, 1].flatten()[cell].exp()
        x = (cx.float() + ox) * STRIDE
        y = (cy.float() + oy) * STRIDE
        out.append([
            (categories[int(k[j])], float(top[b][keep][j]), float(x[j] - bw[j] / 2),
             float(y[j] - bh[j] / 2), float(x[j] + bw[j] / 2), float(y[j] + bh[j] / 2))
            for j in range(len(i))
        ])  # fmt: skip
    return out


@torch.no_grad()
def detect(
    model: AgentDetector, frames: np.ndarray, score: float = 0.3, batch: int = 32
) -> list[list[Detection]]:
    """Agents in each frame: (category, score, x0, y0, x1, y1) in pixels of the input frame size.

    frames: (N, H, W, 3) uint8 at any size; the detector runs at its `input_size` and scales the
    boxes back (it was trained on 256 x 128 renders: other aspect ratios stretch the agents).
    """
    model.eval()
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[None]
    H, W = frames.shape[1:3]
    ih, iw = model.input_size
    sx, sy = W / iw, H / ih
    out: list[list[Detection]] = []
    for i in range(0, len(frames), batch):
        dets = decode(*model(prepare(frames[i : i + batch], (ih, iw))), model.categories, score)
        out += [[(c, s, x0 * sx, y0 * sy, x1 * sx, y1 * sy) for c, s, x0, y0, x1, y1 in d]
                for d in dets]  # fmt: skip
    return out


# --------------------------------------------------------------------------------------------
# Matching


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@dataclass(frozen=True)
class FrameMatch:
    """How one frame's detections meet its labelled boxes.

    found[i]: box i was matched (True), missed (False) or ignored (None: shorter than
    `min_box_px`). det_box[j]: the box detection j matched, -1 if none. false_positives: indices
    of detections that match no box and are at least `min_box_px` tall (those that match an
    ignored box, or are that small themselves, are not counted)."""

    found: tuple[bool | None, ...]
    det_box: tuple[int, ...]
    false_positives: tuple[int, ...]

    @property
    def recall(self) -> float:
        counted = [f for f in self.found if f is not None]
        return sum(counted) / len(counted) if counted else float("nan")


def _xyxy(b) -> tuple[str, tuple[float, float, float, float]]:
    if hasattr(b, "x0"):  # amplify.labels.Box
        return b.category, (b.x0, b.y0, b.x1, b.y1)
    if isinstance(b[1], str):  # (track_id, category, x0, y0, x1, y1)
        return b[1], tuple(b[2:6])
    if len(b) == 6:  # a Detection
        return b[0], tuple(b[2:6])
    return b[0], tuple(b[1:5])  # (category, x0, y0, x1, y1)


def match(
    dets: Sequence[Detection],
    boxes: Sequence,
    iou_min: float = 0.5,
    min_box_px: float = 0.0,
    same_category: bool = True,
) -> FrameMatch:
    """Greedy matching of one frame's detections (highest score first) to its boxes.

    boxes: `amplify.labels.Box`es or (category, x0, y0, x1, y1) tuples, in the detections'
    pixel coordinates. A detection takes the unmatched box of its category (any category when
    `same_category` is False) with the highest IoU, if that is at least `iou_min`. Boxes shorter
    than `min_box_px` can be matched (so a detection of them is no false positive) but are
    neither found nor missed.
    """
    gt = [_xyxy(b) for b in boxes]
    ignored = [(g[1][3] - g[1][1]) < min_box_px for g in gt]
    taken = [False] * len(gt)
    det_box = [-1] * len(dets)
    order = sorted(range(len(dets)), key=lambda j: -dets[j][1])
    for j in order:
        cat, d = _xyxy(dets[j])
        # Prefer a counted box over an ignored one (COCO's rule), then the highest IoU.
        cands = [(not ignored[i], v, i) for i, (gc, g) in enumerate(gt)
                 if not taken[i] and (gc == cat or not same_category)
                 and (v := iou(d, g)) >= iou_min]  # fmt: skip
        best = max(cands)[2] if cands else -1
        if best >= 0:
            taken[best] = True
            det_box[j] = best
    found = tuple(None if ign else t for ign, t in zip(ignored, taken, strict=True))
    fps = tuple(j for j in range(len(dets))
                if det_box[j] < 0 and dets[j][5] - dets[j][3] >= min_box_px)  # fmt: skip
    return FrameMatch(found, tuple(det_box), fps)


# --------------------------------------------------------------------------------------------
# Data


@dataclass(frozen=True)
class DetectorTrainConfig:
    """`amplify train detector`: render labelled synthetic frames (with scenario edits), fit."""

    out: str = str(CHECKPOINT_DIR)  # writes <out>/<name>.safetensors and <name>.json
    name: str = "agent-det"
    scenes: int = 2000  # training scenes: seeds TRAIN_SEED0 + i
    val_scenes: int = 200  # held-out scenes: seeds VAL_SEED0 + i, every one with an edit tried
    frames_per_scene: int = 3
    span_s: float = 2.0  # seconds from a scene's first kept frame to its last
    edits: float = 0.7  # probability a training scene also gets a random scenario edit twin
    width: int = INPUT_W
    height: int = INPUT_H
    steps: int = 4000
    batch: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0  # init, batches, conditions and edits (scene seeds come from the ranges)
    threads: int = 1
    min_box_px: float = 8.0  # metrics count boxes at least this tall (px at 256 x 128)
    score: float = 0.3  # detection threshold of the reported metrics
    cache: str = "out/detector"  # rendered sets are cached here (keyed by the data fields)
    log_every: int = 100
    fp16: bool = True  # weights stored in fp16 (loaded into fp32)
    init_from: str = ""  # a detector checkpoint (name or path) to continue from
    input_scale: int = 1  # the network sees frames upsampled this much (2: 256 x 512, finer boxes)
    focus_scenes: int = 0  # extra training scenes (seeds FOCUS_SEED0 + i), each edited by
    val_focus_scenes: int = 0  # ... one of focus_templates; held-out ones: VAL_FOCUS_SEED0 + i
    focus_templates: list[str] = field(default_factory=lambda: list(FOCUS_TEMPLATES))

    def __post_init__(self) -> None:
        from amplify.scenarios.library import TEMPLATES

        if self.input_scale not in (1, 2):
            raise ConfigError("input_scale", self.input_scale, "must be 1 or 2")
        for key in ("focus_scenes", "val_focus_scenes"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ConfigError(key, v, "must be a non-negative integer")
        unknown = [t for t in self.focus_templates if t not in TEMPLATES]
        if unknown or not self.focus_templates:
            raise ConfigError("focus_templates", list(self.focus_templates),
                              f"must name templates of {sorted(TEMPLATES)}")  # fmt: skip
        for key in ("scenes", "val_scenes", "frames_per_scene", "steps", "batch", "threads",
                    "width", "height", "log_every"):  # fmt: skip
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(key, v, "must be a positive integer")
        if self.width % STRIDE or self.height % STRIDE:
            raise ConfigError("width", (self.width, self.height), f"must be multiples of {STRIDE}")
        if not self.name or "/" in self.name:
            raise ConfigError("name", self.name, "must be a non-empty file stem")
        if not 0.0 <= self.edits <= 1.0:
            raise ConfigError("edits", self.edits, "must be a probability in [0, 1]")
        if not 0.0 < self.score < 1.0:
            raise ConfigError("score", self.score, "must be in (0, 1)")
        for key in ("lr", "span_s"):
            v = getattr(self, key)
            if not isinstance(v, int | float) or not math.isfinite(v) or v <= 0:
                raise ConfigError(key, v, "must be a positive number")
        for key in ("weight_decay", "min_box_px"):
            v = getattr(self, key)
            if not isinstance(v, int | float) or v < 0:
                raise ConfigError(key, v, "must be a non-negative number")
        for seeds, n in ((TRAIN_SEED0, self.scenes), (VAL_SEED0, self.val_scenes)):
            for r in RESERVED_SEEDS:
                if seeds < r.stop and r.start < seeds + n:
                    raise ConfigError("scenes", n, f"seeds {seeds}+ reach {r} (eval scenarios)")
        if TRAIN_SEED0 + self.scenes > FOCUS_SEED0:
            raise ConfigError("scenes", self.scenes, "train seeds would reach the focus range")
        if FOCUS_SEED0 + self.focus_scenes > VAL_SEED0:
            raise ConfigError("focus_scenes", self.focus_scenes, "would reach the held-out range")
        if VAL_SEED0 + self.val_scenes > VAL_FOCUS_SEED0:
            raise ConfigError("val_scenes", self.val_scenes, "would reach the focus held-out range")


@dataclass
class RenderedSet:
    """Frames and boxes. boxes rows: frame index, category index, x0, y0, x1, y1, is_generated."""

    frames: np.ndarray  # (N, H, W, 3) uint8
    boxes: np.ndarray  # (M, 7) float32
    edited: np.ndarray  # (N,) bool: frame of an edited twin
    info: dict = field(default_factory=dict)

    @staticmethod
    def concat(sets: Sequence[RenderedSet]) -> RenderedSet:
        """One set of several (box rows renumbered to the joined frames)."""
        offsets = np.cumsum([0] + [len(r.frames) for r in sets[:-1]])
        boxes = [r.boxes + np.array([o, 0, 0, 0, 0, 0, 0], np.float32)
                 for r, o in zip(sets, offsets, strict=True)]  # fmt: skip
        info = {"parts": [r.info for r in sets], "frames": int(sum(len(r.frames) for r in sets)),
                "seeds": sets[0].info["seeds"], "edits": sets[0].info["edits"]}  # fmt: skip
        return RenderedSet(np.concatenate([r.frames for r in sets]), np.concatenate(boxes),
                           np.concatenate([r.edited for r in sets]), info)  # fmt: skip

    def frame_boxes(self) -> list[np.ndarray]:
        order = np.argsort(self.boxes[:, 0], kind="stable")
        b = self.boxes[order]
        cuts = np.searchsorted(b[:, 0], np.arange(len(self.frames) + 1))
        return [b[cuts[i] : cuts[i + 1]] for i in range(len(self.frames))]


def render_set(
    seed0: int,
    scenes: int,
    cfg: DetectorTrainConfig,
    edits: float,
    progress: Callable[[str], None] = print,
    templates: Sequence[str] = (),
) -> RenderedSet:
    """`frames_per_scene` frames of scenes seed0 .. seed0 + scenes - 1, each under a random
    condition; with probability `edits`, also the frames of a random scenario edit of the scene
    under another random condition (templates that find nothing to edit are skipped), drawn from
    `templates` (all of them when empty)."""
    from amplify.conditions import TIMES_OF_DAY, WEATHERS, Condition
    from amplify.scenarios.edit import NothingToEdit, render_edit
    from amplify.scenarios.library import TEMPLATES, sample_spec
    from amplify.scenarios.world import World
    from amplify.synth.raster import rasterize_clip
    from amplify.synth.render import clip_boxes
    from amplify.synth.scene import sample_scene
    from amplify.synth.shade import shade_clip

    T, W, H = cfg.frames_per_scene, cfg.width, cfg.height
    fps = (T - 1) / cfg.span_s if T > 1 else 1.0
    names = list(templates or TEMPLATES)
    frames, rows, edited = [], [], []
    used: dict[str, int] = {}
    t0 = time.perf_counter()

    def add(rgb: np.ndarray, labels, is_edit: bool) -> None:
        for f in range(T):
            n = len(edited)
            for b in labels[f]:
                rows.append((n, AGENT_CATEGORIES.index(b.category), b.x0, b.y0, b.x1, b.y1,
                             float(b.is_generated)))  # fmt: skip
            frames.append(rgb[f])
            edited.append(is_edit)

    def condition(rng: np.random.Generator) -> Condition:
        w, t = WEATHERS[rng.integers(len(WEATHERS))], TIMES_OF_DAY[rng.integers(len(TIMES_OF_DAY))]
        return Condition(str(w), str(t), round(float(rng.uniform(0.2, 1.0)), 3))

    for i in range(scenes):
        s = seed0 + i
        rng = np.random.default_rng([s, cfg.seed, 31])
        scene = sample_scene(s, duration_s=cfg.span_s + 1.0)
        g = rasterize_clip(scene, T, W, H, fps)
        add(shade_clip(g, condition(rng), s), clip_boxes(g, scene), False)
        if rng.uniform() < edits:
            name = names[int(rng.integers(len(names)))]
            world = World.from_scene(scene, T, W, H, fps)
            try:
                edit = TEMPLATES[name].build(sample_spec(name, s + cfg.seed).params, world)
            except NothingToEdit:
                continue
            maps = render_edit(world, edit)
            add(shade_clip(maps.gbuffer, condition(rng), s), maps.labels.frames, True)
            used[name] = used.get(name, 0) + 1
        if (i + 1) % 100 == 0 or i + 1 == scenes:
            progress(f"detector: rendered {i + 1}/{scenes} scenes (seeds {seed0}+) "
                     f"in {time.perf_counter() - t0:.0f} s")  # fmt: skip
    boxes = np.array(rows, np.float32).reshape(-1, 7)
    info = {"seeds": [seed0, seed0 + scenes - 1], "frames": len(frames), "edits": used}
    return RenderedSet(np.stack(frames), boxes, np.array(edited), info)


def cached_set(
    seed0: int,
    scenes: int,
    cfg: DetectorTrainConfig,
    edits: float,
    progress=print,
    templates: Sequence[str] = (),
) -> RenderedSet:
    """`render_set`, read from `cfg.cache` when a set of the same data fields was rendered."""
    key = {"seed0": seed0, "scenes": scenes, "edits": edits, "seed": cfg.seed,
           **{k: getattr(cfg, k) for k in ("frames_per_scene", "span_s", "width", "height")}}  # fmt: skip
    path = None
    if cfg.cache:
        tag = "-".join(f"{v}" for v in key.values())
        if templates:  # a focus set: its template list is part of its identity
            tag += "-" + "+".join(templates)
        path = Path(cfg.cache) / f"set-{tag}.pt"
        if path.exists():
            z = torch.load(path, weights_only=False)
            progress(f"detector: loaded {len(z['frames'])} frames from {path}")
            return RenderedSet(z["frames"].numpy(), z["boxes"].numpy(), z["edited"].numpy(),
                               z["info"])  # fmt: skip
    rs = render_set(seed0, scenes, cfg, edits, progress, templates)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"frames": torch.from_numpy(rs.frames), "boxes": torch.from_numpy(rs.boxes),
                    "edited": torch.from_numpy(rs.edited), "info": rs.info}, path)  # fmt: skip
    return rs


# --------------------------------------------------------------------------------------------
# Training


def _scaled(rows: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """Box rows (as in `RenderedSet`) in pixels of a frame scaled by (sx, sy)."""
    if sx == 1 and sy == 1:
        return rows
    out = rows.copy()
    out[:, [2, 4]] *= sx
    out[:, [3, 5]] *= sy
    return out


def targets(
    boxes: list[np.ndarray],
    K: int,
    h: int,
    w: int,
    flip: torch.Tensor | None = None,
    W: int = 0,
    min_px: float = TRAIN_MIN_BOX_PX,
) -> dict[str, torch.Tensor]:
    """CenterNet targets at stride 4 for a batch.

    boxes[b]: (M, 7) rows as in `RenderedSet`; flip[b]: mirror the frame (width W) horizontally.
    Returns heat (B, K, h, w) elliptical Gaussians (sigma = a sixth of the box side, at least
    half a cell), and at each centre cell: mask (B, h, w), log size (B, 2, h, w), offset (B, 2, h, w).
    """
    B = len(boxes)
    heat = torch.zeros(B, K, h, w)
    mask = torch.zeros(B, h, w)
    size = torch.zeros(B, 2, h, w)
    off = torch.zeros(B, 2, h, w)
    ys, xs = torch.arange(h).float()[:, None], torch.arange(w).float()[None, :]
    for b, rows in enumerate(boxes):
        for _, k, x0, y0, x1, y1, _gen in rows.tolist():
            bw, bh = x1 - x0, y1 - y0
            if bh < min_px or bw < 1:
                continue
            if flip is not None and bool(flip[b]):
                x0, x1 = W - x1, W - x0
            cx, cy = (x0 + x1) / 2 / STRIDE, (y0 + y1) / 2 / STRIDE
            ix, iy = min(int(cx), w - 1), min(int(cy), h - 1)
            sx, sy = max(bw / STRIDE / 6, 0.5), max(bh / STRIDE / 6, 0.5)
            g = torch.exp(-((xs - ix) ** 2) / (2 * sx * sx) - ((ys - iy) ** 2) / (2 * sy * sy))
            heat[b, int(k)] = torch.maximum(heat[b, int(k)], g)
            mask[b, iy, ix] = 1.0
            size[b, :, iy, ix] = torch.tensor([math.log(bw), math.log(bh)])
            off[b, :, iy, ix] = torch.tensor([cx - ix, cy - iy])
    return {"heat": heat, "mask": mask, "size": size, "offset": off}


def focal_loss(logits: torch.Tensor, heat: torch.Tensor) -> torch.Tensor:
    """Penalty-reduced pixel-wise focal loss (CenterNet, alpha 2, beta 4) per positive."""
    p = logits.sigmoid().clamp(1e-4, 1 - 1e-4)
    pos = heat.eq(1.0).float()
    pos_loss = -(F.logsigmoid(logits) * (1 - p) ** 2 * pos)
    neg_loss = -(F.logsigmoid(-logits) * p**2 * (1 - heat) ** 4 * (1 - pos))
    return (pos_loss.sum() + neg_loss.sum()) / pos.sum().clamp(min=1.0)


def detection_loss(model: AgentDetector, x: torch.Tensor, t: dict) -> dict[str, torch.Tensor]:
    heat, size, off = model(x)
    m = t["mask"][:, None]  # (B, 1, h, w)
    n = m.sum().clamp(min=1.0)
    parts = {
        "heat": focal_loss(heat, t["heat"]),
        "size": ((size - t["size"]).abs() * m).sum() / n,
        "offset": ((off - t["offset"]).abs() * m).sum() / n,
    }
    parts["total"] = parts["heat"] + parts["size"] + parts["offset"]
    return parts


def _augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Brightness, contrast, white balance and noise; geometry is left alone (flips happen with
    the targets). x: (B, 3, H, W) in [-0.5, 0.5]."""
    B = x.shape[0]
    y = x + 0.5
    y = y * (0.8 + 0.4 * torch.rand(B, 1, 1, 1, generator=g))
    y = y * (0.93 + 0.14 * torch.rand(B, 3, 1, 1, generator=g))
    mean = y.mean((1, 2, 3), keepdim=True)
    y = (y - mean) * (0.8 + 0.4 * torch.rand(B, 1, 1, 1, generator=g)) + mean
    y = y + 0.02 * torch.rand(B, 1, 1, 1, generator=g) * torch.randn(y.shape, generator=g)
    return y.clamp(0, 1) - 0.5


def evaluate(model: AgentDetector, rs: RenderedSet, min_box_px: float, score: float = 0.3) -> dict:
    """Recall at IoU 0.5 and precision per category on a rendered set, for boxes at least
    `min_box_px` tall; recall also of the boxes inserted or replaced by edits (`is_generated`)."""
    dets = detect(model, rs.frames, score)
    per = {c: {"boxes": 0, "found": 0, "dets": 0, "fp": 0} for c in AGENT_CATEGORIES}
    gen = {c: [0, 0] for c in AGENT_CATEGORIES}
    any_cat = [0, 0]
    for d, rows in zip(dets, rs.frame_boxes(), strict=True):
        boxes = [(AGENT_CATEGORIES[int(r[1])], *r[2:6].tolist()) for r in rows]
        m = match(d, boxes, 0.5, min_box_px)
        for i, f in enumerate(m.found):
            if f is None:
                continue
            c = boxes[i][0]
            per[c]["boxes"] += 1
            per[c]["found"] += int(f)
            if rows[i, 6]:
                gen[c][0] += 1
                gen[c][1] += int(f)
        fp = set(m.false_positives)
        for j, det in enumerate(d):
            if j in fp or (m.det_box[j] >= 0 and m.found[m.det_box[j]] is not None):
                per[det[0]]["dets"] += 1
                per[det[0]]["fp"] += int(j in fp)
        a = match(d, boxes, 0.5, min_box_px, same_category=False)
        counted = [f for f in a.found if f is not None]
        any_cat[0] += len(counted)
        any_cat[1] += sum(counted)

    def ratio(a: int, b: int) -> float | None:
        return round(a / b, 4) if b else None

    table = {
        c: {"boxes": v["boxes"], "recall": ratio(v["found"], v["boxes"]),
            "precision": ratio(v["dets"] - v["fp"], v["dets"]), "detections": v["dets"],
            "generated_boxes": gen[c][0], "generated_recall": ratio(gen[c][1], gen[c][0])}
        for c, v in per.items()
    }  # fmt: skip
    tot = {k: sum(v[k] for v in per.values()) for k in ("boxes", "found", "dets", "fp")}
    g_tot = [sum(v[0] for v in gen.values()), sum(v[1] for v in gen.values())]
    return {
        "per_category": table,
        "all": {"boxes": tot["boxes"], "recall": ratio(tot["found"], tot["boxes"]),
                "precision": ratio(tot["dets"] - tot["fp"], tot["dets"]),
                "recall_any_category": ratio(any_cat[1], any_cat[0]),
                "generated_boxes": g_tot[0], "generated_recall": ratio(g_tot[1], g_tot[0])},
        "frames": int(len(rs.frames)),
        "min_box_px": min_box_px,
        "score": score,
        "iou": 0.5,
    }  # fmt: skip


def _command(cfg: DetectorTrainConfig) -> str:
    """The `amplify train detector` line that reproduces `cfg` (its fields that differ from
    configs/train_detector.yaml's defaults, which equal the dataclass's)."""
    default = DetectorTrainConfig()
    same_out = Path(cfg.out).resolve() == Path(default.out).resolve()

    def arg(v) -> str:  # a Hydra override value: lists as [a,b], no quotes or spaces
        return "[" + ",".join(str(x) for x in v) + "]" if isinstance(v, list | tuple) else str(v)

    args = [f"{f.name}={arg(getattr(cfg, f.name))}" for f in fields(cfg)
            if getattr(cfg, f.name) != getattr(default, f.name)
            and not (f.name == "out" and same_out)]  # fmt: skip
    return " ".join(["amplify train detector", *args])


def train(cfg: DetectorTrainConfig, progress: Callable[[str], None] = print) -> dict:
    """Render (or load) the sets, fit the detector, measure it on the held-out renders, write
    <out>/<name>.safetensors (+ .json); return the record with the loss history."""
    from safetensors.torch import save_file

    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    t0 = time.perf_counter()
    # 1. Data: training scenes (edits with probability cfg.edits), held-out scenes (always).
    tr = cached_set(TRAIN_SEED0, cfg.scenes, cfg, cfg.edits, progress)
    va = cached_set(VAL_SEED0, cfg.val_scenes, cfg, 1.0, progress)
    focus = tuple(cfg.focus_templates)
    tr_focus = va_focus = None
    if cfg.focus_scenes:
        tr_focus = cached_set(FOCUS_SEED0, cfg.focus_scenes, cfg, 1.0, progress, focus)
        tr = RenderedSet.concat([tr, tr_focus])
    if cfg.val_focus_scenes:
        va_focus = cached_set(VAL_FOCUS_SEED0, cfg.val_focus_scenes, cfg, 1.0, progress, focus)
    t_data = time.perf_counter() - t0
    progress(f"detector: {len(tr.frames)} train frames, {len(tr.boxes)} boxes; "
             f"{len(va.frames)} held-out frames ({t_data:.0f} s)")  # fmt: skip
    # 2. Fit: AdamW, one-cycle schedule, random horizontal flips and colour jitter.
    ih, iw = INPUT_H * cfg.input_scale, INPUT_W * cfg.input_scale
    model = AgentDetector(input_size=(ih, iw))
    if cfg.init_from:
        model.load_state_dict(load_detector(cfg.init_from).state_dict())
        progress(f"detector: continuing from {cfg.init_from}")
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=cfg.steps, pct_start=0.1)
    g = torch.Generator().manual_seed(cfg.seed)
    per_frame = tr.frame_boxes()
    frames = torch.from_numpy(tr.frames)  # (N, H, W, 3) uint8
    H, W = cfg.height, cfg.width
    losses: list[float] = []
    run: dict[str, float] = {}
    model.train()
    # Vans, animals and debris only come from edits (a few percent of the frames): frames that
    # show one are drawn RARE_BOOST times as often.
    rare = [AGENT_CATEGORIES.index(c) for c in RARE_CATEGORIES]
    has_rare = torch.tensor([bool(np.isin(b[:, 1], rare).any()) for b in per_frame])
    weight = 1.0 + (RARE_BOOST - 1.0) * has_rare.double()
    for step in range(cfg.steps):
        idx = torch.multinomial(weight, cfg.batch, True, generator=g)
        flip = torch.rand(cfg.batch, generator=g) < 0.5
        x = prepare(frames[idx], (ih, iw))  # (B, 3, 128, 256) x input_scale
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        x = _augment(x, g)
        rows = [_scaled(per_frame[i], iw / W, ih / H) for i in idx.tolist()]
        t = targets(rows, len(AGENT_CATEGORIES), ih // STRIDE, iw // STRIDE, flip, iw,
                    TRAIN_MIN_BOX_PX * ih / H)  # fmt: skip
        parts = detection_loss(model, x, t)
        opt.zero_grad(set_to_none=True)
        parts["total"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        sched.step()
        losses.append(parts["total"].item())
        for k, v in parts.items():
            run[k] = run.get(k, 0.0) + v.item()
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
            n = (step % cfg.log_every) + 1
            msg = " ".join(f"{k} {v / n:.3f}" for k, v in run.items())
            progress(f"detector: step {step + 1}/{cfg.steps} {msg} "
                     f"({time.perf_counter() - t0:.0f} s)")  # fmt: skip
            run = {}
    t_train = time.perf_counter() - t0 - t_data
    # 3. Measure on the held-out renders.
    metrics = evaluate(model, va, cfg.min_box_px, cfg.score)
    a = metrics["all"]
    progress(f"detector: held-out recall {a['recall']} precision {a['precision']} "
             f"generated recall {a['generated_recall']} (boxes >= {cfg.min_box_px} px)")  # fmt: skip
    focus_metrics = None
    if va_focus is not None:
        focus_metrics = evaluate(model, va_focus, cfg.min_box_px, cfg.score)
        gen = {c: (v["generated_recall"], v["generated_boxes"])
               for c, v in focus_metrics["per_category"].items() if v["generated_boxes"]}  # fmt: skip
        progress(f"detector: focus held-out inserted recall {gen}")
    # 4. Write the checkpoint (fp16 weights, BN statistics kept fp32) and its record.
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    weights_path = out / f"{cfg.name}.safetensors"
    state = {
        k: (v.half() if cfg.fp16 and v.is_floating_point() and "running" not in k else v)
        .detach()
        .contiguous()
        for k, v in model.state_dict().items()
    }
    save_file(state, str(weights_path))
    meta = {
        "format": FORMAT,
        "version": 1,
        "arch": {
            "widths": list(model.widths),
            "neck": model.neck,
            "stride": STRIDE,
            "input": [ih, iw],
            "parameters": sum(p.numel() for p in model.parameters()),
        },  # fmt: skip
        "categories": list(model.categories),
        "command": _command(cfg),
        "argv": sys.argv,
        "config": {k: v for k, v in asdict(cfg).items() if k not in ("out", "cache")},
        "data": {
            "train": f"amplify.synth scenes seeds {tr.info['seeds'][0]}-{tr.info['seeds'][1]}, "
            f"{cfg.frames_per_scene} frames over {cfg.span_s} s at {W}x{H}, one random condition "
            f"(intensity 0.2-1); with probability {cfg.edits} a random scenario edit twin under "
            "another condition",
            "held_out": f"seeds {va.info['seeds'][0]}-{va.info['seeds'][1]}, as train, "
            "an edit twin tried for every scene",
            "focus": (
                f"plus seeds {tr_focus.info['seeds'][0]}-{tr_focus.info['seeds'][1]}, each with "
                f"an edit twin from {list(focus)}"
                if tr_focus is not None
                else None
            ),
            "train_frames": int(len(tr.frames)),
            "train_boxes": int(len(tr.boxes)),
            "train_edits": tr.info["edits"],
            "focus_edits": tr_focus.info["edits"] if tr_focus is not None else None,
            "held_out_frames": int(len(va.frames)),
            "held_out_edits": va.info["edits"],
            "held_out_focus": (
                f"seeds {va_focus.info['seeds'][0]}-{va_focus.info['seeds'][1]}, each with an "
                f"edit twin from {list(focus)}"
                if va_focus is not None
                else None
            ),
            "never_used_seeds": "0-999 and 20000-20999 (eval scenarios)",
            "trained_boxes": f"labelled boxes at least {TRAIN_MIN_BOX_PX} px tall",
        },
        "held_out": metrics,
        "held_out_focus": focus_metrics,
        "metrics_note": f"recall at IoU >= 0.5 (same category) and precision at score >= "
        f"{cfg.score}, counting only boxes at least {cfg.min_box_px} px tall at {W}x{H}: smaller "
        "labelled boxes are ignored, as are unmatched detections that small",
        "seconds": {
            "data": round(t_data, 1),
            "train": round(t_train, 1),
            "total": round(time.perf_counter() - t0, 1),
        },  # fmt: skip
        "threads": cfg.threads,
    }
    (out / f"{cfg.name}.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    progress(f"detector: wrote {weights_path} ({weights_path.stat().st_size / 1e6:.2f} MB)")
    return {**meta, "weights": str(weights_path), "loss_history": losses}


def load_detector(path: str = "agent-det", device: str = "cpu") -> AgentDetector:
    """A trained detector by name (in `checkpoints/detector/`) or by path to its `.safetensors`
    file (its `.json` beside it)."""
    from safetensors.torch import load_file

    from amplify.checkpoints import resolve_checkpoint

    weights = resolve_checkpoint(path, "detector")
    meta_path = weights.with_suffix(".json")
    if not meta_path.exists():
        raise ConfigError("detector", path, f"no {meta_path} beside the weights")
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != FORMAT:
        raise ConfigError("detector", path, f"{meta_path} is not a {FORMAT} checkpoint")
    arch = meta["arch"]
    model = AgentDetector(tuple(arch["widths"]), int(arch["neck"]), tuple(meta["categories"]),
                          tuple(arch.get("input", (INPUT_H, INPUT_W))))  # fmt: skip
    state = {k: v.float() for k, v in load_file(str(weights)).items()}
    state.update({k: v for k, v in load_file(str(weights)).items() if not v.is_floating_point()})
    model.load_state_dict(state)
    return model.to(device).eval()
