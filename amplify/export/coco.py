"""COCO-style detection JSON per split (`coco/<split>.json`), with each frame's image file beside
it (`coco/<split>/<frame_id>.png`) unless `coco.images=false`.

Category ids are 1.. in the sorted order of every category in the export (0 stays background),
the same in every split; `bbox` is [x, y, width, height] in pixels. Each image also carries its
frame id, clip id and condition, so a detector can be scored per condition.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from amplify.export.config import CocoConfig


def image_ext(data: bytes) -> str:
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:3] == b"\xff\xd8\xff":
        return "jpg"
    return "bin"


class CocoWriter:
    def __init__(self, folder: Path, cfg: CocoConfig) -> None:
        self.folder, self.cfg = folder, cfg
        folder.mkdir(parents=True, exist_ok=True)
        self.images: dict[str, list[dict]] = {}
        self.boxes: dict[str, list[tuple[int, dict]]] = {}  # split -> (image id, box)

    def add(self, split: str, frame: dict, clip: dict) -> None:
        images = self.images.setdefault(split, [])
        image_id = len(images) + 1
        data = frame["image"]["bytes"]
        name = f"{split}/{frame['frame_id']}.{image_ext(data)}"
        if self.cfg.images:
            path = self.folder / name
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(data)
        images.append(
            {
                "id": image_id,
                "file_name": name,
                "width": frame["width"],
                "height": frame["height"],
                "frame_id": frame["frame_id"],
                "clip_id": frame["clip_id"],
                "frame_index": frame["frame_index"],
                "variation": clip["variation"],
                "weather": clip["weather"],
                "time_of_day": clip["time_of_day"],
                "scenario": clip.get("scenario"),
            }
        )
        self.boxes.setdefault(split, []).extend((image_id, b) for b in frame["boxes"] or [])

    def close(self) -> list[Path]:
        names = sorted({b["category"] for boxes in self.boxes.values() for _, b in boxes})
        categories = [{"id": i + 1, "name": n} for i, n in enumerate(names)]
        cat_id = {n: i + 1 for i, n in enumerate(names)}
        paths = []
        for split, images in sorted(self.images.items()):
            annotations = []
            for image_id, b in self.boxes.get(split, []):
                w, h = float(b["x1"] - b["x0"]), float(b["y1"] - b["y0"])
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": image_id,
                        "category_id": cat_id[b["category"]],
                        "bbox": [float(b["x0"]), float(b["y0"]), w, h],
                        "area": w * h,
                        "iscrowd": 0,
                        "track_id": b["track_id"],
                        "is_generated": bool(b.get("is_generated")),
                    }
                )
            doc = {
                "info": {"description": f"amplify export, split {split}"},
                "images": images,
                "annotations": annotations,
                "categories": categories,
            }
            path = self.folder / f"{split}.json"
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(json.dumps(doc))
            os.replace(tmp, path)
            paths.append(path)
        return paths
