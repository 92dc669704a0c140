"""Decode a video with PyAV into frames at the job's frame rate and size.

Frames are resampled by time, not by index (variable frame rate works): output frame k shows the
last source frame whose timestamp is <= t0 + k / fps. Only the frames kept are converted and
resized (swscale on the decoder's own planes), so a 60 fps 4K clip costs decode time, not
conversion time, for the frames it drops.

A frame folder (`amplify.io.sequence`) goes the same way: frame i is shown at i / fps (its
sidecar's rate, else `sequence_fps`), is resampled by the same rule and resized by the same
swscale AREA filter; only the frames kept are read.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass

import av
import numpy as np

from amplify.errors import BadDimensionsError, CorruptVideoError, TooShortError
from amplify.io.probe import VideoInfo, probe, raise_decode_error
from amplify.io.sequence import frame_files, read_frame

RESIZE_MODES = ("crop", "letterbox")


@dataclass(frozen=True)
class Geometry:
    """How a source frame (display orientation) maps into the output image: x' = x*sx + ox."""

    src_width: int
    src_height: int
    scaled_width: int  # size the source is scaled to before cropping / padding
    scaled_height: int
    sx: float
    sy: float
    ox: float  # negative when cropping, positive when letterboxing
    oy: float


def fit_geometry(src_w: int, src_h: int, width: int, height: int, mode: str) -> Geometry:
    """Scale to cover (`crop`, centre crop) or to fit (`letterbox`, centred black bars)."""
    if mode not in RESIZE_MODES:
        raise ValueError(f"resize mode {mode!r} not in {RESIZE_MODES}")
    scale = (max if mode == "crop" else min)(width / src_w, height / src_h)
    sw = max(1, round(src_w * scale))
    sh = max(1, round(src_h * scale))
    if mode == "crop":
        sw, sh = max(sw, width), max(sh, height)
    else:
        sw, sh = min(sw, width), min(sh, height)
    ox = (width - sw) // 2
    oy = (height - sh) // 2
    return Geometry(src_w, src_h, sw, sh, sw / src_w, sh / src_h, float(ox), float(oy))


@dataclass
class DecodedFrame:
    """One output frame: the image, its time, and which decoded source frame it shows."""

    image: np.ndarray  # (H, W, 3) uint8
    time_s: float
    source_index: int  # index of the decoded source frame (label sidecars count these)


def decode_frames(
    path: str,
    fps: float,
    width: int,
    height: int,
    mode: str = "crop",
    info: VideoInfo | None = None,
    max_frames: int | None = None,
    sequence_fps: float = 10.0,
) -> Iterator[DecodedFrame]:
    """Yield frames resampled to `fps` and resized to `width x height` (display orientation).

    Raises `CorruptVideoError` (naming the frame) when the stream breaks and no frame came out,
    and for damage mid-stream after some frames it stops cleanly: a truncated recording keeps the
    frames it has. `TooShortError` when nothing decodes at all. A frame folder is read by
    `decode_sequence` at its sidecar's rate, else at `sequence_fps`.
    """
    info = info or probe(path)
    if os.path.isdir(path):
        yield from decode_sequence(path, fps, width, height, mode, info, max_frames, sequence_fps)
        return
    geometry: Geometry | None = None
    rotation_k = 0
    step = 1.0 / fps
    t0: float | None = None
    next_t = 0.0
    emitted = 0
    held: tuple[av.VideoFrame, float, int] | None = None
    decoded = 0

    def convert(frame: av.VideoFrame) -> np.ndarray:
        g = geometry
        # swscale does the resize in the frame's own orientation; rotate after (cheaper at low res).
        tw, th = (
            (g.scaled_height, g.scaled_width)
            if rotation_k % 2
            else (g.scaled_width, g.scaled_height)
        )
        img = frame.reformat(width=tw, height=th, format="rgb24", interpolation="AREA").to_ndarray()
        if rotation_k:
            img = np.rot90(img, k=rotation_k)
        return place(img, g, width, height)

    try:
        container = av.open(path, metadata_errors="ignore")
    except av.FFmpegError as e:
        raise CorruptVideoError(path, f"cannot open: {e}") from e
    with container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for frame in container.decode(stream):
                if frame.pts is None and frame.time is None:
                    t = decoded / (info.fps or fps)
                else:
                    t = float(frame.time) if frame.time is not None else decoded / (info.fps or fps)
                if geometry is None:
                    rotation_k = round((frame.rotation or 0) / 90) % 4
                    fw, fh = (
                        (frame.height, frame.width)
                        if rotation_k % 2
                        else (frame.width, frame.height)
                    )
                    geometry = fit_geometry(fw, fh, width, height, mode)
                    t0 = t
                t -= t0
                # Emit every output time that lies before this frame: they show the held frame.
                while held is not None and next_t < t - 1e-6:
                    yield DecodedFrame(convert(held[0]), next_t, held[2])
                    emitted += 1
                    next_t = emitted * step
                    if max_frames is not None and emitted >= max_frames:
                        return
                held = (frame, t, decoded)
                decoded += 1
        except av.FFmpegError as e:
            if decoded == 0:
                raise raise_decode_error(path, e, frame=0) from e
            # Truncated tail: keep what decoded. The frame count in the clips table shows it.
        if (
            held is not None
            and next_t <= held[1] + 1e-6
            and (max_frames is None or emitted < max_frames)
        ):
            yield DecodedFrame(convert(held[0]), next_t, held[2])
            emitted += 1
    if decoded == 0:
        raise TooShortError(path, "no frame could be decoded")


