"""Finite scalar quantisation (Mentzer et al., 2023): a discrete latent without a codebook.

Each latent channel is squashed to a bounded range and rounded to one of `levels[i]` values
(straight-through gradient). The digits of a cell, read in mixed radix, are its token id.
"""

from __future__ import annotations

import torch
from torch import nn


class FSQ(nn.Module):
    """Quantise (B, d, ...) with d = len(levels); ids are (B, ...) int64 in [0, prod(levels))."""

    def __init__(self, levels: tuple[int, ...]) -> None:
        super().__init__()
        lv = torch.tensor(levels, dtype=torch.float32)
        basis = torch.cumprod(torch.tensor((1, *levels[:-1]), dtype=torch.int64), 0)
        self.register_buffer("levels", lv, persistent=False)
        self.register_buffer("basis", basis, persistent=False)
        self.codebook_size = int(torch.prod(torch.tensor(levels)).item())

    def _view(self, t: torch.Tensor, ndim: int) -> torch.Tensor:
        return t.view(1, -1, *([1] * (ndim - 2)))

    def quantize(self, z: torch.Tensor) -> torch.Tensor:
        """Bounded, rounded and rescaled to [-1, 1]; gradient flows straight through rounding."""
        lv = self._view(self.levels, z.ndim)
        half_l = (lv - 1) * (1 - 1e-3) / 2
        offset = torch.where(lv % 2 == 0, 0.5, 0.0)
        shift = torch.atanh(offset / half_l)
        bounded = torch.tanh(z + shift) * half_l - offset
        q = bounded + (bounded.round() - bounded).detach()
        return q / (lv // 2)

    def codes_to_ids(self, q: torch.Tensor) -> torch.Tensor:
        half = self._view(self.levels // 2, q.ndim)
        digits = (q * half + half).round().long()  # (B, d, ...)
        return (digits * self._view(self.basis, q.ndim)).sum(1)

    def ids_to_codes(self, ids: torch.Tensor) -> torch.Tensor:
        ndim = ids.ndim + 1
        digits = (ids.unsqueeze(1) // self._view(self.basis, ndim)) % self._view(
            self.levels.long(), ndim
        )
        half = self._view(self.levels // 2, ndim)
        return (digits.float() - half) / half
