"""Flash attention in Triton with frame masks: forward, deterministic backward, log-sum-exp.

Layout `[B, H, N, D]` (batch, heads, tokens, head dim), the last dim contiguous; any N; D up to
128 (64 and 128 are the tuned sizes; 16 and 32 run in tests); fp16, bf16 or fp32 inputs with fp32
accumulation. Masks are `FrameMask`s (full, frame-causal, sliding window over frames, queries
shorter than keys at an offset): each query sees one contiguous key range `[lo, hi)`.

Design (FlashAttention-2, as in the Triton tutorial 06-fused-attention):
- forward: one program per (query tile, batch x head); online softmax in base 2 with the scale
  folded into `qk_scale`; stores O and the natural log-sum-exp per query.
- tile skipping: a query tile loops only over the key tiles its rows' ranges cover (the union
  `[min lo, max hi)`); tiles inside every row's range (the intersection) run without a mask, and
  only the few on a range boundary are masked. The backward does the same from the key side with
  each key's query range. Frame-causal attention so does about half the work of full attention.
- backward: `delta = rowsum(dO * O)`; a dK/dV kernel over key tiles loops over query tiles, a dQ
  kernel over query tiles loops over key tiles: no atomics, so gradients are deterministic.
- autotuning on GPU only; under `TRITON_INTERPRET=1` one fixed config runs (autotune cannot time
  there) and bf16 tiles are upcast to fp32 (the interpreter's bf16 `tl.dot` is wrong).
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from .mask import FrameMask

# Read when the @triton.jit decorators below run, as Triton does: set it before importing.
INTERPRET = bool(triton.knobs.runtime.interpret)
LOG2E = 1.4426950408889634
# Kernels may read globals only when they are constexpr.
_LOG2E = tl.constexpr(LOG2E)
_LN2 = tl.constexpr(0.6931471805599453)

# (BLOCK_M, BLOCK_N) under the interpreter: small and unequal, so tests cross many tile edges.
_INTERPRET_BLOCKS = {"fwd": (32, 16), "dkdv": (16, 32), "dq": (32, 16)}


# -- autotune configs (GPU) ---------------------------------------------------------------------
def _configs(kind: str) -> list[triton.Config]:
    if INTERPRET:
        bm, bn = _INTERPRET_BLOCKS[kind]
        return [triton.Config({"BLOCK_M": bm, "BLOCK_N": bn}, num_warps=1, num_stages=1)]
    if kind == "fwd":
        blocks = [(128, 64), (128, 128), (64, 64), (128, 32), (64, 128)]
    elif kind == "dkdv":  # BLOCK_N keys stay resident; BLOCK_M queries stream past them
        blocks = [(32, 128), (64, 128), (32, 64), (64, 64)]
    else:  # dq: BLOCK_M queries stay resident; BLOCK_N keys stream
        blocks = [(128, 32), (128, 64), (64, 64), (64, 32)]
    return [
        triton.Config({"BLOCK_M": bm, "BLOCK_N": bn}, num_warps=w, num_stages=s)
        for bm, bn in blocks
        for w in (4, 8)
        for s in (2, 3, 4)
    ]


def _tile_regs_per_thread(kind: str, block_m: int, block_n: int, head_dim: int, warps: int) -> int:
    """Estimated registers per thread for a config's live tiles (4-byte words).

    fwd: acc (M x D fp32), scores (M x N fp32), q (M x D 16-bit); dkdv: dk, dv (2 N x D fp32),
    scores (N x M fp32); dq: dq (M x D fp32), q and dO (2 M x D 16-bit), scores (M x N fp32).
    """
    m, n, d = block_m, block_n, head_dim
    words = {"fwd": m * d + m * n + m * d // 2, "dkdv": 2 * n * d + n * m, "dq": 2 * m * d + m * n}
    return words[kind] // (32 * warps)


# From an offline sm_90 compile of the configs (python -m kernels.bench.attention_compile, which
# reads registers and spills from the cubin): estimates above 144 spilled or sat at the 255
# register limit; at 144 or below only 4-warp configs spilled: at head dim 128 (64 bytes) and at
# 4 stages (40 bytes).
_MAX_TILE_REGS = 144


def _prune(kind: str):
    def prune(configs: list[triton.Config], named_args: dict, **kwargs) -> list[triton.Config]:
        head_dim = kwargs["BLOCK_D"]
        kept = [
            c
            for c in configs
            if _tile_regs_per_thread(
                kind, c.kwargs["BLOCK_M"], c.kwargs["BLOCK_N"], head_dim, c.num_warps
            )
            <= _MAX_TILE_REGS
            # head dim 128: 8 warps (4 spilled at every tile size tried) and <= 3 stages (smem);
            # 4 warps: <= 3 stages (4 spilled once)
            and (head_dim <= 64 or (c.num_warps == 8 and c.num_stages <= 3))
            and (c.num_warps == 8 or c.num_stages <= 3)
        ]
        return kept or configs[:1]

    return prune


# -- kernels ------------------------------------------------------------------------------------
@triton.jit
def _tile_bounds(lo, hi, full_lo, full_hi, BLOCK: tl.constexpr):
    """Split `[lo, hi)` into masked / unmasked / masked tile ranges on a BLOCK grid.

    `[full_lo, full_hi)` is the range every row (or column) covers; tiles inside it need no mask.
    """
    start = (lo // BLOCK) * BLOCK
    end = start + tl.cdiv(hi - start, BLOCK) * BLOCK
    a = tl.cdiv(full_lo, BLOCK) * BLOCK
    b = (full_hi // BLOCK) * BLOCK
    a = tl.minimum(tl.maximum(a, start), end)
    b = tl.minimum(tl.maximum(b, a), end)
    return start, a, b, end


@triton.jit
def _attn_fwd_inner(
    acc,
    l_i,
    m_i,
    q,
    K,
    V,
    stride_kn,
    stride_vn,
    row_lo,
    row_hi,
    start,
    end,
    qk_scale,
    N_K,
    HEAD_DIM: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_N: tl.constexpr,
    MASKED: tl.constexpr,
    UPCAST: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < HEAD_DIM
    for start_n in range(start, end, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)
        kt_ptrs = K + offs_n[None, :] * stride_kn + offs_d[:, None]  # (D, BN)
        v_ptrs = V + offs_n[:, None] * stride_vn + offs_d[None, :]  # (BN, D)
        if MASKED:
            n_ok = offs_n < N_K
            kt = tl.load(kt_ptrs, mask=d_ok[:, None] & n_ok[None, :], other=0.0)
            v = tl.load(v_ptrs, mask=n_ok[:, None] & d_ok[None, :], other=0.0)
        elif BLOCK_D == HEAD_DIM:  # no head-dim padding: unmasked loads
            kt = tl.load(kt_ptrs)
            v = tl.load(v_ptrs)
        else:
            kt = tl.load(kt_ptrs, mask=d_ok[:, None], other=0.0)
            v = tl.load(v_ptrs, mask=d_ok[None, :], other=0.0)
        if UPCAST:
            kt = kt.to(tl.float32)
            v = v.to(tl.float32)
        qk = tl.dot(q, kt, input_precision=DOT_PRECISION) * qk_scale  # (BM, BN), log2 units
        if MASKED:
            keep = (offs_n[None, :] >= row_lo[:, None]) & (offs_n[None, :] < row_hi[:, None])
            qk = tl.where(keep, qk, float("-inf"))
            m_new = tl.maximum(m_i, tl.max(qk, 1))
            # A row with no key yet keeps m = -inf; shift by 0 so exp2 gives 0, not NaN.
            m_use = tl.where(m_new == float("-inf"), 0.0, m_new)
        else:
            m_new = tl.maximum(m_i, tl.max(qk, 1))
            m_use = m_new
        p = tl.math.exp2(qk - m_use[:, None])
        alpha = tl.math.exp2(m_i - m_use)
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None]
        acc = tl.dot(p.to(v.dtype), v, acc, input_precision=DOT_PRECISION)
        m_i = m_new
    return acc, l_i, m_i


@triton.autotune(
    configs=_configs("fwd"),
    key=["HEAD_DIM", "N_BUCKET"],
    prune_configs_by=None if INTERPRET else {"early_config_prune": _prune("fwd")},
)
@triton.jit
def _attn_fwd_kernel(
    Q,
    K,
    V,
    Out,
    LSE,
    ROW_LO,
    ROW_HI,
    stride_qb,
    stride_qh,
    stride_qn,
    stride_kb,
    stride_kh,
    stride_kn,
    stride_vb,
    stride_vh,
    stride_vn,
    stride_ob,
    stride_oh,
    stride_on,
    H,
    N_Q,
    N_K,
    qk_scale,
    N_BUCKET: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    BLOCK_D: tl.constexpr,
    UPCAST: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    # Last query tiles first: under frame-causal masks they have the most key tiles, so the
    # longest programs start first and the tail of the launch stays short.
    pid_m = tl.num_programs(0) - 1 - tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = (pid_bh // H).to(tl.int64)
    h = (pid_bh % H).to(tl.int64)
    Q += b * stride_qb + h * stride_qh
    K += b * stride_kb + h * stride_kh
    V += b * stride_vb + h * stride_vh
    Out += b * stride_ob + h * stride_oh
    LSE += pid_bh.to(tl.int64) * N_Q

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    m_ok = offs_m < N_Q
    d_ok = offs_d < HEAD_DIM
    # Rows past N_Q get the empty range [0, 0): masked everywhere, never stored.
    row_lo = tl.load(ROW_LO + offs_m, mask=m_ok, other=0)
    row_hi = tl.load(ROW_HI + offs_m, mask=m_ok, other=0)
    # Union of the rows' key ranges bounds the loop; their intersection needs no mask.
    lo = tl.min(tl.where(m_ok, row_lo, N_K), 0)
    hi = tl.max(row_hi, 0)
    full_lo = tl.max(row_lo, 0)
    full_hi = tl.min(tl.where(m_ok, row_hi, N_K), 0)
    start, a, b_, end = _tile_bounds(lo, hi, full_lo, full_hi, BLOCK_N)

    q_ptrs = Q + offs_m[:, None] * stride_qn + offs_d[None, :]
    q = tl.load(q_ptrs, mask=m_ok[:, None] & d_ok[None, :], other=0.0)  # (BM, D)
    if UPCAST:
        q = q.to(tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    # 1. boundary tiles before the unmasked run, 2. the unmasked run, 3. boundary tiles after.
    acc, l_i, m_i = _attn_fwd_inner(
        acc, l_i, m_i, q, K, V, stride_kn, stride_vn, row_lo, row_hi, start, a, qk_scale, N_K,
        HEAD_DIM, BLOCK_D, BLOCK_N, True, UPCAST, DOT_PRECISION,
    )  # fmt: skip
    acc, l_i, m_i = _attn_fwd_inner(
        acc, l_i, m_i, q, K, V, stride_kn, stride_vn, row_lo, row_hi, a, b_, qk_scale, N_K,
        HEAD_DIM, BLOCK_D, BLOCK_N, False, UPCAST, DOT_PRECISION,
    )  # fmt: skip
    acc, l_i, m_i = _attn_fwd_inner(
        acc, l_i, m_i, q, K, V, stride_kn, stride_vn, row_lo, row_hi, b_, end, qk_scale, N_K,
        HEAD_DIM, BLOCK_D, BLOCK_N, True, UPCAST, DOT_PRECISION,
    )  # fmt: skip

    # Only rows past N_Q (never stored) have l = 0: every query sees at least its own frame.
    l_i = tl.where(l_i == 0.0, 1.0, l_i)
    out = acc / l_i[:, None]
    lse = (m_i + tl.math.log2(l_i)) * _LN2  # natural log-sum-exp of the scaled scores
    tl.store(LSE + offs_m, lse, mask=m_ok)
    o_ptrs = Out + offs_m[:, None] * stride_on + offs_d[None, :]
    tl.store(o_ptrs, out.to(Out.dtype.element_ty), mask=m_ok[:, None] & d_ok[None, :])


@triton.jit
def _attn_bwd_preprocess_kernel(
    Out,
    DO,
    DELTA,
    stride_ob,
    stride_oh,
    stride_on,
    stride_dob,
    stride_doh,
    stride_don,
    H,
    N_Q,
    HEAD_DIM: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_M: tl.constexpr,
):
    """delta = rowsum(dO * O), fp32, shape (B, H, Nq)."""
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = (pid_bh // H).to(tl.int64)
    h = (pid_bh % H).to(tl.int64)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    ok = (offs_m[:, None] < N_Q) & (offs_d[None, :] < HEAD_DIM)
    o = tl.load(Out + b * stride_ob + h * stride_oh + offs_m[:, None] * stride_on + offs_d[None, :],
                mask=ok, other=0.0)  # fmt: skip
    do = tl.load(DO + b * stride_dob + h * stride_doh + offs_m[:, None] * stride_don
                 + offs_d[None, :], mask=ok, other=0.0)  # fmt: skip
    delta = tl.sum(o.to(tl.float32) * do.to(tl.float32), axis=1)
    tl.store(DELTA + pid_bh.to(tl.int64) * N_Q + offs_m, delta, mask=offs_m < N_Q)


@triton.jit
def _attn_bwd_dkdv_inner(
    dk,
    dv,
    k,
    v,
    offs_n,
    Q,
    DO,
    LSE,
    DELTA,
    ROW_LO,
    ROW_HI,
    stride_qn,
    stride_don,
    start,
    end,
    qk_scale,
    N_Q,
    HEAD_DIM: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_M: tl.constexpr,
    MASKED: tl.constexpr,
    UPCAST: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < HEAD_DIM
    for start_m in range(start, end, BLOCK_M):
        offs_m = start_m + tl.arange(0, BLOCK_M)
        qt_ptrs = Q + offs_m[None, :] * stride_qn + offs_d[:, None]  # (D, BM)
        do_ptrs = DO + offs_m[:, None] * stride_don + offs_d[None, :]  # (BM, D)
        if MASKED:
            m_ok = offs_m < N_Q
            qt = tl.load(qt_ptrs, mask=d_ok[:, None] & m_ok[None, :], other=0.0)
            do = tl.load(do_ptrs, mask=m_ok[:, None] & d_ok[None, :], other=0.0)
            lse = tl.load(LSE + offs_m, mask=m_ok, other=0.0)
            delta = tl.load(DELTA + offs_m, mask=m_ok, other=0.0)
            row_lo = tl.load(ROW_LO + offs_m, mask=m_ok, other=0)
            row_hi = tl.load(ROW_HI + offs_m, mask=m_ok, other=0)
        elif BLOCK_D == HEAD_DIM:  # no head-dim padding: unmasked loads
            qt = tl.load(qt_ptrs)
            do = tl.load(do_ptrs)
            lse = tl.load(LSE + offs_m)
            delta = tl.load(DELTA + offs_m)
        else:
            qt = tl.load(qt_ptrs, mask=d_ok[:, None], other=0.0)
            do = tl.load(do_ptrs, mask=d_ok[None, :], other=0.0)
            lse = tl.load(LSE + offs_m)
            delta = tl.load(DELTA + offs_m)
        if UPCAST:
            qt = qt.to(tl.float32)
            do = do.to(tl.float32)
        qkt = tl.dot(k, qt, input_precision=DOT_PRECISION) * qk_scale  # (BN, BM), log2 units
        pt = tl.math.exp2(qkt - lse[None, :] * _LOG2E)
        if MASKED:
            keep = (offs_n[:, None] >= row_lo[None, :]) & (offs_n[:, None] < row_hi[None, :])
            pt = tl.where(keep, pt, 0.0)
        dv = tl.dot(pt.to(do.dtype), do, dv, input_precision=DOT_PRECISION)  # (BN, D)
        dpt = tl.dot(v, tl.trans(do), input_precision=DOT_PRECISION)  # (BN, BM)
        dst = pt * (dpt - delta[None, :])
        dk = tl.dot(dst.to(qt.dtype), tl.trans(qt), dk, input_precision=DOT_PRECISION)
    return dk, dv


@triton.autotune(
    configs=_configs("dkdv"),
    key=["HEAD_DIM", "N_BUCKET"],
    prune_configs_by=None if INTERPRET else {"early_config_prune": _prune("dkdv")},
)
@triton.jit
def _attn_bwd_dkdv_kernel(
    Q,
    K,
    V,
    DO,
    LSE,
    DELTA,
    DK,
    DV,
    ROW_LO,
    ROW_HI,
    COL_LO,
    COL_HI,
    stride_qb,
    stride_qh,
    stride_qn,
    stride_kb,
    stride_kh,
    stride_kn,
    stride_vb,
    stride_vh,
    stride_vn,
    stride_dob,
    stride_doh,
    stride_don,
    stride_dkb,
    stride_dkh,
    stride_dkn,
    stride_dvb,
    stride_dvh,
    stride_dvn,
    H,
    N_Q,
    N_K,
    qk_scale,
    sm_scale,
    N_BUCKET: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    BLOCK_D: tl.constexpr,
    UPCAST: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    pid_n = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = (pid_bh // H).to(tl.int64)
    h = (pid_bh % H).to(tl.int64)
    Q += b * stride_qb + h * stride_qh
    K += b * stride_kb + h * stride_kh
    V += b * stride_vb + h * stride_vh
    DO += b * stride_dob + h * stride_doh
    DK += b * stride_dkb + h * stride_dkh
    DV += b * stride_dvb + h * stride_dvh
    LSE += pid_bh.to(tl.int64) * N_Q
    DELTA += pid_bh.to(tl.int64) * N_Q

    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    n_ok = offs_n < N_K
    d_ok = offs_d < HEAD_DIM
    kv_ok = n_ok[:, None] & d_ok[None, :]
    k = tl.load(K + offs_n[:, None] * stride_kn + offs_d[None, :], mask=kv_ok, other=0.0)
    v = tl.load(V + offs_n[:, None] * stride_vn + offs_d[None, :], mask=kv_ok, other=0.0)
    if UPCAST:
        k = k.to(tl.float32)
        v = v.to(tl.float32)
    # Query range of each key (empty: [N_Q, 0)); keys past N_K too, so no tile counts as full.
    col_lo = tl.load(COL_LO + offs_n, mask=n_ok, other=N_Q)
    col_hi = tl.load(COL_HI + offs_n, mask=n_ok, other=0)
    start, a, b_, end = _tile_bounds(
        tl.min(col_lo, 0), tl.max(col_hi, 0), tl.max(col_lo, 0), tl.min(col_hi, 0), BLOCK_M
    )
    dk = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    dk, dv = _attn_bwd_dkdv_inner(
        dk, dv, k, v, offs_n, Q, DO, LSE, DELTA, ROW_LO, ROW_HI, stride_qn, stride_don, start, a,
        qk_scale, N_Q, HEAD_DIM, BLOCK_D, BLOCK_M, True, UPCAST, DOT_PRECISION,
    )  # fmt: skip
    dk, dv = _attn_bwd_dkdv_inner(
        dk, dv, k, v, offs_n, Q, DO, LSE, DELTA, ROW_LO, ROW_HI, stride_qn, stride_don, a, b_,
        qk_scale, N_Q, HEAD_DIM, BLOCK_D, BLOCK_M, False, UPCAST, DOT_PRECISION,
    )  # fmt: skip
    dk, dv = _attn_bwd_dkdv_inner(
        dk, dv, k, v, offs_n, Q, DO, LSE, DELTA, ROW_LO, ROW_HI, stride_qn, stride_don, b_, end,
        qk_scale, N_Q, HEAD_DIM, BLOCK_D, BLOCK_M, True, UPCAST, DOT_PRECISION,
    )  # fmt: skip
    dk *= sm_scale
    tl.store(DK + offs_n[:, None] * stride_dkn + offs_d[None, :], dk.to(DK.dtype.element_ty),
             mask=kv_ok)  # fmt: skip
    tl.store(DV + offs_n[:, None] * stride_dvn + offs_d[None, :], dv.to(DV.dtype.element_ty),
             mask=kv_ok)  # fmt: skip


@triton.jit
def _attn_bwd_dq_inner(
    dq,
    q,
    do,
    lse,
    delta,
    row_lo,
    row_hi,
    K,
    V,
    stride_kn,
    stride_vn,
    start,
    end,
    qk_scale,
    N_K,
    HEAD_DIM: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_N: tl.constexpr,
    MASKED: tl.constexpr,
    UPCAST: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < HEAD_DIM
    for start_n in range(start, end, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)
        kt_ptrs = K + offs_n[None, :] * stride_kn + offs_d[:, None]  # (D, BN)
        vt_ptrs = V + offs_n[None, :] * stride_vn + offs_d[:, None]  # (D, BN)
        if MASKED:
            ok = d_ok[:, None] & (offs_n < N_K)[None, :]
            kt = tl.load(kt_ptrs, mask=ok, other=0.0)
            vt = tl.load(vt_ptrs, mask=ok, other=0.0)
        elif BLOCK_D == HEAD_DIM:  # no head-dim padding: unmasked loads
            kt = tl.load(kt_ptrs)
            vt = tl.load(vt_ptrs)
        else:
            kt = tl.load(kt_ptrs, mask=d_ok[:, None], other=0.0)
            vt = tl.load(vt_ptrs, mask=d_ok[:, None], other=0.0)
        if UPCAST:
            kt = kt.to(tl.float32)
            vt = vt.to(tl.float32)
        qk = tl.dot(q, kt, input_precision=DOT_PRECISION) * qk_scale  # (BM, BN), log2 units
        p = tl.math.exp2(qk - lse[:, None] * _LOG2E)
        if MASKED:
            keep = (offs_n[None, :] >= row_lo[:, None]) & (offs_n[None, :] < row_hi[:, None])
            p = tl.where(keep, p, 0.0)
        dp = tl.dot(do, vt, input_precision=DOT_PRECISION)  # (BM, BN)
        ds = p * (dp - delta[:, None])
        dq = tl.dot(ds.to(kt.dtype), tl.trans(kt), dq, input_precision=DOT_PRECISION)  # (BM, D)
    return dq


@triton.autotune(
    configs=_configs("dq"),
    key=["HEAD_DIM", "N_BUCKET"],
    prune_configs_by=None if INTERPRET else {"early_config_prune": _prune("dq")},
)
@triton.jit
def _attn_bwd_dq_kernel(
    Q,
    K,
    V,
    DO,
    LSE,
    DELTA,
    DQ,
    ROW_LO,
    ROW_HI,
    stride_qb,
    stride_qh,
    stride_qn,
    stride_kb,
    stride_kh,
    stride_kn,
    stride_vb,
    stride_vh,
    stride_vn,
    stride_dob,
    stride_doh,
    stride_don,
    stride_dqb,
    stride_dqh,
    stride_dqn,
    H,
    N_Q,
    N_K,
    qk_scale,
    sm_scale,
    N_BUCKET: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    BLOCK_D: tl.constexpr,
    UPCAST: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    # Last query tiles first: under frame-causal masks they have the most key tiles, so the
    # longest programs start first and the tail of the launch stays short.
    pid_m = tl.num_programs(0) - 1 - tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = (pid_bh // H).to(tl.int64)
    h = (pid_bh % H).to(tl.int64)
    Q += b * stride_qb + h * stride_qh
    K += b * stride_kb + h * stride_kh
    V += b * stride_vb + h * stride_vh
    DO += b * stride_dob + h * stride_doh
    DQ += b * stride_dqb + h * stride_dqh
    LSE += pid_bh.to(tl.int64) * N_Q
    DELTA += pid_bh.to(tl.int64) * N_Q

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    m_ok = offs_m < N_Q
    d_ok = offs_d < HEAD_DIM
    qd_ok = m_ok[:, None] & d_ok[None, :]
    q = tl.load(Q + offs_m[:, None] * stride_qn + offs_d[None, :], mask=qd_ok, other=0.0)
    do = tl.load(DO + offs_m[:, None] * stride_don + offs_d[None, :], mask=qd_ok, other=0.0)
    if UPCAST:
        q = q.to(tl.float32)
        do = do.to(tl.float32)
    lse = tl.load(LSE + offs_m, mask=m_ok, other=0.0)
    delta = tl.load(DELTA + offs_m, mask=m_ok, other=0.0)
    row_lo = tl.load(ROW_LO + offs_m, mask=m_ok, other=0)
    row_hi = tl.load(ROW_HI + offs_m, mask=m_ok, other=0)
    lo = tl.min(tl.where(m_ok, row_lo, N_K), 0)
    hi = tl.max(row_hi, 0)
    full_lo = tl.max(row_lo, 0)
    full_hi = tl.min(tl.where(m_ok, row_hi, N_K), 0)
    start, a, b_, end = _tile_bounds(lo, hi, full_lo, full_hi, BLOCK_N)
    dq = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
    dq = _attn_bwd_dq_inner(
        dq, q, do, lse, delta, row_lo, row_hi, K, V, stride_kn, stride_vn, start, a, qk_scale,
        N_K, HEAD_DIM, BLOCK_D, BLOCK_N, True, UPCAST, DOT_PRECISION,
    )  # fmt: skip
    dq = _attn_bwd_dq_inner(
        dq, q, do, lse, delta, row_lo, row_hi, K, V, stride_kn, stride_vn, a, b_, qk_scale,
        N_K, HEAD_DIM, BLOCK_D, BLOCK_N, False, UPCAST, DOT_PRECISION,
    )  # fmt: skip
    dq = _attn_bwd_dq_inner(
        dq, q, do, lse, delta, row_lo, row_hi, K, V, stride_kn, stride_vn, b_, end, qk_scale,
        N_K, HEAD_DIM, BLOCK_D, BLOCK_N, True, UPCAST, DOT_PRECISION,
    )  # fmt: skip
    dq *= sm_scale
    tl.store(DQ + offs_m[:, None] * stride_dqn + offs_d[None, :], dq.to(DQ.dtype.element_ty),
             mask=qd_ok)  # fmt: skip


# -- host functions -----------------------------------------------------------------------------
_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def _strides(x: torch.Tensor) -> tuple[int, int, int]:
    return x.stride(0), x.stride(1), x.stride(2)


def _meta(q: torch.Tensor, n_q: int, n_k: int) -> dict:
    head_dim = q.shape[-1]
    return {
        "N_BUCKET": triton.next_power_of_2(max(n_q, n_k)),
        "HEAD_DIM": head_dim,
        "BLOCK_D": max(16, triton.next_power_of_2(head_dim)),
        "UPCAST": INTERPRET and q.dtype == torch.bfloat16,
        # fp32 inputs are the accuracy path: no TF32 truncation.
        "DOT_PRECISION": "ieee" if q.dtype == torch.float32 else "tf32",
    }


def _check_inputs(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    for name, x in (("q", q), ("k", k), ("v", v)):
        if x.dim() != 4:
            raise ValueError(f"{name} must be [B, H, N, D], got shape {tuple(x.shape)}")
        if x.dtype not in _DTYPES or x.dtype != q.dtype:
            raise ValueError(f"{name}.dtype={x.dtype}: need one of {_DTYPES}, equal for q, k, v")
        if x.device != q.device:
            raise ValueError(f"{name} is on {x.device}, q on {q.device}")
    if k.shape != v.shape or k.shape[:2] != q.shape[:2] or k.shape[-1] != q.shape[-1]:
        raise ValueError(f"shapes q={tuple(q.shape)} k={tuple(k.shape)} v={tuple(v.shape)}")
    if q.shape[-1] > 128:
        raise ValueError(f"head dim {q.shape[-1]} > 128 is not supported")
    if q.shape[2] == 0 or q.shape[-1] == 0:
        raise ValueError(f"q has shape {tuple(q.shape)}: need at least one query and head dim > 0")
    if q.shape[0] * q.shape[1] > 65535:  # batch x heads is grid axis 1 (CUDA limit 65535)
        raise ValueError(f"batch x heads = {q.shape[0] * q.shape[1]} > 65535")
    if q.device.type != "cuda" and not INTERPRET:
        raise ValueError(
            f"tensors on {q.device}: Triton attention needs CUDA or TRITON_INTERPRET=1"
        )


def _last_dim_contiguous(x: torch.Tensor) -> torch.Tensor:
    return x if x.stride(-1) == 1 else x.contiguous()


_RANGE_CACHE: dict = {}


def _ranges(mask: FrameMask, n_q: int, q_offset: int, device: torch.device):
    """(row_lo, row_hi, col_lo, col_hi) int32 on `device`, cached per mask and shape."""
    key = (mask, n_q, q_offset, device)
    if key not in _RANGE_CACHE:
        if len(_RANGE_CACHE) > 256:
            _RANGE_CACHE.clear()
        row = mask.query_ranges(n_q, q_offset)
        col = mask.key_ranges(n_q, q_offset)
        _RANGE_CACHE[key] = tuple(t.to(device) for t in (*row, *col))
    return _RANGE_CACHE[key]


def _attn_fwd(q, k, v, ranges, sm_scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """O (B, H, Nq, D) in q's dtype and the natural LSE (B, H, Nq) fp32."""
    batch, heads, n_q, _ = q.shape
    n_k = k.shape[2]
    o = torch.empty_like(q)
    lse = torch.empty((batch, heads, n_q), device=q.device, dtype=torch.float32)
    row_lo, row_hi = ranges[0], ranges[1]

    def grid(meta):
        return (triton.cdiv(n_q, meta["BLOCK_M"]), batch * heads)

    _attn_fwd_kernel[grid](
        q, k, v, o, lse, row_lo, row_hi, *_strides(q), *_strides(k), *_strides(v), *_strides(o),
        heads, n_q, n_k, sm_scale * LOG2E, **_meta(q, n_q, n_k),
    )  # fmt: skip
    return o, lse


