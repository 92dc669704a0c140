"""Triton flash attention against the fp32 reference: outputs, LSE and gradients, every mask.

Without CUDA the kernels run under the Triton interpreter (set here, before Triton kernels are
imported) on CPU tensors, on small odd shapes; with CUDA the same tests run compiled on the GPU,
and the `gpu` tests add the tuned head dims and long sequences.
"""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"

triton_attention = pytest.importorskip("kernels.attention.triton_attention")

from amplify.attention import attention  # noqa: E402
from kernels.attention import FrameMask, attention_reference  # noqa: E402

flash_attention = triton_attention.flash_attention
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
if DEVICE == "cpu" and not triton_attention.INTERPRET:
    pytest.skip(
        "kernels were imported before TRITON_INTERPRET=1 was set and there is no CUDA",
        allow_module_level=True,
    )

# (atol, rtol) for outputs and gradients, by input dtype. fp16/bf16 round P and dS to 16 bits
# before their matmuls; bf16 runs as fp32 under the interpreter.
TOL = {
    torch.float32: (2e-5, 2e-5) if DEVICE == "cpu" else (2e-4, 2e-4),
    torch.float16: (1e-2, 1e-2),
    torch.bfloat16: (5e-2, 5e-2),
}

# name -> (mask over N keys, N, Nq): odd lengths, uneven frames, the offset case.
SIZES = [5, 9, 3, 11, 9, 6]  # 43 tokens, 6 frames of uneven size
CASES = {
    "full": (None, 37, 37),
    "full_offset": (None, 45, 19),
    "causal_uniform": (FrameMask.uniform(50, 8, causal=True), 50, 50),  # last frame: 2 tokens
    "causal_uneven": (FrameMask.from_sizes(SIZES, causal=True), 43, 43),
    "causal_tokenwise": (FrameMask.uniform(33, 1, causal=True), 33, 33),  # plain causal
    "causal_offset": (FrameMask.from_sizes(SIZES, causal=True), 43, 17),
    "window_causal": (FrameMask.from_sizes(SIZES, causal=True, window=2), 43, 43),
    "window_offset": (FrameMask.uniform(70, 7, causal=True, window=3), 70, 21),
    "window_bidir": (FrameMask.from_sizes(SIZES, window=2), 43, 43),
}


def _inputs(n_q, n_k, head_dim, dtype, batch=2, heads=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(batch, heads, n, head_dim, generator=g) for n in (n_q, n_k, n_k))
    return [x.to(DEVICE, dtype).requires_grad_() for x in (q, k, v)]


def _reference(q, k, v, mask, d_out):
    """fp32 reference on fp32 copies of the (rounded) inputs: output, LSE, fp32 gradients."""
    q32, k32, v32 = (x.detach().float().requires_grad_() for x in (q, k, v))
    out, lse = attention_reference(q32, k32, v32, mask)
    grads = torch.autograd.grad(out, (q32, k32, v32), d_out.float())
    return out, lse, grads


def _check(name, dtype, head_dim=16):
    mask, n_k, n_q = CASES[name]
    q, k, v = _inputs(n_q, n_k, head_dim, dtype)
    out, lse = flash_attention(q, k, v, mask)
    d_out = torch.randn_like(out)
    grads = torch.autograd.grad(out, (q, k, v), d_out)

    ref_out, ref_lse, ref_grads = _reference(q, k, v, mask, d_out)
    atol, rtol = TOL[dtype]
    assert out.dtype == dtype and out.shape == q.shape
    torch.testing.assert_close(out.float(), ref_out, atol=atol, rtol=rtol)
    torch.testing.assert_close(lse, ref_lse, atol=atol, rtol=rtol)
    for label, g, ref in zip("qkv", grads, ref_grads, strict=True):
        assert g.dtype == dtype, label
        torch.testing.assert_close(g.float(), ref, atol=atol, rtol=rtol, msg=f"d{label} differs")


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize(
    ("dtype", "head_dim"), [(torch.float32, 16), (torch.float16, 32)], ids=["fp32-d16", "fp16-d32"]
)
def test_matches_reference(name, dtype, head_dim):
    _check(name, dtype, head_dim)


@pytest.mark.parametrize("name", ["full_offset", "causal_uneven", "window_offset"])
def test_matches_reference_bf16(name):
    _check(name, torch.bfloat16)


def test_head_dim_not_power_of_two():
    mask, n_k, n_q = CASES["causal_offset"]
    q, k, v = _inputs(n_q, n_k, 24, torch.float32)
    out, _ = flash_attention(q, k, v, mask)
    ref, _ = attention_reference(q, k, v, mask)
    torch.testing.assert_close(out, ref, atol=2e-5, rtol=2e-5)


