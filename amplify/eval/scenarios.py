"""`amplify eval scenarios`: scenario edits measured against ground truth twins, per template.

For each held-out synthetic scene (seeds `seed`, `seed + 1`, ... never trained on) and each
template, the scene is edited in 3D (amplify.scenarios), the source is rendered and the twin is
rendered with the event in it, under one of `conditions` (cycled). Then, for the painter (the
model), the copy-paste ceiling (the twin's pixels pasted inside the edit region) and the flat-box
floor (each inserted agent's box filled with one colour):
- `box_ssim`, `box_psnr`: inside the edited agents' boxes (inserted ones; the removed ones' for
  `remove_agent`), against the twin; `box_temporal_error`: inside them, how far the output's
  frame-to-frame change differs from the twin's (luma 0..255; flicker of a per-frame painter,
  or motion it misses); `frame_ssim`, `frame_psnr`: the whole frame;
- `outside_blur_ssim`: structure outside the edit region against the source;
- `recall`: the agent detector (amplify/eval/detector.py, trained on synthetic renders) finds
  the inserted agent where the label says (IoU >= 0.5, same family: vehicle, pedestrian, cyclist,
  animal, debris), over boxes at least `min_box_px` tall; `removed_found`: share of removed
  agents' boxes it still finds (false positives where an agent was removed).
On real clips (`real=DIR`; no twins): the detector's recall on the inserted agents, and a contact
sheet. Progress lines, Markdown tables, then one JSON line last; `out_json=` writes it too.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from amplify.conditions import SCENARIOS, Condition, parse_scenario, scenario_id
from amplify.errors import ConfigError
from amplify.eval import metrics as M

METHODS = ("model", "copy_paste", "flat_box")
FAMILY = {"car": "vehicle", "van": "vehicle", "truck": "vehicle"}


def events() -> list[str]:
    """The library's rare-event templates (kind "event"), in library order."""
    from amplify.scenarios.library import TEMPLATES

    return [name for name, t in TEMPLATES.items() if t.kind == "event"]


@dataclass(frozen=True)
class ScenarioEvalConfig:
    scenes: int = 4  # held-out scenes per template
    seed: int = 20_000  # first held-out scene seed (training uses other ranges)
    templates: list[str] = field(default_factory=lambda: list(SCENARIOS))
    conditions: list[str] = field(
        default_factory=lambda: ["clear_day", "clear_night", "rain_day", "fog_day", "clear_dusk"]
    )
    intensity: float = 0.7
    frames: int = 17
    width: int = 256
    height: int = 128
    fps: float = 8.0
    painter: str = "painter"
    detector: str = "agent-det"
    min_box_px: int = 8  # boxes shorter than this are not counted for recall (below resolution)
    real: str = ""  # a folder of real clips: inserted agents there, detector recall + sheet
    real_clips: int = 2
    real_templates: list[str] = field(default_factory=events)
    sheet: str = ""  # contact sheet (.png/.jpg): source | twin | model | flat box per template
    real_sheet: str = ""
    out_json: str = ""
    threads: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "templates", [parse_scenario(t) for t in self.templates])
        object.__setattr__(self, "real_templates", [parse_scenario(t) for t in self.real_templates])
        for c in self.conditions:
            Condition.parse(c, key="conditions")
        if self.scenes < 1:
            raise ConfigError("scenes", self.scenes, "must be >= 1")
        if (self.frames - 1) % 4 or self.width % 8 or self.height % 8:
            raise ConfigError("frames", self.frames, "need frames = 1 + 4k, width/height % 8 == 0")


def family(category: str) -> str:
    return FAMILY.get(category, category)


def box_mask(labels, ids, T: int, H: int, W: int, generated: bool | None = None) -> np.ndarray:
    """(T, H, W) bool: the boxes of `ids` (or of every `is_generated` box when ids is None)."""
    out = np.zeros((T, H, W), bool)
    for t, boxes in enumerate(labels.frames[:T]):
        for b in boxes:
            if (ids is None and b.is_generated) or (ids is not None and b.track_id in ids):
                x0, y0 = max(0, int(b.x0)), max(0, int(b.y0))
                out[t, y0 : int(math.ceil(b.y1)), x0 : int(math.ceil(b.x1))] = True
    return out


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def found(dets: list, box, category: str, thr: float = 0.5) -> bool:
    """Whether a detection of the same family overlaps `box` (x0, y0, x1, y1) by IoU >= thr."""
    fam = family(category)
    return any(family(d[0]) == fam and iou(d[2:6], box) >= thr for d in dets)


