"""The causal video tokenizer: a 4x8x8 (time x height x width) spatio-temporal autoencoder.

Design (sizes from `TokenizerConfig`; c1, c2, c3 = widths):
- Pixels enter through a 4x4 space-to-depth (3 -> 48 channels at H/4): the full-resolution image
  never meets a convolution, which is where most of a conventional autoencoder's FLOPs go. A
  learned map right after it subsumes a Haar wavelet step (same linear span).
- Per-frame layers (narrow): c1 at H/4, then 2x2 space-to-depth and c2 at H/8.
- Group layers (wide, run once per 4 frames): the first frame is a group of its own (its features
  replicated 4 times, so images and videos share one model), then every 4 frames are stacked along
  channels (4*c2 -> c3) and refined by residual blocks that also see the previous latent frame
  through a 1x1 causal mix. So latent j depends on frames <= 4j only: causal in time.
- The decoder mirrors it: group layers at H/8 split each latent frame into 4 frames' features,
  per-frame layers go back up with depth-to-space.
- A parameter-free shortcut (DC-AE's residual autoencoding, end to end): the 8x8-pooled colour
  of each of a group's 4 frames is added to latent channels 0-11 and the decoder adds those
  channels, upsampled, to each frame; the learned layers start at zero output and learn the
  residual (the untrained model already scores 26.3 dB on held-out synthetic clips).
- Long clips run in temporal tiles; a tile carries `context_latents` latent frames of left
  context, which makes tiled output equal to untiled output (tested) with flat memory.
Tensors are (B, C, T, H, W), pixels in [-1, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from amplify.tokenizer.config import SPACE_FACTOR, TIME_FACTOR, TokenizerConfig
from amplify.tokenizer.fsq import FSQ


class ResBlock(nn.Module):
    """Pre-activation residual block of two 3x3 convs; the last starts at zero (identity)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.silu(self.conv1(F.silu(x))))


class GroupBlock(nn.Module):
    """ResBlock over latent frames plus a causal 1x1 mix of the previous latent frame."""

    def __init__(self, c: int, temporal: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)
        self.tmix = nn.Conv2d(c, c, 1, bias=False) if temporal else None
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, n, C, h, w)
        B, n, C, h, w = x.shape
        a = F.silu(x).reshape(B * n, C, h, w)
        y = self.conv1(a)
        if self.tmix is not None:
            # Replicate padding at the first latent frame: a tile that starts at latent 0 and the
            # whole clip see the same thing.
            a5 = a.view(B, n, C, h, w)
            prev = torch.cat([a5[:, :1], a5[:, :-1]], 1).reshape(B * n, C, h, w)
            y = y + self.tmix(prev)
        y = self.conv2(F.silu(y))
        return x + y.view(B, n, C, h, w)


