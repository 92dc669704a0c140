"""`FrameDataset`: a map-style PyTorch dataset over an export's frames (one split), each sample an
image tensor with its boxes and condition; `collate_frames` batches variable box counts.

    ds = FrameDataset("out/export", "train")
    loader = DataLoader(ds, batch_size=32, shuffle=True, collate_fn=collate_frames)
    batch["image"]        # (B, 3, H, W) float32 in [0, 1]
    batch["boxes"]        # list of B (N_i, 4) xyxy pixel tensors; batch["labels"]: (N_i,)
    batch["boxes_padded"] # (B, N_max, 4), batch["box_mask"] (B, N_max) bool
    batch["condition"]    # (B,) index in amplify.conditions.CONDITION_NAMES, -1 unknown

The split's Parquet is memory-mapped (the export writes images uncompressed), so the dataset
holds no decoded pixels and pickles cheaply into DataLoader workers.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch.utils.data import Dataset

from amplify.data.targets import (
    boxes_array,
    categories,
    condition_label,
    decode_image,
    split_files,
    time_label,
    weather_label,
)

META = ("frame_id", "clip_id", "frame_index", "weather", "time_of_day", "boxes", "variation")


class FrameDataset(Dataset):
    def __init__(
        self, export: str | Path, split: str = "train", transform: Callable | None = None
    ) -> None:
        self.export, self.split, self.transform = str(export), split, transform
        self.files = split_files(export, split)
        self.categories = categories(export)
        self.index = {c: i for i, c in enumerate(self.categories)}
        tables = [pq.read_table(f, memory_map=True) for f in self.files]
        table = pa.concat_tables(tables)
        self.images = table["image"].combine_chunks().field("bytes")
        self.meta = table.select(list(META)).to_pylist()

    def __len__(self) -> int:
        return len(self.meta)

    def __getitem__(self, i: int) -> dict:
        m = self.meta[i]
        pixels = decode_image(self.images[i].as_py())  # (H, W, 3)
        boxes, labels = boxes_array(m["boxes"], self.index)
        sample = {
            "image": torch.from_numpy(pixels.copy()).permute(2, 0, 1).float() / 255.0,  # (3,H,W)
            "boxes": torch.from_numpy(boxes),  # (N, 4)
            "labels": torch.from_numpy(labels),  # (N,)
            "condition": condition_label(m["weather"], m["time_of_day"]),
            "weather": weather_label(m["weather"]),
            "time_of_day": time_label(m["time_of_day"]),
            "frame_id": m["frame_id"],
            "clip_id": m["clip_id"],
        }
        return self.transform(sample) if self.transform else sample


def pad_boxes(
    boxes: list[torch.Tensor], labels: list[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Ragged (N_i, 4) boxes -> (B, N_max, 4), labels (B, N_max) padded with -1, mask (B, N_max)."""
    n = max((len(b) for b in boxes), default=0)
    out = torch.zeros(len(boxes), n, 4)
    lab = torch.full((len(boxes), n), -1, dtype=torch.long)
    mask = torch.zeros(len(boxes), n, dtype=torch.bool)
    for i, (b, c) in enumerate(zip(boxes, labels, strict=True)):
        out[i, : len(b)], lab[i, : len(c)], mask[i, : len(b)] = b, c, True
    return out, lab, mask


def collate_frames(batch: list[dict]) -> dict:
    """Stack images and labels; boxes stay a list (and padded with a mask) as counts differ."""
    boxes, labels = [s["boxes"] for s in batch], [s["labels"] for s in batch]
    padded, padded_labels, mask = pad_boxes(boxes, labels)
    return {
        "image": torch.stack([s["image"] for s in batch]),  # (B, 3, H, W)
        "boxes": boxes,
        "labels": labels,
        "boxes_padded": padded,  # (B, N_max, 4)
        "labels_padded": padded_labels,  # (B, N_max)
        "box_mask": mask,  # (B, N_max)
        "condition": torch.tensor([s["condition"] for s in batch]),  # (B,)
        "weather": torch.tensor([s["weather"] for s in batch]),
        "time_of_day": torch.tensor([s["time_of_day"] for s in batch]),
        "frame_id": [s["frame_id"] for s in batch],
        "clip_id": [s["clip_id"] for s in batch],
    }
