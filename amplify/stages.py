"""The job's stages as plain functions over rows (no Ray here; `pipelines/run.py` wires them).
One numbering, shared by `pipelines/run.py` and README.md ("Following a clip"):

    1 plan      hash_input: a path -> its content hash (HashResult); plan_inputs: dedupe by
                content, skip what earlier jobs committed -> the clips to ingest (Plan)
    2 ingest    ingest_clip: probe + decode + window + labels -> staged `frames`/`clips` parts
                (IngestResult; in a child process with a time limit: ingest_clip_isolated)
    3 generate  generate_targets: the staged windows to vary; variation_specs: each window's
                list x grid x samples (+ scenarios); generate_clip: the world model's variations,
                each with its spec and quality metrics against the source (GenerateResult; in a
                child process with a time limit: generate_clip_isolated)
    4 commit    errors part, parts into place, manifest, card (amplify.dataset.writer.commit)

Every failure becomes an error row (clip, stage, error type, message): a job never aborts on a bad
clip, and every input ends as rows, as an error row, or in the manifest's list of ignored files.
Between stages travel paths of staged Parquet parts (encoded images), never decoded video. Each
stage result is a dataclass; `to_json` / `from_json` is the one place it crosses Ray Data.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from amplify.conditions import CONDITION_NAMES, Condition
from amplify.dataset import schema as S
from amplify.dataset.writer import staging_dir, to_table, write_part
from amplify.errors import CorruptVideoError, DecodeTimeoutError, DuplicateClipError, InputError
from amplify.io.ingest import IngestConfig, Window, iter_windows
from amplify.io.isolated import Crashed, Timeout, call_isolated
from amplify.io.probe import content_hash, probe
from amplify.labels import Box, ClipLabels, sidecar_for

WINDOWS_PER_PART = 32  # ~2-3 MB per frames part at 256x128 PNG


class GenerateTimeoutError(InputError):
    """The world model ran past `generate.timeout_s` on one window; its process was killed."""


class GenerateCrashedError(InputError):
    """The process generating one window died (out of memory, a native crash)."""


@dataclass(frozen=True)
class ClipTask:
    """One source clip to ingest, as the driver planned it."""

    path: str
    sha256: str
    out: str
    job_id: str
    split: str
    ingest: IngestConfig
    labels_sha256: str | None = None
    # The generate fingerprint when the job generates: the manifest's key then also covers the
    # requested variations, so a rerun asking for others is new work.
    generate_fp: str = ""

    @property
    def source_id(self) -> str:
        return S.source_id(self.sha256)

    @property
    def key(self) -> str:
        key = source_key(self.sha256, self.labels_sha256, self.ingest)
        return f"{key}/{self.generate_fp}" if self.generate_fp else key

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ClipTask:
        doc = json.loads(text)
        return cls(**{**doc, "ingest": IngestConfig(**doc["ingest"])})


def source_key(sha256: str, labels_sha256: str | None, cfg: IngestConfig) -> str:
    """What a manifest records as done: this content with these labels, windowed this way.
    A fixed label sidecar changes the key, so a rerun ingests the clip again."""
    return f"{sha256}/{labels_sha256 or '-'}/{cfg.fingerprint()}"


def error_row(
    path: str, stage: str, exc: BaseException, job_id: str, sha256: str | None = None
) -> dict:
    msg = str(exc) if isinstance(exc, InputError) else f"{path}: {type(exc).__name__}: {exc}"
    etype = (
        type(exc).__name__ if isinstance(exc, InputError) else f"InternalError.{type(exc).__name__}"
    )
    return {
        "error_id": S.error_id(path, stage, sha256),
        "source_path": path,
        "source_sha256": sha256,
        "stage": stage,
        "error_type": etype,
        "message": msg,
        "job_id": job_id,
    }


# Stage results ------------------------------------------------------------------------------


@dataclass(kw_only=True)
class StageResult:
    """What one unit of a stage (a clip, a window) left behind: staged part names per table and
    counts, or one error row. Results are keyed by path and id, never by position in a batch."""

    path: str
    status: str = "ok"  # ok | error
    parts: dict[str, list[str]] = field(default_factory=dict)  # table -> staged part names
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    error: dict | None = None  # an `errors` row

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str):
        return cls(**json.loads(text))

    def describe(self) -> str:
        """One log line."""
        if not self.ok:
            return f"{self.error['error_type']}: {self.error['message']}"
        return f"{self._what()} ({self.seconds:.1f} s)"

    def _what(self) -> str:
        return ", ".join(f"{v} {k}" for k, v in self.counts.items())


@dataclass(kw_only=True)
class HashResult:
    """Stage 1: an input's content hash (and its label sidecar's), or the error row."""

    path: str
    sha256: str | None = None
    labels_sha256: str | None = None
    error: dict | None = None


@dataclass(kw_only=True)
class IngestResult(StageResult):
    """Stage 2: one clip's staged windows. counts: windows, frames, boxes."""

    key: str
    sha256: str
    meta: dict = field(default_factory=dict)  # container, codec, size, fps of the source

    def _what(self) -> str:
        c = self.counts
        return f"{c['windows']} window(s), {c['frames']} frames"


