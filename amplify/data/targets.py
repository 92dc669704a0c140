"""What a training sample holds, decoded from an export's rows: the image as a float tensor, the
boxes as (N, 4) xyxy pixels with class indices, and the condition as integer labels. Shared by
the frame and clip datasets and the Ray Data loader, so all three agree."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from amplify.conditions import CONDITION_NAMES, TIMES_OF_DAY, WEATHERS


def split_files(export: str | Path, split: str, table: str = "frames") -> list[Path]:
    """The Parquet shards of `split` in a committed export (its manifest must exist)."""
    from amplify.export.job import read_export_manifest

    manifest = read_export_manifest(export)
    # Absolute: Ray tasks read them from their own working directory.
    files = sorted((Path(export).resolve() / "parquet" / table).glob(f"{split}-*.parquet"))
    if not files:
        have = sorted(manifest.get("counts", {}))
        raise FileNotFoundError(f"{export}: no {table} shards for split {split!r}; splits: {have}")
    return files


def categories(export: str | Path) -> list[str]:
    """Box categories of the export; a box's class index is its position here."""
    from amplify.export.job import read_export_manifest

    return list(read_export_manifest(export).get("categories", []))


def condition_label(weather: str | None, time_of_day: str | None) -> int:
    """Index in `CONDITION_NAMES` (weather-major), -1 when the condition is unknown."""
    if weather is None or time_of_day is None:
        return -1
    return CONDITION_NAMES.index(f"{weather}_{time_of_day}")


def weather_label(weather: str | None) -> int:
    return -1 if weather is None else WEATHERS.index(weather)


def time_label(time_of_day: str | None) -> int:
    return -1 if time_of_day is None else TIMES_OF_DAY.index(time_of_day)


def decode_image(data: bytes) -> np.ndarray:
    """Encoded PNG/JPEG -> (H, W, 3) uint8."""
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def boxes_array(boxes: list[dict] | None, index: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """Box structs -> ((N, 4) float32 xyxy, (N,) int64 class index)."""
    boxes = boxes or []
    xyxy = np.array([[b["x0"], b["y0"], b["x1"], b["y1"]] for b in boxes], np.float32)
    labels = np.array([index[b["category"]] for b in boxes], np.int64)
    return xyxy.reshape(-1, 4), labels
