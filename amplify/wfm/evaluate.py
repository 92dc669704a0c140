"""World-model evaluation (`amplify eval wfm`): generated variations scored against their
ground-truth twins on held-out synthetic scenes, beside two baselines.

For each held-out scene (scene seeds `scene_seed(cfg.seed, i)`, never in a training corpus) the
renderer draws the source condition (clear/day by default) and every target condition of the same
geometry and motion: the targets are the ground-truth twins. Three methods turn the source into
each target: the world model (`Generator`), `source` (the frames unchanged) and `augment` (the
classical albumentations baseline of `amplify.eval.baselines`). Each output is scored:
- against the twin: PSNR, SSIM, Frechet distance of classifier features (per condition, frames
  pooled over scenes), flicker ratio (flicker of the output / flicker of the twin);
- against the source (structure kept): edge F1 and blurred SSIM;
- by the condition classifier: share of clips whose weather, time of day, and both, are the ones
  requested. The same scores of the twin itself are reported as `truth` (the classifier's accuracy
  on real renders; the edge F1 and blurred SSIM a perfect model would get: fog hides edges).
  When the generator exposes its `tokenizer`, `recon` (the twin encoded and decoded by it) is
  scored like a method: the ceiling of any model that decodes through that tokenizer.
  When the generator restores detail after decoding (`refine` > 0, `amplify.wfm.refine`), `raw`
  is its output before that step, scored like a method.
Seconds per generated clip are measured around `Generator.generate`. With `cfg.real` (a folder
of clips) the first window of each is varied too and scored without a twin (structure, flicker
vs the source, classifier). `cfg.sheet` writes a contact sheet. The last line printed is one JSON
object with everything.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from amplify.conditions import TIMES_OF_DAY, WEATHERS, Condition
from amplify.errors import ConfigError
from amplify.eval import metrics as M

TARGETS: tuple[str, ...] = ("rain_day", "fog_day", "snow_day", "clear_dusk", "clear_night")
FPS = 10.0
PSNR_CAP = 100.0  # dB; identical clips (inf) count as this in means
METHODS: tuple[str, ...] = ("model", "source", "augment")
NO_MODEL = "none"  # checkpoint=none: score the baselines and the classifier only


class ClipGenerator(Protocol):
    """What `evaluate` needs of `amplify.wfm.generate.Generator` (tests pass a stand-in)."""

    def generate(self, frames: np.ndarray, condition: Condition, seed: int = 0,
                 layout: np.ndarray | None = None, depth: np.ndarray | None = None, *,
                 source: Condition | None = None) -> np.ndarray: ...  # fmt: skip

    def generate_many(self, frames: np.ndarray, requests: list[tuple[Condition, int]], *,
                      source: Condition | None = None) -> list[np.ndarray]: ...  # fmt: skip


@dataclass(frozen=True)
class WFMEvalConfig:
    """`amplify eval wfm`: the world model scored against ground-truth twins on held-out
    synthetic scenes, beside the source and classical-augmentation baselines (`checkpoint=none`:
    baselines and classifier only). The last line printed is one JSON object."""

    checkpoint: str = "wfm-grade"
    tokenizer: str = "tok-small"
    scenes: int = 8
    seed: int = 10_000  # held-out scene seeds: never a training corpus seed
    frames: int = 17  # 1 + 4k (the tokenizer's causal grouping)
    width: int = 256
    height: int = 128
    steps: int = 12
    guidance: float = 2.0
    refine: float = 0.0  # the Generator's detail restoration (share of the short side; 0 = off)
    source_weather: str = "clear"
    source_time_of_day: str = "day"
    # tell the world model the source's condition (a model trained with `source_condition`
    # reads it; others ignore it); False: it judges the source by its look
    source_known: bool = False
    real: str = ""  # folder of real clips; when set they are varied and scored too (no twin)
    sheet: str = ""  # contact-sheet PNG to write
    out_json: str = ""  # also write the summary JSON here
    targets: tuple[str, ...] = field(default_factory=lambda: TARGETS)
    intensity: float = 0.7
    classifier: str = "cond-cls"  # name in checkpoints/classifier or a .safetensors path
    use_depth: bool = True  # pass the rendered depth to the generator (synthetic scenes)
    use_layout: bool = True  # pass the rasterised boxes to the generator
    # also score `recon`: the twin through the generator's tokenizer (encode + decode), the best
    # any world model decoding through that tokenizer can do
    tokenizer_ceiling: bool = True
    max_real: int = 4  # real clips scored (first window of each)
    sheet_scenes: int = 2  # synthetic scenes shown on the contact sheet
    threads: int = 0  # torch threads; 0 = leave torch's default

    def __post_init__(self) -> None:
        if isinstance(self.targets, str):
            object.__setattr__(self, "targets", (self.targets,))
        object.__setattr__(self, "targets", tuple(self.targets))
        for key in ("scenes", "frames", "steps"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(key, v, "must be a positive integer")
        for key in ("max_real", "sheet_scenes", "threads"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ConfigError(key, v, "must be a non-negative integer")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError("seed", self.seed, "must be a non-negative integer")
        if (self.frames - 1) % 4:
            raise ConfigError("frames", self.frames, "must be 1 + 4k (the tokenizer's grouping)")
        for key in ("width", "height"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 16 or v % 16:
                raise ConfigError(key, v, "must be a multiple of 16, at least 16")
        x = self.refine
        if isinstance(x, bool) or not isinstance(x, int | float) or not 0 <= x <= 1:
            raise ConfigError("refine", x, "must be a number in [0, 1]")
        g = self.guidance
        if isinstance(g, bool) or not isinstance(g, int | float) or not math.isfinite(g) or g < 0:
            raise ConfigError("guidance", g, "must be a finite number >= 0")
        if self.source_weather not in WEATHERS:
            raise ConfigError(
                "source_weather", self.source_weather, f"must be one of {list(WEATHERS)}"
            )
        if self.source_time_of_day not in TIMES_OF_DAY:
            raise ConfigError("source_time_of_day", self.source_time_of_day,
                              f"must be one of {list(TIMES_OF_DAY)}")  # fmt: skip
        x = self.intensity
        if isinstance(x, bool) or not isinstance(x, int | float) or not 0 <= x <= 1:
            raise ConfigError("intensity", x, "must be a number in [0, 1]")
        if not self.targets:
            raise ConfigError("targets", self.targets, "must name at least one condition")
        # Canonical names ("rain" is "rain_day"), so a duplicate is one however it is written.
        names = tuple(Condition.parse(t, key="targets").name for t in self.targets)
        object.__setattr__(self, "targets", names)
        if len(set(self.targets)) != len(self.targets):
            raise ConfigError("targets", self.targets, "has duplicates")
        source = f"{self.source_weather}_{self.source_time_of_day}"
        for t in self.targets:
            if t == source:
                raise ConfigError("targets", t, "is the source condition")
        if not self.checkpoint:
            raise ConfigError("checkpoint", self.checkpoint, "must name a world-model checkpoint")
        if self.real and not Path(self.real).is_dir():
            raise ConfigError("real", self.real, "is not a folder")


# --------------------------------------------------------------------------------------------
# Scoring one output


def _score(
    out: np.ndarray,
    cond: Condition,
    src_edges: np.ndarray,
    source: np.ndarray,
    reference: np.ndarray,
    twin: np.ndarray | None,
    cls: Any,
) -> tuple[dict, np.ndarray]:
    """Metrics of one output clip and its classifier features (T, D).

    `reference` is the clip flicker is compared with (the twin, or the source without one)."""
    from amplify.eval.classifier import classify_clip, clip_features

    c = classify_clip(cls, out)
    m = {
        "edge_f1": M.edge_prf_maps(src_edges, M.edge_maps(out))["f1"],
        "blur_ssim": M.blur_ssim(source, out),
        "flicker_ratio": M.flicker_ratio(out, reference),
        "flicker_diff": M.flicker(out) - M.flicker(reference),
        "cls_weather": float(c["weather"] == cond.weather),
        "cls_time_of_day": float(c["time_of_day"] == cond.time_of_day),
    }
    m["cls_acc"] = m["cls_weather"] * m["cls_time_of_day"]
    if twin is not None:
        m["psnr"] = min(M.psnr(out, twin), PSNR_CAP)
        m["ssim"] = M.ssim(out, twin)
    return m, clip_features(cls, out)


def reconstruct(tokenizer: Any, frames: np.ndarray) -> np.ndarray:
    """`frames` encoded and decoded by `tokenizer` (`.encode` / `.decode`).  # (T, H, W, 3) uint8"""
    import torch

    from amplify.tokenizer.data import to_tensor, to_uint8

    param = next(iter(tokenizer.parameters()), None) if hasattr(tokenizer, "parameters") else None
    dev = param.device if param is not None else torch.device("cpu")
    with torch.no_grad():
        x = to_tensor(frames).to(dev)  # (1, 3, T, H, W)
        return to_uint8(tokenizer.decode(tokenizer.encode(x)).cpu())