@dataclass(kw_only=True)
class GenerateResult(StageResult):
    """Stage 3: one window's variations. counts: variations, frames."""

    clip_id: str
    skipped: str = ""  # scenarios this window had nothing for

    def _what(self) -> str:
        line = f"window {self.clip_id[:8]}: {self.counts['variations']} variation(s)"
        return line + (f"; skipped {self.skipped}" if self.skipped else "")


# 1. Plan ------------------------------------------------------------------------------------


def hash_input(path: str, job_id: str) -> HashResult:
    """The content hash of one input (and of its label sidecar); the file must exist, be readable,
    be non-empty, or the result carries its error row."""
    try:
        sidecar = sidecar_for(path)
        labels_sha = content_hash(sidecar) if sidecar is not None else None
        return HashResult(path=path, sha256=content_hash(path), labels_sha256=labels_sha)
    except (InputError, OSError) as e:
        return HashResult(path=path, error=error_row(path, "hash", e, job_id))


@dataclass
class Plan:
    """Stage 1's outcome: the clips to ingest, the error rows found while planning, and how
    many inputs earlier jobs already committed."""

    tasks: list[ClipTask] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    skipped: int = 0


def plan_inputs(
    hashed: list[HashResult],
    done: dict[str, dict],
    out: str,
    job_id: str,
    ingest: IngestConfig,
    fractions: tuple[float, float],
    generate_fp: str = "",
) -> Plan:
    """Dedupe by content (the first path of a content is ingested, the others become
    `DuplicateClipError` rows), skip what `done` (committed source keys) holds. `fractions`:
    (validation, test) shares of the sources (`schema.split_of`)."""
    plan = Plan()
    done_paths = {k.split("/")[0]: v["path"] for k, v in done.items() if "/" in k}  # sha -> path
    first_path: dict[str, str] = {}

    def add_error(row: dict) -> None:
        if row["error_id"] in done:
            plan.skipped += 1
        else:
            plan.errors.append(row)

    for r in sorted(hashed, key=lambda r: r.path):
        if r.error is not None:
            add_error(r.error)
            continue
        sha, path = r.sha256, r.path
        earlier = first_path.get(sha) or done_paths.get(sha)
        if earlier is not None and earlier != path:
            dup = DuplicateClipError(
                path, f"same content as {earlier}; ingested once, under that name"
            )
            add_error(error_row(path, "dedupe", dup, job_id, sha))
            continue
        first_path[sha] = path
        split = S.split_of(S.source_id(sha), *fractions)
        task = ClipTask(path, sha, out, job_id, split, ingest, r.labels_sha256, generate_fp)
        if task.key in done:
            plan.skipped += 1
        else:
            plan.tasks.append(task)
    return plan


# 2. Ingest -----------------------------------------------------------------------------------


