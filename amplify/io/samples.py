"""Write sample inputs: small videos in many containers and codecs, and every kind of bad input.

Used by the tests, the decode benchmark and anyone checking a deployment's FFmpeg build. The
frames are a moving road-like pattern (so scene-cut detection sees continuity) with an optional
hard cut to a different pattern.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

# (container extension, codec, pixel format)
FORMATS = {
    "mp4": ("libx264", "yuv420p"),
    "mkv": ("ffv1", "yuv420p"),
    "mov": ("mpeg4", "yuv420p"),
    "avi": ("mjpeg", "yuvj420p"),
    "webm": ("libvpx-vp9", "yuv420p"),
}


def pattern_frame(i: int, width: int, height: int, scene: int = 0) -> np.ndarray:
    """Frame `i` of a slowly moving scene: sky gradient, road trapezoid, moving stripes."""
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    rng = np.random.default_rng(scene)
    base = rng.uniform(0.2, 0.8, 3).astype(np.float32)
    img = np.empty((height, width, 3), np.float32)
    for c in range(3):
        img[..., c] = base[c] * (1 - 0.5 * y) + 0.1 * np.sin(6 * x + 0.05 * i + c)
    road = (y > 0.5) & (np.abs(x - 0.5) < (y - 0.5) * 0.9 + 0.02)
    img[road] = 0.35 + 0.05 * scene
    stripes = road & (np.sin(40 * y - 0.6 * i) > 0.7) & (np.abs(x - 0.5) < 0.01 + (y - 0.5) * 0.02)
    img[stripes] = 0.95
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def write_video(
    path: str | Path,
    frames: int = 24,
    width: int = 160,
    height: int = 96,
    fps: float = 10.0,
    codec: str | None = None,
    pix_fmt: str | None = None,
    cut_at: int | None = None,
    vfr: bool = False,
    audio: bool = False,
    rotation: int = 0,
) -> Path:
    """A small video; `cut_at` switches to another scene at that frame; `vfr` jitters timestamps;
    `rotation` (degrees counter-clockwise) goes into the display matrix, as phones record."""
    path = Path(path)
    ext = path.suffix.lstrip(".")
    default_codec, default_pix = FORMATS.get(ext, FORMATS["mp4"])
    codec, pix_fmt = codec or default_codec, pix_fmt or default_pix
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.codec_context.thread_count = 1
        if rotation:
            stream.set_display_rotation(rotation)
        if vfr:
            stream.codec_context.time_base = Fraction(1, 1000)
        if codec == "libx264":
            stream.options = {"crf": "20", "preset": "veryfast"}
        astream = out.add_stream("aac", rate=16000) if audio else None
        t_ms = 0
        for i in range(frames):
            scene = 1 if cut_at is not None and i >= cut_at else 0
            frame = av.VideoFrame.from_ndarray(
                pattern_frame(i, width, height, scene), format="rgb24"
            )
            if vfr:
                frame.pts = t_ms
                frame.time_base = Fraction(1, 1000)
                t_ms += int(1000 / fps * (0.5 if i % 3 == 0 else 1.25))
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
        if astream is not None:
            _write_audio(out, astream, seconds=frames / fps)
    return path


def _write_audio(out, astream, seconds: float) -> None:
    n = int(16000 * seconds)
    samples = (np.sin(np.arange(n) * 0.05) * 0.2).astype(np.float32)[None, :]
    for start in range(0, n, 1024):
        frame = av.AudioFrame.from_ndarray(
            samples[:, start : start + 1024], format="fltp", layout="mono"
        )
        frame.sample_rate = 16000
        for packet in astream.encode(frame):
            out.mux(packet)
    for packet in astream.encode():
        out.mux(packet)


def write_audio_only(path: str | Path, seconds: float = 1.0) -> Path:
    with av.open(str(path), "w") as out:
        astream = out.add_stream("aac", rate=16000)
        _write_audio(out, astream, seconds)
    return Path(path)


def write_bad_inputs(folder: str | Path, good: str | Path) -> dict[str, str]:
    """Every kind of bad input beside the good clip `good`: name -> expected error type(s),
    `|`-separated; "rows" where usable frames may survive (a truncated recording)."""
    d = Path(folder)
    d.mkdir(parents=True, exist_ok=True)
    data = Path(good).read_bytes()
    expected = {}

    (d / "empty.mp4").write_bytes(b"")
    expected["empty.mp4"] = "EmptyFileError"
    (d / "truncated.mp4").write_bytes(data[: len(data) // 3])
    expected["truncated.mp4"] = "CorruptVideoError|TooShortError|NotAVideoError"
    rng = np.random.default_rng(7)
    (d / "random.mp4").write_bytes(rng.integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    expected["random.mp4"] = "NotAVideoError"
    write_audio_only(d / "audio_only.m4a")
    expected["audio_only.m4a"] = "NotAVideoError"
    from PIL import Image

    Image.fromarray(pattern_frame(0, 64, 48)).save(d / "still.png")
    expected["still.png"] = "NotAVideoError"
    write_video(d / "one_frame.mp4", frames=1)
    expected["one_frame.mp4"] = "TooShortError"
    mkv = write_video(d / "_tmp.mkv", frames=30)
    (d / "truncated.mkv").write_bytes(mkv.read_bytes()[: mkv.stat().st_size // 4])
    mkv.unlink()
    # A truncated recording keeps the frames before the damage ("rows"), or errors if too few.
    expected["truncated.mkv"] = "rows|TooShortError|CorruptVideoError"
    # A header claiming 17000x9000 (FFmpeg itself refuses much larger): YUV4MPEG2 states the size in plain text.
    (d / "huge.y4m").write_bytes(
        b"YUV4MPEG2 W17000 H9000 F25:1 Ip A1:1 C420jpeg\nFRAME\n" + bytes(1000)
    )
    expected["huge.y4m"] = "BadDimensionsError"
    os.mkfifo(d / "pipe.mp4")  # a named pipe: reading it would block forever
    expected["pipe.mp4"] = "UnreadableFileError"
    if os.geteuid() != 0:  # root reads a mode-000 file anyway
        (d / "unreadable.mp4").write_bytes(data + b"\0\0\0")
        os.chmod(d / "unreadable.mp4", 0)
        expected["unreadable.mp4"] = "UnreadableFileError"
    os.symlink(d / "does_not_exist.mp4", d / "broken_link.mp4")
    expected["broken_link.mp4"] = "MissingFileError"
    (d / "duplicate_copy.mp4").write_bytes(data)
    expected["duplicate_copy.mp4"] = "DuplicateClipError"
    (d / "bad_labels.mp4").write_bytes(data[:-1] + bytes([data[-1] ^ 0]) + b"\0")
    (d / "bad_labels.labels.json").write_text(
        '{"version": 1, "width": 160, "height": 96, "categories": ["car"], '
        '"tracks": [{"track_id": 1, "category": "car", "frames": [0], "boxes": [[10, 10, 900, 50]]}]}'
    )
    expected["bad_labels.mp4"] = "LabelError"
    (d / "malformed_labels.mp4").write_bytes(data + b"\0\0")
    (d / "malformed_labels.labels.json").write_text('{"version": 1, "width": 160, "tracks": [')
    expected["malformed_labels.mp4"] = "LabelError"
    return expected
