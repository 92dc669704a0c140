"""Image and clip metrics for scoring generated variations: PSNR, SSIM, edge F1, blurred SSIM,
temporal flicker and the Frechet distance between two feature sets.

Conventions (every function takes uint8 RGB, a frame `(H, W, 3)` or a clip `(T, H, W, 3)`):
- Luma is BT.601 `Y = 0.299 R + 0.587 G + 0.114 B` on the 0..255 scale.
- PSNR pools the squared error over every pixel, channel and frame of the clip (one MSE per clip),
  peak 255; identical inputs give `inf`.
- SSIM is Wang et al. (2004) on luma: Gaussian window sigma 1.5 truncated at 11 x 11, K1 = 0.01,
  K2 = 0.03, L = 255, averaged over the 'valid' pixels (5 px border dropped) and then over frames.
- Edges are Canny-like: luma smoothed with a Gaussian (sigma 1), Sobel gradients, non-maximum
  suppression along the gradient direction (4 bins), hysteresis with thresholds relative to the
  frame (high = 90th percentile of the gradient magnitude, at least `EDGE_MIN_HIGH`; low = 0.4 x
  high). Edge F1 matches edge pixels with a tolerance of `tol` px (default 2; Chebyshev distance, by binary
  dilation): precision = share of generated edge pixels within `tol` of a source edge, recall =
  share of source edge pixels within `tol` of a generated edge, counts pooled over the clip.
- Blurred SSIM: both clips blurred per channel with a Gaussian of sigma 4 px (the scale of the
  Cosmos-Transfer blur control at 256 x 128), then SSIM as above.
- Flicker of a clip: the mean absolute luma difference between consecutive frames (0..255).
- Sharpness of a clip: the variance of the luma Laplacian (4-neighbour, border repeated) per
  frame, averaged over frames; `sharpness_ratio` compares a generated clip with its source.
- Frechet distance: `|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))` between Gaussians fitted to two
  feature sets (rows are samples), as in FID.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import scipy.linalg
from scipy import ndimage

SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5  # radius int(3.5 * 1.5 + 0.5) = 5: the 11 x 11 window of Wang et al.
SSIM_K1, SSIM_K2, SSIM_L = 0.01, 0.03, 255.0
EDGE_SMOOTH_SIGMA = 1.0
EDGE_HIGH_PERCENTILE = 90.0
EDGE_LOW_RATIO = 0.4
EDGE_MIN_HIGH = 8.0  # Sobel magnitude (luma levels); a flat frame has no edges
BLUR_SIGMA = 4.0
EDGE_TOL = 2  # px: a 256 x 128 frame decoded from 8 x 8 latent patches moves edges a pixel or two


def _clip(x: np.ndarray) -> np.ndarray:
    """(H, W, 3) or (T, H, W, 3) -> (T, H, W, 3)."""
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected (H, W, 3) or (T, H, W, 3) RGB, got shape {x.shape}")
    return x


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = _clip(a), _clip(b)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    return a, b


def luma(x: np.ndarray) -> np.ndarray:
    """BT.601 luma of RGB on the 0..255 scale.  # (T, H, W) float64"""
    x = _clip(x).astype(np.float64)
    return x[..., 0] * 0.299 + x[..., 1] * 0.587 + x[..., 2] * 0.114


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 clips, one MSE over the whole clip; `inf` when identical."""
    a, b = _pair(a, b)
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def _ssim_frame(xf: np.ndarray, yf: np.ndarray) -> np.ndarray:
    """Per-pixel SSIM of two luma frames (H, W) float64 (Gaussian window)."""
    c1, c2 = (SSIM_K1 * SSIM_L) ** 2, (SSIM_K2 * SSIM_L) ** 2

    def g(z: np.ndarray) -> np.ndarray:
        return ndimage.gaussian_filter(z, SSIM_SIGMA, truncate=SSIM_TRUNCATE, mode="reflect")

    mx, my = g(xf), g(yf)
    sxx, syy, sxy = g(xf * xf) - mx * mx, g(yf * yf) - my * my, g(xf * yf) - mx * my
    return ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))


def _ssim_luma(x: np.ndarray, y: np.ndarray) -> float:
    """Mean SSIM over frames of two luma clips (T, H, W) float64."""
    r = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)
    vals = []
    for xf, yf in zip(x, y, strict=True):
        s = _ssim_frame(xf, yf)
        # 'valid' region: pixels whose window lies inside the frame
        if s.shape[0] > 2 * r and s.shape[1] > 2 * r:
            s = s[r:-r, r:-r]
        vals.append(float(s.mean()))
    return float(np.mean(vals))


def masked_ssim(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """SSIM on luma averaged over the pixels of `mask` (T, H, W) bool only (nan if empty): the
    quality inside an agent's boxes. Windows reach outside the mask, so context counts a little."""
    a, b = _pair(a, b)
    mask = np.asarray(mask, bool).reshape(a.shape[:3])
    if not mask.any():
        return math.nan
    la, lb = luma(a), luma(b)
    vals = [_ssim_frame(la[t], lb[t])[mask[t]] for t in range(len(la)) if mask[t].any()]
    return float(np.concatenate(vals).mean())


