"""Rectified flow: the training objective of the world model.

Convention: x_t = (1 - t) * x0 + t * noise, t in [0, 1] (0 = clean data, 1 = pure noise); the
model predicts the velocity v = noise - x0, and sampling integrates dx/dt = v from t = 1 to 0.
Training times are logit-normal (more weight mid-way, as in SD3). Leading "context" latent frames
are kept clean (t = 0) and left out of the loss, which teaches the model the situation of chunked
generation, where earlier frames are finished latents.
"""

from __future__ import annotations

import torch

from amplify.wfm.model import WorldModel


def sample_times(batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """(B,) logit-normal flow times in (0, 1)."""
    return torch.sigmoid(torch.randn(batch, generator=generator))


def flow_loss(
    model: WorldModel,
    batch: dict,
    generator: torch.Generator | None = None,
    net: torch.nn.Module | None = None,
) -> tuple[torch.Tensor, dict]:
    """Mean squared velocity error over the non-context frames of a `PairSampler` batch.

    `net` is the module to call (a DDP wrapper of `model` in distributed training).
    """
    x0 = model.normalize(batch["x0"])  # (B, C, F, h, w)
    B, C, Fr, h, w = x0.shape
    noise = torch.randn(x0.shape, generator=generator).to(x0)
    t = sample_times(B, generator).to(x0).view(B, 1).expand(B, Fr).clone()  # (B, F)
    ctx = batch["context"].to(x0.device)  # (B,)
    noisy = torch.arange(Fr, device=x0.device).view(1, Fr) >= ctx.view(B, 1)  # (B, F)
    t = torch.where(noisy, t, torch.zeros_like(t))
    tt = t.view(B, 1, Fr, 1, 1)
    xt = (1 - tt) * x0 + tt * noise
    v = (net or model)(xt, t, batch["cond"], batch["controls"], batch["keep"])  # (B, C, F, h, w)
    err = (v - (noise - x0)).pow(2).mean((1, 3, 4))  # (B, F)
    m = noisy.to(err.dtype)
    loss = (err * m).sum() / m.sum().clamp_min(1.0)
    return loss, {"mse": float(loss.detach())}
