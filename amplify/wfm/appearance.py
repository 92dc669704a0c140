"""The grade head's appearance transform: source pixels -> the same pixels under another condition.

A world model with `head="grade"` does not paint the picture; it predicts, per latent cell and
latent frame, how to change the source's appearance (after HDRNet, Gharbi et al. 2017):
- a **bilateral grid** of 3x4 colour transforms: `bins` luma bins per cell, so dark and bright
  pixels of one cell change differently (street lights stay lit at night, the sky greys in fog);
  each pixel reads its transform by trilinear interpolation at (x, y, its own luma);
- a **weather layer**: an RGB colour and an opacity per cell, composited over the graded pixels
  (fog, haze, snow cover, the glow of wet air).
Every pixel of the output is an affine function of the same source pixel plus a smooth layer, so
the source's edges, texture and geometry survive by construction (labels stay true, no synthetic
facades appear), and the zero-initialised head starts at the identity.

Latent frame f covers pixel frames 4f-3..4f (frame 0 alone: the tokenizer's causal grouping);
coefficients are interpolated in time between latent-frame centres, so the grade does not step
every 4 frames.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from amplify.conditions import Condition

COEFFS = 12  # a 3x3 colour matrix (as a change to the identity) and an offset, per luma bin
LAYER = 4  # opacity logit, RGB logits
# Precipitation is drawn where the model changed the clip (mean absolute change, share of the
# range): none below 0.003, full density from 0.008. Measured with wfm-grade on one window of each
# of the 19 real training videos (`train_real`, not the validation split): asked for their own
# condition they change by 0.0003 (median; at most 0.0031), asked for rain_day by 0.011 (median;
# at least 0.0039), for snow_day by 0.055; synthetic clear-day scenes change by 0.15 for rain.
PRECIP_CHANGE = (0.003, 0.005)
ALPHA_BIAS = -5.0  # a zero head gives opacity sigmoid(-5) = 0.007: the layer starts off


def grade_channels(bins: int) -> int:
    """Channels per latent cell a grade head predicts."""
    return COEFFS * bins + LAYER


def latent_frame_weights(frames: int, latent_frames: int, first: int = 0) -> torch.Tensor:
    """(frames, latent_frames) weights that interpolate latent-frame values to pixel frames.

    `first` is the absolute index of the first latent frame (a crop may start later): pixel frames
    then start at 0 if first == 0, else at 4 * first - 3. Latent frame f is centred on pixel
    frame 0 (f = 0) or 4f - 1.5 (the middle of its group of four).
    """
    start = 0 if first == 0 else 4 * first - 3
    t = torch.arange(start, start + frames, dtype=torch.float32)  # absolute pixel frames
    f = torch.arange(first, first + latent_frames, dtype=torch.float32)
    centres = torch.where(f == 0, torch.zeros_like(f), 4 * f - 1.5)  # (F,)
    if latent_frames == 1:
        return torch.ones(frames, 1)
    pos = torch.searchsorted(centres, t.clamp(centres[0], centres[-1]), right=True) - 1
    pos = pos.clamp(0, latent_frames - 2)
    lo, hi = centres[pos], centres[pos + 1]
    a = ((t - lo) / (hi - lo)).clamp(0, 1)
    w = torch.zeros(frames, latent_frames)
    w[torch.arange(frames), pos] = 1 - a
    w[torch.arange(frames), pos + 1] += a
    return w


def smooth_cells(coeffs: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian low-pass (std `sigma` cells) of (B, K, F, h, w) over h and w: neighbouring cells
    of a sky or a wall get near transforms, so the grade shows no 8-px blocks."""
    if sigma <= 0:
        return coeffs
    B, K, Fr, h, w = coeffs.shape
    r = max(1, int(round(2 * sigma)))
    x = torch.arange(-r, r + 1, dtype=coeffs.dtype, device=coeffs.device)
    k = torch.exp(-(x**2) / (2 * sigma**2))
    k = k / k.sum()
    c = coeffs.transpose(1, 2).reshape(B * Fr, K, h, w)
    kx, ky = k.view(1, 1, 1, -1).expand(K, 1, 1, -1), k.view(1, 1, -1, 1).expand(K, 1, -1, 1)
    c = F.conv2d(F.pad(c, (r, r, 0, 0), mode="replicate"), kx, groups=K)
    c = F.conv2d(F.pad(c, (0, 0, r, r), mode="replicate"), ky, groups=K)
    return c.reshape(B, Fr, K, h, w).transpose(1, 2)  # (B, K, F, h, w)


