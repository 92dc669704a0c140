"""The conditional world model: a diffusion transformer (DiT) over patchified tokenizer latents.

Design (sizes from `WFMConfig`):
- Tokens: the noisy target latent (C, F, h, w) is cut into patch x patch cells per latent frame
  (F frames of P tokens) and embedded linearly.
- Structure controls (edges, blurred frames, layout raster, depth) arrive latent-aligned
  (`controls.align_to_latents`), and the source clip's own tokenizer latents (`source`, raw; the
  model normalises them): each is patchified onto the same token grid, embedded by its own
  linear map and added to the tokens. A control that is absent (None) or dropped for a sample
  (`keep` = 0) is replaced by a learned "absent" vector, so any subset works.
- Conditions enter through adaLN-zero: weather, time of day, intensity (with a learned "null" used
  for classifier-free guidance), a scenario/agent-edit id (0 = none), and the flow time. Flow time
  is per latent frame, so earlier frames can be clean context while later ones are noisy.
- Positions: 3D rotary embeddings on queries and keys (latent frame, row, column), the head dim
  split `rope_split` ways. Absolute frame index = `frame_offset` + frame in the chunk.
- Attention is frame-causal (a token sees its own latent frame and earlier ones) and goes through
  `amplify.attention.attention`. With `past_kv` (keys and values of earlier latent frames, cached
  per block by `collect_kv`) new frames are generated chunk by chunk (`q_offset`).
- Latents are normalised per channel with statistics stored in the checkpoint (buffers).
- Heads (`WFMConfig.head`): "flow" predicts the velocity of the noisy target latents (C channels
  per latent cell); "grade" reads the clean source latents (flow time 0) and predicts the
  coefficients of an appearance transform (`appearance.py`, `cfg.out_channels` per cell).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from amplify.attention import attention
from amplify.wfm.config import CONTROLS, SOURCE, WFMConfig

KV = tuple[torch.Tensor, torch.Tensor]


# ---- helpers ------------------------------------------------------------------------------------
def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


def patchify(x: torch.Tensor, p: int) -> torch.Tensor:
    """(B, C, F, h, w) -> (B, F * h/p * w/p, C * p * p), frame-major, then row, then column."""
    B, C, Fr, h, w = x.shape
    x = x.view(B, C, Fr, h // p, p, w // p, p)
    x = x.permute(0, 2, 3, 5, 1, 4, 6)  # (B, F, h/p, w/p, C, p, p)
    return x.reshape(B, Fr * (h // p) * (w // p), C * p * p)


def unpatchify(x: torch.Tensor, p: int, C: int, Fr: int, h: int, w: int) -> torch.Tensor:
    """Inverse of `patchify`: (B, N, C * p * p) -> (B, C, F, h, w)."""
    B = x.shape[0]
    x = x.view(B, Fr, h // p, w // p, C, p, p)
    x = x.permute(0, 4, 1, 2, 5, 3, 6)  # (B, C, F, h/p, p, w/p, p)
    return x.reshape(B, C, Fr, h, w)


def rope_angles(
    cfg: WFMConfig, frames: int, gh: int, gw: int, frame_offset: int, device: torch.device
) -> torch.Tensor:
    """Rotary angles (N, head_dim / 2) for a grid of frames x gh x gw tokens."""
    t = torch.arange(frame_offset, frame_offset + frames, device=device, dtype=torch.float32)
    y = torch.arange(gh, device=device, dtype=torch.float32)
    x = torch.arange(gw, device=device, dtype=torch.float32)
    grids = torch.meshgrid(t, y, x, indexing="ij")  # 3 x (F, gh, gw)
    parts = []
    for pos, d in zip(grids, cfg.rope_split, strict=True):
        if d == 0:
            continue
        freqs = cfg.rope_theta ** (-torch.arange(0, d, 2, device=device).float() / d)  # (d/2,)
        parts.append(pos.reshape(-1, 1) * freqs)  # (N, d/2)
    return torch.cat(parts, -1)  # (N, head_dim / 2)


def apply_rope(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs of x (B, H, N, D) by angles (N, D/2)."""
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x2 = x.unflatten(-1, (-1, 2))  # (B, H, N, D/2, 2)
    a, b = x2[..., 0], x2[..., 1]
    return torch.stack([a * cos - b * sin, a * sin + b * cos], -1).flatten(-2)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal features of flow times t in [0, 1] (any shape) -> (*t.shape, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)
    args = (t.float() * 1000.0).unsqueeze(-1) * freqs
    return torch.cat([torch.cos(args), torch.sin(args)], -1)


