"""Attention benchmark: TFLOP/s of our Triton kernels against SDPA and FlexAttention.

    python -m kernels.bench.attention                      # the full table (CUDA only)
    python -m kernels.bench.attention --quick              # head dim 128, 1k and 4k tokens
    python -m kernels.bench.attention --json out.json      # also write the rows as JSON

Forward and backward, head dims 64 and 128, 1k to 16k tokens, full and frame-causal masks, the
same mask for every implementation: ours (`kernels.attention.triton_attention`), PyTorch SDPA
(full: its flash backend; frame-causal: a dense boolean mask, the only way SDPA takes this mask),
and FlexAttention (`torch.compile`d, with a block mask built from the same frames).

FLOPs count only unmasked (query, key) pairs: forward 4 * pairs * D per head, backward 2.5x that
(FlashAttention's convention), so a masked run is not credited with work it skips. Heads are
2048 / D and the batch keeps batch x tokens at 16k. Without CUDA it prints why and exits 0.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

import torch

from kernels.attention.mask import FrameMask

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
MODEL_WIDTH = 2048  # heads = MODEL_WIDTH // head_dim
BATCH_TOKENS = 16384  # batch = BATCH_TOKENS // tokens


def _flops(mask: FrameMask, n: int, batch: int, heads: int, head_dim: int) -> tuple[float, float]:
    fwd = 4.0 * mask.num_pairs(n, 0) * head_dim * batch * heads
    return fwd, 2.5 * fwd


def _time_ms(fn: Callable[[], object]) -> float:
    import triton.testing

    return triton.testing.do_bench(fn, warmup=25, rep=100)


def _make_impls(mask: FrameMask, n: int, device: str) -> dict[str, Callable]:
    """name -> f(q, k, v) -> out, every one computing the same masked attention."""
    import torch.nn.functional as F

    from kernels.attention.triton_attention import flash_attention

    impls: dict[str, Callable] = {"triton": lambda q, k, v: flash_attention(q, k, v, mask)[0]}
    if mask.is_full:
        impls["sdpa"] = lambda q, k, v: F.scaled_dot_product_attention(q, k, v)
    else:
        dense = mask.dense(n, 0).to(device)  # (N, N) bool, True = attend
        impls["sdpa"] = lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=dense)
    try:
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention
    except ImportError:
        return impls
    flex = torch.compile(flex_attention, dynamic=False)
    if mask.is_full:
        impls["flex"] = lambda q, k, v: flex(q, k, v)
    else:
        lo, hi = (t.to(device) for t in mask.query_ranges(n, 0))

        def mask_mod(b, h, q_idx, kv_idx):
            return (kv_idx >= lo[q_idx]) & (kv_idx < hi[q_idx])

        block_mask = create_block_mask(mask_mod, None, None, n, n, device=device)
        impls["flex"] = lambda q, k, v: flex(q, k, v, block_mask=block_mask)
    return impls


def bench_case(
    head_dim: int, n: int, mask_name: str, tokens_per_frame: int, dtype: torch.dtype
) -> list[dict]:
    device = "cuda"
    heads, batch = MODEL_WIDTH // head_dim, max(1, BATCH_TOKENS // n)
    if mask_name == "full":
        mask = FrameMask.full(n)
    else:
        mask = FrameMask.uniform(n, tokens_per_frame, causal=True)
    fwd_flops, bwd_flops = _flops(mask, n, batch, heads, head_dim)
    q, k, v = (
        torch.randn(batch, heads, n, head_dim, device=device, dtype=dtype, requires_grad=True)
        for _ in range(3)
    )  # (B, H, N, D)
    rows = []
    reference = None
    for name, fn in _make_impls(mask, n, device).items():
        row = dict(impl=name, head_dim=head_dim, tokens=n, mask=mask_name, batch=batch, heads=heads)
        try:
            out = fn(q, k, v)
            if reference is None:
                reference = out.detach()
            row["max_abs_diff_vs_triton"] = float((out.detach() - reference).abs().max())
            d_out = torch.randn_like(out)
            out.backward(d_out, retain_graph=True)  # compile / autotune outside the timing
            fwd_ms = _time_ms(lambda fn=fn: fn(q, k, v))
            bwd_ms = _time_ms(lambda out=out, d_out=d_out: out.backward(d_out, retain_graph=True))
            row.update(
                fwd_ms=fwd_ms,
                bwd_ms=bwd_ms,
                fwd_tflops=fwd_flops / fwd_ms * 1e-9,
                bwd_tflops=bwd_flops / bwd_ms * 1e-9,
            )
        except Exception as exc:  # one failing baseline (OOM, no kernel) must not end the table
            row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
        finally:
            q.grad = k.grad = v.grad = None
        rows.append(row)
        torch.cuda.empty_cache()
    return rows


def _print_row(row: dict) -> None:
    head = f"{row['mask']:>12} D={row['head_dim']:<3} N={row['tokens']:<6} {row['impl']:<7}"
    if "error" in row:
        print(f"{head} error: {row['error']}", flush=True)
        return
    print(
        f"{head} fwd {row['fwd_tflops']:7.1f} TFLOP/s ({row['fwd_ms']:8.3f} ms)"
        f"   bwd {row['bwd_tflops']:7.1f} TFLOP/s ({row['bwd_ms']:8.3f} ms)"
        f"   max|diff| {row['max_abs_diff_vs_triton']:.2e}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--head-dims", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--lengths", type=int, nargs="+", default=[1024, 2048, 4096, 8192, 16384])
    parser.add_argument("--masks", nargs="+", default=["full", "frame_causal"])
    parser.add_argument("--tokens-per-frame", type=int, default=256)
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
    parser.add_argument("--quick", action="store_true", help="head dim 128, 1k and 4k tokens")
    parser.add_argument("--json", help="write the rows to this JSON file")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print(
            "kernels.bench.attention: CUDA is not available, nothing was measured. The Triton "
            "kernels run only on a GPU (on CPU they are tested under TRITON_INTERPRET=1: "
            "pytest tests/kernels). Run this on a CUDA machine: python -m kernels.bench.attention"
        )
        return 0
    if args.quick:
        args.head_dims, args.lengths = [128], [1024, 4096]
    print(f"device: {torch.cuda.get_device_name()}, dtype {args.dtype}, torch {torch.__version__}")
    rows = []
    for head_dim in args.head_dims:
        for n in args.lengths:
            for mask_name in args.masks:
                for row in bench_case(
                    head_dim, n, mask_name, args.tokens_per_frame, DTYPES[args.dtype]
                ):
                    _print_row(row)
                    rows.append(row)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