def check_output(gen: Any, source: np.ndarray) -> np.ndarray:
    gen = np.asarray(gen)
    if gen.shape != source.shape or gen.dtype != np.uint8:
        raise ValueError(f"generator returned {gen.shape} {gen.dtype}, want {source.shape} uint8")
    return gen


def _generate(
    generator: Any,
    source: np.ndarray,
    cond: Condition,
    seed: int,
    layout: Any,
    depth: Any,
    own: Condition | None = None,
) -> dict[str, np.ndarray]:
    """The model's output ("model") and, when the generator restores detail after decoding, the
    decoded frames before that step ("raw"): one sampling run gives both. `own`: the source's
    condition, told to the model when given."""
    from amplify.wfm.refine import restore_detail

    if _has_raw(generator):
        raw = check_output(generator.generate(source, cond, seed=seed, layout=layout,
                                               depth=depth, refine=False, source=own), source)  # fmt: skip
        return {"model": restore_detail(raw, source, generator.refine), "raw": raw}
    gen = generator.generate(source, cond, seed=seed, layout=layout, depth=depth, source=own)
    return {"model": check_output(gen, source)}


def _has_raw(generator: Any) -> bool:
    from amplify.wfm.refine import RefineConfig

    refine = getattr(generator, "refine", None)
    return isinstance(refine, RefineConfig) and refine.radius > 0


