"""Few-step ODE sampling of the world model with classifier-free guidance, chunk by chunk.

- Euler or Heun steps over `steps` flow times from 1 to 0 (`shift` > 1 spends more of them at
  high noise, as SD3 does); guidance v = v_null + g * (v_cond - v_null), both branches in one
  batch.
- `strength` < 1 starts from the source latents noised to flow time `strength` (SDEdit): the
  structure of the source survives by construction, the model changes the appearance.
- Noise comes from a CPU generator seeded with `seed`, drawn frame by frame: same inputs and
  seed, same output, and a longer clip starts with the same frames as a shorter one.
- Clips longer than `chunk` latent frames are generated chunk by chunk. Each later chunk first
  runs the model once over the last `context` finished latent frames at t = 0 and keeps their
  keys and values per block; the new frames then attend to them through frame-causal attention
  (`q_offset` = cached tokens). Memory stays flat in the clip length, and earlier frames never
  depend on later ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from amplify.wfm.config import SOURCE
from amplify.wfm.model import KV, WorldModel


@dataclass(frozen=True)
class SamplerConfig:
    steps: int = 12
    guidance: float = 2.0
    method: str = "euler"  # euler | heun
    shift: float = 1.0
    chunk: int = 5  # latent frames generated together (5 = 17 frames)
    context: int = 2  # finished latent frames a later chunk attends to
    # SDEdit-style start: < 1 starts at flow time `strength` from the source latents noised to
    # that level (needs the `source` control) instead of from pure noise at t = 1.
    strength: float = 1.0

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps={self.steps}: must be >= 1")
        if self.method not in ("euler", "heun"):
            raise ValueError(f"method={self.method!r}: euler or heun")
        if not 0.0 < self.strength <= 1.0:
            raise ValueError(f"strength={self.strength}: must be in (0, 1]")
        if self.chunk < 1 or not 0 <= self.context < self.chunk:
            raise ValueError(
                f"chunk={self.chunk}, context={self.context}: need 0 <= context < chunk"
            )


def flow_times(steps: int, shift: float = 1.0, start: float = 1.0) -> list[float]:
    """steps + 1 times from `start` to 0; shift > 1 spends more steps near t = 1."""
    ts = torch.linspace(start, 0.0, steps + 1)
    ts = shift * ts / (1 + (shift - 1) * ts)
    return ts.tolist()


def _slice_controls(controls: dict, a: int, b: int) -> dict:
    return {k: (None if v is None else v[:, :, a:b]) for k, v in controls.items()}


def _double(d: dict) -> dict:
    return {k: (None if v is None else torch.cat([v, v])) for k, v in d.items()}


class _Guided:
    """The model with both CFG branches in one batch of 2B (conditional first)."""

    def __init__(self, model: WorldModel, cond: dict, controls: dict, guidance: float) -> None:
        self.model, self.g = model, guidance
        self.use_null = guidance != 1.0
        if self.use_null:
            cond = {k: torch.cat([v, v]) for k, v in cond.items()}
            B = cond["keep"].shape[0] // 2
            cond["keep"] = torch.cat([torch.ones(B), torch.zeros(B)]).to(cond["keep"])
            controls = _double(controls)
        self.cond, self.controls = cond, controls

    def _batch(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, x]) if self.use_null else x

    def context_kv(self, x: torch.Tensor, a: int, b: int) -> list[KV]:
        """Keys and values of finished latent frames a..b (clean, t = 0), per block."""
        kv: list[KV] = []
        xb = self._batch(x)
        t = torch.zeros(xb.shape[0], b - a, device=x.device)
        self.model(xb, t, self.cond, _slice_controls(self.controls, a, b), frame_offset=a,
                   collect_kv=kv)  # fmt: skip
        return kv

    def velocity(self, x: torch.Tensor, t: float, a: int, b: int, past: list[KV] | None):
        xb = self._batch(x)
        tt = torch.full((xb.shape[0], b - a), float(t), device=x.device)
        v = self.model(xb, tt, self.cond, _slice_controls(self.controls, a, b), frame_offset=a,
                       past_kv=past)  # fmt: skip
        if not self.use_null:
            return v
        vc, vu = v.chunk(2)
        return vu + self.g * (vc - vu)


@torch.no_grad()
def sample(
    model: WorldModel,
    shape: tuple[int, int, int, int],  # (C, n, h, w) latent shape of one clip
    cond: dict[str, torch.Tensor],  # weather, time_of_day, intensity, scenario, keep: (B,)
    controls: dict[str, torch.Tensor | None],  # name -> (B, 4c, n, H/f, W/f) or None
    seed: int = 0,
    cfg: SamplerConfig = SamplerConfig(),
) -> torch.Tensor:
    """Latents (B, C, n, h, w) in model space (call `model.denormalize` before decoding)."""
    B = cond["weather"].shape[0]
    C, n, h, w = shape
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(int(seed))
    # Frame-major draws: latent frame j gets the same noise whatever the clip length.
    noise = torch.randn((B, n, C, h, w), generator=gen).transpose(1, 2).contiguous().to(device)
    guided = _Guided(model, cond, controls, cfg.guidance)
    ts = flow_times(cfg.steps, cfg.shift, cfg.strength)
    if cfg.strength < 1.0:
        if controls.get(SOURCE) is None:
            raise ValueError("strength < 1 needs the source latents (controls['source'])")
        src = model.normalize(controls[SOURCE].to(noise))  # (B, C, n, h, w)
        noise = (1 - ts[0]) * src + ts[0] * noise
    out = torch.empty_like(noise)
    s = 0
    while s < n:
        # 1. The chunk [s, e) and the cached keys/values of the finished frames before it.
        e = min(n, s + (cfg.chunk if s == 0 else cfg.chunk - cfg.context))
        past = None
        if s > 0 and cfg.context > 0:
            c0 = max(0, s - cfg.context)
            past = guided.context_kv(out[:, :, c0:s], c0, s)
        # 2. Integrate the flow ODE from noise (t = 1) to data (t = 0).
        x = noise[:, :, s:e]
        for t0, t1 in zip(ts[:-1], ts[1:], strict=True):
            v = guided.velocity(x, t0, s, e, past)
            if cfg.method == "heun" and t1 > 0:
                x1 = x + (t1 - t0) * v
                v = 0.5 * (v + guided.velocity(x1, t1, s, e, past))
            x = x + (t1 - t0) * v
        out[:, :, s:e] = x
        s = e
    return out  # (B, C, n, h, w)