def _attn_bwd(do, q, k, v, o, lse, ranges, sm_scale: float):
    """(dQ, dK, dV) in the inputs' dtype, fp32 accumulation, deterministic."""
    batch, heads, n_q, head_dim = q.shape
    n_k = k.shape[2]
    meta = _meta(q, n_q, n_k)
    row_lo, row_hi, col_lo, col_hi = ranges
    delta = torch.empty_like(lse)
    pre_block = 16 if INTERPRET else 128
    _attn_bwd_preprocess_kernel[(triton.cdiv(n_q, pre_block), batch * heads)](
        o, do, delta, *_strides(o), *_strides(do), heads, n_q,
        HEAD_DIM=head_dim, BLOCK_D=meta["BLOCK_D"], BLOCK_M=pre_block,
    )  # fmt: skip
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)

    def grid_kv(m):
        return (triton.cdiv(n_k, m["BLOCK_N"]), batch * heads)

    def grid_q(m):
        return (triton.cdiv(n_q, m["BLOCK_M"]), batch * heads)

    _attn_bwd_dkdv_kernel[grid_kv](
        q, k, v, do, lse, delta, dk, dv, row_lo, row_hi, col_lo, col_hi,
        *_strides(q), *_strides(k), *_strides(v), *_strides(do), *_strides(dk), *_strides(dv),
        heads, n_q, n_k, sm_scale * LOG2E, sm_scale, **meta,
    )  # fmt: skip
    _attn_bwd_dq_kernel[grid_q](
        q, k, v, do, lse, delta, dq, row_lo, row_hi,
        *_strides(q), *_strides(k), *_strides(v), *_strides(do), *_strides(dq),
        heads, n_q, n_k, sm_scale * LOG2E, sm_scale, **meta,
    )  # fmt: skip
    return dq, dk, dv