def encode_image(img: np.ndarray, fmt: str, quality: int = 95) -> bytes:
    """(H, W, 3) uint8 -> PNG or JPEG bytes (PNG level 1: 3x faster than 6, ~10% larger)."""
    buf = io.BytesIO()
    pil = Image.fromarray(img)
    if fmt == "png":
        pil.save(buf, format="PNG", compress_level=1)
    else:
        pil.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def window_rows(w: Window, task: ClipTask, meta: dict) -> tuple[list[dict], dict]:
    """One window -> its `frames` rows and its `clips` row."""
    cfg = task.ingest
    src = task.source_id
    cid = S.clip_id(src, cfg.fingerprint(), w.window_index)
    cond = (w.labels.condition if w.labels is not None else None) or {}
    weather, tod, intensity = cond.get("weather"), cond.get("time_of_day"), cond.get("intensity")
    frames, n_boxes = [], 0
    for i, img in enumerate(w.frames):  # (H, W, 3)
        boxes = []
        if w.labels is not None:
            boxes = [
                {
                    "track_id": b.track_id,
                    "category": b.category,
                    "x0": b.x0,
                    "y0": b.y0,
                    "x1": b.x1,
                    "y1": b.y1,
                    "is_generated": b.is_generated,
                }
                for b in w.labels.frames[i]
            ]
        n_boxes += len(boxes)
        frames.append(
            {
                "frame_id": S.frame_id(cid, i),
                "clip_id": cid,
                "source_id": src,
                "split": task.split,
                "variation": "source",
                "frame_index": i,
                "timestamp_s": float(w.timestamps[i]),
                "image": {
                    "bytes": encode_image(img, cfg.image_format, cfg.jpeg_quality),
                    "path": None,
                },
                "width": cfg.width,
                "height": cfg.height,
                "boxes": boxes,
                "weather": weather,
                "time_of_day": tod,
                "intensity": intensity,
            }
        )
    clip = {
        "clip_id": cid,
        "source_id": src,
        "source_path": task.path,
        "source_sha256": task.sha256,
        "split": task.split,
        "window_index": w.window_index,
        "shot_index": w.shot_index,
        "start_s": float(w.timestamps[0]),
        "num_frames": len(w.frames),
        "fps": cfg.fps,
        "width": cfg.width,
        "height": cfg.height,
        "variation": "source",
        "weather": weather,
        "time_of_day": tod,
        "intensity": intensity,
        "scenario": None,
        "scenario_params": None,
        "seed": 0,
        "generator": "source",
        "checkpoint_sha256": None,
        "spec": None,
        "blur_ssim": None,
        "edge_f1": None,
        "sharpness": None,
        "cls_score": None,
        "parent_clip_id": None,
        "has_labels": w.labels is not None,
        "num_boxes": n_boxes,
        "source_meta": json.dumps(meta, sort_keys=True),
        "ingest": cfg.fingerprint(),
    }
    return frames, clip


def ingest_clip(task: ClipTask) -> IngestResult:
    """Decode, window and stage one clip; raises `InputError` on a bad clip.

    Parts are named `<source_id>-<ingest>-<chunk>.parquet`: deterministic, so a rerun of the same
    clip writes the same files with the same bytes.
    """
    t0 = time.perf_counter()
    info = probe(task.path)
    meta = {
        "container": info.container,
        "codec": info.codec,
        "width": info.width,
        "height": info.height,
        "fps": round(info.fps, 3),
        "rotation": info.rotation,
        "frames": info.frames,
    }
    stage = staging_dir(task.out, task.job_id)
    tag = f"{task.source_id}-{S.clip_id(task.source_id, task.ingest.fingerprint(), -1)[:8]}"
    parts: dict[str, list[str]] = {"frames": [], "clips": []}
    frames_rows: list[dict] = []
    clip_rows: list[dict] = []
    counts = {"windows": 0, "frames": 0, "boxes": 0}

    def flush() -> None:
        chunk = len(parts["frames"])
        name = f"{tag}-{chunk:04d}.parquet"
        write_part(to_table("frames", frames_rows), stage / "frames" / name)
        write_part(to_table("clips", clip_rows), stage / "clips" / name)
        parts["frames"].append(name)
        parts["clips"].append(name)
        frames_rows.clear()
        clip_rows.clear()

    for w in iter_windows(task.path, task.ingest, info):
        f_rows, c_row = window_rows(w, task, meta)
        frames_rows += f_rows
        clip_rows.append(c_row)
        counts["windows"] += 1
        counts["frames"] += len(f_rows)
        counts["boxes"] += c_row["num_boxes"]
        if len(clip_rows) == WINDOWS_PER_PART:
            flush()
    if clip_rows:
        flush()
    return IngestResult(
        path=task.path, key=task.key, sha256=task.sha256, parts=parts, counts=counts,
        seconds=time.perf_counter() - t0, meta=meta,
    )  # fmt: skip


def ingest_clip_isolated(task: ClipTask) -> IngestResult:
    """`ingest_clip` in a child process under `task.ingest.decode_timeout_s`.

    Never raises for a bad clip: a hang, a crash or an `InputError` becomes the result's error
    row, and its staged parts are removed so nothing half-written is committed.
    """
    t0 = time.perf_counter()
    try:
        return call_isolated(ingest_clip, task, timeout=task.ingest.decode_timeout_s)
    except Timeout:
        exc: BaseException = DecodeTimeoutError(
            task.path,
            f"decoding took longer than {task.ingest.decode_timeout_s:g} s; decoder killed",
        )
        stage = "decode"
    except Crashed as e:
        exc, stage = CorruptVideoError(task.path, f"decoder crashed: {e}"), "decode"
    except InputError as e:
        exc = e
        stage = "labels" if type(e).__name__ == "LabelError" else "decode"
    except Exception as e:  # a bug: still one error row, never a lost clip
        exc, stage = e, "decode"
    _remove_staged(task)
    return IngestResult(
        path=task.path, key=task.key, sha256=task.sha256, status="error",
        seconds=time.perf_counter() - t0,
        error=error_row(task.path, stage, exc, task.job_id, task.sha256),
    )  # fmt: skip


