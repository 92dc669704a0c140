"""Visual report of a dataset: a contact sheet with one row per source window that has
variations (source, then each variation, middle frame, boxes drawn), read from the Parquet."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageDraw

from amplify.dataset.reader import read_table

CAPTION_H = 14


def variations_sheet(dataset: str | Path, out_png: str | Path, max_rows: int = 8) -> Path | None:
    """Write the sheet; None when the dataset holds no variation yet."""
    clips = read_table(
        dataset, "clips", ["clip_id", "parent_clip_id", "variation", "source_path", "seed"]
    )
    rows = clips.to_pylist()
    children: dict[str, list[dict]] = {}
    for c in rows:
        if c["parent_clip_id"] is not None and c["seed"] == 0:
            children.setdefault(c["parent_clip_id"], []).append(c)
    if not children:
        return None
    parents = {c["clip_id"]: c for c in rows if c["clip_id"] in children}
    order = sorted(parents, key=lambda k: parents[k]["source_path"])[:max_rows]
    variations = sorted({c["variation"] for kids in children.values() for c in kids})
    wanted = set(order) | {c["clip_id"] for k in order for c in children[k]}
    frames = read_table(dataset, "frames", ["clip_id", "frame_index", "image", "boxes"]).to_pylist()
    by_clip: dict[str, list[dict]] = {}
    for f in frames:
        if f["clip_id"] in wanted:
            by_clip.setdefault(f["clip_id"], []).append(f)

    def tile(clip_id: str | None) -> Image.Image | None:
        fs = sorted(by_clip.get(clip_id or "", []), key=lambda f: f["frame_index"])
        if not fs:
            return None
        f = fs[len(fs) // 2]
        img = Image.open(io.BytesIO(f["image"]["bytes"])).convert("RGB")
        draw = ImageDraw.Draw(img)
        for b in f["boxes"]:  # agents a scenario placed in magenta, the source's in yellow
            colour = (255, 0, 255) if b.get("is_generated") else (255, 230, 0)
            draw.rectangle([b["x0"], b["y0"], b["x1"] - 1, b["y1"] - 1], outline=colour)
        return img

    first = tile(order[0])
    assert first is not None
    w, h = first.size
    cols = ["source", *variations]
    sheet = Image.new("RGB", (w * len(cols), (h + CAPTION_H) * len(order)), (20, 20, 20))
    draw = ImageDraw.Draw(sheet)
    for r, parent in enumerate(order):
        kids = {c["variation"]: c["clip_id"] for c in children[parent]}
        ids = [parent, *[kids.get(v) for v in variations]]
        y = r * (h + CAPTION_H)
        for c, (name, cid) in enumerate(zip(cols, ids, strict=True)):
            img = tile(cid)
            label = f"{Path(parents[parent]['source_path']).name} | {name}" if c == 0 else name
            draw.text((c * w + 3, y + 1), label, fill=(230, 230, 230))
            if img is not None:
                sheet.paste(img, (c * w, y + CAPTION_H))
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out_png)
    return out_png
