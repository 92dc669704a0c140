"""Frame masks: which keys each query of a frame-grouped token sequence may attend to.

Tokens are grouped into frames: contiguous runs of tokens of any size, described by their
cumulative token offsets `frame_starts = (0, n0, n0 + n1, ..., N)`. Keys are all N tokens; queries
are the `Nq` tokens `q_offset .. q_offset + Nq - 1` of that same sequence (chunked generation: the
queries are the newest tokens, the keys include the cached earlier ones, `q_offset = N - Nq`).

A query in frame `f` sees the keys of frames:
- full (`causal=False, window=None`): all frames;
- frame-causal (`causal=True`): frames `0 .. f` (its own frame and every earlier one);
- sliding window of `W` frames (`window=W`): frames `f - W + 1 .. f` when causal, and
  `f - W + 1 .. f + W - 1` when not.

Every such mask gives each query one contiguous key range `[lo, hi)`, nondecreasing in the query
(and each key one contiguous query range): the kernels need only these ranges, which is how they
skip fully masked tiles (loop bounds) and mask only the tiles on a range boundary.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class FrameMask:
    """A frame mask over `num_tokens` keys; see the module docstring for the semantics."""

    frame_starts: tuple[int, ...]  # cumulative token offsets, F + 1 entries, 0 .. num_tokens
    causal: bool = False
    window: int | None = None  # in frames, counting the query's own frame

    def __post_init__(self) -> None:
        starts = self.frame_starts
        if len(starts) < 2 or starts[0] != 0:
            raise ValueError(f"frame_starts={starts!r}: need (0, ..., num_tokens), >= 2 entries")
        if any(b <= a for a, b in zip(starts, starts[1:], strict=False)):
            raise ValueError(f"frame_starts={starts!r}: frames must be non-empty (increasing)")
        if self.window is not None and self.window < 1:
            raise ValueError(f"window={self.window!r}: must be >= 1 frame or None")

    # -- constructors -------------------------------------------------------------------------
    @classmethod
    def full(cls, num_tokens: int) -> FrameMask:
        """Every query sees every key."""
        return cls((0, int(num_tokens)))

    @classmethod
    def uniform(
        cls,
        num_tokens: int,
        tokens_per_frame: int,
        *,
        causal: bool = False,
        window: int | None = None,
    ) -> FrameMask:
        """Frames of `tokens_per_frame` tokens (the last one shorter if it does not divide)."""
        if tokens_per_frame < 1:
            raise ValueError(f"tokens_per_frame={tokens_per_frame!r}: must be >= 1")
        starts = list(range(0, num_tokens, tokens_per_frame)) + [num_tokens]
        return cls(tuple(starts), causal=causal, window=window)

    @classmethod
    def from_sizes(
        cls,
        frame_sizes: Sequence[int] | torch.Tensor,
        *,
        causal: bool = False,
        window: int | None = None,
    ) -> FrameMask:
        """Frames of the given token counts, in order."""
        sizes = [
            int(s) for s in (frame_sizes.tolist() if torch.is_tensor(frame_sizes) else frame_sizes)
        ]
        if not sizes or min(sizes) < 1:
            raise ValueError(f"frame_sizes={sizes!r}: need >= 1 frame, each of >= 1 token")
        starts = [0]
        for s in sizes:
            starts.append(starts[-1] + s)
        return cls(tuple(starts), causal=causal, window=window)

    # -- properties ---------------------------------------------------------------------------
    @property
    def num_tokens(self) -> int:
        return self.frame_starts[-1]

    @property
    def num_frames(self) -> int:
        return len(self.frame_starts) - 1

    @property
    def is_full(self) -> bool:
        """True when every query sees every key (one frame, or neither causal nor windowed)."""
        w = self.window
        return (not self.causal or self.num_frames == 1) and (w is None or w >= self.num_frames)

    # -- ranges -------------------------------------------------------------------------------
    def query_ranges(self, num_queries: int, q_offset: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Key range `[lo, hi)` of each query, two int32 CPU tensors of shape (Nq,)."""
        return _query_ranges(self, num_queries, q_offset)

    def key_ranges(self, num_queries: int, q_offset: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Query range `[lo, hi)` that attends to each key, two int32 CPU tensors of shape (N,).

        A key no query attends to gets the empty range `[Nq, 0)`, so a tile's union of ranges
        (min of lo, max of hi) is not widened by it.
        """
        return _key_ranges(self, num_queries, q_offset)

    def dense(self, num_queries: int, q_offset: int) -> torch.Tensor:
        """Boolean mask (Nq, N), True where the query attends to the key (for references)."""
        lo, hi = self.query_ranges(num_queries, q_offset)
        keys = torch.arange(self.num_tokens)
        return (keys[None, :] >= lo[:, None]) & (keys[None, :] < hi[:, None])

    def num_pairs(self, num_queries: int, q_offset: int) -> int:
        """Number of (query, key) pairs attended: the unmasked work, for FLOP counts."""
        lo, hi = self.query_ranges(num_queries, q_offset)
        return int((hi - lo).sum())

    def check(self, num_queries: int, num_keys: int, q_offset: int) -> None:
        """Raise ValueError unless the mask fits Nq queries at `q_offset` over `num_keys` keys."""
        if num_keys != self.num_tokens:
            raise ValueError(f"mask covers {self.num_tokens} tokens but there are {num_keys} keys")
        if q_offset < 0 or q_offset + num_queries > num_keys:
            raise ValueError(
                f"q_offset={q_offset}: queries [{q_offset}, {q_offset + num_queries}) must lie "
                f"within the {num_keys} keys"
            )


@functools.lru_cache(maxsize=256)
def _query_ranges(mask: FrameMask, num_queries: int, q_offset: int) -> tuple[torch.Tensor, ...]:
    mask.check(num_queries, mask.num_tokens, q_offset)
    starts = torch.tensor(mask.frame_starts, dtype=torch.int64)
    num_frames = mask.num_frames
    pos = torch.arange(q_offset, q_offset + num_queries)
    frame = torch.searchsorted(starts, pos, right=True) - 1  # (Nq,) frame of each query
    first = torch.zeros_like(frame)
    last = torch.full_like(frame, num_frames)  # exclusive
    if mask.causal:
        last = frame + 1
    if mask.window is not None:
        first = (frame - mask.window + 1).clamp(min=0)
        if not mask.causal:
            last = (frame + mask.window).clamp(max=num_frames)
    return starts[first].to(torch.int32), starts[last].to(torch.int32)


@functools.lru_cache(maxsize=256)
def _key_ranges(mask: FrameMask, num_queries: int, q_offset: int) -> tuple[torch.Tensor, ...]:
    lo, hi = _query_ranges(mask, num_queries, q_offset)
    keys = torch.arange(mask.num_tokens, dtype=torch.int32)
    # lo and hi are nondecreasing: the queries seeing key j are those with hi > j and lo <= j.
    q_lo = torch.searchsorted(hi, keys, right=True)
    q_hi = torch.searchsorted(lo, keys, right=True)
    empty = q_lo >= q_hi
    q_lo = torch.where(empty, num_queries, q_lo)
    q_hi = torch.where(empty, 0, q_hi)
    return q_lo.to(torch.int32), q_hi.to(torch.int32)