def test_fully_masked_tiles_are_never_read():
    # The 16 queries (frame 24 of 25) with a 2-frame window see keys 368..399 only. Key tiles in
    # [0, 256) lie outside every range for any block size up to 128, so the loop bounds must skip
    # them: NaNs there may not reach any output or gradient.
    mask = FrameMask.uniform(400, 16, causal=True, window=2)
    q, k, v = _inputs(16, 400, 16, torch.float32)
    ref_out, _ = attention_reference(q, k, v, mask)
    k_nan, v_nan = (x.detach().clone() for x in (k, v))
    k_nan[:, :, :256] = float("nan")
    v_nan[:, :, :256] = float("nan")
    k_nan.requires_grad_()
    v_nan.requires_grad_()
    out, _ = flash_attention(q, k_nan, v_nan, mask)
    torch.testing.assert_close(out, ref_out, atol=2e-5, rtol=2e-5)
    dq, dk, dv = torch.autograd.grad(out, (q, k_nan, v_nan), torch.ones_like(out))
    assert torch.isfinite(dq).all()
    assert (dk[:, :, :256] == 0).all() and (dv[:, :, :256] == 0).all()


def test_backward_is_deterministic():
    mask, n_k, n_q = CASES["causal_uneven"]
    q, k, v = _inputs(n_q, n_k, 16, torch.float16)
    out, _ = flash_attention(q, k, v, mask)
    d_out = torch.randn_like(out)
    first = torch.autograd.grad(out, (q, k, v), d_out, retain_graph=True)
    second = torch.autograd.grad(out, (q, k, v), d_out)
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a, b)


def test_non_contiguous_inputs():
    # A [B, N, H, D] projection viewed as [B, H, N, D]: strided, last dim contiguous.
    g = torch.Generator().manual_seed(1)
    qkv = torch.randn(2, 29, 3, 2, 16, generator=g).to(DEVICE)  # (B, N, 3, H, D)
    q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, H, N, D), strided
    mask = FrameMask.from_sizes([10, 10, 9], causal=True)
    out, _ = flash_attention(q, k, v, mask)
    ref, _ = attention_reference(q, k, v, mask)
    torch.testing.assert_close(out, ref, atol=2e-5, rtol=2e-5)


def test_amplify_attention_triton_backend():
    q, k, v = _inputs(12, 36, 16, torch.float32)
    kwargs = dict(tokens_per_frame=6, causal_frames=True, window_frames=3)
    out = attention(q, k, v, backend="triton", **kwargs)
    ref = attention(q, k, v, backend="reference", **kwargs)
    torch.testing.assert_close(out, ref, atol=2e-5, rtol=2e-5)


def test_rejects_bad_inputs():
    q, k, v = _inputs(8, 8, 16, torch.float32)
    with pytest.raises(ValueError, match="dtype"):
        flash_attention(q.double(), k.double(), v.double())
    with pytest.raises(ValueError, match="keys"):
        flash_attention(q, k, v, FrameMask.uniform(9, 3, causal=True))
    with pytest.raises(ValueError, match="q_offset"):
        flash_attention(q, k, v, q_offset=1)


# -- GPU only: tuned head dims, long sequences, bf16 compiled ----------------------------------
gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("head_dim", [64, 128])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("causal", [False, True])
def test_gpu_tuned_shapes(head_dim, dtype, causal):
    n = 1000  # not a multiple of any block
    mask = FrameMask.uniform(n, 96, causal=causal, window=4 if causal else None)
    q, k, v = _inputs(n - 200, n, head_dim, dtype, batch=2, heads=3)
    out, lse = flash_attention(q, k, v, mask)
    d_out = torch.randn_like(out)
    grads = torch.autograd.grad(out, (q, k, v), d_out)
    ref_out, ref_lse, ref_grads = _reference(q, k, v, mask, d_out)
    atol, rtol = TOL[dtype]
    torch.testing.assert_close(out.float(), ref_out, atol=atol, rtol=rtol)
    torch.testing.assert_close(lse, ref_lse, atol=atol, rtol=rtol)
    for g, ref in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g.float(), ref, atol=4 * atol, rtol=4 * rtol)


@pytest.mark.gpu
@gpu
def test_gpu_backward_deterministic_long():
    mask = FrameMask.uniform(4096, 256, causal=True)
    q, k, v = _inputs(4096, 4096, 128, torch.bfloat16, batch=1, heads=4)
    out, _ = flash_attention(q, k, v, mask)
    d_out = torch.randn_like(out)
    first = torch.autograd.grad(out, (q, k, v), d_out, retain_graph=True)
    second = torch.autograd.grad(out, (q, k, v), d_out)
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a, b)