def apply_grade(
    source: torch.Tensor,  # (B, 3, T, H, W) in [0, 1]
    coeffs: torch.Tensor,  # (B, 12 * bins + 4, F, h, w) from the grade head
    bins: int,
    first_latent: int = 0,
    smooth: float = 0.0,
) -> torch.Tensor:
    """The graded frames (B, 3, T, H, W) in [0, 1]; `smooth` > 0 low-passes the cells first."""
    B, _, T, H, W = source.shape
    K, Fr, h, w = coeffs.shape[1:]
    if K != grade_channels(bins):
        raise ValueError(
            f"coeffs have {K} channels, a grade of {bins} bins needs {grade_channels(bins)}"
        )
    coeffs = smooth_cells(coeffs, smooth)
    # 1. Coefficients per pixel frame: interpolate between latent-frame centres.
    wt = latent_frame_weights(T, Fr, first_latent).to(coeffs)  # (T, F)
    c = torch.einsum("bkfhw,tf->btkhw", coeffs, wt).reshape(B * T, K, h, w)  # (BT, K, h, w)
    x = source.transpose(1, 2).reshape(B * T, 3, H, W)  # (BT, 3, H, W)
    # 2. Slice the bilateral grid at (x, y, luma) of every pixel.
    grid = c[:, : COEFFS * bins].reshape(B * T, COEFFS, bins, h, w)  # (BT, 12, bins, h, w)
    luma = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).detach()  # (BT, H, W)
    gy = (torch.arange(H, device=x.device, dtype=x.dtype) + 0.5) / H * 2 - 1
    gx = (torch.arange(W, device=x.device, dtype=x.dtype) + 0.5) / W * 2 - 1
    pos = torch.stack(
        [gx.view(1, 1, W).expand(B * T, H, W), gy.view(1, H, 1).expand(B * T, H, W), luma * 2 - 1],
        -1,
    ).unsqueeze(1)  # (BT, 1, H, W, 3): (x, y, z) for grid_sample
    a = F.grid_sample(grid, pos, mode="bilinear", padding_mode="border", align_corners=False)
    a = a[:, :, 0]  # (BT, 12, H, W)
    # 3. Colour transform: (I + M) x + b, per pixel.
    m = a[:, :9].reshape(B * T, 3, 3, H, W)
    y = x + torch.einsum("nijhw,njhw->nihw", m, x) + a[:, 9:12]  # (BT, 3, H, W)
    # 4. Weather layer: colour and opacity per cell, upsampled smoothly, composited over.
    layer = F.interpolate(c[:, COEFFS * bins :], size=(H, W), mode="bilinear", align_corners=False)
    alpha = torch.sigmoid(layer[:, :1] + ALPHA_BIAS)  # (BT, 1, H, W)
    y = y * (1 - alpha) + alpha * torch.sigmoid(layer[:, 1:4])
    return y.clamp(0, 1).reshape(B, T, 3, H, W).transpose(1, 2)  # (B, 3, T, H, W)


def precipitation(
    graded: np.ndarray,  # (T, H, W, 3) uint8, the graded frames
    source: np.ndarray,  # (T, H, W, 3) uint8
    condition: Condition,
    seed: int,
) -> np.ndarray:
    """Falling rain or snow over graded frames, drawn as the synthetic renderer draws it.

    A regression head cannot place streaks and flakes (their positions are random, so it learns
    the mean: a veil); they are drawn here from `condition_rng(seed, condition, frame)`, so the
    seed varies them and the same seed gives the same bytes. Their density follows the
    condition's intensity times how much the model changed the clip: a clip the model leaves as
    it is (asked for the condition it already shows) gets none.
    """
    from amplify.synth.conditions import condition_rng
    from amplify.synth.shade import rain_streaks, snow_flakes

    if condition.weather not in ("rain", "snow"):
        return graded
    change = float(np.abs(graded.astype(np.float32) - source.astype(np.float32)).mean()) / 255.0
    strength = condition.intensity * float(
        np.clip((change - PRECIP_CHANGE[0]) / PRECIP_CHANGE[1], 0, 1)
    )
    if strength <= 0:
        return graded
    out = graded.astype(np.float32) / 255.0
    for f in range(len(out)):
        rng = condition_rng(seed, condition, f)
        if condition.weather == "rain":
            haze = out[f].reshape(-1, 3).mean(0)  # streaks take the colour of the air
            rain_streaks(out[f], rng, strength, haze)
        else:
            dark = float(np.clip(out[f].mean() / 0.45, 0.3, 1.0))  # dimmer flakes at night
            snow_flakes(out[f], rng, strength, dark)
    return (out * 255.0 + 0.5).clip(0, 255).astype(np.uint8)
