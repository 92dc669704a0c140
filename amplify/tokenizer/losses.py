"""Reconstruction losses and metrics that need no downloaded network: L1, SSIM, gradients, PSNR.

Images are (N, 3, H, W) in [0, 1] for the metrics; the training loss takes the model's [-1, 1]
tensors (B, 3, T, H, W) and folds time into the batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()  # (size,)


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 11) -> torch.Tensor:
    """Mean SSIM per image (N,) of (N, C, H, W) in [0, 1]; Gaussian window (Wang et al., 2004)."""
    C = a.shape[1]
    g = _gaussian_window(window).to(a)
    # Separable blur, per channel, 'valid' like the reference implementation.
    kh = g.view(1, 1, -1, 1).expand(C, 1, -1, 1)
    kw = g.view(1, 1, 1, -1).expand(C, 1, 1, -1)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(t, kh, groups=C), kw, groups=C)

    c1, c2 = 0.01**2, 0.03**2
    mu_a, mu_b = blur(a), blur(b)
    s_aa = blur(a * a) - mu_a**2
    s_bb = blur(b * b) - mu_b**2
    s_ab = blur(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * s_ab + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (s_aa + s_bb + c2)
    return (num / den).flatten(1).mean(1)


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """PSNR in dB over all of a and b (same shape, [0, 1])."""
    mse = F.mse_loss(a.float(), b.float())
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-10))


def _grad(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return t[..., 1:, :] - t[..., :-1, :], t[..., :, 1:] - t[..., :, :-1]


def reconstruction_loss(
    y: torch.Tensor, x: torch.Tensor, w_ssim: float = 0.2, w_grad: float = 0.5
) -> tuple[torch.Tensor, dict[str, float]]:
    """L1 + w_ssim * (1 - SSIM) + w_grad * L1 of image gradients, on (B, 3, T, H, W) in [-1, 1]."""
    l1 = (y - x).abs().mean()
    yf = y.transpose(1, 2).flatten(0, 1)  # (BT, 3, H, W)
    xf = x.transpose(1, 2).flatten(0, 1)
    l_ssim = 1 - ssim((yf + 1) / 2, (xf + 1) / 2, window=7).mean()
    gy, gx = _grad(yf)
    ty, tx = _grad(xf)
    l_grad = (gy - ty).abs().mean() + (gx - tx).abs().mean()
    loss = l1 + w_ssim * l_ssim + w_grad * l_grad
    return loss, {"l1": l1.item(), "ssim_loss": l_ssim.item(), "grad": l_grad.item()}
