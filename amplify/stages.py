"""The job's stages as plain functions over rows (no Ray here; `pipelines/run.py` wires them).

    1 hash_input     path -> content hash (dedupe, resume) or an error row
    2 ingest_clip    probe + decode + window + labels -> staged `frames`/`clips` parts
                     (runs in a child process with a time limit: `ingest_clip_isolated`)
    3 generate_clip  one staged window -> its variations by the world model (labels carried)

Every failure becomes an error row (clip, stage, error type, message): a job never aborts on a bad
clip, and every input ends as rows or as an error row.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from amplify.conditions import Condition
from amplify.dataset import schema as S
from amplify.dataset.writer import staging_dir, to_table, write_part
from amplify.errors import CorruptVideoError, DecodeTimeoutError, InputError
from amplify.io.ingest import IngestConfig, Window, iter_windows
from amplify.io.isolated import Crashed, Timeout, call_isolated
from amplify.io.probe import content_hash, probe
from amplify.labels import Box, ClipLabels, sidecar_for

WINDOWS_PER_PART = 32  # ~2-3 MB per frames part at 256x128 PNG


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

    @property
    def source_id(self) -> str:
        return S.source_id(self.sha256)

    @property
    def key(self) -> str:
        return source_key(self.sha256, self.labels_sha256, self.ingest)


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


# 1. Hash -------------------------------------------------------------------------------------


def hash_input(path: str, job_id: str) -> dict:
    """{path, sha256, labels_sha256} or {path, error}: the file must exist, be readable, non-empty."""
    try:
        sidecar = sidecar_for(path)
        labels_sha = content_hash(sidecar) if sidecar is not None else None
        return {
            "path": path,
            "sha256": content_hash(path),
            "labels_sha256": labels_sha,
            "error": None,
        }
    except InputError as e:
        return {
            "path": path,
            "sha256": None,
            "labels_sha256": None,
            "error": error_row(path, "hash", e, job_id),
        }
    except OSError as e:
        row = error_row(path, "hash", e, job_id)
        return {"path": path, "sha256": None, "labels_sha256": None, "error": row}


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
        "parent_clip_id": None,
        "has_labels": w.labels is not None,
        "num_boxes": n_boxes,
        "source_meta": json.dumps(meta, sort_keys=True),
        "ingest": cfg.fingerprint(),
    }
    return frames, clip


def ingest_clip(task: ClipTask) -> dict:
    """Decode, window and stage one clip. Returns a summary; raises `InputError` on a bad clip.

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
    return {"parts": parts, "counts": counts, "seconds": time.perf_counter() - t0, "meta": meta}


def ingest_clip_isolated(task: ClipTask) -> dict:
    """`ingest_clip` in a child process under `task.ingest.decode_timeout_s`.

    Returns {key, path, status: ok|error, parts, counts, seconds, error}. Never raises for a bad
    clip: a hang, a crash or an `InputError` becomes the `error` row, and its staged parts are
    removed so nothing half-written is committed.
    """
    base = {"key": task.key, "path": task.path, "sha256": task.sha256, "parts": {}, "counts": {}}
    t0 = time.perf_counter()
    try:
        result = call_isolated(ingest_clip, task, timeout=task.ingest.decode_timeout_s)
        return {**base, **result, "status": "ok", "error": None}
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
    return {
        **base,
        "status": "error",
        "seconds": time.perf_counter() - t0,
        "error": error_row(task.path, stage, exc, task.job_id, task.sha256),
    }


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
    variations: tuple[str, ...]
    intensity: float
    seeds: int
    scenarios: tuple[str, ...] = ()  # "name:weight" (GenerateConfig.scenarios)
    scenario_samples: int = 0
    scenario_variations: tuple[str, ...] = ()  # conditions scenario samples are made under
    camera: tuple[float, float, float] = (1.5, 10.0, -1.0)  # cam_height, ego_speed, horizon


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