def _remove_staged(task: ClipTask) -> None:
    stage = staging_dir(task.out, task.job_id)
    for table in ("frames", "clips"):
        for p in (
            (stage / table).glob(f"{task.source_id}-*.parquet") if (stage / table).is_dir() else []
        ):
            Path(p).unlink(missing_ok=True)


# 3. Generate -------------------------------------------------------------------------------


@dataclass(frozen=True)
class GenerateTarget:
    """One ingested window (staged parts) and the variations to make of it."""

    frames_part: str
    clips_part: str
    clip_id: str
    source_path: str
    sha256: str
    out: str
    job_id: str
    variations: tuple[str, ...]  # condition names, each x `seeds`, at `intensity`
    intensity: float
    seeds: int
    scenarios: tuple[str, ...] = ()  # "name:weight" (GenerateConfig.scenarios)
    scenario_samples: int = 0
    scenario_variations: tuple[str, ...] = ()  # conditions scenario samples are made under
    camera: tuple[float, float, float] = (1.5, 10.0, -1.0)  # cam_height, ego_speed, horizon
    grid: tuple[tuple[str, float], ...] = ()  # (condition, intensity), each x `seeds`
    samples: int = 0  # conditions drawn per window (see `variation_specs`)
    sample_weights: tuple[str, ...] = ()  # "condition:weight"; empty: every condition alike
    sample_intensity: tuple[float, float] = (0.3, 1.0)
    metrics_frames: int = 5  # frames the quality metrics look at (0: all)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> GenerateTarget:
        doc = json.loads(text)
        # JSON has no tuples: put them back, so targets compare and hash as built.
        for f in dataclasses.fields(cls):
            if isinstance(doc.get(f.name), list):
                doc[f.name] = tuple(tuple(x) if isinstance(x, list) else x for x in doc[f.name])
        return cls(**doc)


def generate_targets(g, out: str, job_id: str, result: IngestResult) -> list[GenerateTarget]:
    """The staged windows of one ingested clip that get variations (`g`: a GenerateConfig):
    matching file names, source conditions, up to `max_windows_per_clip` windows."""
    import fnmatch

    import pyarrow.parquet as pq

    if not result.ok or not any(fnmatch.fnmatch(Path(result.path).name, m) for m in g.match):
        return []
    stage = staging_dir(out, job_id)
    targets = []
    for name in result.parts.get("clips", []):
        columns = ["clip_id", "window_index", "weather", "time_of_day"]
        clips = pq.read_table(stage / "clips" / name, columns=columns).to_pylist()
        for c in sorted(clips, key=lambda c: c["window_index"]):
            if g.max_windows_per_clip and c["window_index"] >= g.max_windows_per_clip:
                continue
            condition = f"{c['weather']}_{c['time_of_day']}" if c["weather"] else "unknown"
            if g.source_conditions and condition not in g.source_conditions:
                continue
            targets.append(
                GenerateTarget(
                    frames_part=str(stage / "frames" / name),
                    clips_part=str(stage / "clips" / name),
                    clip_id=c["clip_id"], source_path=result.path, sha256=result.sha256,
                    out=str(out), job_id=job_id, variations=tuple(g.variations),
                    intensity=g.intensity, seeds=g.seeds, scenarios=tuple(g.scenarios),
                    scenario_samples=g.scenario_samples,
                    scenario_variations=tuple(g.scenario_conditions()),
                    camera=(g.cam_height, g.ego_speed, g.horizon),
                    grid=tuple((c.name, c.intensity) for c in g.grid_conditions()),
                    samples=g.samples, sample_weights=tuple(g.sample_weights),
                    sample_intensity=tuple(g.sample_intensity), metrics_frames=g.metrics_frames,
                )
            )  # fmt: skip
    return targets


@dataclass(frozen=True)
class VariationSpec:
    """One condition variation of a window: what is asked of the world model, and its name in
    the dataset (`variation`; with `@intensity` when that is not the job's `intensity`)."""

    condition: Condition
    seed: int
    origin: str  # list (generate.variations) | grid | sample
    variation: str

    def as_dict(self) -> dict:
        return {"origin": self.origin, "condition": self.condition.name,
                **self.condition.as_dict(), "seed": self.seed}  # fmt: skip