# ---- conditioning -------------------------------------------------------------------------------
class ConditionEmbedder(nn.Module):
    """Weather, time of day, intensity, scenario id -> (B, D); `keep` = 0 gives the null condition."""

    def __init__(self, cfg: WFMConfig) -> None:
        super().__init__()
        D = cfg.dim
        self.weather = nn.Embedding(cfg.num_weathers + 1, D)  # last id = null
        self.time_of_day = nn.Embedding(cfg.num_times + 1, D)
        self.intensity = nn.Sequential(nn.Linear(16, D), nn.SiLU(), nn.Linear(D, D))
        self.intensity_null = nn.Parameter(torch.zeros(D))
        self.scenario = nn.Embedding(cfg.scenarios, D)  # id 0 = none
        self.nw, self.nt = cfg.num_weathers, cfg.num_times
        self.source_weather = self.source_time = None
        if cfg.source_condition:  # the source's own condition; last id = unknown
            self.source_weather = nn.Embedding(cfg.num_weathers + 1, D)
            self.source_time = nn.Embedding(cfg.num_times + 1, D)
            for e in (self.source_weather, self.source_time):
                nn.init.zeros_(e.weight)  # a warm start from a model without it is unchanged

    def forward(
        self,
        weather: torch.Tensor,  # (B,) long
        time_of_day: torch.Tensor,  # (B,) long
        intensity: torch.Tensor,  # (B,) float in [0, 1]
        scenario: torch.Tensor,  # (B,) long
        keep: torch.Tensor,  # (B,) float, 1 = conditional, 0 = null (CFG)
        source_weather: torch.Tensor | None = None,  # (B,) long, id num_weathers = unknown
        source_time: torch.Tensor | None = None,  # (B,) long, id num_times = unknown
    ) -> torch.Tensor:
        k = keep.float().unsqueeze(-1)  # (B, 1)
        w = torch.where(keep > 0.5, weather, torch.full_like(weather, self.nw))
        t = torch.where(keep > 0.5, time_of_day, torch.full_like(time_of_day, self.nt))
        i_feat = timestep_embedding(intensity.float() * 0.1, 16)  # (B, 16), smooth in [0, 1]
        i_emb = k * self.intensity(i_feat) + (1 - k) * self.intensity_null
        c = self.weather(w) + self.time_of_day(t) + i_emb + self.scenario(scenario)  # (B, D)
        if self.source_weather is not None:
            sw = torch.full_like(weather, self.nw) if source_weather is None else source_weather
            st = torch.full_like(weather, self.nt) if source_time is None else source_time
            c = c + self.source_weather(sw) + self.source_time(st)
        return c