class CausalVideoTokenizer(nn.Module):
    """Encode (B, 3, 1+4k, H, W) to (B, C, 1+k, H/8, W/8) and back; H, W multiples of 8."""

    def __init__(self, cfg: TokenizerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c1, c2, c3 = cfg.widths
        n1, n2, n3 = cfg.blocks
        zc = cfg.latent_channels
        g = TIME_FACTOR
        # Encoder: per frame, then per group.
        self.enc_in = nn.Conv2d(3 * 16, c1, 3, padding=1)
        self.enc_b1 = nn.Sequential(*[ResBlock(c1) for _ in range(n1)])
        self.enc_down = nn.Conv2d(4 * c1, c2, 1)
        self.enc_b2 = nn.Sequential(*[ResBlock(c2) for _ in range(n2)])
        self.enc_group = nn.Conv2d(g * c2, c3, 1)
        self.enc_b3 = nn.ModuleList([GroupBlock(c3, cfg.temporal_context) for _ in range(n3)])
        self.enc_out = nn.Conv2d(c3, zc, 1)
        # Decoder: per group, then per frame.
        self.dec_in = nn.Conv2d(zc, c3, 3, padding=1)
        self.dec_b3 = nn.ModuleList([GroupBlock(c3, cfg.temporal_context) for _ in range(n3)])
        self.dec_ungroup = nn.Conv2d(c3, g * c2, 1)
        self.dec_b2 = nn.Sequential(*[ResBlock(c2) for _ in range(n2)])
        self.dec_up = nn.Conv2d(c2, 4 * c1, 1)
        self.dec_b1 = nn.Sequential(*[ResBlock(c1) for _ in range(n1)])
        self.dec_out = nn.Conv2d(c1, 3 * 16, 3, padding=1)
        self.fsq = FSQ(cfg.fsq_levels) if cfg.fsq_levels else None
        if cfg.shortcut:  # start as the shortcut alone; the learned paths grow from zero
            for conv in (self.enc_out, self.dec_out):
                nn.init.zeros_(conv.weight)
                nn.init.zeros_(conv.bias)

    # ---- shapes -------------------------------------------------------------------------------
    @staticmethod
    def latent_frames(frames: int) -> int:
        if frames < 1 or (frames - 1) % TIME_FACTOR:
            raise ValueError(f"clip length {frames} is not 1 + {TIME_FACTOR}k")
        return 1 + (frames - 1) // TIME_FACTOR

    @staticmethod
    def _check_hw(h: int, w: int) -> None:
        if h % SPACE_FACTOR or w % SPACE_FACTOR:
            raise ValueError(f"frame size {h}x{w} is not a multiple of {SPACE_FACTOR}")

    # ---- encoder ------------------------------------------------------------------------------
    def _encode_frames(self, x: torch.Tensor) -> torch.Tensor:
        B, _, T, H, W = x.shape
        f = x.transpose(1, 2).reshape(B * T, 3, H, W)
        f = F.pixel_unshuffle(f, 4)  # (BT, 48, H/4, W/4)
        f = self.enc_b1(self.enc_in(f))  # (BT, c1, H/4, W/4)
        f = F.pixel_unshuffle(f, 2)  # (BT, 4c1, H/8, W/8)
        f = self.enc_b2(self.enc_down(f))  # (BT, c2, H/8, W/8)
        return f.view(B, T, *f.shape[1:])

    def _encode_groups(self, f: torch.Tensor, first: bool) -> torch.Tensor:
        B, T, c2, h, w = f.shape
        if first:  # the first frame is a group of its own: its features 4 times
            f = torch.cat([f[:, :1].expand(B, TIME_FACTOR - 1, c2, h, w), f], 1)
        n = f.shape[1] // TIME_FACTOR
        g = f.reshape(B * n, TIME_FACTOR * c2, h, w)  # (Bn, 4c2, h, w)
        g = self.enc_group(g).view(B, n, -1, h, w)  # (B, n, c3, h, w)
        for blk in self.enc_b3:
            g = blk(g)
        z = self.enc_out(F.silu(g.flatten(0, 1)))  # (Bn, zc, h, w)
        return z.view(B, n, -1, h, w).transpose(1, 2)  # (B, zc, n, h, w)

    @staticmethod
    def _pooled_groups(x: torch.Tensor, first: bool) -> torch.Tensor:
        """8x8-pooled colour of each frame, 4 frames a group: -> (B, 12, n, H/8, W/8)."""
        if first:
            x = torch.cat([x[:, :, :1].expand(-1, -1, TIME_FACTOR - 1, -1, -1), x], 2)
        c = F.avg_pool3d(x, (1, SPACE_FACTOR, SPACE_FACTOR))  # (B, 3, 4n, h, w)
        B, _, T4, h, w = c.shape
        c = c.view(B, 3, T4 // TIME_FACTOR, TIME_FACTOR, h, w).transpose(1, 3)  # (B,4,n,3,h,w)
        return c.transpose(2, 3).reshape(B, 3 * TIME_FACTOR, T4 // TIME_FACTOR, h, w)

    def _encode_tile(self, x: torch.Tensor, first: bool) -> torch.Tensor:
        z = self._encode_groups(self._encode_frames(x), first)  # (B, zc, n, h, w)
        if self.cfg.shortcut:
            sc = self.cfg.shortcut_channels
            z = torch.cat([z[:, :sc] + self._pooled_groups(x, first), z[:, sc:]], 1)
        return self.fsq.quantize(z) if self.fsq is not None else z

    def encode(self, x: torch.Tensor, tile: int | None = None) -> torch.Tensor:
        """(B, 3, 1+4k, H, W) -> (B, C, 1+k, H/8, W/8); `tile` latent frames at a time if set."""
        B, _, T, H, W = x.shape
        self._check_hw(H, W)
        n = self.latent_frames(T)
        if tile is None or tile >= n:
            return self._encode_tile(x, first=True)
        ctx, out = self.cfg.context_latents, []
        for s in range(0, n, tile):
            e, start = min(n, s + tile), max(0, s - ctx)
            f0 = 0 if start == 0 else TIME_FACTOR * start - (TIME_FACTOR - 1)
            z = self._encode_tile(x[:, :, f0 : TIME_FACTOR * (e - 1) + 1], first=start == 0)
            out.append(z[:, :, s - start :])
        return torch.cat(out, 2)

    # ---- decoder ------------------------------------------------------------------------------
    def _decode_tile(self, z: torch.Tensor, first: bool, skip: int) -> torch.Tensor:
        """Decode latent frames z; drop the frames of the first `skip` (context) latent frames."""
        B, _, n, h, w = z.shape
        g = self.dec_in(z.transpose(1, 2).flatten(0, 1)).view(B, n, -1, h, w)  # (B, n, c3, h, w)
        for blk in self.dec_b3:
            g = blk(g)
        g = g[:, skip:]
        n = g.shape[1]
        f = self.dec_ungroup(F.silu(g.flatten(0, 1)))  # (Bn, 4c2, h, w)
        f = f.view(B, n * TIME_FACTOR, -1, h, w)  # (B, 4n, c2, h, w)
        if first and skip == 0:  # the first latent frame stands for one frame: its last slot
            f = f[:, TIME_FACTOR - 1 :]
        T = f.shape[1]
        f = self.dec_b2(f.flatten(0, 1))  # (BT, c2, h, w)
        f = F.pixel_shuffle(self.dec_up(F.silu(f)), 2)  # (BT, c1, H/4, W/4)
        f = self.dec_out(F.silu(self.dec_b1(f)))  # (BT, 48, H/4, W/4)
        y = F.pixel_shuffle(f, 4)  # (BT, 3, H, W)
        y = y.view(B, T, 3, h * SPACE_FACTOR, w * SPACE_FACTOR).transpose(1, 2)
        if self.cfg.shortcut:  # each frame's pooled colour, upsampled, onto it
            sc = self.cfg.shortcut_channels
            c = z[:, :sc, skip:]  # (B, 12, n, h, w): channel = slot * 3 + colour
            c = c.view(B, TIME_FACTOR, 3, n, h, w).permute(0, 2, 3, 1, 4, 5)  # (B,3,n,4,h,w)
            c = c.reshape(B, 3, n * TIME_FACTOR, h, w)
            if first and skip == 0:
                c = c[:, :, TIME_FACTOR - 1 :]
            c = F.interpolate(
                c.transpose(1, 2).flatten(0, 1), scale_factor=SPACE_FACTOR, mode="bilinear"
            )  # (BT, 3, H, W)
            c = c.view(B, T, 3, h * SPACE_FACTOR, w * SPACE_FACTOR).transpose(1, 2)
            y = y + c  # (B, 3, T, H, W)
        return y

    def decode(self, z: torch.Tensor, tile: int | None = None) -> torch.Tensor:
        """(B, C, 1+k, h, w) -> (B, 3, 1+4k, 8h, 8w); `tile` latent frames at a time if set."""
        n = z.shape[2]
        if tile is None or tile >= n:
            return self._decode_tile(z, first=True, skip=0)
        ctx, out = self.cfg.context_latents, []
        for s in range(0, n, tile):
            e, start = min(n, s + tile), max(0, s - ctx)
            out.append(self._decode_tile(z[:, :, start:e], first=start == 0, skip=s - start))
        return torch.cat(out, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    # ---- discrete tokens (FSQ mode) -----------------------------------------------------------
    def encode_ids(self, x: torch.Tensor, tile: int | None = None) -> torch.Tensor:
        """(B, 3, 1+4k, H, W) -> token ids (B, 1+k, H/8, W/8) int64; needs fsq_levels."""
        if self.fsq is None:
            raise ValueError(f"tokenizer {self.cfg.name!r} is continuous (no fsq_levels)")
        return self.fsq.codes_to_ids(self.encode(x, tile))

    def decode_ids(self, ids: torch.Tensor, tile: int | None = None) -> torch.Tensor:
        if self.fsq is None:
            raise ValueError(f"tokenizer {self.cfg.name!r} is continuous (no fsq_levels)")
        return self.decode(self.fsq.ids_to_codes(ids), tile)
