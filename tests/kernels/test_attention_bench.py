"""The attention benchmark exits cleanly without a GPU; its FLOP count skips masked pairs."""

import pytest
import torch

from kernels.attention import FrameMask
from kernels.bench import attention as bench


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU this would run the benchmark")
def test_bench_without_cuda_says_so_and_exits_0(capsys):
    assert bench.main([]) == 0
    assert "CUDA is not available" in capsys.readouterr().out


def test_flops_count_only_unmasked_pairs():
    full_fwd, full_bwd = bench._flops(FrameMask.full(1024), 1024, 2, 3, 64)
    assert full_fwd == 4 * 1024 * 1024 * 64 * 2 * 3 and full_bwd == 2.5 * full_fwd
    # 4 frames of 256 tokens, frame-causal: 1 + 2 + 3 + 4 of 16 frame pairs are attended.
    causal_fwd, _ = bench._flops(FrameMask.uniform(1024, 256, causal=True), 1024, 2, 3, 64)
    assert causal_fwd == full_fwd * 10 / 16
