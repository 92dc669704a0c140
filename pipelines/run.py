"""`amplify run`: the amplification job on Ray Data. In this version it is the ingest job.

    0 recover         remove parts an interrupted job left uncommitted
    1 list + hash     every input file -> content hash, or an error row      (Ray tasks)
    2 plan            dedupe by content, skip what earlier jobs committed     (driver)
    3 ingest          probe + decode + window + labels -> staged parts        (Ray tasks, each
                      clip in a child process with a time limit)
    4 generate        each staged window x requested variation -> world model (Ray actor pool:
                      the model loads once per actor; encoded frames on disk between stages)
    5 commit          errors part, parts into place, manifest, card, MLflow   (driver)

The stages themselves are plain functions in `amplify.stages`; this module only wires them.
"""

from __future__ import annotations

import fnmatch
import os
import time
import uuid
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

from amplify.config import RayConfig, RunConfig
from amplify.dataset import schema as S
from amplify.dataset.writer import (
    Manifest,
    commit,
    committed_sources,
    now_iso,
    recover,
    staging_dir,
    to_table,
    write_part,
)
from amplify.errors import DuplicateClipError
from amplify.io.ingest import IngestConfig, list_inputs
from amplify.stages import (
    ClipTask,
    GenerateTarget,
    error_row,
    generate_clip,
    hash_input,
    ingest_clip_isolated,
    source_key,
)
from amplify.tracking import job_run, tracking_uri


@dataclass
class JobResult:
    job_id: str
    output: str
    manifest: str
    counts: dict
    mlflow_run_id: str | None
    tracking_uri: str | None
    report: str | None = None


def init_ray(cfg: RayConfig) -> None:
    """Join `cfg.address`, or start an embedded local Ray (reused if this process has one)."""
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    if cfg.address:
        ray.init(address=cfg.address, log_to_driver=False)
    else:
        ray.init(
            num_cpus=cfg.num_cpus or os.cpu_count(),
            include_dashboard=False,
            object_store_memory=cfg.object_store_mb * 1024 * 1024,
            log_to_driver=False,
            configure_logging=False,
        )
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the job prints one line per clip instead
    ctx.print_on_execution_start = False


def _hash_row(row: dict) -> dict:
    return hash_input(row["path"], row["job_id"])


def _ingest_row(row: dict) -> dict:
    task = ClipTask(
        path=row["path"],
        sha256=row["sha256"],
        out=row["out"],
        job_id=row["job_id"],
        split=row["split"],
        labels_sha256=row["labels_sha256"],
        ingest=IngestConfig(**row["ingest"]),
    )
    result = ingest_clip_isolated(task)
    result["key"] = row["key"]  # the plan's key also covers the requested variations
    # Ray Data rows must be Arrow-friendly: nested dicts of scalars and lists are.
    return {"result": result}


class GenerateVariations:
    """Ray actor: loads the world model once, then makes the variations of one window per row."""

    def __init__(
        self,
        checkpoint: str,
        tokenizer: str,
        steps: int,
        guidance: float,
        device: str,
        refine: float,
        painter: str = "painter",
    ) -> None:
        from amplify.wfm.generate import Generator

        self.gen = Generator(checkpoint, tokenizer, device=device, steps=steps, guidance=guidance,
                             refine=refine, painter=painter)  # fmt: skip

    def __call__(self, batch: dict) -> dict:
        results = []
        for target in batch["target"]:
            results.append(generate_clip(self.gen, GenerateTarget(**target)))
        return {"result": results}


def generate_targets(
    cfg: RunConfig, out: Path, job_id: str, done_sources: list[dict]
) -> list[dict]:
    """The staged windows that get variations: matching source names, up to N windows each."""
    import pyarrow.parquet as pq

    g = cfg.generate
    stage = staging_dir(out, job_id)
    targets = []
    for res in done_sources:
        if not any(fnmatch.fnmatch(Path(res["path"]).name, m) for m in g.match):
            continue
        for name in res["parts"].get("clips", []):
            columns = ["clip_id", "window_index", "weather", "time_of_day"]
            clips = pq.read_table(stage / "clips" / name, columns=columns).to_pylist()
            for c in sorted(clips, key=lambda c: c["window_index"]):
                if g.max_windows_per_clip and c["window_index"] >= g.max_windows_per_clip:
                    continue
                condition = f"{c['weather']}_{c['time_of_day']}" if c["weather"] else "unknown"
                if g.source_conditions and condition not in g.source_conditions:
                    continue
                targets.append(
                    {
                        "frames_part": str(stage / "frames" / name),
                        "clips_part": str(stage / "clips" / name),
                        "clip_id": c["clip_id"],
                        "source_path": res["path"],
                        "sha256": res["sha256"],
                        "out": str(out),
                        "job_id": job_id,
                        "variations": tuple(g.variations),
                        "intensity": g.intensity,
                        "seeds": g.seeds,
                        "scenarios": tuple(g.scenarios),
                        "scenario_samples": g.scenario_samples,
                        "scenario_variations": tuple(g.scenario_conditions()),
                        "camera": (g.cam_height, g.ego_speed, g.horizon),
                    }
                )
    return targets