def variation_specs(target: GenerateTarget) -> list[VariationSpec]:
    """Every condition variation of one window, in order: `variations` x seeds, then the grid x
    seeds, then `samples` draws (seeded by the window's id: a rerun draws the same ones; sample k
    has seed k). A (variation, seed) asked twice is made once."""

    def name(c: Condition) -> str:
        same = math.isclose(c.intensity, target.intensity, abs_tol=1e-9)
        return c.name if same else f"{c.name}@{c.intensity:g}"

    specs: dict[tuple[str, int], VariationSpec] = {}

    def add(c: Condition, seed: int, origin: str) -> None:
        specs.setdefault((name(c), seed), VariationSpec(c, seed, origin, name(c)))

    for v in target.variations:
        for seed in range(target.seeds):
            add(Condition.parse(str(v), target.intensity), seed, "list")
    for v, intensity in target.grid:
        for seed in range(target.seeds):
            add(Condition.parse(str(v), float(intensity)), seed, "grid")
    if target.samples:
        entries = [str(e).rsplit(":", 1) for e in target.sample_weights]
        names = [n for n, _ in entries] or list(CONDITION_NAMES)
        w = np.array([float(x) for _, x in entries] or [1.0] * len(names))
        lo, hi = (float(x) for x in target.sample_intensity)
        rng = np.random.default_rng([int(target.clip_id.replace("-", "")[:8], 16), 1])
        for k in range(target.samples):
            pick = names[int(rng.choice(len(names), p=w / w.sum()))]
            intensity = round(float(rng.uniform(lo, hi)), 2)
            add(Condition.parse(pick, intensity), k, "sample")
    return list(specs.values())


def _subsample(n: int, k: int) -> np.ndarray:
    """`k` frame indices spread over `n` frames, first and last included (all when k == 0)."""
    if k <= 0 or k >= n:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, k).round().astype(int))


@dataclass
class QualityScorer:
    """The quality columns of a variation against its source window (amplify.eval.metrics):
    blur SSIM, edge F1, sharpness ratio, and the classifier's probability for the requested
    condition (P(weather) x P(time of day), averaged over frames; None without a classifier).
    On `frames` frames spread over the window: 5 of 17 cost ~0.1 s at 256 x 128."""

    classifier: object | None = None  # amplify.eval.classifier.ConditionClassifier
    frames: int = 5

    def reference(self, source: np.ndarray) -> _QualityReference:
        """Per window: the source's subsampled frames and edge maps, computed once."""
        from amplify.eval.metrics import edge_maps

        idx = _subsample(len(source), self.frames)
        return _QualityReference(self, idx, source[idx], edge_maps(source[idx]))


@dataclass
class _QualityReference:
    scorer: QualityScorer
    idx: np.ndarray
    source: np.ndarray  # (k, H, W, 3) uint8
    source_edges: np.ndarray  # (k, H, W) bool

    def score(self, images: np.ndarray, condition: Condition | None) -> dict:
        from amplify.eval.metrics import blur_ssim, edge_maps, edge_prf_maps, sharpness_ratio

        x = np.asarray(images)[self.idx]
        cls = None
        if condition is not None and self.scorer.classifier is not None:
            from amplify.eval.classifier import classify_clip

            p = classify_clip(self.scorer.classifier, x)
            cls = p["p_weather"][condition.weather] * p["p_time_of_day"][condition.time_of_day]
        sharp = sharpness_ratio(x, self.source)
        return {
            "blur_ssim": blur_ssim(self.source, x),
            "edge_f1": edge_prf_maps(self.source_edges, edge_maps(x))["f1"],
            "sharpness": sharp if math.isfinite(sharp) else None,
            "cls_score": cls,
        }


def read_clip(frames_part: str, clip_id: str) -> tuple[np.ndarray, list[dict]]:
    """The frames of one clip from a `frames` part: (T, H, W, 3) uint8 and their rows."""
    import pyarrow.parquet as pq

    rows = pq.read_table(frames_part, filters=[("clip_id", "=", clip_id)]).to_pylist()
    rows.sort(key=lambda r: r["frame_index"])
    images = np.stack(
        [np.asarray(Image.open(io.BytesIO(r["image"]["bytes"])).convert("RGB")) for r in rows]
    )
    return images, rows


def labels_of(rows: list[dict]) -> ClipLabels | None:
    """The boxes of a clip's frame rows as `ClipLabels` (None when the clip has none)."""
    if not any(r["boxes"] for r in rows):
        return None
    cats = tuple(sorted({b["category"] for r in rows for b in r["boxes"]}))
    frames = tuple(
        tuple(
            Box(
                b["track_id"],
                b["category"],
                b["x0"],
                b["y0"],
                b["x1"],
                b["y1"],
                is_generated=bool(b.get("is_generated")),
            )
            for b in r["boxes"]
        )
        for r in rows
    )
    return ClipLabels(
        width=rows[0]["width"], height=rows[0]["height"], categories=cats, frames=frames
    )


