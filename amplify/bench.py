"""`make bench` / `python -m amplify.bench`: the throughput figures docs/BENCHMARKS.md reports.

    decode   ingest decode (resample + resize + scene cuts) vs a plain PyAV loop, same files
    synth    synthetic renderer frames/s at 256x128
    job      `amplify run` end to end (plan, ingest, generate one variation, commit) on 200
             small clips vs a plain loop of the same stages; 1 vs 2 workers; peak RSS at 10 vs
             200 clips; a projection for N generate workers (`--clips N` to change the 200)
    scenarios  one scenario variation (edit, rasterise, paint, grade) of 17 x 256 x 128, s
    export   `amplify export` of 10,000 frames vs reading them once
    tokenizer, attention: see their own modules (amplify.tokenizer.bench, kernels.bench.attention)

Prints one JSON line per benchmark; `--only decode,synth` picks some.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import av

from amplify.io.ingest import IngestConfig, iter_windows
from amplify.io.samples import write_video

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
# Mixed 360p-1080p, as dashcam fleets record: (name, width, height, fps, frames)
SAMPLES = [
    ("s360.mp4", 640, 360, 30, 150),
    ("s720.mp4", 1280, 720, 30, 120),
    ("s1080.mkv", 1920, 1080, 25, 75),
]


def machine() -> str:
    return (
        f"{platform.machine()} {os.cpu_count()} cores, {platform.processor() or platform.system()}"
    )


def bench_files(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for name, w, h, fps, n in SAMPLES:
        p = folder / name
        if not p.exists():
            write_video(p, frames=n, width=w, height=h, fps=fps, codec="libx264")
        files.append(p)
    if REAL.is_dir():
        files += sorted(REAL.glob("*.mp4"))
    return files


def plain_decode(path: Path) -> int:
    """The baseline: decode every frame to full-size RGB, nothing else."""
    n = 0
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        for frame in c.decode(s):
            frame.to_ndarray(format="rgb24")
            n += 1
    return n


def count_source_frames(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def bench_decode(folder: Path) -> dict:
    files = bench_files(folder)
    src_frames = sum(count_source_frames(p) for p in files)
    t = time.perf_counter()
    for p in files:
        plain_decode(p)
    plain_s = time.perf_counter() - t
    cfg = IngestConfig(short_window_min=1)
    t = time.perf_counter()
    out_frames = 0
    for p in files:
        out_frames += sum(len(w.frames) for w in iter_windows(p, cfg))
    ingest_s = time.perf_counter() - t
    return {
        "bench": "decode",
        "files": len(files),
        "source_frames": src_frames,
        "plain_pyav_fps": round(src_frames / plain_s, 1),
        "ingest_source_fps": round(src_frames / ingest_s, 1),
        "ratio_ingest_over_plain": round(plain_s / ingest_s, 2),
        "ingest_output_frames": out_frames,
        "ingest": cfg.fingerprint(),
    }


JOB_CLIPS = 200  # the overhead benchmark's clips (issue 11); RSS is also measured at JOB_SMALL
JOB_SMALL = 10


def job_overrides(clips: Path, out: Path, workers: int, size: str = "small") -> list[str]:
    """The benchmark job: one window per clip, one variation by the default world model (quality
    metrics and classifier included): every stage. `small`: 9 frames at 128 x 64, small enough
    for 200 clips; `full`: the job's default windows (17 frames at 256 x 128)."""
    window = ["ingest.width=128", "ingest.height=64", "ingest.window=9", "ingest.stride=9",
              "generate.metrics_frames=3"] if size == "small" else []  # fmt: skip
    return [f"input={clips}", f"output={out}", "tracking.enabled=false", *window,
            "ingest.max_windows=1", "ingest.short_window_min=1", "generate.variations=[rain_night]",
            f"generate.actors={workers}", f"ray.num_cpus={workers}", "max_error_rate=1"]  # fmt: skip


