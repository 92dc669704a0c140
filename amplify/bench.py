"""`make bench` / `python -m amplify.bench`: the throughput figures docs/BENCHMARKS.md reports.

    decode   ingest decode (resample + resize + scene cuts) vs a plain PyAV loop, same files
    synth    synthetic renderer frames/s at 256x128
    job      `amplify run` end to end (Ray, PNG encode, Parquet) frames/s
    scenarios  one scenario variation (edit, rasterise, paint, grade) of 17 x 256 x 128, s
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


def bench_job(folder: Path) -> dict:
    """`amplify run` (embedded Ray, ingest only) against a plain loop over the same stages."""
    import shutil

    from amplify.config import RayConfig, RunConfig, TrackingConfig
    from amplify.stages import ClipTask, hash_input, ingest_clip
    from pipelines.run import init_ray, run_job

    files = bench_files(folder / "files")
    inputs = [*files]
    ingest = IngestConfig(short_window_min=1)
    # Plain loop: the same stage functions, one process, no Ray, no child process.
    plain_out = folder / "plain"
    shutil.rmtree(plain_out, ignore_errors=True)
    t = time.perf_counter()
    plain_frames = 0
    for p in inputs:
        h = hash_input(str(p), "bench")
        task = ClipTask(
            str(p), h["sha256"], str(plain_out), "bench", "train", ingest, h["labels_sha256"]
        )
        plain_frames += ingest_clip(task)["counts"]["frames"]
    plain_s = time.perf_counter() - t
    out = folder / "job"
    shutil.rmtree(out, ignore_errors=True)
    cfg = RunConfig(
        input=str(folder / "files"),
        extra_inputs=[str(p) for p in files if p.parent == REAL],
        output=str(out),
        ingest=ingest,
        tracking=TrackingConfig(enabled=False),
        ray=RayConfig(),
    )
    t = time.perf_counter()
    init_ray(cfg.ray)
    ray_start_s = time.perf_counter() - t
    t = time.perf_counter()
    result = run_job(cfg, log=lambda *_: None)
    job_s = time.perf_counter() - t
    return {
        "bench": "job",
        "files": len(inputs),
        "output_frames": result.counts["frames"],
        "plain_loop_s": round(plain_s, 2),
        "job_s_excl_ray_start": round(job_s, 2),
        "ray_start_s": round(ray_start_s, 2),
        "ray_overhead_pct": round(100 * (job_s / plain_s - 1), 1),
        "plain_output_frames": plain_frames,
    }


def bench_synth() -> dict:
    from amplify.synth.bench import bench_synth as run

    return {"bench": "synth", **run()}


def bench_scenarios() -> dict:
    from amplify.scenarios.bench import bench

    return bench()


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--only",
        default="decode,synth,job,scenarios",
        help="comma list of: decode, synth, job, scenarios",
    )
    args = ap.parse_args()
    only = args.only.split(",")
    cache = Path(tempfile.gettempdir()) / "amplify-bench"
    print(json.dumps({"machine": machine(), "date": time.strftime("%Y-%m-%d")}))
    if "decode" in only:
        print(json.dumps(bench_decode(cache / "files")), flush=True)
    if "synth" in only:
        print(json.dumps(bench_synth()), flush=True)
    if "job" in only:
        print(json.dumps(bench_job(cache)), flush=True)
    if "scenarios" in only:
        print(json.dumps(bench_scenarios()), flush=True)


if __name__ == "__main__":
    main()
