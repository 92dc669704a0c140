"""H.264 writing: our RGB -> YUV conversion is exact-by-construction and decodes back close."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from amplify.synth.video import rgb_to_yuv420p, write_mp4


def test_yuv_conversion_ignores_memory_alignment() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    buf = np.zeros(rgb.size + 1, np.uint8)
    shifted = buf[1:].reshape(rgb.shape)  # same pixels at an odd address
    shifted[...] = rgb
    assert np.array_equal(rgb_to_yuv420p(rgb), rgb_to_yuv420p(shifted))
    grey = np.full((4, 4, 3), 128, np.uint8)
    yuv = rgb_to_yuv420p(grey)
    assert (
        yuv.shape == (6, 4)
        and (yuv[:4] == 126).all()
        and (np.abs(yuv[4:].astype(int) - 128) <= 1).all()
    )


def test_video_decodes_close_to_the_frames(tmp_path: Path) -> None:
    y, x = np.mgrid[0:32, 0:48]
    rgb = np.stack([x * 5, y * 7, np.full_like(x, 90)], -1).astype(np.uint8)[None].repeat(3, 0)
    write_mp4(tmp_path / "v.mp4", rgb, fps=10.0, crf=10)
    with av.open(str(tmp_path / "v.mp4")) as c:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    assert frames.shape == rgb.shape
    assert np.abs(frames.astype(int) - rgb).mean() < 6
