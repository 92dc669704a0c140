"""Frame folders: a directory of consecutive still images read as one clip.

AV datasets ship their cameras this way (KITTI, nuScenes, BDD, RADIATE: `000001.png`, ...,
`frame_10_hazy.jpg`). A folder is a frame folder when it holds at least two `.jpg`/`.jpeg`/`.png`
images and no video file; its other files (a README, the fps sidecar) are ignored, and so are its
subfolders. Frames are ordered by the numbers in their names (natural sort: `frame_2.jpg` before
`frame_10.jpg`; ties broken by the plain name).

Frame rate: the sidecar `<folder>/fps.txt` holds one positive number (frames per second); without
it the caller's default applies (`IngestConfig.sequence_fps`, 10 by default). Frame i is shown at
i / fps seconds, then the folder is resampled, resized and cropped exactly like a video.

Images are read with Pillow (EXIF orientation is ignored, as dataset cameras do not set it). Every
problem raises an `InputError` subclass naming the folder and, where one is at fault, the frame.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from amplify.errors import CorruptVideoError, LabelError, NotAVideoError, UnreadableFileError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
FPS_SIDECAR = "fps.txt"
# The video extensions of `amplify.io.ingest` (a folder holding one is not a frame folder); kept
# here too so that this module imports nothing of the decoders.
_VIDEO_EXTENSIONS = (".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".ts", ".mts", ".mpg",
                     ".mpeg", ".flv")  # fmt: skip
_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple:
    """Sort key that compares the digit runs of a name as numbers: `f_2` < `f_10`."""
    parts = _DIGITS.split(name.lower())
    return (tuple((1, int(p), "") if p.isdigit() else (0, 0, p) for p in parts), name)


def _is_image(p: Path) -> bool:
    return p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith((".", "_"))


def is_frame_folder(path: str | Path) -> bool:
    """A directory with >= 2 images (.jpg/.jpeg/.png) and no video file directly inside it."""
    path = Path(path)
    if not path.is_dir():
        return False
    try:
        files = [p for p in path.iterdir() if p.is_file()]
    except OSError:
        return False
    if any(p.suffix.lower() in _VIDEO_EXTENSIONS for p in files):
        return False
    return sum(_is_image(p) for p in files) >= 2


def frame_files(folder: str | Path) -> list[Path]:
    """The images of a frame folder in natural order; raises when there are none."""
    folder = Path(folder)
    try:
        files = [p for p in folder.iterdir() if p.is_file() and _is_image(p)]
    except OSError as e:
        raise UnreadableFileError(folder, f"cannot list the frame folder: {e}") from e
    if not files:
        raise NotAVideoError(
            folder, f"a folder with no frames (no {'/'.join(IMAGE_EXTENSIONS)} images)"
        )
    return sorted(files, key=lambda p: natural_key(p.name))


def sidecar_fps(folder: str | Path) -> float | None:
    """The frame rate in `<folder>/fps.txt`, or None without one; raises when it is not a rate."""
    p = Path(folder) / FPS_SIDECAR
    if not p.is_file():
        return None
    text = p.read_text(errors="replace").strip()
    try:
        fps = float(text)
    except ValueError:
        fps = float("nan")
    if not math.isfinite(fps) or not 0 < fps <= 1000:
        raise LabelError(
            folder, f"{FPS_SIDECAR} holds {text[:40]!r}, not a frame rate in (0, 1000]"
        )
    return fps


def image_size(folder: str | Path, frame: Path, index: int) -> tuple[int, int]:
    """(width, height) from the image header; raises `CorruptVideoError` naming the frame."""
    from PIL import Image

    try:
        with Image.open(frame) as im:
            return im.size
    except Exception as e:  # PIL raises UnidentifiedImageError, OSError, SyntaxError, ...
        raise CorruptVideoError(folder, f"frame {frame.name}: not a readable image ({e})",
                                frame=index) from e  # fmt: skip


def read_frame(folder: str | Path, frame: Path, index: int) -> np.ndarray:
    """Decode one frame to (H, W, 3) uint8 RGB; raises `CorruptVideoError` naming the frame."""
    from PIL import Image

    try:
        with Image.open(frame) as im:
            return np.asarray(im.convert("RGB"))
    except Exception as e:  # truncated JPEG, bad PNG CRC, not an image at all
        raise CorruptVideoError(folder, f"frame {frame.name}: cannot decode ({e})",
                                frame=index) from e  # fmt: skip