def generate_clip(
    generator, target: GenerateTarget, scorer: QualityScorer | None = None
) -> GenerateResult:
    """Every requested variation of one window: staged `frames`/`clips` parts, or an error row.

    A condition variation keeps the source's geometry, so its boxes are the source's boxes
    (labels stay true). A scenario sample edits the window's scene (amplify.scenarios), the
    painter renders the edit, and its rows carry the edited boxes (inserted agents marked
    `is_generated`, removed ones gone), under the source's own look and under each requested
    condition. Condition columns say what was requested; `parent_clip_id` is the source window;
    `spec` is the full request; the quality columns score each variation against the source
    (`scorer`; None: no classifier score).
    """
    import pyarrow.parquet as pq

    t0 = time.perf_counter()
    scorer = scorer or QualityScorer(frames=target.metrics_frames)
    try:
        frames, rows = read_clip(target.frames_part, target.clip_id)
        (src_clip,) = pq.read_table(
            target.clips_part, filters=[("clip_id", "=", target.clip_id)]
        ).to_pylist()
        labels = labels_of(rows)
        T, H, W, _ = frames.shape
        layout = None
        if labels is not None:
            from amplify.wfm.controls import layout_raster

            layout = layout_raster(labels, T, H, W)
        # Variations are encoded like their source (lossless stays lossless).
        fmt = "png" if rows[0]["image"]["bytes"][:4] == b"\x89PNG" else "jpeg"
        out = _VariationRows(generator, target, src_clip, rows, fmt, scorer.reference(frames))
        # The source's own condition, when its labels name one, is told to the world model.
        own = source_condition(src_clip)
        # 1. Conditions: list x grid x samples, one batch per window.
        specs = variation_specs(target)
        if specs:
            requests = [(s.condition, s.seed) for s in specs]
            images = generator.generate_many(frames, requests, layout=layout, source=own)
            for spec, imgs in zip(specs, images, strict=True):
                out.add(imgs, spec.condition, spec.seed, spec.variation, spec.as_dict())
        # 2. Scenarios: each edit painted, then under the source's look and each condition.
        skipped = []
        scenario_conditions = [
            Condition.parse(str(v), target.intensity) for v in target.scenario_variations
        ]
        for k, sc in enumerate(scenario_specs(target)):
            from amplify.conditions import scenario_id
            from amplify.scenarios.edit import NothingToEdit, render_edit
            from amplify.scenarios.library import template

            world = scenario_world(target, src_clip, rows, labels, T, H, W)
            try:
                edit = template(sc.name).build(sc.params, world)
            except NothingToEdit as e:
                skipped.append(f"{sc.name}: {e}")
                continue
            maps = render_edit(world, edit)
            reqs = [(None, k)] + [(c, k) for c in scenario_conditions]
            images = generator.generate_many(
                frames, reqs, edit=maps, scenario=scenario_id(sc.name), source=own
            )
            record = {**edit.record(sc.params),
                      "world": "scene" if world.exact else "ground_plane",
                      "camera": world.camera_from,
                      "painter_sha256": generator.painter_sha256}  # fmt: skip
            for cond, seed in reqs:
                look = cond.name if cond is not None else "source"
                spec = {"origin": "scenario", "scenario": sc.name, "params": record,
                        "condition": cond.name if cond else None,
                        **(cond.as_dict() if cond else {}), "seed": seed}  # fmt: skip
                out.add(images.pop(0), cond, seed, f"{look}+{sc.name}", spec, maps.labels)
        # 3. Stage the window's variations as one part (named by the window: a retry or a
        # rerun writes the same file).
        stage = staging_dir(target.out, target.job_id)
        name = generated_part_name(src_clip["source_id"], target.clip_id)
        parts: dict[str, list[str]] = {}
        if out.clip_rows:
            write_part(to_table("frames", out.frame_rows), stage / "frames" / name)
            write_part(to_table("clips", out.clip_rows), stage / "clips" / name)
            parts = {"frames": [name], "clips": [name]}
        return GenerateResult(
            path=target.source_path, clip_id=target.clip_id, parts=parts,
            counts={"variations": len(out.clip_rows), "frames": len(out.frame_rows)},
            skipped="; ".join(skipped), seconds=time.perf_counter() - t0,
        )  # fmt: skip
    except Exception as exc:  # one window failing never stops the others
        return _generate_error(target, exc, t0)


