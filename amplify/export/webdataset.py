"""The video layout: WebDataset tar shards, one sample per clip (`<clip_id>.mp4`, H.264, and
`<clip_id>.json`, the clip's labels frame by frame), plus a Parquet index with one row per frame.

    webdataset/<split>-NNNNNN.tar     samples (dataset part order, clip id within a part);
                                      shards cut by clips or bytes
    webdataset/index.parquet          clip_id, shard, split, frame_index, timestamp_s, boxes, ...

Tar members are written with fixed owner and mtime: the same export gives the same bytes.
Why WebDataset rather than LeRobot v3: docs/EXPORT.md.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from amplify.export.config import ShardConfig, WebDatasetConfig

CLIP_KEYS = (
    "clip_id",
    "source_id",
    "split",
    "variation",
    "weather",
    "time_of_day",
    "intensity",
    "scenario",
    "scenario_params",
    "generator",
    "checkpoint_sha256",
    "parent_clip_id",
    "fps",
    "width",
    "height",
    "num_frames",
    "start_s",
    "window_index",
)


def encode_mp4(frames: np.ndarray, fps: float, cfg: WebDatasetConfig) -> bytes:
    """(T, H, W, 3) uint8 -> H.264 mp4 bytes (yuv420p; crf 0 is lossless in luma)."""
    t, h, w, _ = frames.shape
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.codec_context.thread_count = 1
        stream.options = {"crf": str(cfg.crf), "preset": cfg.preset}
        for i in range(t):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frames[i], format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()


def decode_mp4(data: bytes) -> np.ndarray:
    """mp4 bytes -> (T, H, W, 3) uint8: what a reader does with a sample's `mp4`."""
    with av.open(io.BytesIO(data)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


class WebDatasetWriter:
    """Clip by clip: `add(clip_row, frame_rows)`; `close()` returns the shard paths and the
    per-frame index rows."""

    def __init__(self, folder: Path, shard: ShardConfig, cfg: WebDatasetConfig) -> None:
        self.folder, self.shard, self.cfg = folder, shard, cfg
        folder.mkdir(parents=True, exist_ok=True)
        self.tars: dict[str, tarfile.TarFile] = {}
        self.count: dict[str, tuple[int, int, int]] = {}  # split -> (shard no, clips, bytes)
        self.paths: list[Path] = []
        self.index: list[dict] = []

    def _tar(self, split: str, size: int) -> tuple[tarfile.TarFile, str]:
        n, clips, nbytes = self.count.get(split, (0, 0, 0))
        full = (self.shard.max_rows and clips >= self.shard.max_rows) or (
            self.shard.max_bytes and nbytes and nbytes + size > self.shard.max_bytes
        )
        if split in self.tars and full:
            self.tars.pop(split).close()
            n, clips, nbytes = n + 1, 0, 0
        if split not in self.tars:
            path = self.folder / f"{split}-{n:06d}.tar"
            self.tars[split] = tarfile.open(path, "w", format=tarfile.USTAR_FORMAT)
            self.paths.append(path)
        self.count[split] = (n, clips + 1, nbytes + size)
        return self.tars[split], f"{split}-{n:06d}.tar"

    def add(self, clip: dict, frames: list[dict]) -> None:
        frames = sorted(frames, key=lambda r: r["frame_index"])
        pixels = np.stack(
            [np.asarray(Image.open(io.BytesIO(f["image"]["bytes"])).convert("RGB")) for f in frames]
        )  # (T, H, W, 3)
        mp4 = encode_mp4(pixels, float(clip["fps"] or 10.0), self.cfg)
        labels = {k: clip.get(k) for k in CLIP_KEYS}
        labels["frames"] = [
            {
                "frame_id": f["frame_id"],
                "frame_index": f["frame_index"],
                "timestamp_s": f["timestamp_s"],
                "boxes": f["boxes"],
            }
            for f in frames
        ]
        tar, shard = self._tar(clip["split"], len(mp4))
        key = clip["clip_id"]
        _add(tar, f"{key}.mp4", mp4)
        _add(tar, f"{key}.json", json.dumps(labels, sort_keys=True).encode())
        for f in frames:
            self.index.append(
                {
                    "clip_id": key,
                    "shard": shard,
                    "split": clip["split"],
                    "frame_index": f["frame_index"],
                    "timestamp_s": f["timestamp_s"],
                    "boxes": f["boxes"],
                    "variation": clip["variation"],
                    "weather": clip["weather"],
                    "time_of_day": clip["time_of_day"],
                    "scenario": clip.get("scenario"),
                }
            )

    def close(self) -> tuple[list[Path], list[dict]]:
        for tar in self.tars.values():
            tar.close()
        self.tars.clear()
        return self.paths, self.index


def write_index(rows: list[dict], path: Path, box_type) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [
            ("clip_id", pa.string()),
            ("shard", pa.string()),
            ("split", pa.string()),
            ("frame_index", pa.int32()),
            ("timestamp_s", pa.float64()),
            ("boxes", pa.list_(box_type)),
            ("variation", pa.string()),
            ("weather", pa.string()),
            ("time_of_day", pa.string()),
            ("scenario", pa.string()),
        ]
    )
    rows = sorted(rows, key=lambda r: (r["split"], r["clip_id"], r["frame_index"]))
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp, compression="zstd")
    os.replace(tmp, path)
    return path
