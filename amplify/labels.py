"""Label sidecars: the one format for tracks and boxes that travels with a clip (docs/LABELS.md).

A clip `drive.mp4` may carry `drive.labels.json` (or `drive.labels.parquet`) beside it. Frame
indices count decoded frames of the video from 0; boxes are pixels `[x0, y0, x1, y1]` in a
`width x height` image. The synthetic corpus writes this format, ingest reads it, follows the
resampling and resizing with it, and rejects what is malformed or out of range with `LabelError`.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from amplify.errors import LabelError

FORMAT = "amplify.labels"
VERSION = 1
SIDECAR_SUFFIXES = (".labels.json", ".labels.parquet")
# A box may poke slightly outside the image (annotation tools round); beyond that it is an error.
BOX_SLACK_PX = 2.0


@dataclass(frozen=True)
class Box:
    """One agent's box in one frame. `box_3d` = (x, y, z, length, width, height, yaw), camera frame, m."""

    track_id: int
    category: str
    x0: float
    y0: float
    x1: float
    y1: float
    box_3d: tuple[float, ...] | None = None
    is_generated: bool = False  # placed by a scenario edit (amplify.scenarios), not in the source


@dataclass(frozen=True)
class ClipLabels:
    """Every box of a clip, per frame, plus what the clip says of its camera and condition."""

    width: int
    height: int
    categories: tuple[str, ...]
    frames: tuple[tuple[Box, ...], ...]  # frames[i] = boxes in decoded frame i
    fps: float | None = None
    condition: dict | None = None  # {"weather", "time_of_day", "intensity"} for synthetic clips
    intrinsics: tuple[tuple[float, ...], ...] | None = None  # 3x3
    ego_pose: tuple[tuple[float, ...], ...] | None = None  # per frame, 16 floats row-major (4x4)
    extra: dict = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    def select(self, indices: Sequence[int]) -> ClipLabels:
        """Labels of the frames `indices` (e.g. the frames kept by fps resampling), in that order."""
        n = self.num_frames
        frames = tuple(self.frames[i] if 0 <= i < n else () for i in indices)
        pose = None
        if self.ego_pose is not None:
            pose = tuple(self.ego_pose[min(max(i, 0), len(self.ego_pose) - 1)] for i in indices)
        return replace(self, frames=frames, ego_pose=pose)

    def transform(
        self, sx: float, sy: float, ox: float, oy: float, width: int, height: int
    ) -> ClipLabels:
        """Map boxes through `x' = x*sx + ox`, `y' = y*sy + oy` into a `width x height` image.

        Boxes are clipped to the image; a box left with no area (cropped away) is dropped.
        """
        frames = []
        for boxes in self.frames:
            kept = []
            for b in boxes:
                x0, x1 = sorted((b.x0 * sx + ox, b.x1 * sx + ox))
                y0, y1 = sorted((b.y0 * sy + oy, b.y1 * sy + oy))
                x0, x1 = max(0.0, x0), min(float(width), x1)
                y0, y1 = max(0.0, y0), min(float(height), y1)
                if x1 - x0 >= 1.0 and y1 - y0 >= 1.0:
                    kept.append(replace(b, x0=x0, y0=y0, x1=x1, y1=y1))
            frames.append(tuple(kept))
        intr = (
            None
            if self.intrinsics is None
            else transform_intrinsics(self.intrinsics, sx, sy, ox, oy)
        )
        return replace(self, width=width, height=height, frames=tuple(frames), intrinsics=intr)


def transform_intrinsics(
    k, sx: float, sy: float, ox: float, oy: float
) -> tuple[tuple[float, ...], ...]:
    """A 3x3 camera matrix after the image is mapped by `x' = x*sx + ox`, `y' = y*sy + oy`."""
    return (
        (k[0][0] * sx, k[0][1], k[0][2] * sx + ox),
        (k[1][0], k[1][1] * sy, k[1][2] * sy + oy),
        tuple(k[2]),
    )


