"""The Ray Data loader: an export's frames as a `ray.data.Dataset` of decoded tensors, for Ray
Train (`ray.train.get_dataset_shard("train").iter_torch_batches(...)`) in one line:

    ds = amplify.data.ray_dataset("out/export", "train")

Each row: `image` (3, H, W) float32 in [0, 1], `boxes` (max_boxes, 4) xyxy pixels and `labels`
(max_boxes,) class indices padded with -1 (fixed shapes, so any batch stacks), `num_boxes`,
`condition` (index in CONDITION_NAMES, -1 unknown), `weather`, `time_of_day`. Decoding runs in
Ray tasks next to the reading; the encoded bytes are what travels.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pyarrow as pa

from amplify.data.targets import (
    boxes_array,
    categories,
    condition_label,
    decode_image,
    split_files,
    time_label,
    weather_label,
)

COLUMNS = ["image", "boxes", "weather", "time_of_day"]


def decode_batch(batch: pa.Table, index: dict[str, int], max_boxes: int = 64) -> dict:
    """A pyarrow batch of export frames -> numpy arrays of fixed shapes."""
    images = batch["image"].combine_chunks().field("bytes").to_pylist()
    pixels = np.stack([decode_image(b) for b in images])  # (B, H, W, 3)
    n = len(images)
    boxes = np.zeros((n, max_boxes, 4), np.float32)
    labels = np.full((n, max_boxes), -1, np.int64)
    count = np.zeros(n, np.int32)
    for i, bs in enumerate(batch["boxes"].to_pylist()):
        xyxy, cls = boxes_array(bs, index)
        k = min(len(cls), max_boxes)
        boxes[i, :k], labels[i, :k], count[i] = xyxy[:k], cls[:k], k
    weather, tod = batch["weather"].to_pylist(), batch["time_of_day"].to_pylist()
    return {
        "image": pixels.transpose(0, 3, 1, 2).astype(np.float32) / 255.0,  # (B, 3, H, W)
        "boxes": boxes,  # (B, max_boxes, 4)
        "labels": labels,  # (B, max_boxes)
        "num_boxes": count,
        "condition": np.array([condition_label(w, t) for w, t in zip(weather, tod, strict=True)]),
        "weather": np.array([weather_label(w) for w in weather]),
        "time_of_day": np.array([time_label(t) for t in tod]),
    }


def ray_dataset(export: str | Path, split: str = "train", max_boxes: int = 64, **read_kwargs):
    """`ray.data.read_parquet` over the split's shards + `decode_batch` (a lazy Dataset)."""
    import ray.data

    index = {c: i for i, c in enumerate(categories(export))}
    files = [str(f) for f in split_files(export, split)]
    ds = ray.data.read_parquet(files, **read_kwargs).select_columns(COLUMNS)
    return ds.map_batches(
        partial(decode_batch, index=index, max_boxes=max_boxes), batch_format="pyarrow"
    )