def _mean(rows: list[dict]) -> dict:
    keys = sorted({k for r in rows for k in r})
    out = {}
    for k in keys:
        vals = [r[k] for r in rows if k in r and math.isfinite(r[k])]
        out[k] = float(np.mean(vals)) if vals else float("nan")
    return out


def _frechet(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    x, y = np.concatenate(a), np.concatenate(b)
    return M.frechet_distance(x, y) if len(x) >= 2 and len(y) >= 2 else float("nan")


# --------------------------------------------------------------------------------------------
# The evaluation


def evaluate(
    cfg: WFMEvalConfig,
    generator: ClipGenerator | None = None,
    classifier: Any = None,
    progress: Callable[[str], None] = print,
) -> dict:
    """Score the world model of `cfg` (or `generator`) on held-out scenes; print and return the
    summary (the last line printed is its JSON)."""
    import torch

    from amplify.eval.baselines import augment
    from amplify.eval.classifier import (
        classifier_info,
        classify_clip,
        clip_features,
        load_classifier,
    )
    from amplify.synth.corpus import scene_seed
    from amplify.synth.render import render_twins
    from amplify.synth.scene import sample_scene
    from amplify.wfm.controls import layout_raster

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    t_start = time.perf_counter()
    cls = classifier if classifier is not None else load_classifier(cfg.classifier)
    if generator is None and cfg.checkpoint != NO_MODEL:
        from amplify.wfm.generate import Generator

        generator = Generator(checkpoint=cfg.checkpoint, tokenizer=cfg.tokenizer, device="cpu",
                              steps=cfg.steps, guidance=cfg.guidance,
                              refine=cfg.refine)  # fmt: skip
    source_cond = Condition(cfg.source_weather, cfg.source_time_of_day, float(cfg.intensity))
    targets = [Condition.parse(t, float(cfg.intensity)) for t in cfg.targets]
    T, H, W = cfg.frames, cfg.height, cfg.width
    methods = METHODS if generator is not None else METHODS[1:]  # checkpoint=none: baselines
    if _has_raw(generator):
        methods = (methods[0], "raw", *methods[1:])
    tok = getattr(generator, "tokenizer", None) if cfg.tokenizer_ceiling else None
    if tok is not None:
        methods = (*methods, "recon")

    rows: dict[str, dict[str, list[dict]]] = {t.name: {k: [] for k in (*methods, "truth")}
                                              for t in targets}  # fmt: skip
    feats: dict[str, dict[str, list[np.ndarray]]] = {t.name: {k: [] for k in (*methods, "truth")}
                                                     for t in targets}  # fmt: skip
    gen_seconds: list[float] = []
    source_cls: list[float] = []
    sheet_rows: list[tuple[str, list[tuple[str, np.ndarray]]]] = []
    for i in range(cfg.scenes):
        # 1. Render the source and its twins (one geometry pass).
        s = scene_seed(cfg.seed, i)
        scene = sample_scene(s, duration_s=T / FPS)
        clips = render_twins(scene, [source_cond, *targets], T, W, H, FPS)
        source = clips[0].rgb  # (T, H, W, 3)
        c = classify_clip(cls, source)
        source_cls.append(float(c["weather"] == source_cond.weather
                                and c["time_of_day"] == source_cond.time_of_day))  # fmt: skip
        layout = layout_raster(clips[0].labels, T, H, W) if cfg.use_layout else None
        depth = clips[0].depth if cfg.use_depth else None
        src_edges = M.edge_maps(source)
        shown = i < cfg.sheet_scenes
        shown_rows = [k for k in ("model", "raw", "truth", "augment") if k in rows[targets[0].name]]
        tiles = {k: [("source", source[T // 2])] for k in shown_rows}
        for cond, twin_clip in zip(targets, clips[1:], strict=True):
            twin = twin_clip.rgb
            # 2. Generate, and the baselines.
            outs = {"source": source, "augment": augment(source, cond, seed=i)}
            if generator is not None:
                t0 = time.perf_counter()
                told = source_cond if cfg.source_known else None
                outs.update(_generate(generator, source, cond, i, layout, depth, told))
                gen_seconds.append(time.perf_counter() - t0)
            if tok is not None:
                outs["recon"] = reconstruct(tok, twin)
            # 3. Score each against the twin and the source.
            for k, out in outs.items():
                m, f = _score(out, cond, src_edges, source, twin, twin, cls)
                rows[cond.name][k].append(m)
                feats[cond.name][k].append(f)
            m = _score(twin, cond, src_edges, source, twin, twin, cls)[0]
            rows[cond.name]["truth"].append({k: v for k, v in m.items()
                                              if k in ("edge_f1", "blur_ssim", "cls_weather",
                                                       "cls_time_of_day", "cls_acc")})  # fmt: skip
            feats[cond.name]["truth"].append(clip_features(cls, twin))
            if shown:
                for k, img in ({**outs, "truth": twin}).items():
                    if k in tiles:
                        tiles[k].append((cond.name, img[T // 2]))
        if shown:
            sheet_rows += [(f"scene {i} {k}", v) for k, v in tiles.items()]
        k = methods[0]
        acc = np.mean([r["cls_acc"] for t in targets for r in rows[t.name][k]])
        speed = f" ({np.mean(gen_seconds):.2f} s/clip)" if gen_seconds else ""
        progress(f"eval wfm: scene {i + 1}/{cfg.scenes} seed={s} {k} cls_acc {acc:.2f}{speed}")

    # 4. Aggregate: per condition (mean over scenes, Frechet over pooled frames), then overall.
    per_cond: dict[str, dict] = {}
    for cond in targets:
        d: dict[str, dict] = {}
        for k in (*methods, "truth"):
            d[k] = _mean(rows[cond.name][k])
            if k != "truth":
                d[k]["fd"] = _frechet(feats[cond.name][k], feats[cond.name]["truth"])
        d["clips"] = {"count": cfg.scenes}
        per_cond[cond.name] = d
    overall = {k: _mean([per_cond[c.name][k] for c in targets]) for k in (*methods, "truth")}
    result: dict[str, Any] = {
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()},
        "generator": {
            "checkpoint": cfg.checkpoint,
            "tokenizer": cfg.tokenizer,
            "checkpoint_sha256": str(getattr(generator, "checkpoint_sha256", "")),
            "seconds_per_clip": float(np.mean(gen_seconds)) if gen_seconds else None,
        },  # fmt: skip
        "classifier": classifier_info(cfg.classifier, classifier),
        "source_cls_acc": float(np.mean(source_cls)),
        "conditions": per_cond,
        "overall": overall,
    }

    # 5. Real clips: no twin; structure, flicker against the source, classifier.
    if cfg.real:
        real, real_rows = _evaluate_real(cfg, generator, cls, targets, progress)
        result["real"] = real
        sheet_rows += real_rows
    if cfg.sheet:
        result["sheet"] = str(write_sheet(sheet_rows, cfg.sheet))
    result["seconds"] = time.perf_counter() - t_start
    result = M.json_ready(result)
    progress(markdown(result))
    if cfg.out_json:
        Path(cfg.out_json).parent.mkdir(parents=True, exist_ok=True)
        Path(cfg.out_json).write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    print(json.dumps(result, sort_keys=True), flush=True)
    return result


def markdown(result: dict) -> str:
    """The summary as Markdown tables (per condition and method; real clips apart), as in
    docs/EVAL.md."""
    order = ("model", "raw", "recon", "source", "augment", "truth")

    def f(v: Any) -> str:
        return "-" if v is None else f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"

    def table(sections: list[tuple[str, dict]], keys: list[str]) -> list[str]:
        lines = ["| condition | method | " + " | ".join(keys) + " |",
                 "|---|---|" + "---|" * len(keys)]  # fmt: skip
        for name, d in sections:
            for m in (m for m in order if m in d):
                lines.append(f"| {name} | {m} | " + " | ".join(f(d[m].get(k)) for k in keys) + " |")
        return lines

    keys = ["psnr", "ssim", "cls_acc", "edge_f1", "blur_ssim", "fd", "flicker_ratio"]
    conds = [(c, d) for c, d in result["conditions"].items()]
    out = table([*conds, ("**overall**", result["overall"])], keys)
    real = result.get("real")
    if real and real.get("clips"):
        clips = ", ".join(f"{c['clip']} ({c['frames']} frames, classified {c['source_class']})"
                          for c in real["clips"])  # fmt: skip
        out += ["", f"Real clips, no twin: {clips}", ""]
        keys = ["cls_acc", "cls_weather", "cls_time_of_day", "edge_f1", "blur_ssim",
                "flicker_ratio"]  # fmt: skip
        out += table([*real["conditions"].items(), ("**overall**", real["overall"])], keys)
    return "\n".join(out)


def _evaluate_real(
    cfg: WFMEvalConfig,
    generator: ClipGenerator | None,
    cls: Any,
    targets: list[Condition],
    progress: Callable[[str], None],
) -> tuple[dict, list]:
    """Vary the first window of each real clip; score what needs no twin."""
    from amplify.errors import InputError
    from amplify.eval.baselines import augment
    from amplify.eval.classifier import classify_clip
    from amplify.io.ingest import IngestConfig, list_inputs, read_windows
    from amplify.wfm.controls import layout_raster

    ing = IngestConfig(fps=FPS, width=cfg.width, height=cfg.height, window=cfg.frames,
                       stride=cfg.frames, max_windows=1, short_window_min=min(5, cfg.frames))  # fmt: skip
    methods = ("model", "augment") if generator is not None else ("augment",)
    if _has_raw(generator):
        methods = ("model", "raw", "augment")
    rows: dict[str, dict[str, list[dict]]] = {t.name: {k: [] for k in methods}
                                              for t in targets}  # fmt: skip
    clips, errors, sheet = [], [], []
    for path in list_inputs(cfg.real):
        if len(clips) >= cfg.max_real:
            break
        try:
            windows = read_windows(path, ing)
        except InputError as e:
            errors.append({"clip": str(path), "error": type(e).__name__, "reason": e.reason})
            continue
        if not windows:
            errors.append({"clip": str(path), "error": "TooShortError", "reason": "no window"})
            continue
        w = windows[0]
        source = w.frames
        T = len(source)
        layout = layout_raster(w.labels, T, cfg.height, cfg.width) if (
            cfg.use_layout and w.labels is not None) else None  # fmt: skip
        src_edges = M.edge_maps(source)
        tiles = {k: [("source", source[T // 2])] for k in methods}
        for i, cond in enumerate(targets):
            outs = {"augment": augment(source, cond, seed=i)}
            if generator is not None:
                outs = {**_generate(generator, source, cond, i, layout, None), **outs}
            for k, out in outs.items():
                rows[cond.name][k].append(
                    _score(out, cond, src_edges, source, source, None, cls)[0]
                )
                tiles[k].append((cond.name, out[T // 2]))
        c = classify_clip(cls, source)
        clips.append({"clip": Path(path).name, "frames": T, "source_class": c["weather"] + "_"
                      + c["time_of_day"]})  # fmt: skip
        sheet += [(f"{Path(path).name} {k}", v) for k, v in tiles.items()]
        progress(f"eval wfm: real clip {Path(path).name} done")
    per_cond = {t.name: {k: _mean(v) for k, v in rows[t.name].items()} for t in targets}
    overall = {k: _mean([per_cond[t.name][k] for t in targets]) for k in methods}
    return {"clips": clips, "errors": errors, "conditions": per_cond, "overall": overall}, sheet


def write_sheet(rows: list[tuple[str, list[tuple[str, np.ndarray]]]], path: str | Path) -> Path:
    """A grid PNG: one row per (clip, method), one column per condition, captioned tiles."""
    from PIL import Image, ImageDraw

    cap = 14
    if not rows:
        raise ValueError("nothing to draw")
    h, w = rows[0][1][0][1].shape[:2]
    label_w = 150
    cols = max(len(r[1]) for r in rows)
    sheet = Image.new("RGB", (label_w + cols * w, len(rows) * (h + cap)), (20, 20, 20))
    draw = ImageDraw.Draw(sheet)
    for r, (label, tiles) in enumerate(rows):
        y = r * (h + cap)
        draw.text((4, y + cap + h // 2 - 6), label, fill=(235, 235, 235))
        for c, (name, img) in enumerate(tiles):
            tile = Image.fromarray(np.asarray(img, np.uint8))
            if tile.size != (w, h):
                tile = tile.resize((w, h), Image.BILINEAR)
            sheet.paste(tile, (label_w + c * w, y + cap))
            draw.text((label_w + c * w + 4, y + 1), name, fill=(235, 235, 235))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path
