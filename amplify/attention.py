"""The one attention function the world model calls; it picks the backend.

Backends, all with the same frame masks and the same result up to rounding:
- `triton`: the flash kernels in `kernels.attention` (CUDA; also CPU under `TRITON_INTERPRET=1`);
- `sdpa`: `torch.nn.functional.scaled_dot_product_attention`; for frame masks, one call with a
  dense boolean mask up to `SDPA_DENSE_MAX_ELEMENTS` (Nq x Nk), and above it one call per query
  frame over its contiguous key range (exact, and no Nq x Nk mask in memory);
- `reference`: the fp32 PyTorch reference with an explicit mask (slow; for tests).

Choice, first match wins: the `backend=` argument; the `attention_backend(...)` context manager;
the `AMPLIFY_ATTENTION_BACKEND` environment variable; else `triton` for fp16/bf16 CUDA tensors and
`sdpa` otherwise (fp32 included: the kernels' fp32 path is exact, without TF32, but it is an
accuracy path, slow on tensor-core GPUs).

Mask description (keys are a sequence of Nk tokens grouped into frames):
- frames: `tokens_per_frame=n` (frames of n tokens, the last one shorter if n does not divide Nk)
  or `frame_sizes=[n0, n1, ...]` (uneven frames, summing to Nk), or neither (one frame);
- `causal_frames=True`: a query sees its own frame and every earlier one;
- `window_frames=W`: only the W most recent of those frames (with `causal_frames=False`: frames
  within W - 1 of its own on either side);
- queries are the Nq tokens starting at token `q_offset` of the key sequence; the default
  `Nk - Nq` is chunked generation (new tokens at the end, cached keys and values before them).
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import os
from collections.abc import Iterator, Sequence
from typing import Literal

import torch
import torch.nn.functional as F

from kernels.attention.mask import FrameMask
from kernels.attention.reference import attention_reference

Backend = Literal["triton", "sdpa", "reference"]
BACKENDS: tuple[str, ...] = ("triton", "sdpa", "reference")
ENV_VAR = "AMPLIFY_ATTENTION_BACKEND"
# Up to this many (query, key) pairs the SDPA path uses one call with a dense mask. Measured on
# CPU (2 threads, 8 heads, D 64, 1k-2k tokens, 4-64 frames): the per-frame loop was 1-2x slower
# forward and 3-10x slower forward + backward (each key slice's backward writes a full-size
# gradient), except at 4 frames (about even). Above it the dense mask costs too much memory.
SDPA_DENSE_MAX_ELEMENTS = 1 << 24

_override: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "attention_backend", default=None
)


@contextlib.contextmanager
def attention_backend(name: Backend | None) -> Iterator[None]:
    """Force a backend inside the block (None: back to the automatic choice)."""
    if name is not None:
        _validate(name, "attention_backend")
    token = _override.set(name)
    try:
        yield
    finally:
        _override.reset(token)


def _validate(name: str, where: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"{where}={name!r}: must be one of {BACKENDS}")
    return name


def select_backend(
    device: torch.device, backend: Backend | None = None, dtype: torch.dtype = torch.bfloat16
) -> str:
    """The backend `attention` uses for `dtype` tensors on `device` (see the module docstring)."""
    if backend is not None:
        return _validate(backend, "backend")
    if _override.get() is not None:
        return _override.get()
    env = os.environ.get(ENV_VAR)
    if env:
        return _validate(env, ENV_VAR)
    fast = device.type == "cuda" and dtype in (torch.float16, torch.bfloat16)
    return "triton" if fast else "sdpa"


def frame_mask(
    num_keys: int,
    *,
    tokens_per_frame: int | None = None,
    frame_sizes: Sequence[int] | torch.Tensor | None = None,
    causal_frames: bool = False,
    window_frames: int | None = None,
) -> FrameMask:
    """The `FrameMask` that `attention` builds from its keyword arguments."""
    if tokens_per_frame is not None and frame_sizes is not None:
        raise ValueError("give tokens_per_frame or frame_sizes, not both")
    if frame_sizes is not None:
        mask = FrameMask.from_sizes(frame_sizes, causal=causal_frames, window=window_frames)
        if mask.num_tokens != num_keys:
            raise ValueError(f"frame_sizes sum to {mask.num_tokens} tokens, keys have {num_keys}")
        return mask
    if tokens_per_frame is not None:
        return FrameMask.uniform(
            num_keys, tokens_per_frame, causal=causal_frames, window=window_frames
        )
    if causal_frames or window_frames is not None:
        raise ValueError("causal_frames / window_frames need tokens_per_frame or frame_sizes")
    return FrameMask.full(num_keys)


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    tokens_per_frame: int | None = None,
    frame_sizes: Sequence[int] | torch.Tensor | None = None,
    causal_frames: bool = False,
    window_frames: int | None = None,
    q_offset: int | None = None,
    scale: float | None = None,
    backend: Backend | None = None,
) -> torch.Tensor:
    """Frame-masked attention; returns the output [B, H, Nq, D] in q's dtype.

    q: [B, H, Nq, D]; k, v: [B, H, Nk, D], Nq <= Nk (batch, heads, tokens, head dim). The mask
    arguments are described in the module docstring; `scale` defaults to 1 / sqrt(D).
    Differentiable with every backend.
    """
    n_q, n_k = q.shape[-2], k.shape[-2]
    mask = frame_mask(
        n_k,
        tokens_per_frame=tokens_per_frame,
        frame_sizes=frame_sizes,
        causal_frames=causal_frames,
        window_frames=window_frames,
    )
    q_offset = n_k - n_q if q_offset is None else int(q_offset)
    mask.check(n_q, n_k, q_offset)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)

    name = select_backend(q.device, backend, q.dtype)
    if name == "triton":
        # Imported here: Triton reads TRITON_INTERPRET when the kernel module is imported.
        from kernels.attention.triton_attention import flash_attention

        return flash_attention(q, k, v, mask, q_offset=q_offset, scale=scale)[0]
    if name == "reference":
        return attention_reference(q, k, v, mask, q_offset=q_offset, scale=scale)[0].to(q.dtype)
    return _sdpa_attention(q, k, v, mask, q_offset, scale)


def _sdpa_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: FrameMask,
    q_offset: int,
    scale: float,
) -> torch.Tensor:
    if mask.is_full:
        return F.scaled_dot_product_attention(q, k, v, scale=scale)
    n_q, n_k = q.shape[-2], k.shape[-2]
    if n_q * n_k <= SDPA_DENSE_MAX_ELEMENTS:
        keep = mask.dense(n_q, q_offset).to(q.device)  # (Nq, Nk), True = attend
        return F.scaled_dot_product_attention(q, k, v, attn_mask=keep, scale=scale)
    lo, hi = mask.query_ranges(n_q, q_offset)
    # Queries with the same key range (one query frame, clipped to the queries) form a chunk.
    change = torch.nonzero((lo[1:] != lo[:-1]) | (hi[1:] != hi[:-1])).flatten() + 1
    bounds = [0, *change.tolist(), n_q]
    lo_l, hi_l = lo.tolist(), hi.tolist()
    outs = []
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        k_lo, k_hi = lo_l[a], hi_l[a]
        outs.append(
            F.scaled_dot_product_attention(
                q[:, :, a:b], k[:, :, k_lo:k_hi], v[:, :, k_lo:k_hi], scale=scale
            )
        )  # (B, H, b - a, D)
    return torch.cat(outs, dim=2)  # (B, H, Nq, D)
