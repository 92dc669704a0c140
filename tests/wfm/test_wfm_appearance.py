"""The grade head's appearance transform: identity at zero, interpolation in time, real
transforms reach every pixel, gradients flow to the coefficients."""

from __future__ import annotations

import torch

from amplify.wfm.appearance import COEFFS, apply_grade, grade_channels, latent_frame_weights


def _source(B=2, T=9, H=16, W=24, seed=0):
    return torch.rand(B, 3, T, H, W, generator=torch.Generator().manual_seed(seed))


def test_zero_coefficients_are_the_identity_up_to_the_faint_layer():
    src = _source()
    coeffs = torch.zeros(2, grade_channels(4), 3, 2, 3)
    out = apply_grade(src, coeffs, bins=4)
    assert out.shape == src.shape
    # opacity sigmoid(-5) of a mid-grey layer: at most 0.7% of the way to grey
    assert (out - src).abs().max() < 0.01


def test_offset_and_gain_reach_every_pixel():
    src = _source(B=1)
    bins = 3
    coeffs = torch.zeros(1, grade_channels(bins), 3, 2, 3)
    grid = coeffs[:, : COEFFS * bins].view(1, COEFFS, bins, 3, 2, 3)
    grid[:, 0] = -0.5  # red channel gain 1 - 0.5, every bin and cell
    grid[:, 10] = 0.1  # green offset
    out = apply_grade(src, coeffs, bins)
    torch.testing.assert_close(out[:, 0], (0.5 * src[:, 0]).clamp(0, 1), atol=1e-2, rtol=0)
    torch.testing.assert_close(out[:, 1], (src[:, 1] + 0.1).clamp(0, 1), atol=1e-2, rtol=0)
    torch.testing.assert_close(out[:, 2], src[:, 2], atol=1e-2, rtol=0)


def test_layer_opacity_paints_its_colour():
    src = _source(B=1)
    coeffs = torch.zeros(1, grade_channels(2), 3, 2, 3)
    coeffs[:, COEFFS * 2] = 20.0  # opaque
    coeffs[:, COEFFS * 2 + 1 :] = -20.0  # black
    assert apply_grade(src, coeffs, 2).max() < 1e-3


def test_time_weights_interpolate_between_latent_frame_centres():
    w = latent_frame_weights(17, 5)
    torch.testing.assert_close(w.sum(1), torch.ones(17))
    assert w[0, 0] == 1 and w[16, 4] == 1  # the first frame alone, the last frame's group
    assert 0 < w[1, 0] < 1 and 0 < w[1, 1] < 1  # between centres 0 and 2.5
    # a crop starting at latent frame 2 covers pixel frames 5..16: the same rows from its first
    # centre (6.5) on; before it the crop holds latent frame 2's values (no frame 1 to blend)
    crop = latent_frame_weights(12, 3, first=2)
    torch.testing.assert_close(crop[2:], w[7:, 2:])
    assert crop[0].tolist() == [1.0, 0.0, 0.0]


def test_gradients_reach_the_coefficients():
    src = _source(B=1)
    coeffs = torch.zeros(1, grade_channels(2), 3, 2, 3, requires_grad=True)
    apply_grade(src, coeffs, 2).mean().backward()
    assert coeffs.grad is not None and coeffs.grad.abs().sum() > 0


def test_precipitation_follows_the_change_and_the_seed():
    import numpy as np

    from amplify.conditions import Condition
    from amplify.wfm.appearance import precipitation

    rng = np.random.default_rng(0)
    src = rng.integers(60, 200, (5, 32, 48, 3), dtype=np.uint8)
    rain = Condition("rain", "day", 0.8)
    # unchanged (the model kept the clip): nothing falls
    assert np.array_equal(precipitation(src, src, rain, seed=0), src)
    darker = (src * 0.7).astype(np.uint8)  # a clear change
    a = precipitation(darker, src, rain, seed=0)
    assert not np.array_equal(a, darker)
    assert np.array_equal(a, precipitation(darker, src, rain, seed=0))  # same seed, same bytes
    assert not np.array_equal(a, precipitation(darker, src, rain, seed=1))
    snow = precipitation(darker, src, Condition("snow", "day", 0.8), seed=0)
    assert snow.mean() > darker.mean()  # bright flakes
    assert np.array_equal(precipitation(darker, src, Condition("fog", "day"), 0), darker)


def test_smoothing_keeps_flat_cells_and_softens_a_block():
    from amplify.wfm.appearance import smooth_cells

    flat = torch.full((1, 4, 2, 6, 8), 0.3)
    torch.testing.assert_close(smooth_cells(flat, 1.0), flat)
    block = torch.zeros(1, 4, 2, 6, 8)
    block[..., 2:4, 3:5] = 1.0
    soft = smooth_cells(block, 1.0)
    assert soft.max() < 1.0 and soft[..., 0, 0].max() < soft[..., 2, 2].min()
    assert torch.equal(smooth_cells(block, 0.0), block)
