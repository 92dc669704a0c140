"""The condition classifier: an independent small CNN that names the weather and time of day of a
frame, used to check that a generated clip shows the condition it was asked for.

Design:
- Input: any RGB frame, resized (bilinear, antialiased) to `INPUT_H x INPUT_W` = 64 x 128, scaled
  to [-0.5, 0.5]. Four 3x3 stride-2 conv + BatchNorm + ReLU blocks (24, 48, 96, 128 channels),
  global average and max pooling concatenated (256), a linear layer + ReLU to the 128-d feature
  (`features`, the penultimate layer, used for the Frechet distance), and two linear heads:
  weather (4-way, `WEATHERS`) and time of day (3-way, `TIMES_OF_DAY`).
- A clip is classified by averaging the per-frame softmax of each head over its frames.
- Trained on ground-truth renders of the synthetic corpus (`amplify.synth`: every scene under every
  weather x time of day, each clip at its own random intensity, a few frames per clip spread over
  seconds; split by scene seed) and, with `real_root` set, on real footage (`amplify.realdata`:
  the training items of `../shared/data/train_real`, labels from its manifest, frames sampled
  across each clip through the ingest; the fixed validation items are never trained on). Real
  footage is mostly clear day: each batch draws `real_fraction` of its frames from the real set,
  with every real condition drawn equally often, so rain, fog, dusk and night frames count.
- Augmentation makes it judge the condition, not the camera: random crops and scales, flips,
  colour jitter small enough to keep day, dusk and night apart (brightness, contrast, saturation,
  white balance, gamma), blur, a down-up resample (compression softness), noise, and small
  overlays (a dark bonnet or dashboard band, a bright logo or timestamp box).
- It never sees the world model, the tokenizer or the classical baselines: it is independent of
  what it scores.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from amplify.checkpoints import ROOT as CHECKPOINTS_ROOT
from amplify.conditions import TIMES_OF_DAY, WEATHERS, Condition
from amplify.errors import ConfigError

INPUT_H, INPUT_W = 64, 128
FEATURE_DIM = 128
WIDTHS = (24, 48, 96, 128)
CHECKPOINT_DIR = CHECKPOINTS_ROOT / "classifier"


class ConditionClassifier(nn.Module):
    """Two-head CNN over 64 x 128 frames: weather (4) and time of day (3)."""

    def __init__(self, widths: tuple[int, ...] = WIDTHS, feature_dim: int = FEATURE_DIM) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for c in widths:
            layers += [nn.Conv2d(c_in, c, 3, stride=2, padding=1, bias=False),
                       nn.BatchNorm2d(c), nn.ReLU(inplace=True)]  # fmt: skip
            c_in = c
        self.body = nn.Sequential(*layers)
        self.proj = nn.Linear(2 * c_in, feature_dim)
        self.weather = nn.Linear(feature_dim, len(WEATHERS))
        self.time_of_day = nn.Linear(feature_dim, len(TIMES_OF_DAY))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 3, 64, 128) float in [-0.5, 0.5] -> (B, feature_dim), the penultimate layer."""
        h = self.body(x)  # (B, C, 4, 8)
        h = torch.cat([h.mean((2, 3)), h.amax((2, 3))], 1)  # (B, 2C)
        return F.relu(self.proj(h))  # (B, D)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(x)
        return self.weather(f), self.time_of_day(f)  # (B, 4), (B, 3)


