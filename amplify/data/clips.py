"""`ClipDataset`: an IterableDataset over an export's clips (one split), each a video tensor
(T, 3, H, W) with its boxes frame by frame and its condition; `collate_clips` batches clips of
different lengths and box counts.

    ds = ClipDataset("out/export", "train", shuffle_buffer=64, seed=0)
    loader = DataLoader(ds, batch_size=4, num_workers=2, collate_fn=collate_clips)
    batch["video"]        # (B, T_max, 3, H, W) float32 in [0, 1], zero-padded in time
    batch["frame_mask"]   # (B, T_max) bool
    batch["boxes"]        # B lists of T (N_t, 4) tensors; batch["labels"] alike
    batch["condition"]    # (B,) index in CONDITION_NAMES, -1 unknown

Clips stream in shard order, one row group at a time (a clip never spans two shards). Clip k
of the split goes to DataLoader worker k mod (workers x distributed world size), so workers and
ranks see disjoint clips; `shuffle_buffer` mixes clips with a seeded buffer (`set_epoch` reseeds).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch.utils.data import IterableDataset, get_worker_info

from amplify.data.frames import pad_boxes
from amplify.data.targets import (
    boxes_array,
    categories,
    condition_label,
    decode_image,
    split_files,
)


def _spans(ids: list[str]) -> list[tuple[str, int, int]]:
    """(clip_id, start, end) of each run of equal ids."""
    spans, start = [], 0
    for i in range(1, len(ids) + 1):
        if i == len(ids) or ids[i] != ids[start]:
            spans.append((ids[start], start, i))
            start = i
    return spans


def _rank_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class ClipDataset(IterableDataset):
    def __init__(
        self,
        export: str | Path,
        split: str = "train",
        transform: Callable | None = None,
        shuffle_buffer: int = 0,
        seed: int = 0,
    ) -> None:
        self.files = split_files(export, split)
        self.categories = categories(export)
        self.index = {c: i for i, c in enumerate(self.categories)}
        self.transform, self.shuffle_buffer, self.seed, self.epoch = (
            transform,
            shuffle_buffer,
            seed,
            0,
        )
        # Clip spans per file, from the clip_id column alone (cheap: no image bytes read).
        self.spans = [
            _spans(pq.read_table(f, columns=["clip_id"]).column(0).to_pylist()) for f in self.files
        ]

    def __len__(self) -> int:  # clips in the split (all workers together)
        return sum(len(s) for s in self.spans)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _mine(self) -> list[list[tuple[str, int, int]]]:
        rank, world = _rank_world()
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info else (0, 1)
        unit, units = rank * nw + wid, world * nw
        mine, k = [], 0
        for spans in self.spans:
            mine.append([s for j, s in enumerate(spans, start=k) if j % units == unit])
            k += len(spans)
        return mine

    def _clips(self) -> Iterator[pa.Table]:
        for path, spans in zip(self.files, self._mine(), strict=True):
            if not spans:
                continue
            pf = pq.ParquetFile(path, memory_map=True)
            ends = np.cumsum([pf.metadata.row_group(g).num_rows for g in range(pf.num_row_groups)])
            buf, buf_start, next_rg = None, 0, 0
            for _, s, e in spans:
                if buf is not None and s >= buf_start + buf.num_rows:
                    buf = None  # the buffer holds nothing of this clip
                elif buf is not None and s > buf_start:  # drop rows of clips already yielded
                    buf, buf_start = buf.slice(s - buf_start), s
                # Read row groups until the buffer reaches the clip's end; skip those before it.
                while buf is None or buf_start + buf.num_rows < e:
                    rg_start = 0 if next_rg == 0 else int(ends[next_rg - 1])
                    if ends[next_rg] <= s:
                        next_rg += 1
                        continue
                    part = pf.read_row_group(next_rg)
                    if buf is None or buf_start + buf.num_rows < rg_start:
                        buf, buf_start = part, rg_start
                    else:
                        buf = pa.concat_tables([buf, part])
                    next_rg += 1
                yield buf.slice(s - buf_start, e - s)

    def _sample(self, t: pa.Table) -> dict:
        rows = sorted(t.to_pylist(), key=lambda r: r["frame_index"])
        video = np.stack([decode_image(r["image"]["bytes"]) for r in rows])  # (T, H, W, 3)
        pairs = [boxes_array(r["boxes"], self.index) for r in rows]
        first = rows[0]
        sample = {
            "video": torch.from_numpy(video).permute(0, 3, 1, 2).float() / 255.0,  # (T,3,H,W)
            "boxes": [torch.from_numpy(b) for b, _ in pairs],  # T x (N_t, 4)
            "labels": [torch.from_numpy(c) for _, c in pairs],  # T x (N_t,)
            "condition": condition_label(first["weather"], first["time_of_day"]),
            "clip_id": first["clip_id"],
            "variation": first["variation"],
        }
        return self.transform(sample) if self.transform else sample

    def __iter__(self) -> Iterator[dict]:
        if not self.shuffle_buffer:
            for t in self._clips():
                yield self._sample(t)
            return
        rng = random.Random(f"{self.seed}/{self.epoch}")
        buf: list[pa.Table] = []
        for t in self._clips():
            buf.append(t)
            if len(buf) >= self.shuffle_buffer:
                yield self._sample(buf.pop(rng.randrange(len(buf))))
        rng.shuffle(buf)
        for t in buf:
            yield self._sample(t)


def collate_clips(batch: list[dict]) -> dict:
    """Pad videos to the longest clip (with a frame mask); boxes stay per clip, per frame."""
    t_max = max(s["video"].shape[0] for s in batch)
    _, c, h, w = batch[0]["video"].shape
    video = torch.zeros(len(batch), t_max, c, h, w)  # (B, T_max, 3, H, W)
    mask = torch.zeros(len(batch), t_max, dtype=torch.bool)
    for i, s in enumerate(batch):
        video[i, : s["video"].shape[0]] = s["video"]
        mask[i, : s["video"].shape[0]] = True
    return {
        "video": video,
        "frame_mask": mask,  # (B, T_max)
        "boxes": [s["boxes"] for s in batch],
        "labels": [s["labels"] for s in batch],
        "condition": torch.tensor([s["condition"] for s in batch]),  # (B,)
        "clip_id": [s["clip_id"] for s in batch],
    }


__all__ = ["ClipDataset", "collate_clips", "pad_boxes"]
