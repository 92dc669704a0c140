"""`amplify.attention`: mask description, backend choice, SDPA path against the reference."""

import subprocess
import sys

import pytest
import torch

from amplify import attention as attn_mod
from amplify.attention import attention, attention_backend, frame_mask, select_backend
from kernels.attention import FrameMask, attention_reference

CPU = torch.device("cpu")


def _qkv(n_q, n_k, head_dim=16, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(2, 3, n, head_dim, generator=g, dtype=dtype) for n in (n_q, n_k, n_k))
    return [x.requires_grad_() for x in (q, k, v)]


# -- the mask -----------------------------------------------------------------------------------
def test_frame_causal_dense_mask():
    # Frames [0, 2), [2, 5), [5, 6): each query sees its own frame and the earlier ones.
    dense = FrameMask.from_sizes([2, 3, 1], causal=True).dense(6, 0).int()
    expected = torch.tensor(
        [
            [1, 1, 0, 0, 0, 0],
            [1, 1, 0, 0, 0, 0],
            [1, 1, 1, 1, 1, 0],
            [1, 1, 1, 1, 1, 0],
            [1, 1, 1, 1, 1, 0],
            [1, 1, 1, 1, 1, 1],
        ]
    )
    assert torch.equal(dense, expected)


def test_window_and_offset():
    mask = FrameMask.uniform(8, 2, causal=True, window=2)  # 4 frames of 2 tokens
    dense = mask.dense(3, 5).int()  # queries are tokens 5, 6, 7 (frames 2, 3, 3)
    expected = torch.tensor(
        [[0, 0, 1, 1, 1, 1, 0, 0], [0, 0, 0, 0, 1, 1, 1, 1], [0, 0, 0, 0, 1, 1, 1, 1]]
    )
    assert torch.equal(dense, expected)
    assert mask.num_pairs(3, 5) == 12


def test_bidirectional_window():
    dense = FrameMask.uniform(6, 2, window=2).dense(6, 0).int()  # frames within 1 of its own
    assert dense[0].tolist() == [1, 1, 1, 1, 0, 0]
    assert dense[2].tolist() == [1, 1, 1, 1, 1, 1]
    assert dense[5].tolist() == [0, 0, 1, 1, 1, 1]


def test_key_ranges_agree_with_dense():
    for mask, n_q in [
        (FrameMask.from_sizes([3, 1, 4, 1, 5], causal=True, window=2), 9),
        (FrameMask.from_sizes([3, 1, 4, 1, 5], window=2), 14),
        (FrameMask.uniform(14, 3, causal=True), 5),
    ]:
        dense = mask.dense(n_q, 14 - n_q)
        lo, hi = mask.key_ranges(n_q, 14 - n_q)
        rows = torch.arange(n_q)
        from_ranges = (rows[:, None] >= lo[None, :]) & (rows[:, None] < hi[None, :])
        assert torch.equal(from_ranges, dense)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(tokens_per_frame=4, frame_sizes=[8, 8]), "not both"),
        (dict(frame_sizes=[8, 7]), "sum to 15"),
        (dict(causal_frames=True), "need tokens_per_frame"),
        (dict(tokens_per_frame=0), "tokens_per_frame"),
        (dict(tokens_per_frame=4, causal_frames=True, window_frames=0), "window"),
        (dict(frame_sizes=[8, 0, 8]), "frame_sizes"),
    ],
)
def test_bad_mask_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        frame_mask(16, **kwargs)


def test_frame_sizes_as_tensor_equals_list():
    a = frame_mask(10, frame_sizes=torch.tensor([4, 6]), causal_frames=True)
    assert a == frame_mask(10, frame_sizes=[4, 6], causal_frames=True)
    assert frame_mask(10, tokens_per_frame=10, causal_frames=True).is_full