def prepare(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(T, H, W, 3) or (H, W, 3) uint8 -> (T, 3, 64, 128) float in [-0.5, 0.5]."""
    x = torch.as_tensor(np.asarray(frames))
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected (T, H, W, 3) RGB frames, got shape {tuple(x.shape)}")
    x = x.permute(0, 3, 1, 2).float() / 255.0  # (T, 3, H, W)
    if x.shape[-2:] != (INPUT_H, INPUT_W):
        x = F.interpolate(
            x, (INPUT_H, INPUT_W), mode="bilinear", antialias=True, align_corners=False
        )
    return x - 0.5


@torch.no_grad()
def clip_features(model: ConditionClassifier, frames: np.ndarray, batch: int = 64) -> np.ndarray:
    """Penultimate features of every frame of a clip.  # (T, FEATURE_DIM) float32"""
    model.eval()
    x = prepare(frames)
    return torch.cat([model.features(x[i : i + batch]) for i in range(0, len(x), batch)]).numpy()


@torch.no_grad()
def classify_clip(model: ConditionClassifier, frames: np.ndarray) -> dict:
    """Weather and time of day of a clip: per-frame softmax averaged over frames, then argmax."""
    model.eval()
    lw, lt = model(prepare(frames))
    pw, pt = lw.softmax(-1).mean(0), lt.softmax(-1).mean(0)
    return {
        "weather": WEATHERS[int(pw.argmax())],
        "time_of_day": TIMES_OF_DAY[int(pt.argmax())],
        "p_weather": {w: float(p) for w, p in zip(WEATHERS, pw, strict=True)},
        "p_time_of_day": {t: float(p) for t, p in zip(TIMES_OF_DAY, pt, strict=True)},
    }


# --------------------------------------------------------------------------------------------
# Training


@dataclass(frozen=True)
class ClassifierTrainConfig:
    """`amplify train classifier`: render a labelled set from the synthetic corpus and fit."""

    out: str = str(CHECKPOINT_DIR)  # writes <out>/<name>.safetensors and <name>.json
    name: str = "cond-cls"
    train_scenes: int = 200
    val_scenes: int = 40
    seed: int = 1  # scene seeds scene_seed(seed, i) train; scene_seed(seed + 1, i) are held out
    frames_per_clip: int = 2
    frame_gap_s: float = 1.0  # seconds between the frames kept of one clip
    width: int = 256  # render size; the classifier resizes to 64 x 128
    height: int = 128
    intensity_min: float = 0.3
    intensity_max: float = 1.0
    epochs: int = 12
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    blur_max: float = 1.5  # px at 64 x 128; augmentation
    noise_max: float = 0.02
    threads: int = 1  # one thread: on a shared 2-core machine it beat two (less waiting)
    cache: str = ""  # .npz of the rendered set; reused when it exists (same config)
    # Real footage (amplify.realdata); "" trains on renders only.
    real_root: str = ""
    real_split: str = "configs/splits/train_real_split.json"
    real_fps: float = 2.0  # frames sampled per second of clear-day footage
    real_rare_fps: float = 15.0  # ... of rain, fog, dusk and night footage (scarce)
    real_fraction: float = 0.5  # share of each batch drawn from real frames
    real_cache: str = ""  # .npz of the sampled real frames; reused when it exists
    crop_min: float = 0.6  # random crop keeps at least this share of each side... area scale
    jitter: float = 0.12  # colour jitter amplitude (brightness, contrast, gamma, white balance)
    overlay_p: float = 0.3  # probability of a bonnet band or a logo box per frame
    # Auto-exposure gain up to this on half the dusk and night frames: real cameras lift a lit
    # night road to day-like levels (a validation night clip averages 3x the training night luma).
    exposure_max: float = 1.0  # 1 = off
    label_smoothing: float = 0.05
    fp16: bool = True  # weights stored in fp16 (half the bytes; loaded into fp32)

    def __post_init__(self) -> None:
        for key in ("train_scenes", "val_scenes", "frames_per_clip", "epochs", "batch_size",
                    "threads"):  # fmt: skip
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(key, v, "must be a positive integer")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError("seed", self.seed, "must be a non-negative integer")
        if not self.name or "/" in self.name:
            raise ConfigError("name", self.name, "must be a non-empty file stem")
        if not 0.0 <= self.intensity_min <= self.intensity_max <= 1.0:
            raise ConfigError("intensity_min", (self.intensity_min, self.intensity_max),
                              "need 0 <= intensity_min <= intensity_max <= 1")  # fmt: skip
        for key in ("frame_gap_s", "lr"):
            v = getattr(self, key)
            if not isinstance(v, int | float) or not math.isfinite(v) or v <= 0:
                raise ConfigError(key, v, "must be a positive number")
        for key in ("real_fps", "real_rare_fps"):
            v = getattr(self, key)
            if not isinstance(v, int | float) or not 0 < v <= 240:
                raise ConfigError(key, v, "must be in (0, 240]")
        for key in ("real_fraction", "overlay_p", "jitter", "label_smoothing"):
            v = getattr(self, key)
            if not isinstance(v, int | float) or not 0 <= v < 1:
                raise ConfigError(key, v, "must be in [0, 1)")
        if not 1 <= self.exposure_max <= 8:
            raise ConfigError("exposure_max", self.exposure_max, "must be in [1, 8]")
        if not 0.2 <= self.crop_min <= 1:
            raise ConfigError("crop_min", self.crop_min, "must be in [0.2, 1]")
        for key in ("weight_decay", "blur_max", "noise_max"):
            v = getattr(self, key)
            if not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
                raise ConfigError(key, v, "must be a non-negative number")


def render_set(
    seed: int, scenes: int, cfg: ClassifierTrainConfig, progress: Callable[[str], None] = print
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frames of `scenes` scenes under every condition at random intensity, resized to 64 x 128.

    Returns images (N, 64, 128, 3) uint8, weather ids (N,), time-of-day ids (N,).
    """
    from amplify.synth.corpus import scene_seed
    from amplify.synth.render import render_twins
    from amplify.synth.scene import sample_scene

    fps = 1.0 / cfg.frame_gap_s
    imgs, wid, tid = [], [], []
    t0 = time.perf_counter()
    for i in range(scenes):
        s = scene_seed(seed, i)
        rng = np.random.default_rng([s, 7])
        conds = [Condition(w, t, float(rng.uniform(cfg.intensity_min, cfg.intensity_max)))
                 for w in WEATHERS for t in TIMES_OF_DAY]  # fmt: skip
        scene = sample_scene(s, duration_s=cfg.frames_per_clip * cfg.frame_gap_s)
        for clip in render_twins(scene, conds, cfg.frames_per_clip, cfg.width, cfg.height, fps):
            x = ((prepare(clip.rgb) + 0.5) * 255.0).round().clamp(0, 255).to(torch.uint8)
            imgs.append(x.permute(0, 2, 3, 1).numpy())  # (F, 64, 128, 3)
            wid += [WEATHERS.index(clip.condition.weather)] * len(x)
            tid += [TIMES_OF_DAY.index(clip.condition.time_of_day)] * len(x)
        if (i + 1) % 20 == 0 or i + 1 == scenes:
            progress(f"classifier: rendered {i + 1}/{scenes} scenes (seed {seed}) "
                     f"in {time.perf_counter() - t0:.0f} s")  # fmt: skip
    return np.concatenate(imgs), np.array(wid, np.int64), np.array(tid, np.int64)


def real_set(
    cfg: ClassifierTrainConfig, progress: Callable[[str], None] = print
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict], dict]:
    """Frames of the real training items (`amplify.realdata.train_items`), resized to 64 x 128.

    Clear-day items are sampled at `real_fps`, the scarce conditions at `real_rare_fps`, each
    across its whole clip through the ingest (256 x 128 centre crop, like the job's frames).
    Returns images (N, 64, 128, 3) uint8, weather ids, time-of-day ids, the licences of the
    items used and the frame count per condition.
    """
    from amplify import realdata

    items = realdata.train_items(cfg.real_root, cfg.real_split)
    imgs, wid, tid = [], [], []
    counts: dict[str, int] = {}
    t0 = time.perf_counter()
    for item in items:
        fps = cfg.real_fps if item.condition == "clear_day" else cfg.real_rare_fps
        frames = realdata.read_item_frames(item, fps=fps, width=cfg.width, height=cfg.height)
        x = ((prepare(frames) + 0.5) * 255.0).round().clamp(0, 255).to(torch.uint8)
        imgs.append(x.permute(0, 2, 3, 1).numpy())  # (F, 64, 128, 3)
        wid += [WEATHERS.index(item.weather)] * len(x)
        tid += [TIMES_OF_DAY.index(item.time_of_day)] * len(x)
        counts[item.condition] = counts.get(item.condition, 0) + len(x)
    progress(f"classifier: {sum(counts.values())} real frames from {len(items)} items "
             f"{counts} in {time.perf_counter() - t0:.0f} s")  # fmt: skip
    return (np.concatenate(imgs), np.array(wid, np.int64), np.array(tid, np.int64),
            realdata.licences(items), counts)  # fmt: skip


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur.  x: (B, 3, H, W)"""
    r = max(1, int(math.ceil(2.5 * sigma)))
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=torch.float32) / sigma) ** 2)
    k = k / k.sum()
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"),
                 k.view(1, 1, 1, -1).repeat(3, 1, 1, 1), groups=3)  # fmt: skip
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"),
                    k.view(1, 1, -1, 1).repeat(3, 1, 1, 1), groups=3)  # fmt: skip