def generate_clip(generator, target: GenerateTarget) -> dict:
    """Every requested variation of one window: staged `frames`/`clips` parts, or an error row.

    A condition variation keeps the source's geometry, so its boxes are the source's boxes
    (labels stay true). A scenario sample edits the window's scene (amplify.scenarios), the
    painter renders the edit, and its rows carry the edited boxes (inserted agents marked
    `is_generated`, removed ones gone), under the source's own look and under each requested
    condition. Condition columns say what was requested; `parent_clip_id` is the source window.
    """
    import pyarrow.parquet as pq

    t0 = time.perf_counter()
    base = {"clip_id": target.clip_id, "path": target.source_path, "parts": {}, "counts": {}}
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
        conditions = [Condition.parse(v, target.intensity) for v in target.variations]
        frame_rows, clip_rows = [], []
        out = _VariationRows(generator, target, src_clip, rows, fmt, frame_rows, clip_rows)
        requests = [(c, seed) for c in conditions for seed in range(target.seeds)]
        if requests:
            images = generator.generate_many(frames, requests, layout=layout)
            for (cond, seed), imgs in zip(requests, images, strict=True):
                out.add(imgs, cond, seed)
        skipped = []
        scenario_conditions = [
            Condition.parse(str(v), target.intensity) for v in target.scenario_variations
        ]
        for k, spec in enumerate(scenario_specs(target)):
            from amplify.conditions import scenario_id
            from amplify.scenarios.edit import NothingToEdit, render_edit
            from amplify.scenarios.library import template

            world = scenario_world(target, src_clip, rows, labels, T, H, W)
            try:
                edit = template(spec.name).build(spec.params, world)
            except NothingToEdit as e:
                skipped.append(f"{spec.name}: {e}")
                continue
            maps = render_edit(world, edit)
            reqs = [(None, k)] + [(c, k) for c in scenario_conditions]
            images = generator.generate_many(
                frames, reqs, edit=maps, scenario=scenario_id(spec.name)
            )
            record = {**spec.params, "added": sorted(int(i) for i in edit.new_ids),
                      "removed": sorted(int(i) for i in edit.gone_ids - edit.new_ids),
                      "world": "scene" if world.exact else "ground_plane",
                      "painter_sha256": generator.painter_sha256}  # fmt: skip
            for (cond, seed), imgs in zip(reqs, images, strict=True):
                out.add(imgs, cond, seed, spec.name, record, maps.labels)
        stage = staging_dir(target.out, target.job_id)
        name = f"{src_clip['source_id']}-gen-{target.clip_id[:8]}.parquet"
        parts: dict[str, list[str]] = {"frames": [], "clips": []}
        if clip_rows:
            write_part(to_table("frames", frame_rows), stage / "frames" / name)
            write_part(to_table("clips", clip_rows), stage / "clips" / name)
            parts = {"frames": [name], "clips": [name]}
        counts = {"variations": len(clip_rows), "frames": len(frame_rows)}
        return {
            **base,
            "status": "ok",
            "parts": parts,
            "counts": counts,
            "skipped": "; ".join(skipped),  # scenarios this window had nothing for
            "seconds": time.perf_counter() - t0,
            "error": None,
        }
    except Exception as exc:  # one window failing never stops the others
        return {
            **base,
            "status": "error",
            "seconds": time.perf_counter() - t0,
            "error": error_row(
                target.source_path,
                f"generate:{target.clip_id[:8]}",
                exc,
                target.job_id,
                target.sha256,
            ),
        }


@dataclass
class _VariationRows:
    """Builds the `frames` and `clips` rows of one window's variations."""

    generator: object
    target: GenerateTarget
    src_clip: dict
    rows: list[dict]
    fmt: str
    frame_rows: list[dict]
    clip_rows: list[dict]

    def add(self, images, cond, seed, scenario=None, params=None, labels=None) -> None:
        src = self.src_clip
        look = cond.name if cond is not None else "source"
        variation = look if scenario is None else f"{look}+{scenario}"
        weather = cond.weather if cond is not None else src["weather"]
        tod = cond.time_of_day if cond is not None else src["time_of_day"]
        intensity = self.target.intensity if cond is not None else src["intensity"]
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
                "scenario_params": json.dumps(params, sort_keys=True) if params else None,
                "seed": seed,
                "generator": gen.name
                if scenario is None
                else f"{gen.name}+painter:{gen.painter_name}",
                "checkpoint_sha256": gen.checkpoint_sha256,
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
    from amplify.scenarios.world import GroundCamera, World
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
        return World.from_scene(scene, T, W, H, fps, float(src_clip["start_s"]), labels)
    cam_height, ego_speed, horizon = target.camera
    cam = GroundCamera(cam_height, ego_speed, horizon if horizon >= 0 else None)
    return World.from_clip(T, W, H, fps, labels, cam)