# -- backend choice -----------------------------------------------------------------------------
def test_backend_choice_order(monkeypatch):
    monkeypatch.delenv(attn_mod.ENV_VAR, raising=False)
    assert select_backend(CPU) == "sdpa"
    assert select_backend(torch.device("cuda")) == "triton"
    assert select_backend(torch.device("cuda"), dtype=torch.float32) == "sdpa"
    monkeypatch.setenv(attn_mod.ENV_VAR, "reference")
    assert select_backend(torch.device("cuda")) == "reference"
    with attention_backend("sdpa"):
        assert select_backend(torch.device("cuda")) == "sdpa"
        assert select_backend(CPU, "triton") == "triton"
    assert select_backend(CPU) == "reference"
    monkeypatch.setenv(attn_mod.ENV_VAR, "flash")
    with pytest.raises(ValueError, match=attn_mod.ENV_VAR):
        select_backend(CPU)
    with pytest.raises(ValueError, match="backend"):
        select_backend(CPU, "cudnn")


# -- SDPA path against the reference ------------------------------------------------------------
SDPA_CASES = {
    "full": (dict(), 30, 30),
    "full_offset": (dict(), 30, 12),
    "causal": (dict(tokens_per_frame=6, causal_frames=True), 30, 30),
    "causal_partial_last": (dict(tokens_per_frame=7, causal_frames=True), 30, 30),
    "causal_uneven_offset": (dict(frame_sizes=[5, 9, 3, 11, 2], causal_frames=True), 30, 14),
    "window": (dict(frame_sizes=[5, 9, 3, 11, 2], causal_frames=True, window_frames=2), 30, 30),
    "window_offset": (dict(tokens_per_frame=5, causal_frames=True, window_frames=2), 30, 9),
    "window_bidir": (dict(tokens_per_frame=5, window_frames=2), 30, 30),
    "tokenwise": (dict(tokens_per_frame=1, causal_frames=True), 40, 40),  # plain causal
}


@pytest.mark.parametrize("path", ["dense_mask", "per_frame"])
@pytest.mark.parametrize("name", list(SDPA_CASES))
def test_sdpa_matches_reference(name, path, monkeypatch):
    if path == "per_frame":
        monkeypatch.setattr(attn_mod, "SDPA_DENSE_MAX_ELEMENTS", 0)
    kwargs, n_k, n_q = SDPA_CASES[name]
    q, k, v = _qkv(n_q, n_k)
    out = attention(q, k, v, backend="sdpa", **kwargs)
    ref = attention(q, k, v, backend="reference", **kwargs)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    d_out = torch.randn_like(out)
    grads = torch.autograd.grad(out, (q, k, v), d_out)
    ref_grads = torch.autograd.grad(ref, (q, k, v), d_out)
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r, atol=1e-5, rtol=1e-5)


def test_sdpa_bf16_and_custom_scale():
    q, k, v = _qkv(20, 20, dtype=torch.bfloat16)
    kwargs = dict(frame_sizes=[4, 8, 8], causal_frames=True, scale=0.3)
    out = attention(q, k, v, **kwargs)  # CPU: sdpa
    assert out.dtype == torch.bfloat16
    ref = attention_reference(q, k, v, FrameMask.from_sizes([4, 8, 8], causal=True), scale=0.3)[0]
    torch.testing.assert_close(out.float(), ref, atol=2e-2, rtol=2e-2)


def test_chunked_generation_equals_full_sequence():
    # Generating the last frame with cached keys gives the same rows as attending over all frames.
    q, k, v = _qkv(24, 24)
    kwargs = dict(tokens_per_frame=6, causal_frames=True)
    full = attention(q, k, v, **kwargs)
    last = attention(q[:, :, 18:], k, v, **kwargs)  # q_offset defaults to 24 - 6
    torch.testing.assert_close(last, full[:, :, 18:], atol=1e-6, rtol=1e-6)


def test_cpu_path_never_imports_the_triton_kernels():
    # Triton reads TRITON_INTERPRET when the kernel module is imported: the CPU path must not
    # import it, or a later interpreter test in the same process would get compiled kernels.
    code = (
        "import sys, torch\n"
        "from amplify.attention import attention\n"
        "q = torch.randn(1, 2, 8, 16)\n"
        "attention(q, q, q, tokens_per_frame=4, causal_frames=True)\n"
        "assert 'kernels.attention.triton_attention' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
