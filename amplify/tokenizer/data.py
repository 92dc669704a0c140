"""Clips for the tokenizer: ingest windows as tensors, held-out splits, random training crops.

Clips come through the normal ingest (`amplify.io.ingest`), so training and evaluation see what a
job sees. Synthetic clips are split by scene index (every variation of a held-out scene is held
out); other clips by a stable hash of their name.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from amplify.errors import InputError

_SCENE = re.compile(r"scene_(\d+)")


def scene_key(path: str | Path) -> int:
    """Scene index of a synthetic clip (`scene_0012_rain_day.mp4` -> 12), else a name hash."""
    m = _SCENE.search(Path(path).name)
    return int(m.group(1)) if m else zlib.crc32(Path(path).stem.encode())


def split_inputs(paths: Sequence[Path], holdout_every: int) -> tuple[list[Path], list[Path]]:
    """(train, held_out): scene k is held out when k % holdout_every == 0 (0 = nothing held out)."""
    if holdout_every <= 0:
        return list(paths), []
    held = [p for p in paths if scene_key(p) % holdout_every == 0]
    return [p for p in paths if p not in set(held)], held


def load_windows(
    paths: Sequence[Path], ingest_cfg: object
) -> tuple[list[np.ndarray], list[InputError]]:
    """All windows of the given clips as (T, H, W, 3) uint8; bad clips come back as errors."""
    from amplify.io.ingest import read_windows

    windows: list[np.ndarray] = []
    errors: list[InputError] = []
    for p in paths:
        try:
            windows.extend(w.frames for w in read_windows(p, ingest_cfg))
        except InputError as e:
            errors.append(e)
    return windows, errors


def to_tensor(frames: np.ndarray) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (1, 3, T, H, W) float in [-1, 1]."""
    t = torch.from_numpy(np.ascontiguousarray(frames)).permute(3, 0, 1, 2).float()
    return (t / 127.5 - 1).unsqueeze(0)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(1, 3, T, H, W) in [-1, 1] -> (T, H, W, 3) uint8."""
    y = ((x[0].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return y.permute(1, 2, 3, 0).numpy()


def group_weights(sizes: Sequence[int]) -> list[float]:
    """Per-window sampling weights that give each group (e.g. each data folder) the same share."""
    live = [n for n in sizes if n]
    return [1.0 / (n * len(live)) for n in sizes for _ in range(n)]


class CropSampler:
    """Random (frames x crop_h x crop_w) crops of random windows, flipped left-right at random.

    Windows are drawn uniformly, or with probability proportional to `weights` (one per window)."""

    def __init__(
        self,
        windows: list[np.ndarray],
        frames: int,
        crop_h: int,
        crop_w: int,
        seed: int,
        weights: Sequence[float] | None = None,
    ) -> None:
        if weights is not None and len(weights) != len(windows):
            raise ValueError(f"{len(weights)} weights for {len(windows)} windows")
        keep = [i for i, w in enumerate(windows) if w.shape[0] >= frames]
        if not keep:
            raise ValueError(f"no window has >= {frames} frames ({len(windows)} windows)")
        self.windows, self.frames, self.crop = [windows[i] for i in keep], frames, (crop_h, crop_w)
        self.p = None
        if weights is not None:
            p = np.array([weights[i] for i in keep], dtype=np.float64)
            self.p = p / p.sum()
        self.rng = np.random.default_rng(seed)

    def batch(self, size: int) -> torch.Tensor:
        out = []
        ch, cw = self.crop
        for _ in range(size):
            i = (
                self.rng.integers(len(self.windows))
                if self.p is None
                else self.rng.choice(len(self.windows), p=self.p)
            )
            w = self.windows[i]
            T, H, W, _ = w.shape
            t0 = self.rng.integers(T - self.frames + 1)
            y0 = self.rng.integers(H - min(ch, H) + 1) // 8 * 8
            x0 = self.rng.integers(W - min(cw, W) + 1) // 8 * 8
            clip = w[t0 : t0 + self.frames, y0 : y0 + ch, x0 : x0 + cw]
            if self.rng.random() < 0.5:
                clip = clip[:, :, ::-1]
            out.append(to_tensor(clip))
        return torch.cat(out)  # (B, 3, T, ch, cw)


class TensorCropSampler:
    """CropSampler's crops drawn from one (N, T, H, W, 3) uint8 tensor on any device.

    On a GPU the windows stay in device memory and a batch never leaves it (the numpy sampler's
    per-crop host copies would bound the step there). Same crops as CropSampler: random window
    (uniform or by `weights`), random start frame, crop corner on the 8-pixel grid, random flip.
    """

    def __init__(
        self,
        windows: torch.Tensor,
        frames: int,
        crop_h: int,
        crop_w: int,
        seed: int,
        weights: Sequence[float] | None = None,
    ) -> None:
        N, T, H, W, _ = windows.shape
        if T < frames:
            raise ValueError(f"windows have {T} frames, need >= {frames}")
        if weights is not None and len(weights) != N:
            raise ValueError(f"{len(weights)} weights for {N} windows")
        self.windows, self.frames = windows, frames
        self.crop = (min(crop_h, H), min(crop_w, W))
        self.g = torch.Generator().manual_seed(seed)
        w = torch.ones(N) if weights is None else torch.as_tensor(weights, dtype=torch.float64)
        self.p = w / w.sum()

    def batch(self, size: int) -> torch.Tensor:
        N, T, H, W, _ = self.windows.shape
        ch, cw = self.crop
        idx = torch.multinomial(self.p, size, replacement=True, generator=self.g)
        t0 = torch.randint(T - self.frames + 1, (size,), generator=self.g)
        y0 = torch.randint(H - ch + 1, (size,), generator=self.g) // 8 * 8
        x0 = torch.randint(W - cw + 1, (size,), generator=self.g) // 8 * 8
        flip = torch.rand(size, generator=self.g) < 0.5
        clips = []
        corners = zip(
            idx.tolist(), t0.tolist(), y0.tolist(), x0.tolist(), flip.tolist(), strict=True
        )
        for i, t, y, x, f in corners:
            clip = self.windows[i, t : t + self.frames, y : y + ch, x : x + cw]  # (T, ch, cw, 3)
            clips.append(clip.flip(2) if f else clip)
        out = torch.stack(clips).permute(0, 4, 1, 2, 3).float()  # (B, 3, T, ch, cw)
        return out / 127.5 - 1
