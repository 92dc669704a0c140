"""Clip ingest: list input files, decode each into fixed-length windows with its labels.

`read_windows(path, cfg)` is the whole stage for one clip: probe -> decode at `cfg.fps` and
`cfg.width x cfg.height` -> split at hard scene cuts -> windows of `cfg.window` frames every
`cfg.stride` frames inside each shot (a window never straddles a cut) -> labels resampled and
resized with the frames. It raises an `InputError` subclass naming the file and the reason.

A clip is a video file or a frame folder (a directory of >= 2 .jpg/.jpeg/.png images and no
video, see `amplify.io.sequence`): `list_inputs` lists such a folder as one input, and every
stage reads it like a video, at the rate in its `fps.txt` or else `cfg.sequence_fps`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from amplify.errors import ConfigError, LabelError, TooShortError
from amplify.io.decode import RESIZE_MODES, decode_frames, fit_geometry
from amplify.io.probe import VideoInfo, probe
from amplify.io.scenecut import frame_signature, is_cut
from amplify.io.sequence import is_frame_folder
from amplify.labels import ClipLabels, is_sidecar, load_labels

VIDEO_EXTENSIONS = (
    ".mp4",
    ".mkv",
    ".mov",
    ".avi",
    ".webm",
    ".m4v",
    ".ts",
    ".mts",
    ".mpg",
    ".mpeg",
    ".flv",
)


@dataclass(frozen=True)
class IngestConfig:
    """How clips become windows. The defaults suit the default tokenizer (17 = 1 + 4*4 frames)."""

    fps: float = 10.0
    width: int = 256
    height: int = 128
    window: int = 17  # frames per window
    stride: int = 17  # frames between window starts (== window: no overlap)
    resize: str = "crop"  # crop (cover, centre crop) or letterbox (fit, black bars)
    scene_cut_threshold: float = 0.3  # 0..1; lower splits more eagerly (see io/scenecut.py)
    # A shot shorter than `window` still gives one window when it has at least this many frames:
    # the longest 1 + 4k prefix (the tokenizer's causal grouping). 0 drops short shots.
    short_window_min: int = 9
    max_windows: int = 0  # per clip; 0 = no limit
    decode_timeout_s: float = 300.0  # per clip; a decoder past it is killed and the clip errors
    image_format: str = "png"  # png (lossless) or jpeg, for the frames written to the dataset
    jpeg_quality: int = 95
    # Source rate of a frame folder without an `fps.txt` sidecar (see amplify/io/sequence.py).
    sequence_fps: float = 10.0

    def __post_init__(self) -> None:
        if not 0 < self.fps <= 240:
            raise ConfigError("ingest.fps", self.fps, "must be in (0, 240]")
        for key in ("width", "height"):
            v = getattr(self, key)
            if v <= 0 or v % 8:
                raise ConfigError(f"ingest.{key}", v, "must be a positive multiple of 8")
        if self.window < 1:
            raise ConfigError("ingest.window", self.window, "must be >= 1")
        if self.stride < 1:
            raise ConfigError("ingest.stride", self.stride, "must be >= 1")
        if self.resize not in RESIZE_MODES:
            raise ConfigError("ingest.resize", self.resize, f"must be one of {RESIZE_MODES}")
        if not 0 < self.scene_cut_threshold <= 1:
            raise ConfigError(
                "ingest.scene_cut_threshold", self.scene_cut_threshold, "must be in (0, 1]"
            )
        if self.short_window_min < 0 or self.short_window_min > self.window:
            raise ConfigError(
                "ingest.short_window_min", self.short_window_min, "must be in [0, ingest.window]"
            )
        if self.max_windows < 0:
            raise ConfigError("ingest.max_windows", self.max_windows, "must be >= 0")
        if self.decode_timeout_s <= 0:
            raise ConfigError("ingest.decode_timeout_s", self.decode_timeout_s, "must be > 0")
        if not 0 < self.sequence_fps <= 1000:
            raise ConfigError("ingest.sequence_fps", self.sequence_fps, "must be in (0, 1000]")
        if self.image_format not in ("png", "jpeg"):
            raise ConfigError("ingest.image_format", self.image_format, "must be png or jpeg")

    def fingerprint(self) -> str:
        """What decides the windows' content: windows of two configs never share an id."""
        # The frame-folder rate joins only when it is not the default: ids made before it existed
        # stay the same.
        seq = f"-seq{self.sequence_fps:g}" if self.sequence_fps != 10.0 else ""
        return (
            f"{self.fps:g}fps-{self.width}x{self.height}-{self.resize}-w{self.window}s{self.stride}"
            + seq
        )


# Documents that sit beside clips (a README, notes, a config): listed as ignored, not errors.
# A `.json` here is no label sidecar (`is_sidecar` takes those first).
IGNORED_EXTENSIONS = (".md", ".txt", ".json", ".rst", ".yaml", ".yml", ".csv", ".pdf", ".html")


@dataclass(frozen=True)
class InputListing:
    """The inputs of a job's folder, and the documents in it that no stage reads."""

    inputs: list[Path]
    ignored: list[Path]


def scan_inputs(root: str | Path) -> InputListing:
    """`list_inputs`, with the documents (`IGNORED_EXTENSIONS`) set apart as ignored. Anything
    else stays an input: a job must account for it as rows or as an error row."""
    inputs, ignored = [], []
    for p in list_inputs(root):
        is_doc = p.suffix.lower() in IGNORED_EXTENSIONS and not p.is_dir()
        (ignored if is_doc and p != Path(root) else inputs).append(p)
    return InputListing(inputs, ignored)


