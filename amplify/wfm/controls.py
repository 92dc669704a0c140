"""Structure controls for the world model: plain functions over numpy frames and labels.

Model-free controls come from any clip: `edges` (Sobel magnitude of contrast-normalised luma, so
a night or foggy frame gives edges as strong as a clear one) and `blur` (Gaussian-blurred frames).
With labels: `layout_raster` (boxes rasterised per category) and `depth_control` (inverse depth).
`align_to_latents` then puts a (T, H, W, C) map on the tokenizer's latent grid: frames grouped 4
per latent frame (the first frame alone, replicated, as the tokenizer does) and stacked on
channels, pixels area-pooled by the control's factor (`config.CONTROLS`).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from amplify.labels import ClipLabels
from amplify.wfm.config import CONTROLS, LAYOUT_CATEGORIES

TIME_FACTOR = 4


def _to_float(frames: np.ndarray) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (T, 3, H, W) float in [0, 1]."""
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (T, H, W, 3), got {frames.shape}")
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0


def edges(frames: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (T, H, W, 1) float32 edge strength in [0, 1]."""
    x = _to_float(frames)
    luma = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)  # (T, 1, H, W)
    mu = luma.mean((2, 3), keepdim=True)
    sd = luma.std((2, 3), keepdim=True).clamp_min(0.02)
    g = (luma - mu) / sd  # contrast-normalised: condition-independent edge strength
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8
    k = torch.stack([kx, kx.t()]).unsqueeze(1)  # (2, 1, 3, 3)
    gxy = F.conv2d(F.pad(g, (1, 1, 1, 1), mode="replicate"), k)  # (T, 2, H, W)
    mag = gxy.pow(2).sum(1, keepdim=True).sqrt()  # (T, 1, H, W)
    return (mag / 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy().astype(np.float32)


def blur(frames: np.ndarray, sigma: float = 3.0) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (T, H, W, 3) float32 in [0, 1], Gaussian-blurred (std `sigma` px)."""
    x = _to_float(frames)  # (T, 3, H, W)
    r = max(1, int(round(3 * sigma)))
    g = torch.exp(-(torch.arange(-r, r + 1).float() ** 2) / (2 * sigma**2))
    g = (g / g.sum()).view(1, 1, 1, -1).repeat(3, 1, 1, 1)  # (3, 1, 1, 2r+1)
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), g, groups=3)
    x = F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), g.transpose(2, 3), groups=3)
    return x.permute(0, 2, 3, 1).numpy().astype(np.float32)


def layout_raster(labels: ClipLabels, frames: int, height: int, width: int) -> np.ndarray:
    """Boxes per frame -> (T, H, W, K) float32 occupancy, K = LAYOUT_CATEGORIES + "other"."""
    K = len(LAYOUT_CATEGORIES) + 1
    out = np.zeros((frames, height, width, K), np.float32)
    sx, sy = width / labels.width, height / labels.height
    for i, boxes in enumerate(labels.frames[:frames]):
        for b in boxes:
            k = LAYOUT_CATEGORIES.index(b.category) if b.category in LAYOUT_CATEGORIES else K - 1
            x0, x1 = int(np.floor(b.x0 * sx)), int(np.ceil(b.x1 * sx))
            y0, y1 = int(np.floor(b.y0 * sy)), int(np.ceil(b.y1 * sy))
            out[i, max(0, y0) : max(0, y1), max(0, x0) : max(0, x1), k] = 1.0
    return out


def depth_control(depth: np.ndarray, scale_m: float = 8.0) -> np.ndarray:
    """(T, H, W) metres -> (T, H, W, 1) float32 in (0, 1]: scale / (scale + depth), near = 1."""
    d = np.asarray(depth, np.float32)
    return (scale_m / (scale_m + np.maximum(d, 0.0)))[..., None]


def align_to_latents(x: np.ndarray, factor: int) -> np.ndarray:
    """(T, H, W, C) with T = 1 + 4k -> (4C, 1 + k, H/factor, W/factor) float32.

    Latent frame j holds frames 4j-3 .. 4j on its channels (frame 0 replicated 4 times for j = 0),
    each area-pooled by `factor`: latent frame j depends on frames <= 4j only (causal).
    """
    T, H, W, C = x.shape
    if (T - 1) % TIME_FACTOR:
        raise ValueError(f"clip length {T} is not 1 + {TIME_FACTOR}k")
    if H % factor or W % factor:
        raise ValueError(f"frame size {H}x{W} is not a multiple of {factor}")
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).permute(0, 3, 1, 2)
    t = F.avg_pool2d(t, factor) if factor > 1 else t  # (T, C, h, w)
    t = torch.cat([t[:1].expand(TIME_FACTOR - 1, -1, -1, -1), t], 0)  # (4n, C, h, w)
    n = t.shape[0] // TIME_FACTOR
    t = t.reshape(n, TIME_FACTOR * C, *t.shape[2:])  # (n, 4C, h, w)
    return t.transpose(0, 1).contiguous().numpy()  # (4C, n, h, w)


def extract_controls(
    frames: np.ndarray,
    labels: ClipLabels | None = None,
    depth: np.ndarray | None = None,
    layout: np.ndarray | None = None,
    names: tuple[str, ...] = tuple(CONTROLS),  # other names (the source latents) are skipped
) -> dict[str, np.ndarray | None]:
    """Every control in `names`, latent-aligned ((4C, n, H/f, W/f) float32), None when unavailable.

    `layout` (T, H, W, K) overrides a raster from `labels`; `depth` is metres (T, H, W).
    """
    T, H, W, _ = frames.shape
    maps: dict[str, np.ndarray | None] = {}
    for name in names:
        if name not in CONTROLS:
            continue
        if name == "edges":
            m = edges(frames)
        elif name == "blur":
            m = blur(frames) * 2 - 1  # centred like the pixels the tokenizer sees
        elif name == "layout":
            if layout is None and labels is not None:
                layout = layout_raster(labels, T, H, W)
            m = None if layout is None else np.asarray(layout, np.float32)[:T]
        elif name == "depth":
            m = None if depth is None else depth_control(np.asarray(depth)[:T])
        if m is not None and m.ndim == 3:
            m = m[..., None]
        maps[name] = None if m is None else align_to_latents(m, CONTROLS[name][1])
    return maps