def sidecar_for(video: str | Path) -> Path | None:
    """The label sidecar beside `video`, if there is one."""
    video = Path(video)
    stem = video.with_suffix("")
    for suffix in SIDECAR_SUFFIXES:
        candidate = Path(f"{stem}{suffix}")
        if candidate.exists():
            return candidate
    return None


def is_sidecar(path: str | Path) -> bool:
    return str(path).endswith(SIDECAR_SUFFIXES)


def load_labels(video: str | Path, num_frames: int | None = None) -> ClipLabels | None:
    """Read and validate the sidecar of `video`; None when it has none."""
    path = sidecar_for(video)
    if path is None:
        return None
    return read_labels(path, num_frames=num_frames)


def read_labels(path: str | Path, num_frames: int | None = None) -> ClipLabels:
    """Read a `.labels.json` or `.labels.parquet` file and validate it.

    `num_frames`, when given, is the decoded length of the video: labels past it are an error.
    """
    path = Path(path)
    try:
        if str(path).endswith(".labels.parquet"):
            doc = _parquet_to_doc(path)
        else:
            doc = json.loads(path.read_text())
    except LabelError:
        raise
    except (OSError, ValueError) as e:
        raise LabelError(path, f"cannot read labels: {e}") from e
    return _from_doc(doc, path, num_frames)


def write_labels(labels: ClipLabels, path: str | Path) -> None:
    """Write `labels` as `.labels.json` (sorted keys, fixed float precision: same labels, same bytes)."""
    path = Path(path)
    tracks: dict[int, dict] = {}
    for i, boxes in enumerate(labels.frames):
        for b in boxes:
            t = tracks.setdefault(
                b.track_id,
                {"track_id": b.track_id, "category": b.category, "frames": [], "boxes": []},
            )
            t["frames"].append(i)
            t["boxes"].append([_r(b.x0), _r(b.y0), _r(b.x1), _r(b.y1)])
            if b.box_3d is not None:
                t.setdefault("boxes_3d", []).append([_r(v) for v in b.box_3d])
            if b.is_generated:
                t["is_generated"] = True
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "width": labels.width,
        "height": labels.height,
        "num_frames": labels.num_frames,
        "categories": list(labels.categories),
        "tracks": [tracks[k] for k in sorted(tracks)],
    }
    if labels.fps is not None:
        doc["fps"] = labels.fps
    if labels.condition is not None:
        doc["condition"] = labels.condition
    if labels.intrinsics is not None:
        doc["intrinsics"] = [[_r(v) for v in row] for row in labels.intrinsics]
    if labels.ego_pose is not None:
        doc["ego_pose"] = [[_r(v) for v in row] for row in labels.ego_pose]
    if labels.extra:
        doc["extra"] = labels.extra
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc, sort_keys=True, separators=(",", ":")))
    os.replace(tmp, path)


def _r(v: float) -> float:
    return round(float(v), 4)


