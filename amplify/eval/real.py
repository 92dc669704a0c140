"""Real-footage evaluation (`amplify eval real`): the world model on real clips of known
condition, where no ground-truth twin exists.

`conditions` is a JSON file mapping each clip's path relative to `input` to its condition
(`{"city/rain.mp4": "rain_day", "frames_0042": "clear_night"}`; a clip is a video file or a
folder of frames, whatever `amplify.io.ingest.read_windows` reads). For each clip, its first
`max_windows` windows (`frames` frames at `width x height`, 10 fps) are scored:
1. identity: the world model asked for the clip's own condition, against the source (PSNR capped
   at `PSNR_CAP`, SSIM), beside the tokenizer's own encode-decode of the source (the ceiling of
   any model that decodes through it);
2. the condition classifier on the source, against the file (`classifier_acc_sources`);
3. per target condition, for `model` (`Generator.generate_many`) and `augment` (the classical baseline
   of `amplify.eval.baselines`): blurred SSIM and edge F1 against the source (structure kept),
   sharpness (variance of the luma Laplacian, output / source: detail kept), `cls_acc` (the
   classifier says the requested condition) and flicker ratio against the source.
Windows of a clip are averaged into one row per clip; the summary averages rows over clips. A clip
that cannot be decoded becomes an `errors` row and the run carries on. Printed: one progress line
per clip, per-clip and mean tables in Markdown, then one JSON line (also written to `out_json`).
`sheet` draws, per clip, the source (with the identity output and the tokenizer's
reconstruction), the model's variations and the augmentation's, middle frame of the first window.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from amplify.conditions import Condition
from amplify.errors import ConfigError, InputError, MissingFileError
from amplify.eval import metrics as M
from amplify.wfm.evaluate import (
    FPS,
    NO_MODEL,
    PSNR_CAP,
    TARGETS,
    ClipGenerator,
    check_output,
    reconstruct,
    write_sheet,
)

METHODS: tuple[str, ...] = ("model", "augment")
METRICS: tuple[str, ...] = ("blur_ssim", "edge_f1", "sharpness", "cls_acc", "flicker_ratio")
IDENTITY: tuple[str, ...] = ("identity_psnr", "identity_ssim", "tokenizer_psnr", "tokenizer_ssim")
# per clip only: how much fine detail identity and the tokenizer keep (output / source), the
# reference for the variations' `sharpness`
PER_CLIP: tuple[str, ...] = (*IDENTITY, "identity_sharpness", "tokenizer_sharpness")
SHEET_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass(frozen=True)
class RealEvalConfig:
    """`amplify eval real input=DIR conditions=FILE`: the world model on real clips of known
    condition (no twin): identity against the source beside the tokenizer's ceiling, the
    classifier on the sources, and per target condition structure, sharpness, classifier and
    flicker for the model and classical augmentation (`checkpoint=none`: augmentation and
    classifier only). The last line printed is one JSON object."""

    input: str = ""  # folder the clip paths of `conditions` are relative to
    conditions: str = ""  # JSON {clip path relative to input: "<weather>_<time_of_day>"}
    checkpoint: str = "wfm-grade"  # name in checkpoints/wfm, a path, or "none"
    tokenizer: str = "tok-small"
    classifier: str = "cond-cls"  # name in checkpoints/classifier or a .safetensors path
    targets: tuple[str, ...] = field(default_factory=lambda: TARGETS)
    intensity: float = 0.7
    seed: int = 0
    threads: int = 1  # torch threads; 0 = leave torch's default
    width: int = 256
    height: int = 128
    frames: int = 17  # 1 + 4k (the tokenizer's causal grouping)
    max_windows: int = 1  # windows scored per clip; 0 = every window
    # Tell the world model each clip's condition (from `conditions`) as the source's own; a
    # model trained with `source_condition` reads it, others ignore it. False: it judges the
    # clip by its look, as a job without known source conditions does.
    source_known: bool = False
    sheet: str = ""  # contact sheet to write (.png or .jpg)
    out_json: str = ""  # also write the summary JSON here

    def __post_init__(self) -> None:
        if isinstance(self.targets, str):
            object.__setattr__(self, "targets", (self.targets,))
        object.__setattr__(self, "targets", tuple(self.targets))
        # `input` and `conditions` have no default: `require_inputs` asks for them at run time,
        # so the config composes without them (`--help`, the CLI's config test).
        if self.input and not Path(self.input).is_dir():
            raise ConfigError("input", self.input, "is not a folder")
        if not self.checkpoint:
            raise ConfigError("checkpoint", self.checkpoint, "must name a world-model checkpoint")
        for key in ("seed", "threads", "max_windows"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ConfigError(key, v, "must be a non-negative integer")
        f = self.frames
        if isinstance(f, bool) or not isinstance(f, int) or f < 1 or (f - 1) % 4:
            raise ConfigError("frames", f, "must be 1 + 4k (the tokenizer's grouping)")
        for key in ("width", "height"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 16 or v % 16:
                raise ConfigError(key, v, "must be a multiple of 16, at least 16")
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
        if self.sheet and Path(self.sheet).suffix.lower() not in SHEET_SUFFIXES:
            raise ConfigError("sheet", self.sheet, f"must end in one of {SHEET_SUFFIXES}")


def require_inputs(cfg: RealEvalConfig) -> None:
    """Refuse a config without the clips folder or the conditions file."""
    if not cfg.input:
        raise ConfigError("input", cfg.input, "give the folder of clips: input=DIR")
    if not cfg.conditions:
        raise ConfigError("conditions", cfg.conditions,
                          "give the JSON file of clip conditions: conditions=FILE")  # fmt: skip


def load_conditions(
    path: str | Path, root: str | Path, intensity: float = 0.7
) -> dict[str, Condition]:
    """The clips of a conditions file and their conditions, in the file's order.

    Raises `ConfigError` (key `conditions`) naming the file, and the clip for a bad entry, when
    the file is missing, not JSON, not a non-empty object, or gives an unknown condition; a
    `MissingFileError` naming the clip and the file when a clip is not under `root`."""
    path, root = Path(path), Path(root)
    if not path.is_file():
        raise ConfigError("conditions", str(path), "no such file")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError("conditions", str(path), f"cannot read it: {e}") from e
    except json.JSONDecodeError as e:
        where = f"line {e.lineno} column {e.colno}"
        raise ConfigError("conditions", str(path), f"not valid JSON: {e.msg} at {where}") from e
    if not isinstance(data, dict) or not data:
        want = 'a non-empty JSON object {"clip path": "weather_time"}'
        raise ConfigError("conditions", str(path), f"must be {want}")
    out: dict[str, Condition] = {}
    for clip, name in data.items():
        try:
            cond = Condition.parse(name, float(intensity))
        except ConfigError as e:
            raise ConfigError("conditions", str(path),
                              f"clip {clip!r}: {e.key} {e.value!r} {e.reason}") from e  # fmt: skip
        if not (root / clip).exists():
            raise MissingFileError(root / clip, f"clip {clip!r} of {path} not found under {root}")
        out[clip] = cond
    return out


# --------------------------------------------------------------------------------------------
# Scoring one window


def score_variation(
    out: np.ndarray, cond: Condition, source: np.ndarray, src_edges: np.ndarray, cls: Any
) -> dict[str, float]:
    """`METRICS` of one variation `out` of `source` asked to look like `cond`."""
    from amplify.eval.classifier import classify_clip

    c = classify_clip(cls, out)
    return {
        "blur_ssim": M.blur_ssim(source, out),
        "edge_f1": M.edge_prf_maps(src_edges, M.edge_maps(out))["f1"],
        "sharpness": M.sharpness_ratio(out, source),
        "cls_acc": float(c["weather"] == cond.weather and c["time_of_day"] == cond.time_of_day),
        "flicker_ratio": M.flicker_ratio(out, source),
    }


def _score_window(
    source: np.ndarray,
    own: Condition,
    targets: list[Condition],
    generator: ClipGenerator | None,
    cls: Any,
    seed: int,
    source_known: bool = False,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Scores of one window and the middle frames the sheet shows (keyed `method/condition`)."""
    from amplify.eval.baselines import augment
    from amplify.eval.classifier import classify_clip

    mid = len(source) // 2
    c = classify_clip(cls, source)
    row: dict[str, Any] = {
        "source_class": f"{c['weather']}_{c['time_of_day']}",
        "source_cls_ok": float(c["weather"] == own.weather and c["time_of_day"] == own.time_of_day),
    }
    shown = {"source": source[mid]}
    outs: dict[str, dict[str, np.ndarray]] = {k: {} for k in METHODS}
    if generator is not None:
        # 1. One batch: the clip's own condition (identity: it should give the clip back) and
        #    every other target (the own condition, if a target, is the identity output).
        others = [c for c in targets if c.name != own.name]
        requests = [(c, seed) for c in (own, *others)]
        made = generator.generate_many(source, requests, source=own if source_known else None)
        same = check_output(made[0], source)
        varied = {c.name: check_output(o, source) for c, o in zip(others, made[1:], strict=True)}
        row["identity_psnr"] = min(M.psnr(same, source), PSNR_CAP)
        row["identity_ssim"] = M.ssim(same, source)
        row["identity_sharpness"] = M.sharpness_ratio(same, source)
        shown["identity"] = same[mid]
        tok = getattr(generator, "tokenizer", None)
        if tok is not None:
            rec = reconstruct(tok, source)
            row["tokenizer_psnr"] = min(M.psnr(rec, source), PSNR_CAP)
            row["tokenizer_ssim"] = M.ssim(rec, source)
            row["tokenizer_sharpness"] = M.sharpness_ratio(rec, source)
            shown["tokenizer"] = rec[mid]
        # 2. The variations (the own condition, if a target, is the identity output: same seed).
        for cond in targets:
            outs["model"][cond.name] = varied.get(cond.name, same)
    for cond in targets:
        outs["augment"][cond.name] = augment(source, cond, seed=seed)
    # 3. Score each against the source.
    src_edges = M.edge_maps(source)
    for k, by_cond in outs.items():
        if by_cond:
            row[k] = {t.name: score_variation(by_cond[t.name], t, source, src_edges, cls)
                      for t in targets}  # fmt: skip
        for n, o in by_cond.items():
            shown[f"{k}/{n}"] = o[mid]
    return row, shown


