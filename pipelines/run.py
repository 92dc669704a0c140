"""`amplify run`: the amplification job on Ray Data, read as its stages. The numbering is the one
of `amplify.stages` (the stage functions, plain Python, tested without Ray) and README.md:

    1 plan      recover an interrupted job; list the inputs (documents beside them are noted as
                ignored); hash each (driver threads on the embedded Ray, Ray tasks on a
                cluster); dedupe by content, skip what is committed
    2 ingest    probe + decode + window + labels -> staged parts       (Ray tasks; each clip in a
                                                                       child process, time limit)
    3 generate  each staged window x its variation specs -> world model + quality metrics
                (Ray actor pool: `generate.actors` actors of `generate.num_cpus` CPUs and
                `generate.num_gpus` GPUs, `generate.batch_size` windows per call; each window in
                a child process under `generate.timeout_s`)
    4 commit    errors part, parts into place, manifest, card, report, MLflow run   (driver)

Between stages travel staged Parquet parts (encoded images) and small JSON summaries, never
decoded video; results stream through the driver one at a time into a `JobSummary` (counts,
part names, the manifest's source map), so the driver's memory does not grow with the clips'
size. The embedded Ray goes down with its driver, even a `kill -9`ed one (`init_ray`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from amplify.config import RayConfig, RunConfig
from amplify.dataset.reader import check_dataset
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
from amplify.io.ingest import scan_inputs
from amplify.stages import (
    ClipTask,
    GenerateResult,
    GenerateTarget,
    GeneratorSpec,
    HashResult,
    IngestResult,
    Plan,
    StageResult,
    generate_clip_isolated,
    generate_targets,
    hash_input,
    ingest_clip_isolated,
    plan_inputs,
)
from amplify.tracking import job_run, tracking_uri

Log = Callable[[str], None]


@dataclass
class JobResult:
    job_id: str
    output: str
    manifest: str
    counts: dict
    mlflow_run_id: str | None
    tracking_uri: str | None
    report: str | None = None  # the contact sheet (png), else the html page
    reports: dict[str, str] = field(default_factory=dict)  # kind (png, html) -> path
    error_rate: float = 0.0  # error rows / (input clips + generated windows) of this job
    max_error_rate: float = 1.0

    @property
    def exit_code(self) -> int:
        """What `amplify run` exits with: 0, or 1 when the error rate is over `max_error_rate`."""
        return 0 if self.error_rate <= self.max_error_rate else 1


# Ray ----------------------------------------------------------------------------------------


def init_ray(cfg: RayConfig) -> None:
    """Join `cfg.address`, or start an embedded local Ray (reused if this process has one).

    Ray starts its GCS and raylet to die with this process (PR_SET_PDEATHSIG), and its workers
    follow the raylet; its dashboard and runtime-env agents did not (issue 11: alive 30 s after
    a `kill -9` of the driver). A reaper process outlives the driver and kills what is left of
    the embedded Ray within a second of the driver's death.
    """
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
        start_reaper()
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the job shows its own progress (`Progress`)
    ctx.print_on_execution_start = False


def start_reaper(pid: int | None = None) -> subprocess.Popen:
    """A detached process that kills every descendant of process `pid` (this one) once it dies."""
    pid = pid or os.getpid()
    code = f"from pipelines.run import reap; reap({pid})"
    return subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # outlives the driver's process group (a Ctrl-C, a kill -PGID)
        cwd=str(Path(__file__).resolve().parents[1]),
    )


def reap(pid: int, interval_s: float = 0.25) -> None:
    """Remember the process tree under `pid` while it lives; when it dies, SIGKILL what remains of
    that tree (orphans are reparented to init, so the tree must be remembered, not re-read)."""
    psutil = ray_psutil()
    try:
        root = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    me = os.getpid()  # the reaper is a child of the driver too
    seen: dict[int, float] = {}  # pid -> create time (a reused pid is another process)
    while True:
        try:
            if not root.is_running() or root.status() == psutil.STATUS_ZOMBIE:
                break
            for p in root.children(recursive=True):
                if p.pid != me:
                    seen.setdefault(p.pid, p.create_time())
        except psutil.Error:
            break  # gone between two calls
        time.sleep(interval_s)
    for _ in range(3):  # a process may still fork while its siblings die
        for p_pid, created in list(seen.items()):
            try:
                p = psutil.Process(p_pid)
                if p.create_time() != created:
                    continue
                for kid in p.children(recursive=True):
                    if kid.pid != me:
                        seen.setdefault(kid.pid, kid.create_time())
                p.kill()
            except psutil.Error:
                pass
        time.sleep(interval_s)


def ray_psutil():
    """psutil, as Ray bundles it (importing ray puts its third-party folder on the path)."""
    import importlib

    import ray  # noqa: F401

    return importlib.import_module("psutil")


# Progress -----------------------------------------------------------------------------------


class Progress:
    """A stage's progress: a bar on a terminal (tqdm when installed, else one rewritten line)
    with the per-item lines above it; plain `[i/n ...]` lines through `log` otherwise."""

    def __init__(self, what: str, total: int, log: Log) -> None:
        self.what, self.total, self.log, self.i = what, total, log, 0
        self.t0 = time.perf_counter()
        self.bar = None
        if log is print and sys.stderr.isatty() and total > 1:
            try:
                from tqdm import tqdm

                unit = {"ingest": "clip", "generate": "window"}.get(what, "item")
                self.bar = tqdm(total=total, desc=what, unit=unit, leave=False)
            except ImportError:
                self.bar = _LineBar(what, total)

    def step(self, line: str) -> None:
        self.i += 1
        if self.bar is not None:
            self.bar.write(line)
            self.bar.update(1)
            return
        dt = time.perf_counter() - self.t0
        eta = dt / self.i * (self.total - self.i)
        self.log(f"[{self.what} {self.i}/{self.total}, {dt:.0f} s, eta {eta:.0f} s] {line}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class _LineBar:
    """The bar without tqdm: one line rewritten in place on stderr."""

    def __init__(self, what: str, total: int) -> None:
        self.what, self.total, self.n = what, total, 0

    def write(self, line: str) -> None:
        sys.stderr.write("\r\033[K" + line + "\n")

    def update(self, k: int) -> None:
        self.n += k
        done = int(30 * self.n / self.total)
        bar = "#" * done + "." * (30 - done)
        sys.stderr.write(f"\r{self.what} [{bar}] {self.n}/{self.total}")
        sys.stderr.flush()

    def close(self) -> None:
        sys.stderr.write("\r\033[K")


# The job's state between stages --------------------------------------------------------------


@dataclass
class JobSummary:
    """What the driver keeps while results stream by: counts, staged part names, the manifest's
    source map and the error rows (all small; frames never pass through the driver)."""

    job_id: str
    out: Path
    counts: dict[str, int] = field(default_factory=dict)
    staged: dict[str, list[str]] = field(default_factory=lambda: {"frames": [], "clips": []})
    sources: dict[str, dict] = field(default_factory=dict)
    errors: list[dict] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    work: int = 0  # units that could fail: input clips planned + windows sent to generate

    def record(self, result: StageResult) -> None:
        """One stage result, either stage: its parts, its counts, or its error row."""
        if result.ok:
            for table, names in result.parts.items():
                self.staged.setdefault(table, []).extend(names)
        else:
            self.errors.append(result.error)
        if isinstance(result, IngestResult):
            if result.ok:
                self.add("clips_ok", 1)
                for k in ("windows", "frames", "boxes"):
                    self.add(k, result.counts[k])
                self.sources[result.key] = {"path": result.path, "status": "ok",
                                            "windows": result.counts["windows"]}  # fmt: skip
            else:  # the same content with the same labels fails the same way: a rerun skips it
                self.sources[result.key] = {"path": result.path, "status": "error",
                                            "error_id": result.error["error_id"]}  # fmt: skip
        elif isinstance(result, GenerateResult) and result.ok:
            self.add("variations", result.counts["variations"])
            self.add("generated_frames", result.counts["frames"])

    def add(self, key: str, n: int) -> None:
        self.counts[key] = self.counts.get(key, 0) + n

    @property
    def error_rate(self) -> float:
        return len(self.errors) / self.work if self.work else 0.0


def new_job_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6]


# The job -------------------------------------------------------------------------------------


def run_job(cfg: RunConfig, log: Log = print) -> JobResult:
    """Plan, ingest, generate, commit (module docstring)."""
    t_start = time.perf_counter()
    out = Path(cfg.output).resolve()
    out.mkdir(parents=True, exist_ok=True)
    job = JobSummary(job_id=cfg.job_id or new_job_id(), out=out)
    for k in ("inputs", "ignored", "skipped", "clips_ok", "windows", "frames", "boxes",
              "variations", "generated_frames"):  # fmt: skip
        job.counts[k] = 0
    check_models(cfg)  # fail before any work, not in an actor an hour in
    check_dataset(out)  # an output written by an older, unreadable schema: say so now

    plan = run_plan(cfg, job, log)
    targets = run_ingest(cfg, job, plan.tasks, log)
    run_generate(cfg, job, targets, log)
    return run_commit(cfg, job, t_start, log)


def check_models(cfg: RunConfig) -> None:
    g = cfg.generate
    if not g.any_work:
        return
    from amplify.tokenizer.checkpoint import resolve_checkpoint as tokenizer_file
    from amplify.wfm.checkpoint import resolve_checkpoint as wfm_file

    wfm_file(g.checkpoint)
    tokenizer_file(g.tokenizer)
    if g.scenarios:
        wfm_file(g.painter)
    if g.classifier:
        from amplify.eval.classifier import load_classifier

        load_classifier(g.classifier)


def run_plan(cfg: RunConfig, job: JobSummary, log: Log) -> Plan:
    """1. Plan: recover, list, hash (Ray tasks), dedupe and skip committed (driver)."""
    import ray.data

    recover(job.out, log=log)
    inputs: list[str] = []
    for root in [cfg.input, *cfg.extra_inputs]:
        listing = scan_inputs(root)
        inputs += [str(p) for p in listing.inputs]
        job.ignored += [str(p) for p in listing.ignored]
    job.counts["inputs"], job.counts["ignored"] = len(inputs), len(job.ignored)
    log(f"job {job.job_id}: {len(inputs)} input(s) -> {job.out}")
    if job.ignored:
        names = ", ".join(Path(p).name for p in job.ignored[:10])
        more = f" and {len(job.ignored) - 10} more" if len(job.ignored) > 10 else ""
        log(f"ignored {len(job.ignored)} non-media file(s): {names}{more}")
    init_ray(cfg.ray)
    t = time.perf_counter()
    hashed: list[HashResult] = []
    if inputs and not cfg.ray.address:
        # The embedded Ray shares this machine's disks: threads hash as fast (hashlib releases
        # the GIL) without a Ray Data execution to start (~4-8 s on 2 cores, measured).
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(4) as pool:
            hashed = list(pool.map(lambda p: hash_input(p, job.job_id), inputs))
    elif inputs:
        # On a cluster the files are read where the workers are. A few blocks, not one per
        # file: hashing is I/O bound and a task costs ~ms to schedule.
        blocks = min(len(inputs), 4 * max(1, int(ray.available_resources().get("CPU", 1))))
        items = [{"path": p, "job_id": job.job_id} for p in inputs]
        rows = ray.data.from_items(items, override_num_blocks=blocks).map(_hash_row).iter_rows()
        hashed = [HashResult(**_json_row(r)) for r in rows]
    job.timings["hash_s"] = time.perf_counter() - t
    g = cfg.generate
    plan = plan_inputs(hashed, committed_sources(job.out), str(job.out), job.job_id, cfg.ingest,
                       (cfg.validation_fraction, cfg.test_fraction), g.fingerprint() if g.any_work else "")  # fmt: skip
    job.errors += plan.errors
    job.counts["skipped"] = plan.skipped
    job.work += len(plan.tasks) + len(plan.errors)
    if plan.skipped:
        log(f"skipping {plan.skipped} input(s) committed by earlier jobs")
    return plan


def run_ingest(
    cfg: RunConfig, job: JobSummary, tasks: list[ClipTask], log: Log
) -> list[GenerateTarget]:
    """2. Ingest (Ray tasks), streaming: each clip's result as it finishes. Returns the staged
    windows that get variations (read from each clip's staged `clips` part as it lands)."""
    import ray.data

    t = time.perf_counter()
    targets: list[GenerateTarget] = []
    if tasks:
        with warnings.catch_warnings():
            # Ray Data retries a dying task forever by default; an explicit limit has no named
            # parameter in 2.60 (only the deprecated **ray_remote_args). Per-clip failures never
            # reach Ray: `ingest_clip_isolated` turns them into error rows.
            warnings.simplefilter("ignore", DeprecationWarning)
            ds = ray.data.from_items(
                [{"task": task.to_json()} for task in tasks],
                override_num_blocks=num_blocks(len(tasks)),
            ).map(_ingest_row, num_cpus=1, max_retries=2)
        results = (IngestResult.from_json(r["result"]) for r in ds.iter_rows())
        for res in _stream("ingest", results, len(tasks), job, log):
            if cfg.generate.any_work:
                targets += generate_targets(cfg.generate, str(job.out), job.job_id, res)
    job.timings["ingest_s"] = time.perf_counter() - t
    return targets


# A Ray task costs ~40-60 ms (schedule, object store, Arrow block) on a loaded 2-core machine:
# one per clip made the job 70% slower than a plain loop over 200 small clips (BENCHMARKS.md).
# Blocks of up to this many items, yet at least 4 per CPU for balance and streaming progress.
ITEMS_PER_BLOCK = 8


def num_blocks(n: int) -> int:
    import ray

    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    return max(1, min(n, max(4 * cpus, -(-n // ITEMS_PER_BLOCK))))


def run_generate(cfg: RunConfig, job: JobSummary, targets: list[GenerateTarget], log: Log) -> None:
    """3. Generate (Ray actor pool), streaming: each window's variations as they finish."""
    import ray.data

    if not targets:
        return
    g = cfg.generate
    t = time.perf_counter()
    job.work += len(targets)
    log(
        f"generate: {len(targets)} window(s) with {g.checkpoint}: "
        + ", ".join(
            part
            for part in (
                f"{len(g.variations)} condition(s) x {g.seeds} seed(s)" if g.variations else "",
                f"a grid of {len(g.grid_conditions())} x {g.seeds} seed(s)"
                if g.grid_conditions()
                else "",
                f"{g.samples} sampled condition(s)" if g.samples else "",
                f"scenarios {', '.join(g.scenarios)} with {g.painter}" if g.scenarios else "",
            )
            if part
        )
    )
    ds = ray.data.from_items(
        [{"target": tg.to_json()} for tg in targets], override_num_blocks=num_blocks(len(targets))
    ).map_batches(
        GenerateVariations,
        fn_constructor_kwargs={"spec": GeneratorSpec.from_config(g), "timeout_s": g.timeout_s},
        batch_size=g.batch_size,
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=g.actors),
        num_gpus=g.num_gpus,
        num_cpus=g.num_cpus,
    )
    results = (GenerateResult.from_json(r["result"]) for r in ds.iter_rows())
    for _ in _stream("generate", results, len(targets), job, log):
        pass
    job.timings["generate_s"] = time.perf_counter() - t
    if job.counts["variations"]:
        job.timings["s_per_variation"] = job.timings["generate_s"] / job.counts["variations"]


def run_commit(cfg: RunConfig, job: JobSummary, t_start: float, log: Log) -> JobResult:
    """4. Commit: the errors part, the staged parts into place, the manifest (the commit point),
    the card, the report, one MLflow run."""
    for e in job.errors:
        job.sources[e["error_id"]] = {"path": e["source_path"], "status": "error",
                                      "error_type": e["error_type"]}  # fmt: skip
    if job.errors:
        name = f"{job.job_id}.parquet"
        write_part(
            to_table("errors", job.errors), staging_dir(job.out, job.job_id) / "errors" / name
        )
        job.staged["errors"] = [name]
    counts = {**job.counts, "errors": len(job.errors)}
    job.timings["total_s"] = time.perf_counter() - t_start
    manifest = Manifest(
        job_id=job.job_id,
        created=now_iso(),
        config=asdict(cfg),
        sources=job.sources,
        counts=counts,
        timings={k: round(v, 3) for k, v in job.timings.items()},
        ignored=job.ignored,
    )
    run_id = None
    tags = {"job_id": job.job_id, "output": str(job.out)}
    with job_run(cfg.tracking, f"run {job.job_id}", cfg, tags) as run:
        mpath = commit(job.out, manifest, {k: v for k, v in job.staged.items() if v})
        reports = write_reports(job.out, job.job_id, counts["variations"], log)
        if run is not None:
            log_run(job, counts, mpath, reports)
            run_id = run.info.run_id
    rate = job.error_rate
    log(
        f"job {job.job_id} committed: {counts['clips_ok']} clip(s) -> {counts['windows']} "
        f"window(s), {counts['frames']} frames, {counts['variations']} variation(s); "
        f"{counts['errors']} error(s) ({100 * rate:.0f}% of the work; max "
        f"{100 * cfg.max_error_rate:.0f}%); {counts['skipped']} skipped; {counts['ignored']} "
        f"ignored ({job.timings['total_s']:.1f} s)"
    )
    return JobResult(
        job_id=job.job_id,
        output=str(job.out),
        manifest=str(mpath),
        counts=counts,
        mlflow_run_id=run_id,
        tracking_uri=tracking_uri(cfg.tracking) if cfg.tracking.enabled else None,
        report=str(reports.get("png") or reports.get("html") or "") or None,
        reports={k: str(v) for k, v in reports.items()},
        error_rate=rate,
        max_error_rate=cfg.max_error_rate,
    )


def write_reports(out: Path, job_id: str, variations: int, log: Log) -> dict[str, Path]:
    """The job's reports (amplify.report): kind -> path ("png" contact sheet, "html" page when
    that module writes one). The dataset is committed before: a failing report is logged, never
    a failed job."""
    from amplify import report

    try:
        if hasattr(report, "write_job_report"):
            return report.write_job_report(out, job_id)
        if variations:
            png = report.variations_sheet(out, out / "_reports" / f"{job_id}.png")
            return {"png": png} if png is not None else {}
    except Exception as e:
        log(f"report: not written ({type(e).__name__}: {e})")
    return {}


def log_run(job: JobSummary, counts: dict, manifest: Path, reports: dict[str, Path]) -> None:
    import mlflow

    mlflow.log_metrics({f"count.{k}": float(v) for k, v in counts.items()})
    mlflow.log_metrics({f"time.{k}": float(v) for k, v in job.timings.items()})
    mlflow.log_metric("error_rate", job.error_rate)
    if counts["frames"] and job.timings.get("ingest_s", 0) > 0:
        mlflow.log_metric("ingest_frames_per_s", counts["frames"] / job.timings["ingest_s"])
    mlflow.log_artifact(str(manifest), artifact_path="manifest")
    mlflow.log_artifact(str(job.out / "README.md"), artifact_path="dataset")
    for path in reports.values():
        mlflow.log_artifact(str(path), artifact_path="report")
    if "html" in reports and Path(reports["html"]).with_suffix("").is_dir():
        mlflow.log_artifacts(str(Path(reports["html"]).with_suffix("")), "report/" + job.job_id)
    mlflow.set_tag("dataset", str(job.out))


def _stream(
    what: str, results: Iterable[StageResult], total: int, job: JobSummary, log: Log
) -> Iterable[StageResult]:
    """The one result loop of both stages: record each result, show progress, pass it on."""
    progress = Progress(what, total, log)
    try:
        for res in results:
            job.record(res)
            progress.step(f"{Path(res.path).name}: {res.describe()}")
            yield res
    finally:
        progress.close()


# Ray Data boundary: rows carry JSON strings; the stages see dataclasses -----------------------


def _json_row(row: dict) -> dict:
    import json

    return json.loads(row["result"])


def _hash_row(row: dict) -> dict:
    import json

    return {"result": json.dumps(asdict(hash_input(row["path"], row["job_id"])))}


def _ingest_row(row: dict) -> dict:
    return {"result": ingest_clip_isolated(ClipTask.from_json(row["task"])).to_json()}


class GenerateVariations:
    """Ray actor: one generate worker. The models load once, in the worker's child process
    (`generate_clip_isolated`), which a hung or crashed window takes down instead of the actor."""

    def __init__(self, spec: GeneratorSpec, timeout_s: float) -> None:
        self.spec, self.timeout_s = spec, timeout_s

    def __call__(self, batch: dict) -> dict:
        results = []
        for text in batch["target"]:
            target = GenerateTarget.from_json(str(text))
            results.append(generate_clip_isolated(self.spec, target, self.timeout_s).to_json())
        return {"result": results}


def main(argv: list[str] | None = None) -> int:
    """`python -m pipelines.run key=value ...`: the job, exiting 1 past `max_error_rate`."""
    from amplify.config import load_config

    cfg = load_config("run", RunConfig, list(sys.argv[1:] if argv is None else argv))
    result = run_job(cfg)
    print(f"dataset:  {result.output}\nmanifest: {result.manifest}")
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
