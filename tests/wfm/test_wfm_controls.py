"""Controls: shapes on the latent grid, causal grouping, condition-robust edges, layout raster."""

from __future__ import annotations

import numpy as np
import pytest

from amplify.labels import Box, ClipLabels
from amplify.wfm.config import CONTROLS
from amplify.wfm.controls import (
    align_to_latents,
    blur,
    depth_control,
    edges,
    extract_controls,
    layout_raster,
)


def _frames(T=9, H=32, W=64, seed=0):
    rng = np.random.default_rng(seed)
    img = np.zeros((T, H, W, 3), np.uint8)
    img[:, H // 2 :] = 90
    img[:, 8:16, 10:30] = rng.integers(100, 255, size=3)
    return img


def test_edges_and_blur():
    f = _frames()
    e = edges(f)
    assert e.shape == (9, 32, 64, 1) and e.dtype == np.float32
    assert 0 <= e.min() and e.max() <= 1 and e[:, 8, 20, 0].max() > 0.5  # box boundary
    dark = (f // 8).astype(np.uint8)  # a night version of the same frame
    assert np.abs(edges(dark) - e).mean() < 0.05  # contrast-normalised: about the same edges
    b = blur(f)
    assert b.shape == (9, 32, 64, 3) and b.std() < f.std() / 255


def test_align_to_latents_groups_frames_causally():
    x = np.arange(9, dtype=np.float32).reshape(9, 1, 1, 1) * np.ones((9, 8, 8, 1), np.float32)
    a = align_to_latents(x, 4)
    assert a.shape == (4, 3, 2, 2)
    np.testing.assert_array_equal(a[:, 0, 0, 0], [0, 0, 0, 0])  # frame 0 replicated
    np.testing.assert_array_equal(a[:, 1, 0, 0], [1, 2, 3, 4])
    np.testing.assert_array_equal(a[:, 2, 0, 0], [5, 6, 7, 8])
    with pytest.raises(ValueError, match="1 \\+ 4k"):
        align_to_latents(x[:8], 4)


def test_layout_and_depth():
    box = Box(track_id=1, category="pedestrian", x0=4, y0=2, x1=12, y1=10)
    odd = Box(track_id=2, category="animal", x0=20, y0=0, x1=30, y1=5)
    labels = ClipLabels(width=64, height=32, categories=("pedestrian", "animal"),
                        frames=((box, odd),) + ((),) * 8)  # fmt: skip
    r = layout_raster(labels, 9, 32, 64)
    assert r.shape == (9, 32, 64, 5)
    assert r[0, 5, 6, 2] == 1 and r[0, 1, 25, 4] == 1 and r[1].sum() == 0
    d = depth_control(np.full((9, 32, 64), 8.0))
    assert d.shape == (9, 32, 64, 1) and np.allclose(d, 0.5)


def test_extract_controls_shapes_and_absence():
    f = _frames()
    c = extract_controls(f)
    assert c["layout"] is None and c["depth"] is None
    for k in ("edges", "blur"):
        ch, fac = CONTROLS[k]
        assert c[k].shape == (4 * ch, 3, 32 // fac, 64 // fac)
    c = extract_controls(f, layout=np.zeros((9, 32, 64, 5), np.float32), depth=np.ones((9, 32, 64)))
    assert c["layout"].shape == (20, 3, 4, 8) and c["depth"].shape == (4, 3, 4, 8)
