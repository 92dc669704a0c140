"""A contact sheet: one scene, one frame, under every weather x time of day, plus ground truth.

Rows are weathers, columns times of day, each tile captioned; a last row shows the semantic map,
depth and instances with their 2D boxes (shared by every tile: paired twins).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from amplify.conditions import TIMES_OF_DAY, WEATHERS, all_conditions
from amplify.synth.classes import PALETTE, SKY_DEPTH
from amplify.synth.corpus import SynthConfig, scene_seed
from amplify.synth.render import RenderedClip, render_twins
from amplify.synth.scene import sample_scene

CAPTION_PX = 14


def contact_sheet(
    seed: int | SynthConfig = 0,
    out_png: str | Path = "synth_contact_sheet.png",
    frame: int | None = None,
    width: int = 256,
    height: int = 128,
    fps: float = 10.0,
    intensity: float = 0.8,
    gt_row: bool = True,
    scale: int = 2,
) -> Path:
    """Render scene `seed` (or scene 0 of a SynthConfig's corpus) and write the sheet as a PNG.

    `frame` defaults to the middle of a `SynthConfig.frames`-long clip (frame 16 otherwise).
    """
    num = 33
    if isinstance(seed, SynthConfig):
        cfg = seed
        width, height, fps, intensity, num = (
            cfg.width,
            cfg.height,
            cfg.fps,
            cfg.intensity,
            cfg.frames,
        )
        seed = scene_seed(cfg.seed, 0)
    frame = num // 2 if frame is None else int(frame)
    scene = sample_scene(int(seed), duration_s=max(num, frame + 1) / fps)
    clips = render_twins(
        scene, all_conditions(WEATHERS, TIMES_OF_DAY, intensity), frame + 1, width, height, fps
    )
    tiles = [(_caption(c.condition.name + f" {intensity:.1f}"), c.rgb[frame]) for c in clips]
    if gt_row:
        tiles += _gt_tiles(clips[0], frame)
    cols = len(TIMES_OF_DAY)
    rows = (len(tiles) + cols - 1) // cols
    tw, th = width * scale, height * scale + CAPTION_PX
    sheet = Image.new("RGB", (cols * tw, rows * th), (20, 20, 20))
    draw = ImageDraw.Draw(sheet)
    for k, (text, img) in enumerate(tiles):
        r, c = divmod(k, cols)
        tile = Image.fromarray(img).resize((width * scale, height * scale), Image.NEAREST)
        sheet.paste(tile, (c * tw, r * th + CAPTION_PX))
        draw.text((c * tw + 4, r * th + 1), text, fill=(235, 235, 235))
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out_png)
    return out_png


def _caption(name: str) -> str:
    return name.replace("_", " / ", 1)


def _gt_tiles(clip: RenderedClip, frame: int) -> list[tuple[str, np.ndarray]]:
    sem = np.array(PALETTE, np.uint8)[clip.semantic[frame]]  # (H, W, 3)
    d = clip.depth[frame]
    logd = np.log(np.clip(d, 1.0, SKY_DEPTH)) / np.log(SKY_DEPTH)  # 0 near .. 1 sky
    depth = np.stack([1 - logd, (1 - logd) ** 2, 0.3 + 0.7 * logd * (d < SKY_DEPTH)], -1) * 255
    inst = clip.instance[frame]
    hue = (inst.astype(np.int64) * 2654435761) % (1 << 24)
    ins = np.stack([(hue >> 16) & 255, (hue >> 8) & 255, hue & 255], -1).astype(np.uint8)
    ins[inst == 0] = clip.rgb[frame][inst == 0] // 3
    img = Image.fromarray(ins)
    draw = ImageDraw.Draw(img)
    for b in clip.labels.frames[frame]:
        draw.rectangle((b.x0, b.y0, b.x1 - 1, b.y1 - 1), outline=(255, 255, 0))
    return [
        ("GT semantic", sem),
        ("GT depth (log)", depth.astype(np.uint8)),
        ("GT instances + 2D boxes", np.asarray(img)),
    ]
