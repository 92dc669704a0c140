"""Probe an input file: is it a readable, non-empty video, and what are its stream properties.

Every check raises a specific `InputError` that names the file and the reason, so the job can
record it as an error row and move on.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from amplify.errors import (
    BadDimensionsError,
    CorruptVideoError,
    EmptyFileError,
    InputError,
    MissingFileError,
    NotAVideoError,
    UnreadableFileError,
)
from amplify.io.sequence import FPS_SIDECAR, frame_files, image_size, read_frame, sidecar_fps

# Beyond 16k on a side, or more pixels than 8k x 8k, no dashcam produced it: the header is lying
# (and a decoder would try to allocate gigabytes per frame).
MAX_SIDE = 16384
MAX_PIXELS = 8192 * 8192
# Image codecs FFmpeg exposes as one-frame "video" streams: a still image is not a clip.
STILL_IMAGE_CODECS = {"png", "mjpeg", "jpegls", "bmp", "gif", "tiff", "webp", "apng", "jpeg2000"}
STILL_IMAGE_FORMATS = {
    "image2",
    "png_pipe",
    "jpeg_pipe",
    "bmp_pipe",
    "webp_pipe",
    "tiff_pipe",
    "gif",
}


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about the first video stream (display orientation applied)."""

    path: str
    container: str
    codec: str
    width: int  # after rotation
    height: int
    fps: float  # average frame rate; 0 when the container does not say
    duration_s: float  # 0 when unknown
    frames: int  # declared frame count; 0 when unknown
    rotation: int  # degrees counter-clockwise to display upright (0, 90, 180, 270)
    size_bytes: int


def check_file(path: str | Path) -> int:
    """Raise unless `path` is a readable, non-empty regular file; return its size in bytes."""
    path = Path(path)
    if not os.path.lexists(path):
        raise MissingFileError(path, "file does not exist")
    if not path.exists():
        raise MissingFileError(path, f"broken symlink (points to {os.readlink(path)!r})")
    st = path.stat()
    if not stat.S_ISREG(st.st_mode):
        raise UnreadableFileError(path, "not a regular file (directory, pipe or device)")
    if st.st_size == 0:
        raise EmptyFileError(path, "file is empty (0 bytes)")
    if not os.access(path, os.R_OK):
        raise UnreadableFileError(path, "permission denied")
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as e:
        raise UnreadableFileError(path, f"cannot read: {e.strerror or e}") from e
    return st.st_size


def content_hash(path: str | Path, chunk: int = 1 << 20) -> str:
    """sha256 of the file's bytes: the identity of a source clip, whatever its name.

    A frame folder hashes its frames in order (each name, then its bytes) and its fps sidecar.
    """
    h = hashlib.sha256()
    if Path(path).is_dir():
        files = frame_files(path)
        fps_file = Path(path) / FPS_SIDECAR
        for p in [*files, *([fps_file] if fps_file.is_file() else [])]:
            h.update(p.name.encode() + b"\0")
            with open(p, "rb") as f:
                while block := f.read(chunk):
                    h.update(block)
        return h.hexdigest()
    check_file(path)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def first_frame_rotation(container: av.container.InputContainer, path: str) -> int:
    """Display rotation (degrees counter-clockwise, one of 0/90/180/270) of the first frame.

    PyAV exposes the display matrix only on decoded frames, so probe decodes one: that also
    proves the stream decodes at all before any worker time is spent on it.
    """
    stream = container.streams.video[0]
    try:
        for frame in container.decode(stream):
            return round((frame.rotation or 0) / 90) % 4 * 90
    except av.FFmpegError as e:
        raise CorruptVideoError(path, f"first frame does not decode: {_ffmsg(e)}", frame=0) from e
    raise CorruptVideoError(path, "the video stream holds no decodable frame", frame=0)


def probe(path: str | Path) -> VideoInfo:
    """Open `path` and describe its first video stream; raise an `InputError` when it is not a clip.

    A directory is probed as a frame folder (`probe_sequence`).
    """
    if Path(path).is_dir():
        return probe_sequence(path)
    size = check_file(path)
    path = str(path)
    try:
        container = av.open(path, metadata_errors="ignore")
    except av.FFmpegError as e:
        raise NotAVideoError(
            path, f"FFmpeg cannot open it as media: truncated, damaged or not a video ({_ffmsg(e)})"
        ) from e
    except (OSError, ValueError) as e:  # pragma: no cover - depends on FFmpeg build
        raise UnreadableFileError(path, f"cannot open: {e}") from e
    with container:
        fmt = container.format.name
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams}) or ["none"]
            raise NotAVideoError(path, f"no video stream (streams: {', '.join(kinds)})")
        stream = container.streams.video[0]
        codec = stream.codec_context.name if stream.codec_context else "unknown"
        if codec in STILL_IMAGE_CODECS and (fmt in STILL_IMAGE_FORMATS or "pipe" in fmt):
            raise NotAVideoError(path, f"a still image ({codec} in {fmt}), not a video")
        w, h = stream.codec_context.width, stream.codec_context.height
        if w <= 0 or h <= 0 or w > MAX_SIDE or h > MAX_SIDE or w * h > MAX_PIXELS:
            raise BadDimensionsError(path, f"implausible frame size {w}x{h} in the header")
        rate = stream.average_rate or stream.guessed_rate or Fraction(0)
        duration = 0.0
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        rotation = first_frame_rotation(container, path)
        if rotation in (90, 270):
            w, h = h, w
        return VideoInfo(
            path=path,
            container=fmt,
            codec=codec,
            width=w,
            height=h,
            fps=float(rate),
            duration_s=max(duration, 0.0),
            frames=int(stream.frames or 0),
            rotation=rotation,
            size_bytes=size,
        )


def probe_sequence(folder: str | Path) -> VideoInfo:
    """Describe a frame folder (see `amplify.io.sequence`): every frame's header is read, so
    mixed sizes or an unreadable frame fail here, and the first frame is decoded.

    `fps` is the sidecar's rate, 0 without one (the decoder then uses its default).
    """
    folder = str(folder)
    files = frame_files(folder)
    w, h = image_size(folder, files[0], 0)
    for i, f in enumerate(files[1:], 1):
        size = image_size(folder, f, i)
        if size != (w, h):
            raise BadDimensionsError(
                folder,
                f"frame {f.name} is {size[0]}x{size[1]} but frame {files[0].name} is {w}x{h}: "
                "a frame folder must hold frames of one size",
                frame=i,
            )
    if w <= 0 or h <= 0 or w > MAX_SIDE or h > MAX_SIDE or w * h > MAX_PIXELS:
        raise BadDimensionsError(folder, f"implausible frame size {w}x{h}")
    read_frame(folder, files[0], 0)
    fps = sidecar_fps(folder) or 0.0
    suffix = files[0].suffix.lower()
    return VideoInfo(
        path=folder,
        container="image_sequence",
        codec="png" if suffix == ".png" else "mjpeg",
        width=w,
        height=h,
        fps=fps,
        duration_s=len(files) / fps if fps else 0.0,
        frames=len(files),
        rotation=0,
        size_bytes=sum(f.stat().st_size for f in files),
    )


def _ffmsg(e: Exception) -> str:
    return getattr(e, "strerror", None) or str(e)


def raise_decode_error(path: str, e: Exception, frame: int) -> InputError:
    """Turn an FFmpeg failure mid-stream into the domain error (truncated or damaged data)."""
    return CorruptVideoError(path, f"decode failed: {_ffmsg(e)}", frame=frame)