class _FlashAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, mask: FrameMask, q_offset: int, sm_scale: float):
        ranges = _ranges(mask, q.shape[2], q_offset, q.device)
        o, lse = _attn_fwd(q, k, v, ranges, sm_scale)
        ctx.save_for_backward(q, k, v, o, lse)
        ctx.ranges, ctx.sm_scale = ranges, sm_scale
        ctx.mark_non_differentiable(lse)
        return o, lse

    @staticmethod
    def backward(ctx, do, _dlse):
        q, k, v, o, lse = ctx.saved_tensors
        do = _last_dim_contiguous(do)
        dq, dk, dv = _attn_bwd(do, q, k, v, o, lse, ctx.ranges, ctx.sm_scale)
        return dq, dk, dv, None, None, None


def flash_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: FrameMask | None = None,
    *,
    q_offset: int | None = None,
    scale: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Masked flash attention; returns `(out, lse)`.

    q: [B, H, Nq, D]; k, v: [B, H, Nk, D] (the layout: batch, heads, tokens, head dim; the last
    dim is made contiguous if it is not). Queries are tokens `q_offset .. q_offset + Nq - 1` of
    the key sequence (default `Nk - Nq`: the newest tokens). `mask` is a `FrameMask` over the Nk
    keys (None: full attention); `scale` defaults to `1 / sqrt(D)`.

    out: [B, H, Nq, D] in q's dtype. lse: [B, H, Nq] fp32, the natural log-sum-exp of each
    query's scaled masked scores; it is not differentiable. Gradients flow to q, k and v.
    """
    _check_inputs(q, k, v)
    n_q, n_k = q.shape[2], k.shape[2]
    q_offset = n_k - n_q if q_offset is None else int(q_offset)
    mask = FrameMask.full(n_k) if mask is None else mask
    mask.check(n_q, n_k, q_offset)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    q, k, v = (_last_dim_contiguous(x) for x in (q, k, v))
    return _FlashAttention.apply(q, k, v, mask, q_offset, scale)