def source_condition(clip: dict) -> Condition | None:
    """A source clip row's own condition, when its labels named one (else None: unknown)."""
    if not (clip["weather"] and clip["time_of_day"]):
        return None
    return Condition(clip["weather"], clip["time_of_day"], clip["intensity"] or 0.0)


def generated_part_name(source_id: str, clip_id: str) -> str:
    return f"{source_id}-gen-{clip_id[:8]}.parquet"


def _generate_error(target: GenerateTarget, exc: BaseException, t0: float) -> GenerateResult:
    stage = f"generate:{target.clip_id[:8]}"
    return GenerateResult(
        path=target.source_path, clip_id=target.clip_id, status="error",
        seconds=time.perf_counter() - t0,
        error=error_row(target.source_path, stage, exc, target.job_id, target.sha256),
    )  # fmt: skip


@dataclass
class _VariationRows:
    """Builds the `frames` and `clips` rows of one window's variations."""

    generator: object
    target: GenerateTarget
    src_clip: dict
    rows: list[dict]
    fmt: str
    quality: _QualityReference
    frame_rows: list[dict] = field(default_factory=list)
    clip_rows: list[dict] = field(default_factory=list)

    def add(self, images, cond, seed, variation, spec, labels=None) -> None:
        src = self.src_clip
        scenario = spec.get("scenario")
        weather = cond.weather if cond is not None else src["weather"]
        tod = cond.time_of_day if cond is not None else src["time_of_day"]
        intensity = cond.intensity if cond is not None else src["intensity"]
        cid = S.clip_id(src["source_id"], src["ingest"], src["window_index"], variation, seed)
        n_boxes = 0
        for r, img in zip(self.rows, images, strict=True):
            boxes = r["boxes"]
            if labels is not None:
                boxes = [
                    {"track_id": b.track_id, "category": b.category, "x0": b.x0, "y0": b.y0,
                     "x1": b.x1, "y1": b.y1, "is_generated": b.is_generated}
                    for b in labels.frames[r["frame_index"]]
                ]  # fmt: skip
            n_boxes += len(boxes)
            self.frame_rows.append(
                {
                    **r,
                    "frame_id": S.frame_id(cid, r["frame_index"]),
                    "clip_id": cid,
                    "variation": variation,
                    "image": {"bytes": encode_image(img, self.fmt), "path": None},
                    "boxes": boxes,
                    "weather": weather,
                    "time_of_day": tod,
                    "intensity": intensity,
                }
            )
        # The classifier scores the look that was asked for; the source's own look is scored
        # against the source's condition when its labels name one.
        judged = cond if cond is not None else source_condition(src)
        gen = self.generator
        self.clip_rows.append(
            {
                **src,
                "clip_id": cid,
                "variation": variation,
                "weather": weather,
                "time_of_day": tod,
                "intensity": intensity,
                "scenario": scenario,
                "scenario_params": json.dumps(spec["params"], sort_keys=True) if scenario else None,
                "seed": seed,
                "generator": gen.name
                if scenario is None
                else f"{gen.name}+painter:{gen.painter_name}",
                "checkpoint_sha256": gen.checkpoint_sha256,
                "spec": json.dumps(spec, sort_keys=True),
                **self.quality.score(images, judged),
                "parent_clip_id": self.target.clip_id,
                "has_labels": src["has_labels"] or labels is not None,
                "num_boxes": n_boxes,
            }
        )


def scenario_specs(target: GenerateTarget) -> list:
    """The scenario parameter sets of one window: one per template, or `scenario_samples` drawn
    by weight; seeded by the window's id, so a rerun draws the same ones."""
    from amplify.scenarios.library import sample_spec

    scenarios = [str(e) for e in target.scenarios]  # a numpy array after a trip through Ray Data
    if not scenarios:
        return []
    entries = [e.rsplit(":", 1) for e in scenarios]
    names = [n for n, _ in entries]
    base = int(target.clip_id.replace("-", "")[:8], 16)
    if target.scenario_samples <= 0:
        return [sample_spec(n, base + k) for k, n in enumerate(names)]
    w = np.array([float(x) for _, x in entries])
    rng = np.random.default_rng(base)
    picks = rng.choice(len(names), size=target.scenario_samples, p=w / w.sum())
    return [sample_spec(names[int(i)], base + k) for k, i in enumerate(picks)]