@dataclass
class Window:
    """`cfg.window` consecutive output frames of one shot of one clip."""

    source: str
    window_index: int
    frames: np.ndarray  # (T, H, W, 3) uint8
    timestamps: np.ndarray  # (T,) seconds from the clip's first frame
    source_indices: np.ndarray  # (T,) decoded source frame shown by each output frame
    shot_index: int
    labels: ClipLabels | None  # per window frame, in output pixels; None without a sidecar


def list_inputs(root: str | Path) -> list[Path]:
    """Every candidate input under `root` (a folder or one file), sorted.

    Skips label sidecars and names starting with `.` or `_` (corpus metadata). Other files are
    all returned, video extension or not: a job must account for each (rows or an error row).
    A frame folder (`amplify.io.sequence.is_frame_folder`, `root` itself included) is one input,
    and nothing inside it is listed.
    """
    root = Path(root)
    if root.is_file() or (os.path.lexists(root) and not root.exists()):
        return [root]
    if not root.is_dir():
        raise FileNotFoundError(f"input {str(root)!r} is neither a file nor a folder")
    if is_frame_folder(root):
        return [root]
    out = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "_")))
        sequences = [d for d in dirnames if is_frame_folder(Path(dirpath) / d)]
        out += [Path(dirpath) / d for d in sequences]
        dirnames[:] = [d for d in dirnames if d not in sequences]
        for name in filenames:
            if name.startswith((".", "_")) or is_sidecar(name):
                continue
            out.append(Path(dirpath) / name)
    # Symlinked folders are not followed (cycles); symlinked files are inputs like any other.
    return sorted(out)


def iter_windows(
    path: str | Path, cfg: IngestConfig, info: VideoInfo | None = None
) -> Iterator[Window]:
    """Stream the windows of one clip (memory: one window of frames plus one shot's tail)."""
    path = str(path)
    info = info or probe(path)
    frames: list[np.ndarray] = []
    times: list[float] = []
    indices: list[int] = []
    shot = 0
    window_index = 0
    prev_sig = None
    total = 0
    raw_labels = _load_labels(path)
    if raw_labels is not None:
        ratio = (raw_labels.width / raw_labels.height) / (info.width / info.height)
        if abs(ratio - 1) > 0.01:
            raise LabelError(
                path,
                f"labels are for a {raw_labels.width}x{raw_labels.height} image but the video is "
                f"{info.width}x{info.height} (aspect ratios differ)",
            )

    def make_window(length: int) -> Window:
        idx = np.asarray(indices[:length])
        labels = None
        if raw_labels is not None:
            g = fit_geometry(raw_labels.width, raw_labels.height, cfg.width, cfg.height, cfg.resize)
            labels = raw_labels.select(idx.tolist()).transform(
                g.sx, g.sy, g.ox, g.oy, cfg.width, cfg.height
            )
        return Window(
            source=path,
            window_index=window_index,
            frames=np.stack(frames[:length]),
            timestamps=np.asarray(times[:length]),
            source_indices=idx,
            shot_index=shot,
            labels=labels,
        )

    def short_window() -> Window | None:
        """The one window of a shot too short for a full one, if it is long enough."""
        n = len(frames)
        if shot_windows or not cfg.short_window_min or n < cfg.short_window_min:
            return None
        return make_window(1 + 4 * ((n - 1) // 4))

    skip = 0  # frames still to drop when the stride is longer than the window
    shot_windows = 0
    frames_in = decode_frames(
        path, cfg.fps, cfg.width, cfg.height, cfg.resize, info, sequence_fps=cfg.sequence_fps
    )
    for f in frames_in:
        total += 1
        sig = frame_signature(f.image)
        if prev_sig is not None and is_cut(prev_sig, sig, cfg.scene_cut_threshold):
            if (w := short_window()) is not None:
                yield w
                window_index += 1
                if cfg.max_windows and window_index >= cfg.max_windows:
                    return
            shot += 1
            frames, times, indices, skip, shot_windows = [], [], [], 0, 0
        prev_sig = sig
        if skip:
            skip -= 1
            continue
        frames.append(f.image)
        times.append(f.time_s)
        indices.append(f.source_index)
        if len(frames) == cfg.window:
            yield make_window(cfg.window)
            window_index += 1
            shot_windows += 1
            if cfg.max_windows and window_index >= cfg.max_windows:
                return
            drop = min(cfg.stride, cfg.window)
            frames, times, indices = frames[drop:], times[drop:], indices[drop:]
            skip = cfg.stride - drop
    if (w := short_window()) is not None:
        yield w
        window_index += 1
    if window_index == 0:
        raise TooShortError(
            path,
            f"{total} frames at {cfg.fps:g} fps after resampling ({shot + 1} shot(s)); "
            f"a window needs {cfg.window} consecutive frames of one shot "
            f"(or {cfg.short_window_min} for a short one)",
        )


def read_windows(path: str | Path, cfg: IngestConfig) -> list[Window]:
    """All windows of one clip (see `iter_windows`)."""
    return list(iter_windows(path, cfg))


def _load_labels(path: str) -> ClipLabels | None:
    try:
        return load_labels(path)
    except LabelError:
        raise
    except Exception as e:  # a sidecar we cannot even parse is still a label problem
        raise LabelError(path, f"labels: {e}") from e
