"""The condition classifier: an independent small CNN that names the weather and time of day of a
frame, used to check that a generated clip shows the condition it was asked for.

Design:
- Input: any RGB frame, resized (bilinear, antialiased) to `INPUT_H x INPUT_W` = 64 x 128, scaled
  to [-0.5, 0.5]. Four 3x3 stride-2 conv + BatchNorm + ReLU blocks (24, 48, 96, 128 channels),
  global average and max pooling concatenated (256), a linear layer + ReLU to the 128-d feature
  (`features`, the penultimate layer, used for the Frechet distance), and two linear heads:
  weather (4-way, `WEATHERS`) and time of day (3-way, `TIMES_OF_DAY`).
- A clip is classified by averaging the per-frame softmax of each head over its frames.
- Trained only on ground-truth renders of the synthetic corpus (`amplify.synth`): every scene under
  every weather x time of day, each clip at its own random intensity, a few frames per clip spread
  over seconds; split by scene seed (held-out scenes never trained on). Training augments with
  horizontal flips, a random Gaussian blur and a little noise, so a slightly soft decoded frame is
  judged by its condition and not by its sharpness.
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

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from amplify.checkpoints import ROOT as CHECKPOINTS_ROOT
from amplify.errors import ConfigError
from amplify.synth.conditions import TIMES_OF_DAY, WEATHERS, Condition

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


def _augment(x: torch.Tensor, cfg: ClassifierTrainConfig, g: torch.Generator) -> torch.Tensor:
    """Flip, blur and noise a training batch.  x: (B, 3, 64, 128) in [-0.5, 0.5]"""
    B = x.shape[0]
    flip = torch.rand(B, generator=g) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    if cfg.blur_max > 0:
        sigma = float(torch.rand((), generator=g)) * cfg.blur_max
        if sigma > 0.3:
            r = max(1, int(math.ceil(2.5 * sigma)))
            k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=torch.float32) / sigma) ** 2)
            k = k / k.sum()
            x = F.conv2d(
                F.pad(x, (r, r, 0, 0), mode="replicate"),
                k.view(1, 1, 1, -1).repeat(3, 1, 1, 1),
                groups=3,
            )
            x = F.conv2d(
                F.pad(x, (0, 0, r, r), mode="replicate"),
                k.view(1, 1, -1, 1).repeat(3, 1, 1, 1),
                groups=3,
            )
    if cfg.noise_max > 0:
        std = torch.rand(B, 1, 1, 1, generator=g) * cfg.noise_max
        x = x + std * torch.randn(x.shape, generator=g)
    return x


def _to_input(imgs: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255.0 - 0.5  # (N, 3, 64, 128)


@torch.no_grad()
def accuracy(model: ConditionClassifier, imgs: np.ndarray, w: np.ndarray, t: np.ndarray) -> dict:
    """Per-frame accuracy of each head and of both together on a rendered set."""
    model.eval()
    pw, pt = [], []
    for i in range(0, len(imgs), 256):
        lw, lt = model(_to_input(imgs[i : i + 256]))
        pw.append(lw.argmax(-1).numpy())
        pt.append(lt.argmax(-1).numpy())
    ok_w, ok_t = np.concatenate(pw) == w, np.concatenate(pt) == t
    return {"weather": float(ok_w.mean()), "time_of_day": float(ok_t.mean()),
            "both": float((ok_w & ok_t).mean()), "frames": int(len(w))}  # fmt: skip


def train_classifier(cfg: ClassifierTrainConfig, progress: Callable[[str], None] = print) -> dict:
    """Render the train and held-out sets, fit the classifier, write the checkpoint; return the
    report (held-out accuracy, loss history, paths)."""
    from safetensors.torch import save_file

    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    t0 = time.perf_counter()
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
    t_render = time.perf_counter() - t0

    model = ConditionClassifier()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    n = len(tr[0])
    steps_per_epoch = max(1, math.ceil(n / cfg.batch_size))
    total = cfg.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=total, pct_start=0.15)
    g = torch.Generator().manual_seed(cfg.seed)
    xs, ws, ts = _to_input(tr[0]), torch.from_numpy(tr[1]), torch.from_numpy(tr[2])
    losses: list[float] = []
    for epoch in range(cfg.epochs):
        model.train()
        perm = torch.randperm(n, generator=g)
        run = 0.0
        for s in range(steps_per_epoch):
            idx = perm[s * cfg.batch_size : (s + 1) * cfg.batch_size]
            x = _augment(xs[idx], cfg, g)
            lw, lt = model(x)
            loss = F.cross_entropy(lw, ws[idx]) + F.cross_entropy(lt, ts[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
            run += losses[-1]
        acc = accuracy(model, *va)
        progress(f"classifier: epoch {epoch + 1}/{cfg.epochs} loss {run / steps_per_epoch:.4f} "
                 f"held-out weather {acc['weather']:.3f} time_of_day {acc['time_of_day']:.3f}")  # fmt: skip
    held_out = accuracy(model, *va)
    train_acc = accuracy(model, *tr)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    weights = out / f"{cfg.name}.safetensors"
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(weights))
    meta = {
        "format": "amplify.eval.classifier",
        "version": 1,
        "arch": {"widths": list(WIDTHS), "feature_dim": FEATURE_DIM, "input": [INPUT_H, INPUT_W]},
        "weathers": list(WEATHERS),
        "times_of_day": list(TIMES_OF_DAY),
        "config": {k: v for k, v in asdict(cfg).items() if k not in ("out", "cache")},
        "held_out_accuracy": held_out,
        "train_accuracy": train_acc,
        "frames": {"train": int(n), "held_out": int(len(va[0]))},
        "seconds": {"render": round(t_render, 1), "total": round(time.perf_counter() - t0, 1)},
    }
    (out / f"{cfg.name}.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    progress(f"classifier: held-out {held_out} -> {weights}")
    return {**meta, "weights": str(weights), "loss_history": losses}


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
        raise ConfigError("classifier", name, "its classes differ from amplify.synth.conditions")
    arch = meta["arch"]
    model = ConditionClassifier(tuple(arch["widths"]), int(arch["feature_dim"]))
    model.load_state_dict(load_file(str(weights)))
    return model.to(device).eval()
