"""Plain PyTorch attention with an explicit dense frame mask: the ground truth for the kernels.

Layout `[B, H, N, D]` (batch, heads, tokens, head dim), computed in fp32 whatever the inputs.
"""

from __future__ import annotations

import math

import torch

from .mask import FrameMask


def attention_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: FrameMask | None = None,
    *,
    q_offset: int | None = None,
    scale: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Masked softmax attention in fp32; returns `(out, lse)`.

    q: (B, H, Nq, D), k and v: (B, H, Nk, D); queries are tokens `q_offset .. q_offset + Nq - 1`
    of the key sequence (default `Nk - Nq`). out: (B, H, Nq, D) fp32; lse: (B, H, Nq) fp32, the
    natural log-sum-exp of each query's scaled, masked scores. Differentiable by autograd.
    """
    n_q, n_k, head_dim = q.shape[-2], k.shape[-2], q.shape[-1]
    q_offset = n_k - n_q if q_offset is None else q_offset
    scale = 1.0 / math.sqrt(head_dim) if scale is None else scale
    mask = FrameMask.full(n_k) if mask is None else mask
    mask.check(n_q, n_k, q_offset)
    scores = (q.float() @ k.float().transpose(-1, -2)) * scale  # (B, H, Nq, Nk)
    keep = mask.dense(n_q, q_offset).to(q.device)  # (Nq, Nk)
    scores = scores.masked_fill(~keep, float("-inf"))
    lse = torch.logsumexp(scores, dim=-1)  # (B, H, Nq)
    probs = torch.exp(scores - lse[..., None])
    return probs @ v.float(), lse  # (B, H, Nq, D)
