"""The real training footage `../shared/data/train_real`: its manifest as typed items, the fixed
validation split, the licences to record beside a checkpoint, and an item's frames read through
the normal ingest.

- `manifest.json` lists 27 items (23 videos, 4 frame folders) with source repository, licence,
  fps and the conditions labelled by eye; an item's condition is `f"{weather}_{time_of_day}"`.
- `configs/splits/train_real_split.json` fixes the validation items (never trained on);
  `configs/splits/train_real_val.json` maps them to their conditions for `amplify eval real`, and
  must agree with the manifest (`check_condition_file`).
- Frame folders are read by `amplify.io.sequence` in natural order of their names; the manifest's
  `frame_order` (given for the DVD folder, whose `frame_10_hazy.jpg` sorts before `frame_2_...`
  by plain name) is checked against that order when the manifest is loaded, and a mismatch raises.
  A folder's rate is the manifest's `fps` (null for DVD: `IngestConfig.sequence_fps` applies).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from amplify.conditions import Condition
from amplify.errors import ConfigError, LabelError, MissingFileError
from amplify.io.ingest import IngestConfig, Window, read_windows
from amplify.io.sequence import frame_files

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ROOT = REPO.parent / "shared" / "data" / "train_real"
MEASURE_ROOT = REPO.parent / "shared" / "data" / "real"  # measuring only, never trained on
SPLIT_FILE = REPO / "configs" / "splits" / "train_real_split.json"
VAL_CONDITIONS_FILE = REPO / "configs" / "splits" / "train_real_val.json"
MEASURE_CONDITIONS_FILE = REPO / "configs" / "splits" / "real.json"


@dataclass(frozen=True)
class RealItem:
    """One manifest entry: a video file or a frame folder under the data root."""

    file: str  # path relative to the data root, as the manifest writes it
    path: Path
    weather: str
    time_of_day: str
    fps: float | None  # None: not stated (a frame folder then reads at ingest.sequence_fps)
    frames: int
    licence: str
    repo: str
    scene: str
    frame_order: tuple[str, ...] | None

    @property
    def condition(self) -> str:
        """`weather_timeofday`, e.g. `clear_night`: a `Condition` name."""
        return f"{self.weather}_{self.time_of_day}"

    @property
    def is_sequence(self) -> bool:
        return self.path.is_dir()


def load_manifest(root: str | Path = DEFAULT_ROOT) -> list[RealItem]:
    """Every item of `<root>/manifest.json`, in manifest order, validated (files exist, known
    conditions, frame order as the manifest gives it)."""
    root = Path(root)
    manifest = root / "manifest.json"
    if not manifest.is_file():
        raise MissingFileError(manifest, "no manifest.json in the real-footage folder")
    try:
        entries = json.loads(manifest.read_text())
    except json.JSONDecodeError as e:
        raise LabelError(manifest, f"not JSON: {e}") from e
    if not isinstance(entries, list):
        raise LabelError(manifest, "must be a JSON list of items")
    items = []
    for n, e in enumerate(entries):
        where = f"item {n} ({e.get('file', '?') if isinstance(e, dict) else e!r})"
        if not isinstance(e, dict) or not isinstance(e.get("file"), str):
            raise LabelError(manifest, f"{where}: needs a 'file' string")
        try:
            cond = Condition(e.get("weather"), e.get("time_of_day"))
        except ConfigError as err:
            raise LabelError(manifest, f"{where}: {err}") from err
        fps = e.get("fps")
        if fps is not None and (not isinstance(fps, int | float) or fps <= 0):
            raise LabelError(manifest, f"{where}: fps {fps!r} is not a positive number or null")
        order = e.get("frame_order")
        item = RealItem(
            file=e["file"],
            path=root / e["file"],
            weather=cond.weather,
            time_of_day=cond.time_of_day,
            fps=float(fps) if fps is not None else None,
            frames=int(e.get("frames") or 0),
            licence=str(e.get("license", "unknown")),
            repo=str(e.get("repo", "")),
            scene=str(e.get("scene", "")),
            frame_order=tuple(order) if order else None,
        )
        if not item.path.exists():
            raise MissingFileError(item.path, f"listed in {manifest} but absent")
        if item.frame_order is not None:
            natural = tuple(p.name for p in frame_files(item.path))
            if natural != item.frame_order:
                pairs = zip(natural, item.frame_order, strict=False)
                k = next((i for i, (a, b) in enumerate(pairs) if a != b),
                         min(len(natural), len(item.frame_order)))  # fmt: skip
                raise LabelError(
                    manifest,
                    f"{where}: frame_order differs from the natural order of the folder's names "
                    f"at frame {k}: the ingest would read the frames in another order",
                )
        items.append(item)
    return items


def load_split(path: str | Path = SPLIT_FILE) -> tuple[str, ...]:
    """The validation items' `file` names from the fixed split file."""
    path = Path(path)
    try:
        val = json.loads(path.read_text())["validation"]
    except (OSError, KeyError, json.JSONDecodeError) as e:
        raise ConfigError(
            "train_real_split", str(path), f"cannot read its 'validation' list: {e}"
        ) from e
    return tuple(val)