def masked_psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """PSNR in dB over the pixels of `mask` (T, H, W) only (nan if empty, inf if identical)."""
    a, b = _pair(a, b)
    mask = np.asarray(mask, bool).reshape(a.shape[:3])
    if not mask.any():
        return math.nan
    d = a[mask].astype(np.float64) - b[mask].astype(np.float64)
    mse = float(np.mean(d**2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def masked_temporal_error(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Mean |(a[t+1] - a[t]) - (b[t+1] - b[t])| of luma (0..255) over pixels in `mask` at both t
    and t+1 (nan if none): how far `a` changes from frame to frame otherwise than `b` does. 0 =
    the same motion and no flicker of its own; a frame-by-frame painter's flicker shows here."""
    a, b = _pair(a, b)
    mask = np.asarray(mask, bool).reshape(a.shape[:3])
    both = mask[1:] & mask[:-1]
    if not both.any():
        return math.nan
    da, db = np.diff(luma(a), axis=0), np.diff(luma(b), axis=0)
    return float(np.abs(da - db)[both].mean())


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM on luma (Gaussian window sigma 1.5, 11 x 11), mean over valid pixels and frames."""
    a, b = _pair(a, b)
    return _ssim_luma(luma(a), luma(b))


def blur(x: np.ndarray, sigma: float = BLUR_SIGMA) -> np.ndarray:
    """Gaussian blur of each frame and channel (not across time or channels).  # float64"""
    x = _clip(x).astype(np.float64)
    return ndimage.gaussian_filter(x, (0, sigma, sigma, 0), mode="reflect")


def blur_ssim(a: np.ndarray, b: np.ndarray, sigma: float = BLUR_SIGMA) -> float:
    """SSIM (on luma) of the two clips after a Gaussian blur of `sigma` px."""
    a, b = _pair(a, b)
    return _ssim_luma(luma(blur(a, sigma)), luma(blur(b, sigma)))


def edges(frame: np.ndarray) -> np.ndarray:
    """Canny-like edge map of one RGB frame (see the module docstring).  # (H, W) bool"""
    y = luma(frame)[0]
    y = ndimage.gaussian_filter(y, EDGE_SMOOTH_SIGMA, mode="reflect")
    gx = ndimage.sobel(y, axis=1, mode="reflect")
    gy = ndimage.sobel(y, axis=0, mode="reflect")
    mag = np.hypot(gx, gy)  # (H, W)
    # 1. Non-maximum suppression: keep a pixel that is >= both neighbours along its gradient.
    ang = (np.rad2deg(np.arctan2(gy, gx)) + 180.0) % 180.0
    bins = (((ang + 22.5) // 45.0) % 4).astype(np.int8)  # 0: horizontal grad, 1: 45, 2: 90, 3: 135
    p = np.pad(mag, 1, mode="constant")
    H, W = mag.shape

    def at(dy: int, dx: int) -> np.ndarray:
        return p[1 + dy : 1 + dy + H, 1 + dx : 1 + dx + W]

    # rows grow downward, so a 45 degree gradient (gx > 0, gy > 0) points to (dy, dx) = (1, 1)
    n1 = np.choose(bins, [at(0, 1), at(1, 1), at(1, 0), at(1, -1)])
    n2 = np.choose(bins, [at(0, -1), at(-1, -1), at(-1, 0), at(-1, 1)])
    thin = (mag >= n1) & (mag >= n2) & (mag > 0)
    # 2. Hysteresis: weak pixels survive when connected (8-neighbourhood) to a strong one.
    high = max(float(np.percentile(mag, EDGE_HIGH_PERCENTILE)), EDGE_MIN_HIGH)
    strong = thin & (mag >= high)
    weak = thin & (mag >= EDGE_LOW_RATIO * high)
    lab, n = ndimage.label(weak, structure=np.ones((3, 3), bool))
    if n == 0:
        return np.zeros_like(weak)
    keep = np.zeros(n + 1, bool)
    keep[np.unique(lab[strong])] = True
    keep[0] = False
    return keep[lab]


def edge_prf(a: np.ndarray, b: np.ndarray, tol: int = EDGE_TOL) -> dict[str, float]:
    """Precision, recall and F1 of the edges of `b` (generated) against those of `a` (source),
    matched within `tol` px; counts pooled over the clip. Both edge-free: 1.0 each."""
    a, b = _pair(a, b)
    return edge_prf_maps(edge_maps(a), edge_maps(b), tol)


def edge_maps(x: np.ndarray) -> np.ndarray:
    """`edges` of every frame of a clip (compute once, score against many).  # (T, H, W) bool"""
    return np.stack([edges(f) for f in _clip(x)])


def edge_prf_maps(ea: np.ndarray, eb: np.ndarray, tol: int = EDGE_TOL) -> dict[str, float]:
    """`edge_prf` from edge maps `ea` (reference) and `eb` (generated), each (T, H, W) bool."""
    if ea.shape != eb.shape:
        raise ValueError(f"edge map shapes differ: {ea.shape} vs {eb.shape}")
    st = np.ones((1, 2 * tol + 1, 2 * tol + 1), bool)  # no dilation across frames
    da = ndimage.binary_dilation(ea, st) if tol > 0 else ea
    db = ndimage.binary_dilation(eb, st) if tol > 0 else eb
    n_p, n_r = int(eb.sum()), int(ea.sum())
    if n_p == 0 and n_r == 0:
        return {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    prec = int((eb & da).sum()) / n_p if n_p else 0.0
    rec = int((ea & db).sum()) / n_r if n_r else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec > 0 else 0.0
    return {"precision": prec, "recall": rec, "f1": f1}


def edge_f1(a: np.ndarray, b: np.ndarray, tol: int = EDGE_TOL) -> float:
    """F1 of `edge_prf`."""
    return edge_prf(a, b, tol)["f1"]


def flicker(x: np.ndarray) -> float:
    """Mean absolute luma difference between consecutive frames (0..255); 0 for one frame."""
    y = luma(x)
    return float(np.abs(np.diff(y, axis=0)).mean()) if y.shape[0] > 1 else 0.0


def flicker_ratio(generated: np.ndarray, reference: np.ndarray) -> float:
    """`flicker(generated) / flicker(reference)`: 1 = as much change as the reference clip."""
    f_ref = flicker(reference)
    f_gen = flicker(generated)
    if f_ref == 0:
        return 1.0 if f_gen == 0 else math.inf
    return f_gen / f_ref


def sharpness_ratio(generated: np.ndarray, source: np.ndarray) -> float:
    """Sharpness (variance of the luma Laplacian) of `generated` / that of `source`: 1 = as much
    fine detail as the source, below 1 = softer (blur, fog, darkness), above 1 = added texture."""
    a, b = _pair(generated, source)

    def sharpness(x: np.ndarray) -> float:
        y = luma(x)  # (T, H, W)
        return float(np.mean([ndimage.laplace(f, mode="nearest").var() for f in y]))

    s_gen, s_src = sharpness(a), sharpness(b)
    if s_src == 0:
        return 1.0 if s_gen == 0 else math.inf
    return s_gen / s_src


def frechet_distance(x: np.ndarray, y: np.ndarray, eps: float = 1e-6) -> float:
    """Frechet distance between Gaussians fitted to feature sets `x` (N, D) and `y` (M, D)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1] or len(x) < 2 or len(y) < 2:
        raise ValueError(f"need two (N >= 2, D) feature sets of one D, got {x.shape}, {y.shape}")
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    s1, s2 = np.atleast_2d(s1), np.atleast_2d(s2)
    with warnings.catch_warnings():
        # a singular product (fewer samples than dimensions) is expected and handled below
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        covmean = scipy.linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        # near-singular product (few samples): regularise both, as the FID reference does
        off = np.eye(s1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((s1 + off) @ (s2 + off))
    covmean = np.real(covmean)
    diff = mu1 - mu2
    fd = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))
    return max(fd, 0.0)


def json_ready(x: Any) -> Any:
    """A result with floats rounded to 4 places and inf/nan as None (JSON has neither)."""
    if isinstance(x, dict):
        return {k: json_ready(v) for k, v in x.items()}
    if isinstance(x, list):
        return [json_ready(v) for v in x]
    if isinstance(x, float):
        return round(x, 4) if math.isfinite(x) else None
    return x


def emit(result: dict, table, out_json: str, progress) -> dict:
    """How every `amplify eval` verb ends: the JSON-ready result, its Markdown `table` as a
    progress line, `out_json` written when set, and the JSON printed as the last line."""
    import json
    from pathlib import Path

    result = json_ready(result)
    progress(table(result))
    if out_json:
        Path(out_json).parent.mkdir(parents=True, exist_ok=True)
        Path(out_json).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result), flush=True)
    return result