class ControlEmbedder(nn.Module):
    """Latent-aligned control maps -> per-token features (B, N, D), absent ones -> learned vector."""

    def __init__(self, cfg: WFMConfig) -> None:
        super().__init__()
        self.names = cfg.controls
        self.side: dict[str, int] = {}
        proj, null = {}, {}
        for name in self.names:
            if name == SOURCE:  # source latents: one latent cell = one control cell
                self.side[name] = cfg.patch
                proj[name] = nn.Linear(cfg.latent_channels * cfg.patch**2, cfg.dim)
                # Starts at zero: a model trained without it (warm start) is unchanged.
                nn.init.zeros_(proj[name].weight)
                nn.init.zeros_(proj[name].bias)
            else:
                ch, factor = CONTROLS[name]
                side = 8 * cfg.patch // factor  # control cells per token side
                self.side[name] = side
                proj[name] = nn.Linear(4 * ch * side * side, cfg.dim)
            null[name] = nn.Parameter(torch.zeros(cfg.dim))
        self.proj = nn.ModuleDict(proj)
        self.null = nn.ParameterDict(null)

    def forward(
        self,
        controls: dict[str, torch.Tensor | None],
        keep: dict[str, torch.Tensor] | None,
        B: int,
        N: int,
        like: torch.Tensor,
    ) -> torch.Tensor:
        out = like.new_zeros(B, N, like.shape[-1])
        for name in self.names:
            c = controls.get(name)
            if c is None:
                out = out + self.null[name]
                continue
            feat = self.proj[name](patchify(c.to(like.dtype), self.side[name]))  # (B, N, D)
            k = keep.get(name) if keep else None
            if k is None:
                out = out + feat
            else:
                k = k.to(like.dtype).view(B, 1, 1)
                out = out + k * feat + (1 - k) * self.null[name]
        return out  # (B, N, D)


# ---- transformer ------------------------------------------------------------------------------
class Attention(nn.Module):
    def __init__(self, cfg: WFMConfig) -> None:
        super().__init__()
        self.heads, self.hd = cfg.heads, cfg.head_dim
        self.qkv = nn.Linear(cfg.dim, 3 * cfg.dim)
        self.q_norm = nn.RMSNorm(self.hd, eps=1e-6)
        self.k_norm = nn.RMSNorm(self.hd, eps=1e-6)
        self.proj = nn.Linear(cfg.dim, cfg.dim)

    def forward(
        self,
        x: torch.Tensor,  # (B, N, D)
        angles: torch.Tensor,  # (N, hd / 2)
        tokens_per_frame: int,
        past: KV | None,
        collect: list[KV] | None,
    ) -> torch.Tensor:
        B, N, D = x.shape
        q, k, v = self.qkv(x).view(B, N, 3, self.heads, self.hd).permute(2, 0, 3, 1, 4)
        q = apply_rope(self.q_norm(q), angles)  # (B, H, N, hd)
        k = apply_rope(self.k_norm(k), angles)  # (B, H, N, hd)
        if collect is not None:
            collect.append((k, v))
        n_past = 0
        if past is not None:
            n_past = past[0].shape[2]
            k = torch.cat([past[0], k], 2)  # (B, H, n_past + N, hd)
            v = torch.cat([past[1], v], 2)
        y = attention(
            q, k, v, tokens_per_frame=tokens_per_frame, causal_frames=True, q_offset=n_past
        )  # (B, H, N, hd)
        return self.proj(y.transpose(1, 2).reshape(B, N, D))


class Block(nn.Module):
    """Pre-norm transformer block with adaLN-zero modulation from a per-frame condition."""

    def __init__(self, cfg: WFMConfig) -> None:
        super().__init__()
        D = cfg.dim
        self.norm1 = nn.LayerNorm(D, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(cfg)
        self.norm2 = nn.LayerNorm(D, elementwise_affine=False, eps=1e-6)
        hidden = int(D * cfg.mlp_ratio)
        self.mlp = nn.Sequential(
            nn.Linear(D, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, D)
        )
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(D, 6 * D))
        nn.init.zeros_(self.ada[1].weight)
        nn.init.zeros_(self.ada[1].bias)

    def forward(
        self,
        x: torch.Tensor,  # (B, N, D)
        c: torch.Tensor,  # (B, F, D)
        angles: torch.Tensor,
        P: int,
        past: KV | None = None,
        collect: list[KV] | None = None,
    ) -> torch.Tensor:
        B, N, D = x.shape
        mods = self.ada(c).repeat_interleave(P, dim=1)  # (B, N, 6D)
        sh1, sc1, g1, sh2, sc2, g2 = mods.chunk(6, -1)
        x = x + g1 * self.attn(modulate(self.norm1(x), sh1, sc1), angles, P, past, collect)
        x = x + g2 * self.mlp(modulate(self.norm2(x), sh2, sc2))
        return x