def _mean(values: list[float]) -> float:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(vals)) if vals else float("nan")


def _mean_rows(rows: list[dict], targets: list[str]) -> dict[str, Any]:
    """Windows -> clip, or clips -> summary: means of the identity keys and per-method metrics."""
    out: dict[str, Any] = {k: _mean([r[k] for r in rows if k in r]) for k in
                           ("source_cls_ok", *PER_CLIP) if any(k in r for r in rows)}  # fmt: skip
    for k in METHODS:
        if any(k in r for r in rows):
            out[k] = {t: {m: _mean([r[k][t][m] for r in rows if k in r]) for m in METRICS}
                      for t in targets}  # fmt: skip
    return out


# --------------------------------------------------------------------------------------------
# The evaluation


def evaluate_real(
    cfg: RealEvalConfig,
    generator: ClipGenerator | None = None,
    classifier: Any = None,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Score the world model of `cfg` (or `generator`) on the clips of `cfg.conditions`; print
    and return the summary (the last line printed is its JSON)."""
    import torch

    from amplify.eval.classifier import classifier_info, load_classifier
    from amplify.io.ingest import IngestConfig, read_windows

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    t_start = time.perf_counter()
    require_inputs(cfg)
    clips = load_conditions(cfg.conditions, cfg.input, cfg.intensity)
    targets = [Condition.parse(t, float(cfg.intensity)) for t in cfg.targets]
    names = [t.name for t in targets]
    cls = classifier if classifier is not None else load_classifier(cfg.classifier)
    if generator is None and cfg.checkpoint != NO_MODEL:
        from amplify.wfm.generate import Generator

        generator = Generator(checkpoint=cfg.checkpoint, tokenizer=cfg.tokenizer)
    ing = IngestConfig(fps=FPS, width=cfg.width, height=cfg.height, window=cfg.frames,
                       stride=cfg.frames, max_windows=cfg.max_windows,
                       short_window_min=min(5, cfg.frames))  # fmt: skip

    rows: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = []
    sheet_rows: list[tuple[str, list[tuple[str, np.ndarray]]]] = []
    for i, (clip, own) in enumerate(clips.items()):
        # 1. Decode the clip's windows; a clip that cannot be read is an error row.
        t0 = time.perf_counter()
        try:
            windows = read_windows(Path(cfg.input) / clip, ing)
        except InputError as e:
            errors.append({"clip": clip, "error": type(e).__name__, "reason": e.reason})
            progress(f"eval real: clip {i + 1}/{len(clips)} {clip}: {type(e).__name__}: {e.reason}")
            continue
        # 2. Score each window; average them into the clip's row.
        scored = [
            _score_window(w.frames, own, targets, generator, cls, cfg.seed, cfg.source_known)
            for w in windows
        ]
        row = {"clip": clip, "condition": own.name, "windows": len(windows),
               "frames": int(len(windows[0].frames)),
               "source_class": scored[0][0]["source_class"],
               **_mean_rows([s[0] for s in scored], names),
               "seconds": time.perf_counter() - t0}  # fmt: skip
        rows.append(row)
        sheet_rows += _sheet_rows(i, clip, own, names, scored[0][1])
        said = f"identity {row['identity_psnr']:.1f} dB" if "identity_psnr" in row else "no model"
        if "tokenizer_psnr" in row:
            said += f" (tokenizer {row['tokenizer_psnr']:.1f} dB)"
        elapsed = time.perf_counter() - t_start
        progress(f"eval real: clip {i + 1}/{len(clips)} {clip} ({own.name}, classified "
                 f"{row['source_class']}) {said}, {elapsed:.1f} s")  # fmt: skip

    # 3. Means over clips.
    mean = _mean_rows(rows, names)
    sha = getattr(generator, "checkpoint_sha256", None) if generator is not None else None
    result: dict[str, Any] = {
        "clips": rows,
        **{k: mean.get(k) for k in IDENTITY},
        "classifier_acc_sources": mean.get("source_cls_ok"),
        **{k: mean.get(k, {}) for k in METHODS},
        "errors": errors,
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()},
        "checkpoint": {"name": cfg.checkpoint, "sha256": None if sha is None else str(sha)},
        "classifier": classifier_info(cfg.classifier, classifier),
    }
    if cfg.sheet and sheet_rows:
        write_sheet(sheet_rows, cfg.sheet)
    return M.emit(result, markdown, cfg.out_json, progress)


def run(cfg: RealEvalConfig) -> int:
    """The verb: 0 when at least one clip was scored, 1 when none could be read."""
    return 0 if evaluate_real(cfg)["clips"] else 1


def _sheet_rows(
    i: int, clip: str, own: Condition, targets: list[str], shown: dict[str, np.ndarray]
) -> list[tuple[str, list[tuple[str, np.ndarray]]]]:
    """Source | model | augment rows of one clip, one tile per condition."""
    label = f"{i + 1} {Path(clip).stem[:13]}"
    first = [(f"source {own.name}", shown["source"])]
    first += [(k, shown[k]) for k in ("identity", "tokenizer") if k in shown]
    out = [(f"{label} source", first)]
    for k in METHODS:
        if f"{k}/{targets[0]}" in shown:
            out.append((f"{label} {k}", [(t, shown[f"{k}/{t}"]) for t in targets]))
    return out


def markdown(result: dict[str, Any]) -> str:
    """Per-clip and mean tables (identity and tokenizer; per condition and method)."""

    def f(v: Any) -> str:
        return "-" if v is None else f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"

    rows = result["clips"]
    sha = result["checkpoint"]["sha256"]
    lines = [f"Real clips: {len(rows)} scored, {len(result['errors'])} not; checkpoint "
             f"{result['checkpoint']['name']}" + (f" (sha256 {sha[:12]})" if sha else "")
             + f", classifier {result['classifier']['name']}.", ""]  # fmt: skip
    cols = [k for k in PER_CLIP if any(r.get(k) is not None for r in rows)]
    lines += ["| clip | condition | classified | " + " | ".join(cols) + " |",
              "|---|---|---|" + "---|" * len(cols)]  # fmt: skip
    for r in rows:
        lines.append(f"| {r['clip']} | {r['condition']} | {r['source_class']} | "
                     + " | ".join(f(r.get(k)) for k in cols) + " |")  # fmt: skip
    acc = result["classifier_acc_sources"]
    means = [M.json_ready(_mean([r.get(k) for r in rows])) for k in cols]
    lines.append(f"| **mean** ({len(rows)} clips) | | {f(acc)} correct | "
                 + " | ".join(f(v) for v in means) + " |")  # fmt: skip
    lines += ["", "| condition | method | " + " | ".join(METRICS) + " |",
              "|---|---|" + "---|" * len(METRICS)]  # fmt: skip
    methods = [k for k in METHODS if result.get(k)]
    conds = list(result[methods[0]]) if methods else []
    for c in conds:
        for k in methods:
            lines.append(f"| {c} | {k} | " + " | ".join(f(result[k][c][m]) for m in METRICS) + " |")
    for k in methods:
        means = [_mean([result[k][c][m] for c in conds]) for m in METRICS]
        lines.append(f"| **mean** | {k} | " + " | ".join(f(M.json_ready(v)) for v in means) + " |")
    if result.get("errors"):
        lines += ["", "Not scored: " + ", ".join(f"{e['clip']} ({e['error']}: {e['reason']})"
                                                 for e in result["errors"])]  # fmt: skip
    return "\n".join(lines)
