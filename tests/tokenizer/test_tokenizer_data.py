"""Training crops: the numpy and the tensor sampler draw (B, 3, T, h, w) crops in [-1, 1], and
group weights give every group the same share whatever its size."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from amplify.tokenizer.data import CropSampler, TensorCropSampler, group_weights


def _windows(n: int, value: int, T: int = 9) -> list[np.ndarray]:
    return [np.full((T, 32, 48, 3), value, np.uint8) for _ in range(n)]


def test_group_weights_balance_groups():
    w = group_weights([3, 1, 0])
    assert len(w) == 4
    assert sum(w[:3]) == pytest.approx(0.5) and w[3] == pytest.approx(0.5)


@pytest.mark.parametrize("kind", ["numpy", "tensor"])
def test_samplers_shape_range_and_balance(kind):
    # Group A: 30 black windows; group B: 1 white window. Balanced: about half the crops white.
    wins = _windows(30, 0) + _windows(1, 255)
    weights = group_weights([30, 1])
    if kind == "numpy":
        s = CropSampler(wins, 5, 16, 24, seed=0, weights=weights)
    else:
        s = TensorCropSampler(torch.from_numpy(np.stack(wins)), 5, 16, 24, 0, weights)
    x = s.batch(200)
    assert x.shape == (200, 3, 5, 16, 24) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1
    white = (x.flatten(1).mean(1) > 0).float().mean().item()
    assert 0.35 < white < 0.65


def test_tensor_sampler_crops_follow_the_window():
    # A horizontal ramp: a crop is a contiguous run of columns (flipped or not) on the 8-px grid.
    ramp = np.broadcast_to(np.arange(48, dtype=np.uint8)[None, None, :, None], (9, 32, 48, 3))
    s = TensorCropSampler(torch.from_numpy(np.stack([ramp.copy()])), 9, 16, 24, seed=1)
    x = ((s.batch(16) + 1) * 127.5).round()  # (B, 3, T, h, w) back in pixel values
    row = x[:, 0, 0, 0]  # (B, w)
    for r in row:
        d = torch.diff(r)
        assert torch.all(d == 1) or torch.all(d == -1)
        assert int(min(r[0], r[-1])) % 8 == 0