def scenario_world(target: GenerateTarget, src_clip: dict, rows, labels, T: int, H: int, W: int):
    """The 3D world of a window: the clip's own synthetic scene when its label sidecar names one
    (and the window keeps the render's aspect ratio), else the ground-plane model."""
    from amplify.labels import load_labels
    from amplify.scenarios.world import GroundCamera, World, with_sidecar_3d
    from amplify.synth.scene import sample_scene

    fps = float(src_clip["fps"])
    try:
        full = load_labels(target.source_path)
    except InputError:
        full = None
    extra = full.extra if full is not None else {}
    if (
        extra.get("source") == "amplify.synth"
        and "scene_seed" in extra
        and full.fps
        and abs(full.width / full.height - W / H) < 0.01
    ):
        scene = sample_scene(int(extra["scene_seed"]), duration_s=full.num_frames / full.fps)
        if extra.get("scenario"):  # a scenario twin of `amplify synth`: its scene, edited again
            from amplify.scenarios.edit import edited_scene
            from amplify.scenarios.library import template

            whole = World.from_scene(scene, full.num_frames, full.width, full.height, full.fps)
            t = template(extra["scenario"])
            params = {p.name: extra["scenario_params"][p.name] for p in t.params}
            scene = edited_scene(whole, t.build(params, whole))
        return World.from_scene(scene, T, W, H, fps, float(src_clip["start_s"]), labels)
    if full is not None and labels is not None:  # a user sidecar's 3D boxes and camera
        labels = with_sidecar_3d(labels, full, [float(r["timestamp_s"]) for r in rows])
    cam_height, ego_speed, horizon = target.camera
    cam = GroundCamera(cam_height, ego_speed, horizon if horizon >= 0 else None)
    return World.from_clip(T, W, H, fps, labels, cam)


# 3b. Generate in a child process: a hung or crashing window never stalls its actor ---------


@dataclass(frozen=True)
class GeneratorSpec:
    """What a generate worker loads once: the world model, its tokenizer, the painter and the
    condition classifier (`classifier` "" = none)."""

    checkpoint: str = "wfm-grade"
    tokenizer: str = "tok-small"
    steps: int = 12
    guidance: float = 2.0
    refine: float = 0.0
    painter: str = "painter"
    device: str = "cpu"
    classifier: str = "cond-cls"
    metrics_frames: int = 5

    @classmethod
    def from_config(cls, g) -> GeneratorSpec:
        """From a GenerateConfig."""
        return cls(g.checkpoint, g.tokenizer, g.steps, g.guidance, g.refine, g.painter,
                   "cuda" if g.num_gpus > 0 else "cpu", g.classifier, g.metrics_frames)  # fmt: skip

    def load(self):
        """(Generator, QualityScorer)."""
        from amplify.wfm.generate import Generator

        gen = Generator(self.checkpoint, self.tokenizer, device=self.device, steps=self.steps,
                        guidance=self.guidance, refine=self.refine, painter=self.painter)  # fmt: skip
        cls = None
        if self.classifier:
            from amplify.eval.classifier import load_classifier

            cls = load_classifier(self.classifier, self.device)
        return gen, QualityScorer(cls, self.metrics_frames)


_loaded: dict[GeneratorSpec, tuple] = {}  # in the child: the models, loaded once


def _generate_in_child(spec: GeneratorSpec, target: GenerateTarget) -> GenerateResult:
    _exit_with_parent()
    if spec not in _loaded:
        _loaded.clear()
        _loaded[spec] = spec.load()
    gen, scorer = _loaded[spec]
    return generate_clip(gen, target, scorer)


def _exit_with_parent() -> None:
    """A child whose parent (the Ray worker) was killed exits too, within a second."""
    global _watching
    if _watching:
        return
    _watching = True
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


_watching = False


def generate_clip_isolated(
    spec: GeneratorSpec, target: GenerateTarget, timeout_s: float
) -> GenerateResult:
    """`generate_clip` in a warm child process (the models load there once) under `timeout_s`.

    Never raises for a bad window: a hang (the child is killed, the models reload on the next
    window) or a crash becomes the result's error row, and its staged part is removed.
    """
    t0 = time.perf_counter()
    try:
        return call_isolated(_generate_in_child, spec, target, timeout=timeout_s)
    except Timeout:
        exc: BaseException = GenerateTimeoutError(
            target.source_path,
            f"window {target.clip_id[:8]}: generation took longer than {timeout_s:g} s; killed",
        )
    except Crashed as e:
        exc = GenerateCrashedError(target.source_path, f"window {target.clip_id[:8]}: {e}")
    except Exception as e:  # a bug (or a model that does not load): still one error row
        exc = e
    name = generated_part_name(S.source_id(target.sha256), target.clip_id)
    for table in ("frames", "clips"):
        (staging_dir(target.out, target.job_id) / table / name).unlink(missing_ok=True)
    return _generate_error(target, exc, t0)