def _augment(
    x: torch.Tensor,
    cfg: ClassifierTrainConfig,
    g: torch.Generator,
    times: torch.Tensor | None = None,
) -> torch.Tensor:
    """Crop, flip, colour, expose, blur, resample, overlay and noise a training batch.

    x: (B, 3, 64, 128) in [-0.5, 0.5]; times: (B,) time-of-day ids. Every change keeps the
    condition: the colour jitter is small next to the gap between day, dusk and night, the
    exposure gain only brightens dusk and night frames (saturating their lights, as a camera
    does), and overlays cover little of the frame.
    """
    B, _, H, W = x.shape

    def u(lo: float, hi: float, *shape: int) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(shape or (B,), generator=g)

    # 1. Random crop + scale + flip, as one affine resample (a crop of a real camera's view).
    scale = u(cfg.crop_min, 1.0).sqrt()  # side fraction
    aspect = u(0.9, 1.1)
    sx, sy = (scale * aspect).clamp(max=1.0), (scale / aspect).clamp(max=1.0)
    tx, ty = (1 - sx) * u(-1, 1), (1 - sy) * u(-1, 1)
    flip = torch.where(torch.rand(B, generator=g) < 0.5, -1.0, 1.0)
    theta = torch.zeros(B, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = sx * flip, tx
    theta[:, 1, 1], theta[:, 1, 2] = sy, ty
    grid = F.affine_grid(theta, (B, 3, H, W), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    # 2. Colour: brightness, contrast, saturation, white balance, gamma (in [0, 1] space).
    j = cfg.jitter
    if j > 0:
        y = x + 0.5
        y = (
            y
            * u(1 - j, 1 + j)[:, None, None, None]
            * u(1 - j / 2, 1 + j / 2, B, 3)[..., None, None]
        )
        mean = y.mean((1, 2, 3), keepdim=True)
        y = (y - mean) * u(1 - j, 1 + j)[:, None, None, None] + mean
        grey = y.mean(1, keepdim=True)
        y = (y - grey) * u(1 - 2 * j, 1 + 2 * j)[:, None, None, None] + grey
        y = y.clamp(0, 1) ** u(1 - j, 1 + j)[:, None, None, None]
        x = y - 0.5
    if times is not None and cfg.exposure_max > 1:
        lift = (times > 0) & (torch.rand(B, generator=g) < 0.5)
        gain = torch.where(lift, u(1.0, cfg.exposure_max), torch.ones(B))
        x = ((x + 0.5) * gain[:, None, None, None]).clamp(0, 1) - 0.5
    # 3. Blur (soft decodes, defocus), and a down-up resample (compression, low bitrate).
    if cfg.blur_max > 0:
        sigma = float(torch.rand((), generator=g)) * cfg.blur_max
        if sigma > 0.3:
            x = _blur(x, sigma)
    if float(torch.rand((), generator=g)) < 0.3:
        f = float(u(1.5, 3.0, 1))
        small = F.interpolate(x, (int(H / f), int(W / f)), mode="area")
        x = F.interpolate(small, (H, W), mode="bilinear", align_corners=False)
    # 4. Overlays: a dark bonnet / dashboard band at the bottom, a bright or dark logo box.
    if cfg.overlay_p > 0:
        band = torch.rand(B, generator=g) < cfg.overlay_p / 2
        for b in band.nonzero().flatten().tolist():
            h = int(u(0.05, 0.18, 1) * H)
            x[b, :, H - h :] = float(u(-0.5, -0.2, 1))
        box = torch.rand(B, generator=g) < cfg.overlay_p / 2
        for b in box.nonzero().flatten().tolist():
            bh, bw = int(u(3, 8, 1)), int(u(8, 30, 1))
            y0 = 0 if float(torch.rand((), generator=g)) < 0.5 else H - bh
            x0 = int(u(0, W - bw, 1))
            x[b, :, y0 : y0 + bh, x0 : x0 + bw] = float(u(-0.5, 0.5, 1))
    if cfg.noise_max > 0:
        std = torch.rand(B, 1, 1, 1, generator=g) * cfg.noise_max
        x = x + std * torch.randn(x.shape, generator=g)
    return x.clamp(-0.5, 0.5)


def _to_input(imgs: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255.0 - 0.5  # (N, 3, 64, 128)


@torch.no_grad()
def predict(model: ConditionClassifier, imgs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame softmax of both heads on 64 x 128 uint8 frames.  # (N, 4), (N, 3)"""
    model.eval()
    pw, pt = [], []
    for i in range(0, len(imgs), 256):
        lw, lt = model(_to_input(imgs[i : i + 256]))
        pw.append(lw.softmax(-1).numpy())
        pt.append(lt.softmax(-1).numpy())
    return np.concatenate(pw), np.concatenate(pt)


@torch.no_grad()
def accuracy(model: ConditionClassifier, imgs: np.ndarray, w: np.ndarray, t: np.ndarray) -> dict:
    """Per-frame accuracy of each head, of both together, and of both per condition."""
    pw, pt = predict(model, imgs)
    ok_w, ok_t = pw.argmax(-1) == w, pt.argmax(-1) == t
    both = ok_w & ok_t
    per = {}
    for wi, wn in enumerate(WEATHERS):
        for ti, tn in enumerate(TIMES_OF_DAY):
            m = (w == wi) & (t == ti)
            if m.any():
                per[f"{wn}_{tn}"] = round(float(both[m].mean()), 4)
    return {"weather": float(ok_w.mean()), "time_of_day": float(ok_t.mean()),
            "both": float(both.mean()), "frames": int(len(w)), "per_condition": per}  # fmt: skip


def evaluate_clips(model: ConditionClassifier, clips: list[tuple[str, str, np.ndarray]]) -> dict:
    """Clip- and frame-level accuracy on real clips.

    clips: (name, condition, frames (N, H, W, 3) uint8). A clip is right by mean probability
    (`classify_clip`) and, separately, by majority of its frames' predictions. Returns per clip
    and per condition: frame accuracy, clip accuracy (mean-prob and majority).
    """
    rows = []
    for name, cond, frames in clips:
        x = ((prepare(frames) + 0.5) * 255.0).round().clamp(0, 255).to(torch.uint8)
        pw, pt = predict(model, x.permute(0, 2, 3, 1).numpy())
        names = np.array([f"{WEATHERS[a]}_{TIMES_OF_DAY[b]}"
                          for a, b in zip(pw.argmax(-1), pt.argmax(-1), strict=True)])  # fmt: skip
        mean = f"{WEATHERS[int(pw.mean(0).argmax())]}_{TIMES_OF_DAY[int(pt.mean(0).argmax())]}"
        values, votes = np.unique(names, return_counts=True)
        rows.append({"clip": name, "condition": cond, "frames": int(len(frames)),
                     "frame_acc": round(float((names == cond).mean()), 4),
                     "clip_mean_prob": mean, "clip_majority": str(values[votes.argmax()])})  # fmt: skip
    per: dict[str, dict] = {}
    for cond in sorted({r["condition"] for r in rows}):
        rs = [r for r in rows if r["condition"] == cond]
        n = sum(r["frames"] for r in rs)
        per[cond] = {
            "clips": len(rs),
            "frame_acc": round(sum(r["frame_acc"] * r["frames"] for r in rs) / n, 4),
            "clip_acc_mean_prob": round(
                float(np.mean([r["clip_mean_prob"] == cond for r in rs])), 4
            ),
            "clip_acc_majority": round(float(np.mean([r["clip_majority"] == cond for r in rs])), 4),
        }
    return {
        "clip_acc_mean_prob": round(
            float(np.mean([r["clip_mean_prob"] == r["condition"] for r in rows])), 4
        ),
        "clip_acc_majority": round(
            float(np.mean([r["clip_majority"] == r["condition"] for r in rows])), 4
        ),
        "frame_acc": round(
            sum(r["frame_acc"] * r["frames"] for r in rows) / sum(r["frames"] for r in rows), 4
        ),
        "per_condition": per,
        "clips": rows,
    }


def real_eval_sets(
    cfg: ClassifierTrainConfig, fps: float = 2.0
) -> dict[str, list[tuple[str, str, np.ndarray]]]:
    """The real clips the classifier is measured on, never trained on: the validation items of
    `real_root` and the clips of `amplify.realdata.MEASURE_ROOT` (with `configs/splits/real.json`)."""
    from amplify import realdata

    out: dict[str, list[tuple[str, str, np.ndarray]]] = {}
    if cfg.real_root:
        out["real_val"] = [
            (i.file, i.condition,
             realdata.read_item_frames(i, fps=fps, width=cfg.width, height=cfg.height))
            for i in realdata.val_items(cfg.real_root, cfg.real_split)
        ]  # fmt: skip
        measure = Path(cfg.real_root).parent / "real"
        conds = realdata.MEASURE_CONDITIONS_FILE
        if measure.is_dir() and conds.is_file():
            out["real_measure"] = [
                (f, c, realdata.read_clip_frames(measure / f, fps, cfg.width, cfg.height))
                for f, c in json.loads(conds.read_text()).items()
            ]
    return out


def train_classifier(cfg: ClassifierTrainConfig, progress: Callable[[str], None] = print) -> dict:
    """Render the synthetic sets, sample the real frames, fit the classifier, measure it, write the
    checkpoint; return the report (accuracies, loss history, paths)."""
    from safetensors.torch import save_file

    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    t0 = time.perf_counter()
    # 1. Synthetic renders (train and held-out scenes), cached.
    cache = Path(cfg.cache) if cfg.cache else None
    key = json.dumps({k: v for k, v in asdict(cfg).items()
                      if k in ("train_scenes", "val_scenes", "seed", "frames_per_clip", "frame_gap_s",
                               "width", "height", "intensity_min", "intensity_max")},
                     sort_keys=True)  # fmt: skip
    if cache is not None and cache.exists() and str(np.load(cache)["key"]) == key:
        z = np.load(cache)
        tr, va = (z["tr_x"], z["tr_w"], z["tr_t"]), (z["va_x"], z["va_w"], z["va_t"])
        progress(f"classifier: loaded rendered sets from {cache}")
    else:
        tr = render_set(cfg.seed, cfg.train_scenes, cfg, progress)
        va = render_set(cfg.seed + 1, cfg.val_scenes, cfg, progress)
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.savez(cache, key=key, tr_x=tr[0], tr_w=tr[1], tr_t=tr[2],
                     va_x=va[0], va_w=va[1], va_t=va[2])  # fmt: skip
    # 2. Real training frames (labels from the manifest), cached.
    real_licences: list[dict] = []
    real_counts: dict[str, int] = {}
    n_syn = len(tr[0])
    xs_np, ws_np, ts_np = tr
    weights = np.full(n_syn, 1.0 / n_syn)
    if cfg.real_root:
        rkey = json.dumps({k: getattr(cfg, k) for k in ("real_root", "real_split", "real_fps",
                                                          "real_rare_fps", "width", "height")})  # fmt: skip
        rc = Path(cfg.real_cache) if cfg.real_cache else None
        if rc is not None and rc.exists() and str(np.load(rc)["key"]) == rkey:
            z = np.load(rc, allow_pickle=False)
            real = (z["x"], z["w"], z["t"])
            meta_r = json.loads(str(z["meta"]))
            real_licences, real_counts = meta_r["licences"], meta_r["counts"]
            progress(f"classifier: loaded {len(real[0])} real frames from {rc}")
        else:
            *real, real_licences, real_counts = real_set(cfg, progress)
            if rc is not None:
                rc.parent.mkdir(parents=True, exist_ok=True)
                meta_s = json.dumps({"licences": real_licences, "counts": real_counts})
                np.savez(rc, key=rkey, x=real[0], w=real[1], t=real[2], meta=meta_s)
        # Each real condition gets an equal share of the real draws, whatever its frame count.
        rnames = np.array(
            [f"{WEATHERS[a]}_{TIMES_OF_DAY[b]}" for a, b in zip(real[1], real[2], strict=True)]
        )
        rw = np.array([1.0 / real_counts[c] for c in rnames]) / len(real_counts)
        weights = np.concatenate([weights * (1 - cfg.real_fraction), rw * cfg.real_fraction])
        xs_np = np.concatenate([xs_np, real[0]])
        ws_np, ts_np = np.concatenate([ws_np, real[1]]), np.concatenate([ts_np, real[2]])
    t_data = time.perf_counter() - t0

    # 3. Fit: each epoch draws len(set) frames by weight (with replacement).
    model = ConditionClassifier()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    n = len(xs_np)
    steps_per_epoch = max(1, math.ceil(n / cfg.batch_size))
    total = cfg.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=total, pct_start=0.15)
    g = torch.Generator().manual_seed(cfg.seed)
    xs, ws, ts = _to_input(xs_np), torch.from_numpy(ws_np), torch.from_numpy(ts_np)
    probs = torch.from_numpy(weights / weights.sum())
    losses: list[float] = []
    for epoch in range(cfg.epochs):
        model.train()
        draw = torch.multinomial(probs, steps_per_epoch * cfg.batch_size, True, generator=g)
        run = 0.0
        for s in range(steps_per_epoch):
            idx = draw[s * cfg.batch_size : (s + 1) * cfg.batch_size]
            x = _augment(xs[idx], cfg, g, ts[idx])
            lw, lt = model(x)
            loss = (F.cross_entropy(lw, ws[idx], label_smoothing=cfg.label_smoothing)
                    + F.cross_entropy(lt, ts[idx], label_smoothing=cfg.label_smoothing))  # fmt: skip
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
            run += losses[-1]
        acc = accuracy(model, *va)
        progress(f"classifier: epoch {epoch + 1}/{cfg.epochs} loss {run / steps_per_epoch:.4f} "
                 f"held-out weather {acc['weather']:.3f} time_of_day {acc['time_of_day']:.3f} "
                 f"({time.perf_counter() - t0:.0f} s)")  # fmt: skip
    t_train = time.perf_counter() - t0 - t_data
    # 4. Measure: held-out renders, real validation clips, the measuring-only real clips.
    held_out = accuracy(model, *va)
    train_acc = accuracy(model, *tr)
    real_eval = {k: evaluate_clips(model, v) for k, v in real_eval_sets(cfg).items()}
    for k, v in real_eval.items():
        progress(f"classifier: {k} clip acc (mean prob) {v['clip_acc_mean_prob']:.3f}, "
                 f"(majority) {v['clip_acc_majority']:.3f}, frame acc {v['frame_acc']:.3f}")  # fmt: skip
    # 5. Write the checkpoint (fp16 weights; integer buffers kept) and its record.
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    weights_path = out / f"{cfg.name}.safetensors"
    state = {k: (v.half() if cfg.fp16 and v.is_floating_point() else v).detach().contiguous()
             for k, v in model.state_dict().items()}  # fmt: skip
    save_file(state, str(weights_path))
    meta = {
        "format": "amplify.eval.classifier",
        "version": 2,
        "arch": {"widths": list(WIDTHS), "feature_dim": FEATURE_DIM, "input": [INPUT_H, INPUT_W]},
        "weathers": list(WEATHERS),
        "times_of_day": list(TIMES_OF_DAY),
        "config": {k: v for k, v in asdict(cfg).items() if k not in ("out", "cache", "real_cache")},
        "held_out_accuracy": held_out,
        "train_accuracy": train_acc,
        "real_accuracy": {k: {kk: vv for kk, vv in v.items()} for k, v in real_eval.items()},
        "frames": {
            "train": int(n_syn),
            "held_out": int(len(va[0])),
            "real_train": int(sum(real_counts.values())),
            "real_train_per_condition": real_counts,
        },  # fmt: skip
        "real_licences": real_licences,
        "seconds": {
            "data": round(t_data, 1),
            "train": round(t_train, 1),
            "total": round(time.perf_counter() - t0, 1),
        },  # fmt: skip
    }
    (out / f"{cfg.name}.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    progress(f"classifier: held-out {held_out['both']:.4f} -> {weights_path}")
    return {**meta, "weights": str(weights_path), "loss_history": losses}


def load_classifier(name: str = "cond-cls", device: str = "cpu") -> ConditionClassifier:
    """A trained classifier by name (in `checkpoints/classifier/`) or by path to its
    `.safetensors` file (its `.json` beside it)."""
    from safetensors.torch import load_file

    p = Path(name)
    weights = p if p.suffix == ".safetensors" else CHECKPOINT_DIR / f"{name}.safetensors"
    meta_path = weights.with_suffix(".json")
    if not weights.exists() or not meta_path.exists():
        raise ConfigError("classifier", name, f"no checkpoint {weights} (+ .json); "
                          "train it: amplify train classifier")  # fmt: skip
    meta = json.loads(meta_path.read_text())
    if meta.get("weathers") != list(WEATHERS) or meta.get("times_of_day") != list(TIMES_OF_DAY):
        raise ConfigError("classifier", name, "its classes differ from amplify.conditions")
    arch = meta["arch"]
    model = ConditionClassifier(tuple(arch["widths"]), int(arch["feature_dim"]))
    model.load_state_dict(load_file(str(weights)))
    return model.to(device).eval()


def classifier_info(name: str, given: Any = None) -> dict:
    """What an evaluation records of its judge: the name and, for a checkpoint, its held-out
    accuracy (from the JSON beside it); `given` = a classifier passed in (tests)."""
    if given is not None:
        return {"name": "(given)"}
    p = Path(name)
    meta = (
        p if p.suffix == ".safetensors" else CHECKPOINT_DIR / f"{name}.safetensors"
    ).with_suffix(".json")
    try:
        return {
            "name": name,
            "held_out_accuracy": json.loads(meta.read_text())["held_out_accuracy"],
        }
    except (OSError, KeyError, ValueError):
        return {"name": name}