def _from_doc(doc: object, path: Path, num_frames: int | None) -> ClipLabels:
    def bad(reason: str, frame: int | None = None) -> LabelError:
        return LabelError(path, reason, frame=frame)

    if not isinstance(doc, dict):
        raise bad("labels must be a JSON object")
    if doc.get("version", VERSION) != VERSION:
        raise bad(
            f"unsupported labels version {doc.get('version')!r} (this reader knows {VERSION})"
        )
    try:
        width, height = int(doc["width"]), int(doc["height"])
        categories = tuple(str(c) for c in doc["categories"])
        tracks = doc.get("tracks", [])
        declared = int(doc.get("num_frames", 0))
    except (KeyError, TypeError, ValueError) as e:
        raise bad(f"missing or invalid field: {e}") from e
    if width <= 0 or height <= 0:
        raise bad(f"width/height must be positive, got {width}x{height}")
    if not isinstance(tracks, list):
        raise bad("'tracks' must be a list")
    if num_frames is not None and declared > num_frames:
        raise bad(f"labels declare {declared} frames but the video has {num_frames}")
    length = max(declared, num_frames or 0)
    per_frame: dict[int, list[Box]] = {}
    seen_ids: set[int] = set()
    for t in tracks:
        try:
            tid = int(t["track_id"])
            cat = str(t["category"])
            idx = [int(f) for f in t["frames"]]
            boxes = [[float(v) for v in b] for b in t["boxes"]]
            b3 = t.get("boxes_3d")
            boxes3 = [tuple(float(v) for v in b) for b in b3] if b3 is not None else None
            generated = bool(t.get("is_generated", False))
        except (KeyError, TypeError, ValueError) as e:
            raise bad(
                f"track {t.get('track_id') if isinstance(t, dict) else t!r}: invalid field: {e}"
            ) from e
        if tid in seen_ids:
            raise bad(f"track id {tid} appears twice")
        seen_ids.add(tid)
        if cat not in categories:
            raise bad(f"track {tid}: category {cat!r} is not in categories {list(categories)}")
        if len(idx) != len(boxes) or (boxes3 is not None and len(boxes3) != len(idx)):
            raise bad(f"track {tid}: frames and boxes differ in length")
        for f, b, k in zip(idx, boxes, boxes3 or [None] * len(idx), strict=True):
            if (
                f < 0
                or (num_frames is not None and f >= num_frames)
                or (declared and f >= declared)
            ):
                raise bad(f"track {tid}: frame index {f} out of range", frame=f)
            if len(b) != 4 or not all(math.isfinite(v) for v in b):
                raise bad(f"track {tid}: box {b} must be 4 finite numbers", frame=f)
            x0, y0, x1, y1 = b
            if x1 <= x0 or y1 <= y0:
                raise bad(f"track {tid}: box {b} has x1<=x0 or y1<=y0", frame=f)
            s = BOX_SLACK_PX
            if x0 < -s or y0 < -s or x1 > width + s or y1 > height + s:
                raise bad(f"track {tid}: box {b} lies outside the {width}x{height} image", frame=f)
            per_frame.setdefault(f, []).append(Box(tid, cat, x0, y0, x1, y1, k, generated))
            length = max(length, f + 1)
    frames = tuple(
        tuple(sorted(per_frame.get(i, ()), key=lambda b: b.track_id)) for i in range(length)
    )
    intr = doc.get("intrinsics")
    pose = doc.get("ego_pose")
    return ClipLabels(
        width=width,
        height=height,
        categories=categories,
        frames=frames,
        fps=float(doc["fps"]) if doc.get("fps") else None,
        condition=doc.get("condition"),
        intrinsics=tuple(tuple(float(v) for v in r) for r in intr) if intr else None,
        ego_pose=tuple(tuple(float(v) for v in r) for r in pose) if pose else None,
        extra=doc.get("extra") or {},
    )


def _parquet_to_doc(path: Path) -> dict:
    """A `.labels.parquet` file: one row per (frame, track) with columns frame, track_id, category,
    x0, y0, x1, y1; schema metadata `amplify.labels` holds the JSON header (width, height, ...)."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    meta = (table.schema.metadata or {}).get(b"amplify.labels")
    if meta is None:
        raise LabelError(
            path, "parquet labels need schema metadata 'amplify.labels' (width, height, categories)"
        )
    doc = json.loads(meta)
    missing = {"frame", "track_id", "category", "x0", "y0", "x1", "y1"} - set(table.column_names)
    if missing:
        raise LabelError(path, f"parquet labels lack columns {sorted(missing)}")
    tracks: dict[int, dict] = {}
    for row in table.to_pylist():
        t = tracks.setdefault(
            int(row["track_id"]),
            {
                "track_id": int(row["track_id"]),
                "category": row["category"],
                "frames": [],
                "boxes": [],
            },
        )
        t["frames"].append(row["frame"])
        t["boxes"].append([row["x0"], row["y0"], row["x1"], row["y1"]])
    doc["tracks"] = list(tracks.values())
    return doc