def detector_hits(detector, frames: np.ndarray, boxes_per_frame: list[list], min_px: int) -> dict:
    """Per family: [found, total] over the given boxes (Box objects) at least `min_px` tall."""
    from amplify.eval.detector import detect

    dets = detect(detector, frames)
    out: dict[str, list[int]] = {}
    for t, boxes in enumerate(boxes_per_frame):
        for b in boxes:
            if b.y1 - b.y0 < min_px:
                continue
            c = out.setdefault(family(b.category), [0, 0])
            c[0] += int(found(dets[t], (b.x0, b.y0, b.x1, b.y1), b.category))
            c[1] += 1
    return out


def _xyxy(b) -> tuple[float, float, float, float]:
    return (b.x0, b.y0, b.x1, b.y1)


def _add(total: dict, part: dict) -> None:
    for k, (f, n) in part.items():
        t = total.setdefault(k, [0, 0])
        t[0] += f
        t[1] += n


def _rate(counts: dict) -> float | None:
    f = sum(v[0] for v in counts.values())
    n = sum(v[1] for v in counts.values())
    return f / n if n else None


def score_sample(src, twin, outputs: dict, maps, edit, world, detector, min_px: int) -> dict:
    """Every metric of one edited window (module docstring) for each method in `outputs`."""
    T, H, W = src.shape[:3]
    inserted = box_mask(maps.labels, None, T, H, W)
    gone = edit.remove - edit.new_ids
    in_box = inserted if inserted.any() else box_mask(world.labels, gone, T, H, W)
    region = maps.region
    gen_boxes = [[b for b in boxes if b.is_generated] for boxes in maps.labels.frames]
    # Removed agents' boxes, except where an inserted agent now stands on the same spot (a lead
    # car put where a cleared one was): a detection there is the new agent, not a leftover.
    removed_boxes = [
        [b for b in boxes if b.track_id in gone
         and not any(iou(_xyxy(b), _xyxy(g)) >= 0.3 for g in gen_boxes[t])]
        for t, boxes in enumerate(world.labels.frames)
    ]  # fmt: skip
    row: dict[str, Any] = {}
    for name, out in outputs.items():
        outside_o = np.where(region[..., None], src, out)
        r = {
            "box_ssim": M.masked_ssim(out, twin, in_box),
            "box_psnr": M.masked_psnr(out, twin, in_box),
            "box_temporal_error": M.masked_temporal_error(out, twin, in_box),
            "frame_ssim": M.ssim(out, twin),
            "frame_psnr": M.psnr(out, twin),
            "outside_blur_ssim": M.blur_ssim(outside_o, src),
        }
        if detector is not None:
            r["hits"] = detector_hits(detector, out, gen_boxes, min_px)
            r["removed_hits"] = detector_hits(detector, out, removed_boxes, min_px)
        row[name] = r
    return row