def decode_sequence(
    folder: str,
    fps: float,
    width: int,
    height: int,
    mode: str,
    info: VideoInfo,
    max_frames: int | None = None,
    sequence_fps: float = 10.0,
) -> Iterator[DecodedFrame]:
    """A frame folder as a video: output frame k shows frame floor(k / fps * rate), the last one
    at or before its time, where rate is `info.fps` (the sidecar's) or `sequence_fps`.

    Unlike a truncated video, a broken frame is an error (`CorruptVideoError` naming it), and so
    is a frame of another size (`BadDimensionsError`).
    """
    files = frame_files(folder)
    rate = info.fps or sequence_fps
    last_t = (len(files) - 1) / rate
    geometry = fit_geometry(info.width, info.height, width, height, mode)
    held: tuple[int, np.ndarray] | None = None
    k = 0
    while (t := k / fps) <= last_t + 1e-6 and (max_frames is None or k < max_frames):
        i = min(len(files) - 1, math.floor(t * rate + 1e-6))
        if held is None or held[0] != i:
            img = read_frame(folder, files[i], i)
            if img.shape[:2] != (info.height, info.width):
                raise BadDimensionsError(
                    folder,
                    f"frame {files[i].name} is {img.shape[1]}x{img.shape[0]} but the folder's "
                    f"frames are {info.width}x{info.height}",
                    frame=i,
                )
            held = (i, _resize_rgb(img, geometry, width, height))
        yield DecodedFrame(held[1], t, i)
        k += 1


def _resize_rgb(img: np.ndarray, g: Geometry, width: int, height: int) -> np.ndarray:
    """The video path's resize on an RGB image: swscale AREA to the scaled size, then place."""
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
    scaled = frame.reformat(
        width=g.scaled_width, height=g.scaled_height, format="rgb24", interpolation="AREA"
    ).to_ndarray()
    return place(scaled, g, width, height)


def place(img: np.ndarray, g: Geometry, width: int, height: int) -> np.ndarray:
    """Centre-crop or letterbox a scaled image into `height x width`."""
    h, w = img.shape[:2]
    if g.ox <= 0 and g.oy <= 0:
        y, x = int(-g.oy), int(-g.ox)
        return np.ascontiguousarray(img[y : y + height, x : x + width])
    out = np.zeros((height, width, 3), np.uint8)
    y, x = int(g.oy), int(g.ox)
    out[y : y + h, x : x + w] = img[: height - y, : width - x]
    return out
