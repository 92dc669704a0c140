"""Metrics on hand-made inputs with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from amplify.eval import metrics as M


def _scene() -> np.ndarray:
    img = np.full((48, 80, 3), 30, np.uint8)
    img[8:40, 40:72] = 200
    img[16:32, 8:28] = 120
    return img


def _shift(x: np.ndarray, k: int) -> np.ndarray:
    y = x.copy()
    y[:, k:] = x[:, :-k]
    return y


def test_identical_images_score_perfectly():
    img = _scene()
    clip = np.stack([img, _shift(img, 3)])
    assert M.psnr(clip, clip) == math.inf
    assert M.ssim(clip, clip) == pytest.approx(1.0)
    assert M.blur_ssim(clip, clip) == pytest.approx(1.0)
    assert M.edge_prf(clip, clip) == {"precision": 1.0, "recall": 1.0, "f1": 1.0}


def test_psnr_known_value():
    a = np.zeros((4, 4, 3), np.uint8)
    b = a + 16  # MSE 256 -> 10 log10(255^2 / 256)
    assert M.psnr(a, b) == pytest.approx(10 * math.log10(255.0**2 / 256.0))


def test_ssim_drops_with_noise_and_blur_ssim_forgives_it():
    rng = np.random.default_rng(0)
    img = _scene()
    noisy = np.clip(img + rng.normal(0, 25, img.shape), 0, 255).astype(np.uint8)
    assert M.ssim(img, noisy) < 0.6
    assert M.blur_ssim(img, noisy) > M.ssim(img, noisy) + 0.2


def test_edges_of_a_box_are_its_outline():
    e = M.edges(_scene())
    assert e[8:40, 39:41].any() and e[8:40, 71:73].any()  # left and right sides
    assert not e[20:28, 48:64].any()  # flat inside
    assert not M.edges(np.full((32, 32, 3), 90, np.uint8)).any()  # flat frame: no edges


def test_edge_f1_tolerates_shifts_within_tolerance():
    img = _scene()
    assert M.edge_f1(img, _shift(img, 1), tol=1) == pytest.approx(1.0)
    assert M.edge_f1(img, _shift(img, 2), tol=2) == pytest.approx(1.0)
    assert M.edge_f1(img, _shift(img, 2), tol=1) < 0.8
    assert M.edge_f1(img, _shift(img, 6), tol=2) < 0.6
    flat = np.full_like(img, 90)
    assert M.edge_prf(img, flat)["recall"] == 0.0 and M.edge_f1(img, flat) == 0.0


def test_flicker():
    a = np.zeros((3, 8, 8, 3), np.uint8)
    a[1] = 10  # luma steps 0 -> 10 -> 0
    assert M.flicker(a) == pytest.approx(10.0)
    assert M.flicker(a[:1]) == 0.0
    b = a.copy()
    b[1] = 20
    assert M.flicker_ratio(b, a) == pytest.approx(2.0)
    assert M.flicker_ratio(a, a) == pytest.approx(1.0)


def test_masked_temporal_error_counts_change_unlike_the_reference_only():
    ref = np.zeros((3, 8, 8, 3), np.uint8)
    ref[1:, 2:4, 2:4] = 100  # an agent appears at frame 1 and stays
    mask = np.zeros((3, 8, 8), bool)
    mask[:, 2:4, 2:4] = True
    assert M.masked_temporal_error(ref, ref, mask) == 0.0  # the same motion
    flick = ref.copy()
    flick[2, 2:4, 2:4] = 90  # the output's agent dims by 10 in the last frame
    assert M.masked_temporal_error(flick, ref, mask) == pytest.approx(10.0 / 2)  # one of 2 steps
    offset = ref.astype(np.int16) + 7  # a constant colour error is no temporal error
    assert M.masked_temporal_error(offset.astype(np.uint8), ref, mask) == pytest.approx(0.0)
    assert math.isnan(M.masked_temporal_error(ref, ref, np.zeros((3, 8, 8), bool)))


def test_frechet_distance():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 6))
    assert M.frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)
    # same covariance, mean moved by 1 in every dimension: |d mu|^2 = 6
    assert M.frechet_distance(x, x + 1.0) == pytest.approx(6.0, rel=1e-6)
    # two Gaussians N(0, I) and N(0, 4I): tr(I + 4I - 2*2I) = D
    y = rng.normal(size=(20000, 3))
    assert M.frechet_distance(y, 2 * y) == pytest.approx(3.0, rel=0.05)
    # fewer samples than dimensions (singular covariances) still gives a finite number
    assert math.isfinite(M.frechet_distance(rng.normal(size=(5, 16)), rng.normal(size=(5, 16))))


def test_shapes_are_checked():
    with pytest.raises(ValueError):
        M.psnr(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5, 3), np.uint8))
    with pytest.raises(ValueError):
        M.ssim(np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8))


def test_sharpness_ratio():
    img = _scene()
    clip = np.stack([img, _shift(img, 3)])
    assert M.sharpness_ratio(clip, clip) == pytest.approx(1.0)
    soft = M.blur(clip, 2.0).round().astype(np.uint8)
    assert 0 < M.sharpness_ratio(soft, clip) < 0.5  # blur removes Laplacian energy
    assert M.sharpness_ratio(clip, soft) > 2.0
    flat = np.full_like(clip, 90)
    assert M.sharpness_ratio(flat, flat) == 1.0
    assert M.sharpness_ratio(clip, flat) == math.inf
    with pytest.raises(ValueError):
        M.sharpness_ratio(clip, clip[:1])