def evaluate_scenarios(
    cfg: ScenarioEvalConfig, painter=None, detector=None, progress: Callable[[str], None] = print
) -> dict[str, Any]:
    import torch

    from amplify.eval.detector import load_detector
    from amplify.scenarios.edit import NothingToEdit, render_edit
    from amplify.scenarios.library import sample_spec, template
    from amplify.scenarios.world import World
    from amplify.synth.raster import rasterize_clip
    from amplify.synth.scene import sample_scene
    from amplify.synth.shade import shade_clip
    from amplify.wfm.painter import copy_paste, flat_box, load_painter, paint

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    t_start = time.perf_counter()
    painter = painter if painter is not None else load_painter(cfg.painter)
    if detector is None and cfg.detector:
        detector = load_detector(cfg.detector)
    T, W, H, fps = cfg.frames, cfg.width, cfg.height, cfg.fps
    conds = [Condition.parse(c, cfg.intensity) for c in cfg.conditions]
    per: dict[str, dict[str, list]] = {}
    hits: dict[str, dict[str, dict]] = {}
    gt_hits: dict[str, dict] = {}
    skipped: dict[str, int] = {}
    sheet: list[tuple[str, list[tuple[str, np.ndarray]]]] = []
    k = 0
    for i in range(cfg.scenes):
        seed = cfg.seed + i
        scene = sample_scene(seed, duration_s=T / fps + 1.0)
        world = World.from_scene(scene, T, W, H, fps)
        g_src = rasterize_clip(scene, T, W, H, fps)
        sources: dict[str, np.ndarray] = {}
        for name in cfg.templates:
            cond = conds[k % len(conds)]
            k += 1
            try:
                edit = template(name).build(sample_spec(name, seed).params, world)
            except NothingToEdit:
                skipped[name] = skipped.get(name, 0) + 1
                continue
            maps = render_edit(world, edit)
            if cond.name not in sources:
                sources[cond.name] = shade_clip(g_src, cond, scene.seed)
            src = sources[cond.name]
            twin = shade_clip(maps.gbuffer, cond, scene.seed)
            outs = {
                "model": paint(painter, src, maps, scenario_id(name)),
                "copy_paste": copy_paste(src, twin, maps),
                "flat_box": flat_box(src, twin, maps),
            }
            row = score_sample(src, twin, outs, maps, edit, world, detector, cfg.min_box_px)
            if detector is not None:
                gen = [[b for b in f if b.is_generated] for f in maps.labels.frames]
                _add(
                    gt_hits.setdefault(name, {}), detector_hits(detector, twin, gen, cfg.min_box_px)
                )
            for m, r in row.items():
                per.setdefault(name, {}).setdefault(m, []).append(r)
                if "hits" in r:
                    h = hits.setdefault(name, {}).setdefault(m, {"hits": {}, "removed_hits": {}})
                    _add(h["hits"], r["hits"])
                    _add(h["removed_hits"], r["removed_hits"])
            if i == 0 and cfg.sheet:
                t = T // 2
                sheet.append((f"{name} ({cond.name})", [
                    ("source", src[t]), ("twin", _draw(twin[t], maps.labels.frames[t])),
                    ("model", _draw(outs["model"][t], maps.labels.frames[t])),
                    ("flat box", outs["flat_box"][t])]))  # fmt: skip
            progress(f"eval scenarios: scene {i + 1}/{cfg.scenes} {name} ({cond.name}): box SSIM "
                     f"model {row['model']['box_ssim']:.3f} / flat {row['flat_box']['box_ssim']:.3f}, "
                     f"{time.perf_counter() - t_start:.0f} s")  # fmt: skip

    templates: dict[str, Any] = {}
    for name, methods in per.items():
        templates[name] = {"samples": len(methods["model"]), "skipped": skipped.get(name, 0)}
        for m, rows in methods.items():
            agg = {
                key: _nanmean([r[key] for r in rows])
                for key in (
                    "box_ssim",
                    "box_psnr",
                    "box_temporal_error",
                    "frame_ssim",
                    "frame_psnr",
                    "outside_blur_ssim",
                )  # fmt: skip
            }
            if name in hits and m in hits[name]:
                h = hits[name][m]
                agg["recall"] = _rate(h["hits"])
                agg["recall_by_family"] = {f: v[0] / v[1] for f, v in h["hits"].items() if v[1]}
                agg["boxes"] = sum(v[1] for v in h["hits"].values())
                agg["removed_found"] = _rate(h["removed_hits"])
            templates[name][m] = agg
        if name in gt_hits:
            templates[name]["twin_recall"] = _rate(gt_hits[name])
    families: dict[str, dict] = {}
    for name in hits:
        for m, h in hits[name].items():
            _add(families.setdefault(m, {}), h["hits"])
    for name in gt_hits:  # the detector on the ground-truth twins: what it can find at all
        _add(families.setdefault("twin", {}), gt_hits[name])
    result: dict[str, Any] = {
        "templates": templates,
        "recall_by_family": {
            m: {f: {"recall": v[0] / v[1], "boxes": v[1]} for f, v in fam.items() if v[1]}
            for m, fam in families.items()
        },
        "config": asdict(cfg),
        "painter": getattr(painter, "info", {}) or {"name": cfg.painter},
        "detector": {"name": cfg.detector},
        "seconds": time.perf_counter() - t_start,
    }
    if cfg.real:
        result["real"] = _evaluate_real(cfg, painter, detector, progress)
    if cfg.sheet and sheet:
        from amplify.wfm.evaluate import write_sheet

        write_sheet(sheet, cfg.sheet)
    return M.emit(result, markdown, cfg.out_json, progress)