def small_clips(folder: Path, n: int) -> Path:
    """`n` small H.264 clips (2 s at 10 fps, 160-352 x 96-152: sizes differ, so does content, so
    no clip is a duplicate of another), written once and kept."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        p = folder / f"clip_{i:04d}.mp4"
        if not p.exists():
            w, h = 160 + 8 * (i % 25), 96 + 8 * (i // 25 % 8)
            write_video(p, frames=20, width=w, height=h, fps=10, codec="libx264")
    return folder


class PeakRSS:
    """Peak resident memory, sampled every 0.2 s: this process alone, and this process with every
    descendant (the embedded Ray, its workers, their children; shared pages count once per
    process, so the tree figure is an upper bound)."""

    def __init__(self, out: Path | None = None) -> None:
        import threading

        from pipelines.run import ray_psutil

        # The job's own peak, before its commit writes the manifest and the reports (the reports
        # read committed frames: amplify.report's cost, not the job's).
        self.out, self.job_uss_mb = out, 0.0
        self.psutil = ray_psutil()
        self.me = self.psutil.Process()
        self.driver_mb = self.tree_mb = self.uss_mb = 0.0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                own = self.me.memory_info().rss
                tree = own
                for p in self.me.children(recursive=True):
                    try:
                        tree += p.memory_info().rss
                    except self.psutil.Error:
                        pass
                self.driver_mb = max(self.driver_mb, own / 2**20)
                # USS: the driver's own pages, without the object store it maps (shared)
                uss = self.me.memory_full_info().uss / 2**20
                self.uss_mb = max(self.uss_mb, uss)
                if self.out is not None and not (self.out / "_manifests").exists():
                    self.job_uss_mb = max(self.job_uss_mb, uss)
                self.tree_mb = max(self.tree_mb, tree / 2**20)
            except self.psutil.Error:
                pass
            self._stop.wait(0.2)

    def stop(self) -> dict:
        self._stop.set()
        self._t.join()
        return {"peak_rss_driver_mb": round(self.driver_mb, 1),
                "peak_uss_driver_mb": round(self.uss_mb, 1),
                "peak_uss_driver_before_commit_mb": round(self.job_uss_mb, 1),
                "peak_rss_tree_mb": round(self.tree_mb, 1)}  # fmt: skip


def plain_job(cfg) -> dict:
    """The same stages as `run_job`, in one plain loop: the same stage functions (each clip and
    each window in its child process, as in the job), the same commit, no Ray."""
    from amplify.dataset.writer import committed_sources, recover
    from amplify.io.ingest import scan_inputs
    from amplify.stages import (
        GeneratorSpec,
        generate_clip_isolated,
        generate_targets,
        hash_input,
        ingest_clip_isolated,
        plan_inputs,
    )
    from pipelines.run import JobSummary, run_commit

    t0 = time.perf_counter()
    out = Path(cfg.output).resolve()
    job = JobSummary(job_id="plain", out=out)
    job.counts = dict.fromkeys(("inputs", "ignored", "skipped", "clips_ok", "windows", "frames",
                                "boxes", "variations", "generated_frames"), 0)  # fmt: skip
    recover(out, log=lambda *_: None)
    inputs = [str(p) for p in scan_inputs(cfg.input).inputs]
    hashed = [hash_input(p, job.job_id) for p in inputs]
    g = cfg.generate
    plan = plan_inputs(hashed, committed_sources(out), str(out), job.job_id, cfg.ingest,
                       (cfg.validation_fraction, cfg.test_fraction), g.fingerprint())  # fmt: skip
    stages = {"plan_s": time.perf_counter() - t0}
    t = time.perf_counter()
    targets = []
    for task in plan.tasks:
        res = ingest_clip_isolated(task)
        job.record(res)
        targets += generate_targets(g, str(out), job.job_id, res)
    stages["ingest_s"] = time.perf_counter() - t
    t = time.perf_counter()
    spec = GeneratorSpec.from_config(g)
    for target in targets:
        job.record(generate_clip_isolated(spec, target, g.timeout_s))
    stages["generate_s"] = time.perf_counter() - t
    t = time.perf_counter()
    result = run_commit(cfg, job, t0, log=lambda *_: None)
    stages["commit_s"] = time.perf_counter() - t
    return {"counts": result.counts, "stages": stages}


def job_part(mode: str, clips: Path, out: Path, workers: int, size: str = "small") -> dict:
    """One measured job in this (fresh) process: `plain` or `ray` with `workers` CPUs / actors."""
    import shutil

    from amplify.config import RunConfig, load_config
    from pipelines.run import init_ray, run_job

    shutil.rmtree(out, ignore_errors=True)
    cfg = load_config("run", RunConfig, job_overrides(clips, out, workers, size))
    rss = PeakRSS(out)
    ray_start = 0.0
    if mode == "ray":
        t = time.perf_counter()
        init_ray(cfg.ray)
        ray_start = time.perf_counter() - t
    t = time.perf_counter()
    if mode == "plain":
        res = plain_job(cfg)
        counts, stages = res["counts"], res["stages"]
    else:
        result = run_job(cfg, log=lambda *_: None)
        counts = result.counts
        from amplify.dataset.writer import read_manifests

        stages = read_manifests(out)[-1].timings
    seconds = time.perf_counter() - t
    from amplify.dataset.reader import read_table

    rows = read_table(out, "clips", ["clip_id"]).num_rows
    return {"mode": mode, "workers": workers, "clips": len(list(clips.glob("*.mp4"))),
            "seconds": round(seconds, 2), "ray_start_s": round(ray_start, 2),
            "stages": {k: round(v, 2) for k, v in stages.items()}, "clip_rows": rows,
            "variations": counts["variations"], "errors": counts["errors"],
            **rss.stop()}  # fmt: skip


def _job_subprocess(mode: str, clips: Path, out: Path, workers: int, size: str) -> dict:
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "amplify.bench", "--job-part", mode, "--clips-dir", str(clips),
           "--out", str(out), "--workers", str(workers), "--job-size", size]  # fmt: skip
    root = Path(__file__).resolve().parents[1]
    # The plain loop's torch gets the one thread Ray gives a 1-CPU task (OMP_NUM_THREADS=1):
    # with two threads per process on a loaded 2-core machine it ran 9x slower (measured).
    env = {**os.environ, **({"OMP_NUM_THREADS": "1"} if mode == "plain" else {})}
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=root, check=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_job(
    folder: Path, clips: int = JOB_CLIPS, small: int = JOB_SMALL, size: str = "small"
) -> dict:
    """`amplify run` (embedded Ray: plan, ingest, generate one variation, commit) against a plain
    loop of the same stages, on `clips` small clips; 1 vs 2 workers; peak RSS at `small` vs
    `clips` clips; a projection for N generate workers from the measured stage times. Each run
    is a fresh process (its own Ray, its own peak RSS)."""
    many = small_clips(folder / f"clips{clips}", clips)
    few = small_clips(folder / f"clips{small}", small)
    plain = _job_subprocess("plain", many, folder / "out_plain", 1, size)
    ray1 = _job_subprocess("ray", many, folder / "out_ray1", 1, size)
    ray2 = _job_subprocess("ray", many, folder / "out_ray2", 2, size)
    ray_small = _job_subprocess("ray", few, folder / "out_small", 2, size)
    # Projection: the generate stage runs on N actors (GPUs), ingest on the CPUs beside them; the
    # job takes its fixed costs plus the slower of the two streams.
    per_window = plain["stages"]["generate_s"] / max(1, plain["variations"])
    per_clip = plain["stages"]["ingest_s"] / clips
    fixed = (
        ray1["seconds"] - ray1["stages"].get("ingest_s", 0) - ray1["stages"].get("generate_s", 0)
    )
    projection = {
        n: round(fixed + clips * max(per_clip / (4 * n), per_window / n), 1) for n in (1, 2, 4, 8)
    }
    return {
        "bench": "job",
        "clips": clips,
        "window": "9 x 128 x 64" if size == "small" else "17 x 256 x 128",
        "plain": plain,
        "ray_1_worker": ray1,
        "ray_2_workers": ray2,
        f"ray_2_workers_{small}_clips": ray_small,
        "ray_overhead_pct_1_worker": round(100 * (ray1["seconds"] / plain["seconds"] - 1), 1),
        "speedup_2_over_1_worker": round(ray1["seconds"] / ray2["seconds"], 2),
        "rss_tree_mb_small_vs_many": [ray_small["peak_rss_tree_mb"], ray2["peak_rss_tree_mb"]],
        "rss_driver_mb_small_vs_many": [
            ray_small["peak_rss_driver_mb"],
            ray2["peak_rss_driver_mb"],
        ],  # fmt: skip
        "measured_s_per_window_generate": round(per_window, 3),
        "measured_s_per_clip_ingest": round(per_clip, 3),
        "projected_s_for_n_generate_workers_4_cpus_each": projection,
    }


def bench_synth() -> dict:
    from amplify.synth.bench import bench_synth as run

    return {"bench": "synth", **run()}


def bench_export() -> dict:
    from amplify.export.bench import bench_export as run

    return {"bench": "export", **run()}


def bench_scenarios() -> dict:
    from amplify.scenarios.bench import bench

    return bench()


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--clips", type=int, default=JOB_CLIPS, help="clips of the job benchmark")
    # One measured job in a fresh process (bench_job runs these):
    ap.add_argument("--job-part", choices=("plain", "ray"), help=argparse.SUPPRESS)
    ap.add_argument("--clips-dir", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--job-size", choices=("small", "full"), default="small",
                    help="job benchmark windows: small (9 x 128 x 64) or full (17 x 256 x 128)")  # fmt: skip
    ap.add_argument(
        "--only",
        default="decode,synth,job,scenarios,export",
        help="comma list of: decode, synth, job, scenarios, export",
    )
    args = ap.parse_args()
    if args.job_part:
        print(json.dumps(job_part(args.job_part, Path(args.clips_dir), Path(args.out),
                                  args.workers, args.job_size)))  # fmt: skip
        return
    only = args.only.split(",")
    cache = Path(tempfile.gettempdir()) / "amplify-bench"
    print(json.dumps({"machine": machine(), "date": time.strftime("%Y-%m-%d")}))
    if "decode" in only:
        print(json.dumps(bench_decode(cache / "files")), flush=True)
    if "synth" in only:
        print(json.dumps(bench_synth()), flush=True)
    if "job" in only:
        job = bench_job(cache / "job", clips=args.clips, size=args.job_size)
        print(json.dumps(job), flush=True)
    if "scenarios" in only:
        print(json.dumps(bench_scenarios()), flush=True)
    if "export" in only:
        print(json.dumps(bench_export()), flush=True)


if __name__ == "__main__":
    main()
