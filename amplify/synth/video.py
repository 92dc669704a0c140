"""Deterministic H.264 (yuv420p) MP4 writing with PyAV: same frames and settings, same bytes."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def write_mp4(path: str | Path, rgb: np.ndarray, fps: float, crf: int = 18) -> None:
    """Encode `rgb` (T, H, W, 3) uint8 as libx264 yuv420p at constant quality `crf`.

    One encoder thread and no wall-clock metadata: x264's output then depends only on its input,
    so a rerun writes identical bytes. The RGB -> YUV conversion is ours (`rgb_to_yuv420p`):
    libswscale picks SIMD or C code by the input's memory alignment, and the two round
    differently, so the same frames could encode to different bytes from run to run (measured).
    Written to a temporary name, then renamed.
    """
    path = Path(path)
    T, H, W, _ = rgb.shape
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(tmp), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.time_base = Fraction(1, 1) / rate
        stream.codec_context.thread_count = 1
        stream.options = {"crf": str(int(crf)), "preset": "medium", "threads": "1"}
        for i in range(T):
            frame = av.VideoFrame.from_ndarray(rgb_to_yuv420p(rgb[i]), format="yuv420p")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    os.replace(tmp, path)


def rgb_to_yuv420p(rgb: np.ndarray) -> np.ndarray:
    """BT.601 limited-range YUV 4:2:0 (what decoders assume for untagged SD video) of one frame.

    rgb: (H, W, 3) uint8, H and W even -> (H * 3 // 2, W) uint8: Y plane, then U, then V.
    """
    H, W, _ = rgb.shape
    x = rgb.astype(np.float32)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    y = 16.0 + 0.256788 * r + 0.504129 * g + 0.097906 * b  # (H, W)
    # chroma of each 2x2 block from its mean colour
    m = (x[0::2, 0::2] + x[1::2, 0::2] + x[0::2, 1::2] + x[1::2, 1::2]) * 0.25  # (H/2, W/2, 3)
    r, g, b = m[..., 0], m[..., 1], m[..., 2]
    u = 128.0 - 0.148223 * r - 0.290993 * g + 0.439216 * b
    v = 128.0 + 0.439216 * r - 0.367788 * g - 0.071427 * b
    out = np.empty((H * 3 // 2, W), np.uint8)
    out[:H] = np.clip(np.rint(y), 0, 255)
    out[H : H + H // 4] = np.clip(np.rint(u), 0, 255).reshape(H // 4, W)
    out[H + H // 4 :] = np.clip(np.rint(v), 0, 255).reshape(H // 4, W)
    return out