def _evaluate_real(cfg: ScenarioEvalConfig, painter, detector, progress) -> dict[str, Any]:
    """Inserted agents on real clips (ground-plane world, no twins): detector recall, sheet."""
    from amplify.errors import InputError
    from amplify.io.ingest import VIDEO_EXTENSIONS, IngestConfig, read_windows
    from amplify.scenarios.edit import NothingToEdit, render_edit
    from amplify.scenarios.library import sample_spec, template
    from amplify.scenarios.world import World
    from amplify.wfm.painter import paint

    clips = sorted(p for p in Path(cfg.real).rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS)
    clips = clips[: cfg.real_clips]
    ing = IngestConfig(fps=cfg.fps, width=cfg.width, height=cfg.height, window=cfg.frames,
                       stride=cfg.frames, max_windows=1, short_window_min=min(5, cfg.frames))  # fmt: skip
    counts: dict[str, dict] = {}
    sheet: list[tuple[str, list[tuple[str, np.ndarray]]]] = []
    for ci, clip in enumerate(clips):
        try:
            (w,) = read_windows(clip, ing)[:1]
        except (InputError, ValueError) as e:
            progress(f"eval scenarios: real {clip.name}: {e}")
            continue
        frames = w.frames
        T, H, W = frames.shape[:3]
        world = World.from_clip(T, W, H, cfg.fps)
        tiles = [("source", frames[T // 2])]
        for j, name in enumerate(cfg.real_templates):
            try:
                edit = template(name).build(
                    sample_spec(name, cfg.seed + ci * 100 + j).params, world
                )
            except NothingToEdit:
                continue
            maps = render_edit(world, edit)
            out = paint(painter, frames, maps, scenario_id(name))
            if detector is not None:
                gen = [[b for b in f if b.is_generated] for f in maps.labels.frames]
                _add(counts.setdefault(name, {}), detector_hits(detector, out, gen, cfg.min_box_px))
            tiles.append((name, _draw(out[T // 2], maps.labels.frames[T // 2])))
        sheet.append((clip.name[:22], tiles))
        progress(f"eval scenarios: real clip {ci + 1}/{len(clips)} {clip.name}")
    if cfg.real_sheet and sheet:
        from amplify.wfm.evaluate import write_sheet

        write_sheet(sheet, cfg.real_sheet)
    return {
        "clips": [c.name for c in clips],
        "recall": {n: _rate(c) for n, c in counts.items()},
        "boxes": {n: sum(v[1] for v in c.values()) for n, c in counts.items()},
    }


def _draw(img: np.ndarray, boxes) -> np.ndarray:
    """A copy of `img` with inserted boxes in magenta, the others in yellow."""
    from PIL import Image, ImageDraw

    pil = Image.fromarray(np.ascontiguousarray(img))
    d = ImageDraw.Draw(pil)
    for b in boxes:
        colour = (255, 0, 255) if b.is_generated else (255, 230, 0)
        d.rectangle([b.x0, b.y0, b.x1 - 1, b.y1 - 1], outline=colour)
    return np.asarray(pil)


def _nanmean(values: list[float]) -> float | None:
    v = [x for x in values if x is not None and not math.isnan(x) and not math.isinf(x)]
    return float(np.mean(v)) if v else None


def markdown(result: dict[str, Any]) -> str:
    """The per-template table (docs/EVAL.md)."""

    def f(x, nd=3):
        return "-" if x is None else f"{x:.{nd}f}"

    lines = [
        "| template | n | box SSIM model / copy-paste / flat box | box PSNR model / flat box "
        "| box temporal error model / flat box | outside blur SSIM "
        "| detector recall model / twin / flat box | removed still found |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, t in result["templates"].items():
        m, c, b = t["model"], t["copy_paste"], t["flat_box"]
        lines.append(
            f"| {name} | {t['samples']} | {f(m['box_ssim'])} / {f(c['box_ssim'])} / "
            f"{f(b['box_ssim'])} | {f(m['box_psnr'], 1)} / {f(b['box_psnr'], 1)} | "
            f"{f(m.get('box_temporal_error'), 1)} / {f(b.get('box_temporal_error'), 1)} | "
            f"{f(m['outside_blur_ssim'])} | {f(m.get('recall'), 2)} / {f(t.get('twin_recall'), 2)}"
            f" / {f(b.get('recall'), 2)} | {f(m.get('removed_found'), 2)} |"
        )
    for who in ("model", "twin", "flat_box"):
        fam = result.get("recall_by_family", {}).get(who, {})
        if fam:
            lines.append("")
            lines.append(f"Detector recall on inserted agents ({who}): " + ", ".join(
                f"{k} {v['recall']:.2f} ({v['boxes']} boxes)" for k, v in sorted(fam.items())))  # fmt: skip
    if "real" in result:
        r = result["real"]
        lines.append("")
        lines.append("Real clips " + ", ".join(r["clips"]) + ": detector recall on inserted agents: "
                     + ", ".join(f"{k} {f(v, 2)} ({r['boxes'][k]})" for k, v in r["recall"].items()))  # fmt: skip
    return "\n".join(lines)


def run(cfg: ScenarioEvalConfig) -> int:
    return 0 if evaluate_scenarios(cfg)["templates"] else 1