def new_job_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6]


def run_job(cfg: RunConfig, log=print) -> JobResult:
    import ray.data

    t_start = time.perf_counter()
    out = Path(cfg.output).resolve()
    out.mkdir(parents=True, exist_ok=True)
    job_id = cfg.job_id or new_job_id()
    timings: dict[str, float] = {}

    if cfg.generate.any_work:  # fail before any work, not in an actor an hour in
        from amplify.tokenizer.checkpoint import resolve_checkpoint as tokenizer_file
        from amplify.wfm.checkpoint import resolve_checkpoint as wfm_file

        wfm_file(cfg.generate.checkpoint)
        tokenizer_file(cfg.generate.tokenizer)
        if cfg.generate.scenarios:
            wfm_file(cfg.generate.painter)

    # 0. Recover from an interrupted job.
    recover(out, log=log)

    # 1. List and hash.
    inputs = [str(p) for root in [cfg.input, *cfg.extra_inputs] for p in list_inputs(root)]
    log(f"job {job_id}: {len(inputs)} input file(s) -> {out}")
    init_ray(cfg.ray)
    t = time.perf_counter()
    hashed = []
    if inputs:
        hashed = (
            ray.data.from_items([{"path": p, "job_id": job_id} for p in inputs])
            .map(_hash_row)
            .take_all()
        )
    hashed.sort(key=lambda r: r["path"])
    timings["hash_s"] = time.perf_counter() - t

    # 2. Plan: dedupe by content, skip committed sources.
    done = committed_sources(out)
    done_paths = {k.split("/")[0]: v["path"] for k, v in done.items() if "/" in k}  # sha -> path
    errors: list[dict] = []
    tasks: list[dict] = []
    first_path: dict[str, str] = {}
    skipped = 0
    for r in hashed:
        if r["error"] is not None:
            if r["error"]["error_id"] in done:
                skipped += 1
            else:
                errors.append(r["error"])
            continue
        sha, path = r["sha256"], r["path"]
        key = source_key(sha, r["labels_sha256"], cfg.ingest) + (
            f"/{cfg.generate.fingerprint()}" if cfg.generate.any_work else ""
        )
        earlier = first_path.get(sha) or done_paths.get(sha)
        if earlier is not None and earlier != path:
            dup = DuplicateClipError(
                path, f"same content as {earlier}; ingested once, under that name"
            )
            row = error_row(path, "dedupe", dup, job_id, sha)
            if row["error_id"] in done:
                skipped += 1
            else:
                errors.append(row)
            continue
        first_path[sha] = path
        if key in done:
            skipped += 1
            continue
        tasks.append(
            {
                "path": path,
                "sha256": sha,
                "labels_sha256": r["labels_sha256"],
                "key": key,
                "out": str(out),
                "job_id": job_id,
                "split": S.split_of(S.source_id(sha), cfg.validation_fraction),
                "ingest": asdict(cfg.ingest),
            }
        )
    if skipped:
        log(f"skipping {skipped} input(s) committed by earlier jobs")

    # 3. Ingest, streaming: one line per clip as it finishes.
    t = time.perf_counter()
    staged: dict[str, list[str]] = {"frames": [], "clips": []}
    sources: dict[str, dict] = {}
    counts = {
        "inputs": len(inputs),
        "skipped": skipped,
        "clips_ok": 0,
        "windows": 0,
        "frames": 0,
        "boxes": 0,
        "variations": 0,
        "generated_frames": 0,
    }
    ok_sources: list[dict] = []
    if tasks:
        with warnings.catch_warnings():
            # Ray Data retries a dying task forever by default; an explicit limit has no named
            # parameter in 2.60 (only the deprecated **ray_remote_args). Per-clip failures never
            # reach Ray: `ingest_clip_isolated` turns them into error rows.
            warnings.simplefilter("ignore", DeprecationWarning)
            ds = ray.data.from_items(tasks, override_num_blocks=len(tasks)).map(
                _ingest_row, num_cpus=1, max_retries=2
            )
        for i, row in enumerate(ds.iter_rows(), 1):
            res = row["result"]
            name = Path(res["path"]).name
            if res["status"] == "ok":
                c = res["counts"]
                counts["clips_ok"] += 1
                for k in ("windows", "frames", "boxes"):
                    counts[k] += c[k]
                for table, names in res["parts"].items():
                    staged[table] += list(names)
                ok_sources.append(res)
                sources[res["key"]] = {"path": res["path"], "status": "ok", "windows": c["windows"]}
                log(
                    f"[{i}/{len(tasks)}] {name}: {c['windows']} window(s), {c['frames']} frames ({res['seconds']:.1f} s)"
                )
            else:
                errors.append(res["error"])
                # The same content with the same labels fails the same way: a rerun skips it.
                sources[res["key"]] = {
                    "path": res["path"],
                    "status": "error",
                    "error_id": res["error"]["error_id"],
                }
                log(
                    f"[{i}/{len(tasks)}] {name}: {res['error']['error_type']}: {res['error']['message']}"
                )
    timings["ingest_s"] = time.perf_counter() - t

    # 4. Generate: the world model makes each requested variation of each staged window.
    g = cfg.generate
    targets = generate_targets(cfg, out, job_id, ok_sources) if g.any_work else []
    if targets:
        t = time.perf_counter()
        log(
            f"generate: {len(targets)} window(s) x {len(g.variations)} variation(s) x {g.seeds} seed(s) with {g.checkpoint}"
            + (f"; scenarios {', '.join(g.scenarios)} with {g.painter}" if g.scenarios else "")
        )
        device = "cuda" if g.num_gpus > 0 else "cpu"
        ds = ray.data.from_items(
            [{"target": tg} for tg in targets], override_num_blocks=len(targets)
        )
        ds = ds.map_batches(
            GenerateVariations,
            fn_constructor_kwargs={
                "checkpoint": g.checkpoint,
                "tokenizer": g.tokenizer,
                "steps": g.steps,
                "guidance": g.guidance,
                "refine": g.refine,
                "painter": g.painter,
                "device": device,
            },
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=g.actors),
            num_gpus=g.num_gpus,
            num_cpus=1,
        )
        for i, row in enumerate(ds.iter_rows(), 1):
            res = row["result"]
            name = Path(res["path"]).name
            if res["status"] == "ok":
                counts["variations"] += res["counts"]["variations"]
                counts["generated_frames"] += res["counts"]["frames"]
                for table, names in res["parts"].items():
                    staged[table] += list(names)
                log(
                    f"[{i}/{len(targets)}] {name} window {res['clip_id'][:8]}: {res['counts']['variations']} variation(s) ({res['seconds']:.1f} s)"
                    + (f"; skipped {res['skipped']}" if res.get("skipped") else "")
                )
            else:
                errors.append(res["error"])
                log(
                    f"[{i}/{len(targets)}] {name}: {res['error']['error_type']}: {res['error']['message']}"
                )
        timings["generate_s"] = time.perf_counter() - t
        if counts["variations"]:
            timings["s_per_variation"] = timings["generate_s"] / counts["variations"]

    # 5. Commit.
    for e in errors:
        sources[e["error_id"]] = {
            "path": e["source_path"],
            "status": "error",
            "error_type": e["error_type"],
        }
    if errors:
        name = f"{job_id}.parquet"
        write_part(to_table("errors", errors), staging_dir(out, job_id) / "errors" / name)
        staged["errors"] = [name]
    counts["errors"] = len(errors)
    timings["total_s"] = time.perf_counter() - t_start
    manifest = Manifest(
        job_id=job_id,
        created=now_iso(),
        config=asdict(cfg),
        sources=sources,
        counts=counts,
        timings={k: round(v, 3) for k, v in timings.items()},
    )
    run_id = None
    with job_run(cfg.tracking, f"run {job_id}", cfg, {"job_id": job_id, "output": str(out)}) as run:
        mpath = commit(out, manifest, {k: v for k, v in staged.items() if v})
        report = None
        if counts["variations"]:
            from amplify.report import variations_sheet

            report = variations_sheet(out, out / "_reports" / f"{job_id}.png")
        if run is not None:
            import mlflow

            mlflow.log_metrics({f"count.{k}": float(v) for k, v in counts.items()})
            mlflow.log_metrics({f"time.{k}": float(v) for k, v in timings.items()})
            if counts["frames"] and timings["ingest_s"] > 0:
                mlflow.log_metric("ingest_frames_per_s", counts["frames"] / timings["ingest_s"])
            mlflow.log_artifact(str(mpath), artifact_path="manifest")
            mlflow.log_artifact(str(out / "README.md"), artifact_path="dataset")
            if report is not None:
                mlflow.log_artifact(str(report), artifact_path="report")
            mlflow.set_tag("dataset", str(out))
            run_id = run.info.run_id
    log(
        f"job {job_id} committed: {counts['clips_ok']} clip(s) -> {counts['windows']} window(s), "
        f"{counts['frames']} frames, {counts['variations']} variation(s); {counts['errors']} "
        f"error(s); {counts['skipped']} skipped ({timings['total_s']:.1f} s)"
    )
    return JobResult(
        job_id=job_id,
        output=str(out),
        manifest=str(mpath),
        counts=counts,
        mlflow_run_id=run_id,
        tracking_uri=tracking_uri(cfg.tracking) if cfg.tracking.enabled else None,
        report=str(report) if report is not None else None,
    )
