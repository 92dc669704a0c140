"""Detail restoration (`amplify.wfm.refine`): the guided filter against a direct per-window
least-squares fit, and what it does to soft and flat generated frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from amplify.conditions import Condition
from amplify.eval import metrics as M
from amplify.synth.render import render_twins
from amplify.synth.scene import sample_scene
from amplify.wfm.controls import blur
from amplify.wfm.refine import RefineConfig, guided_filter, restore_detail


def _naive(guide: np.ndarray, src: np.ndarray, r: int, eps: float) -> np.ndarray:
    """The guided filter as He et al. define it, one window at a time. (3, H, W), (C, H, W)."""
    C, H, W = src.shape
    A, B = np.zeros((H, W, 3, C)), np.zeros((H, W, C))
    win = [(slice(max(0, y - r), y + r + 1), slice(max(0, x - r), x + r + 1))
           for y in range(H) for x in range(W)]  # fmt: skip
    for (ys, xs), k in zip(win, range(H * W), strict=True):
        i, p = guide[:, ys, xs].reshape(3, -1), src[:, ys, xs].reshape(C, -1)
        mi, mp = i.mean(1), p.mean(1)
        cov = (i - mi[:, None]) @ (i - mi[:, None]).T / i.shape[1] + eps * np.eye(3)
        a = np.linalg.solve(cov, (i - mi[:, None]) @ (p - mp[:, None]).T / i.shape[1])
        A[k // W, k % W], B[k // W, k % W] = a, mp - a.T @ mi
    out = np.zeros((C, H, W))
    for (ys, xs), k in zip(win, range(H * W), strict=True):
        y, x = k // W, k % W
        out[:, y, x] = A[ys, xs].mean((0, 1)).T @ guide[:, y, x] + B[ys, xs].mean((0, 1))
    return out


@pytest.mark.parametrize("r,eps", [(1, 1e-2), (2, 1e-3), (4, 1e-4)])
def test_guided_filter_is_the_windowed_least_squares_fit(r, eps):
    rng = np.random.default_rng(r)
    guide, src = rng.random((3, 9, 13)), rng.random((2, 9, 13))
    got = guided_filter(torch.from_numpy(guide)[None], torch.from_numpy(src)[None], r, eps)
    np.testing.assert_allclose(got[0].numpy(), _naive(guide, src, r, eps), atol=1e-10)


@pytest.fixture(scope="module")
def night_twins():
    scene = sample_scene(7, duration_s=0.5)
    src, dusk = render_twins(scene, [Condition(), Condition("clear", "dusk")], 5, 128, 64, 10.0)
    return src.rgb, dusk.rgb


def test_guided_mode_restores_a_soft_relit_clip(night_twins):
    source, _ = night_twins
    # The truth: the source relit (darker, warmer): an exact colour transform of it.
    gain, shift = np.array([0.7, 0.55, 0.4]), np.array([10.0, 4.0, 0.0])
    relit = (source * gain + shift).round().astype(np.uint8)
    # What a soft world model would make of it: the right light, the detail lost.
    soft = (blur(relit, sigma=3.0) * 255).round().astype(np.uint8)
    out = restore_detail(soft, source, RefineConfig(radius=0.25))
    assert out.shape == soft.shape and out.dtype == np.uint8
    assert M.psnr(out, relit) > M.psnr(soft, relit) + 3.0
    assert M.ssim(out, relit) > M.ssim(soft, relit) + 0.15
    src_edges = M.edge_maps(source)
    f1 = {k: M.edge_prf_maps(src_edges, M.edge_maps(v))["f1"] for k, v in
          (("out", out), ("soft", soft))}  # fmt: skip
    assert f1["out"] > f1["soft"] + 0.2


def test_detail_mode_sharpens_a_soft_twin(night_twins):
    source, twin = night_twins
    # The true dusk render, blurred: right at every scale but the finest. Detail mode adds the
    # source's fine detail and changes nothing else.
    soft = (blur(twin, sigma=2.5) * 255).round().astype(np.uint8)
    out = restore_detail(soft, source, RefineConfig(radius=0.06, mode="detail"))
    assert M.psnr(out, twin) > M.psnr(soft, twin) + 0.5
    assert M.ssim(out, twin) > M.ssim(soft, twin) + 0.03
    lo = lambda x: blur(x, 4.0)  # noqa: E731
    assert np.abs(lo(out) - lo(soft)).mean() < 0.01  # coarse scales stay the model's


def test_keeps_what_the_model_hid(night_twins):
    source, _ = night_twins
    flat = np.full_like(source, 140)  # thick fog: nothing of the source shows
    out = restore_detail(flat, source)
    assert np.abs(out.astype(int) - 140).max() <= 1


def test_fast_path_close_to_the_exact_filter(night_twins):
    source, twin = night_twins
    soft = (blur(twin, sigma=2.5) * 255).round().astype(np.uint8)
    exact = restore_detail(soft, source, RefineConfig(radius=0.25, subsample=False))
    fast = restore_detail(soft, source, RefineConfig(radius=0.25, subsample=True))
    assert np.abs(exact.astype(int) - fast).mean() < 2.0
    assert abs(M.psnr(fast, twin) - M.psnr(exact, twin)) < 0.5


def test_off_and_bad_inputs(night_twins):
    source, twin = night_twins
    assert restore_detail(twin, source, RefineConfig(radius=0.0)) is twin
    with pytest.raises(ValueError, match="one shape"):
        restore_detail(twin[:3], source)
    with pytest.raises(ValueError, match="radius"):
        RefineConfig(radius=2.0)
    with pytest.raises(ValueError, match="eps"):
        RefineConfig(eps=0.0)
    with pytest.raises(ValueError, match="mode"):
        RefineConfig(mode="sharpen")