class WorldModel(nn.Module):
    """Flow head: the velocity of noisy target latents; grade head: the appearance transform of
    the source (its latents as input), given conditions and controls."""

    def __init__(self, cfg: WFMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        D, p, C = cfg.dim, cfg.patch, cfg.latent_channels
        self.x_embed = nn.Linear(C * p * p, D)
        self.controls = ControlEmbedder(cfg)
        self.cond = ConditionEmbedder(cfg)
        self.t_embed = nn.Sequential(nn.Linear(256, D), nn.SiLU(), nn.Linear(D, D))
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.depth)])
        self.norm_out = nn.LayerNorm(D, elementwise_affine=False, eps=1e-6)
        self.ada_out = nn.Sequential(nn.SiLU(), nn.Linear(D, 2 * D))
        self.out = nn.Linear(D, cfg.out_channels * p * p)
        for m in (self.ada_out[1], self.out):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)
        self.register_buffer("latent_mean", torch.zeros(C))
        self.register_buffer("latent_std", torch.ones(C))

    # ---- latent normalisation -------------------------------------------------------------------
    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        """Tokenizer latents (B, C, F, h, w) -> unit-scale model space."""
        return (z - self.latent_mean.view(1, -1, 1, 1, 1)) / self.latent_std.view(1, -1, 1, 1, 1)

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.latent_std.view(1, -1, 1, 1, 1) + self.latent_mean.view(1, -1, 1, 1, 1)

    def forward(
        self,
        x: torch.Tensor,  # (B, C, F, h, w) noisy latents, model space
        t: torch.Tensor,  # (B, F) flow time per latent frame: 0 = clean, 1 = noise
        cond: dict[str, torch.Tensor],  # weather, time_of_day, intensity, scenario, keep: (B,)
        # (+ optional source_weather, source_time_of_day: the source's own condition)
        controls: dict[str, torch.Tensor | None],  # name -> (B, 4c, F, H/f, W/f) or None
        control_keep: dict[str, torch.Tensor] | None = None,  # name -> (B,) 1 = use, 0 = drop
        frame_offset: int = 0,
        past_kv: list[KV] | None = None,
        collect_kv: list[KV] | None = None,  # filled with this chunk's (k, v), one per block
    ) -> torch.Tensor:
        B, C, Fr, h, w = x.shape
        p = self.cfg.patch
        P = self.cfg.tokens_per_frame(h, w)
        N = Fr * P
        # 1. Tokens: latent patches + structure controls (source latents normalised like x).
        if controls.get(SOURCE) is not None:
            controls = {**controls, SOURCE: self.normalize(controls[SOURCE])}
        tok = self.x_embed(patchify(x, p))  # (B, N, D)
        tok = tok + self.controls(controls, control_keep, B, N, tok)  # (B, N, D)
        # 2. Conditioning vector per latent frame: condition + flow time.
        c = self.cond(
            cond["weather"],
            cond["time_of_day"],
            cond["intensity"],
            cond["scenario"],
            cond["keep"],
            cond.get("source_weather"),
            cond.get("source_time_of_day"),
        )  # fmt: skip  (B, D)
        c = c.unsqueeze(1) + self.t_embed(timestep_embedding(t, 256))  # (B, F, D)
        # 3. Blocks: frame-causal attention with 3D rotary positions (+ cached earlier frames).
        angles = rope_angles(self.cfg, Fr, h // p, w // p, frame_offset, x.device)  # (N, hd/2)
        for i, blk in enumerate(self.blocks):
            past = past_kv[i] if past_kv is not None else None
            tok = blk(tok, c, angles, P, past, collect_kv)  # (B, N, D)
        # 4. Output: adaLN, linear to patches, back to latents.
        sh, sc = self.ada_out(c).repeat_interleave(P, dim=1).chunk(2, -1)  # (B, N, D) x 2
        y = self.out(modulate(self.norm_out(tok), sh, sc))  # (B, N, K p p)
        return unpatchify(y, p, self.cfg.out_channels, Fr, h, w)  # (B, K, F, h, w)


def build_model(cfg: WFMConfig) -> WorldModel:
    return WorldModel(cfg)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