def _split(root: str | Path, split: str | Path) -> tuple[list[RealItem], list[RealItem]]:
    items = load_manifest(root)
    val = load_split(split)
    known = {i.file for i in items}
    for f in val:
        if f not in known:
            raise ConfigError(
                "train_real_split.validation", f, f"not an item of {root}/manifest.json"
            )
    return [i for i in items if i.file not in val], [i for i in items if i.file in val]


def train_items(root: str | Path = DEFAULT_ROOT, split: str | Path = SPLIT_FILE) -> list[RealItem]:
    """The items to train on: every manifest item not in the validation split."""
    return _split(root, split)[0]


def val_items(root: str | Path = DEFAULT_ROOT, split: str | Path = SPLIT_FILE) -> list[RealItem]:
    """The fixed validation items (never trained on), in manifest order."""
    return _split(root, split)[1]


def licences(items: list[RealItem]) -> list[dict]:
    """What to record beside a checkpoint trained on `items`: file, source repository, licence."""
    return [{"file": i.file, "repo": i.repo, "license": i.licence} for i in items]


def condition_map(items: list[RealItem]) -> dict[str, str]:
    """{file: condition name}: the form of a conditions file (`amplify eval real conditions=`)."""
    return {i.file: i.condition for i in items}


def check_condition_file(path: str | Path, items: list[RealItem]) -> None:
    """Raise `ConfigError` unless the conditions file at `path` maps exactly `items` to their
    manifest conditions."""
    got = json.loads(Path(path).read_text())
    want = condition_map(items)
    if got != want:
        diff = sorted(set(got.items()) ^ set(want.items()))
        raise ConfigError(str(path), diff, "differs from the manifest's items and conditions")


def item_ingest(item: RealItem, cfg: IngestConfig) -> IngestConfig:
    """`cfg` with the item's own frame rate for a frame folder (the manifest's fps)."""
    if item.is_sequence and item.fps is not None:
        return replace(cfg, sequence_fps=item.fps)
    return cfg


def read_item_windows(item: RealItem, cfg: IngestConfig) -> list[Window]:
    """The windows of one item through the normal ingest (`amplify.io.ingest.read_windows`)."""
    return read_windows(item.path, item_ingest(item, cfg))


def read_item_frames(
    item: RealItem, fps: float = 2.0, width: int = 256, height: int = 128, resize: str = "crop"
) -> np.ndarray:
    """Every frame of an item sampled at `fps` and resized like the job's frames, across the whole
    clip (scene cuts do not drop frames here).  # (N, height, width, 3) uint8"""
    return read_clip_frames(
        item.path, fps, width, height, resize, item_ingest(item, IngestConfig()).sequence_fps
    )


def read_clip_frames(
    path: str | Path,
    fps: float = 2.0,
    width: int = 256,
    height: int = 128,
    resize: str = "crop",
    sequence_fps: float = 10.0,
) -> np.ndarray:
    """Every frame of any clip (video or frame folder) at `fps`, through `read_windows` with
    one-frame windows.  # (N, height, width, 3) uint8"""
    cfg = IngestConfig(fps=fps, width=width, height=height, window=1, stride=1,
                       short_window_min=1, resize=resize, sequence_fps=sequence_fps)  # fmt: skip
    return np.concatenate([w.frames for w in read_windows(path, cfg)])
