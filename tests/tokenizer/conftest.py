"""Fixtures for the tokenizer tests: a few small synthetic-looking clips written with PyAV."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def write_clip(
    path: Path, seed: int, frames: int = 33, width: int = 256, height: int = 128
) -> Path:
    """A smooth moving scene (sky gradient, road, drifting boxes) as H.264 mp4 at 10 fps."""
    import av

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    boxes = rng.uniform(0, 1, size=(4, 5))
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.options = {"crf": "12"}
        for t in range(frames):
            img = np.zeros((height, width, 3), np.float32)
            sky = yy < height * 0.45
            img[sky] = [90, 140, 220]
            img[..., 2] -= yy * 0.4
            img[~sky] = [70, 70, 75]
            lane = (~sky) & (np.abs(xx - width / 2 - (yy - height) * 0.3 * np.sin(t * 0.1)) < 2)
            img[lane] = [240, 240, 240]
            for bx, by, bw, col, v in boxes:
                x0 = int((bx * width + v * 6 * t) % width)
                y0 = int(height * (0.45 + 0.3 * by))
                w = int(10 + 30 * bw)
                img[y0 : y0 + w // 2, x0 : x0 + w] = [200 * col, 60, 255 - 200 * col]
            frame = av.VideoFrame.from_ndarray(img.clip(0, 255).astype(np.uint8), format="rgb24")
            c.mux(s.encode(frame))
        c.mux(s.encode())
    return path


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """Four scenes (scene 0 is held out with holdout_every=4)."""
    root = tmp_path_factory.mktemp("tok_corpus")
    for i in range(4):
        write_clip(root / f"scene_{i:04d}_clear_day.mp4", seed=i)
    return root
