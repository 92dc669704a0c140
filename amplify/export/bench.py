"""Export throughput: `amplify export` of N frames against the time to read those frames once.

The dataset is shaped like a job's output (256x128 PNG frames of the synthetic renderer, one part
per source of 4 windows of 17 frames, as the ingest writes them, boxes, train / validation / test
by source as `amplify run` splits), written straight through the dataset writer so the benchmark
measures the export, not ingest. Timings, each the median of `repeats` runs, first cold (the
dataset's pages evicted before each run) then warm (page cache):

    read_s     read every committed frames file once (pyarrow, all columns): the bytes an export
               must move at least; the target is export_s <= 1.2 x read_s (issue 12)
    copy_s     read each file and write it back unchanged (images uncompressed, as the export
               writes them): the floor of any export that writes its own copy of the frames
    export_s   `run_export` to Parquet (default config: no filter, the dataset's splits, so every
               part is hard-linked; card, manifest)
    copy_export_s  the same with `link=false`: every shard written anew
    decode_s   read + decode every PNG (what one training epoch over the frames costs), for scale

    python -m amplify.export.bench            # or from amplify/bench.py: bench_export()
"""

from __future__ import annotations

import io
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

FRAMES_PER_CLIP = 17
CLIPS_PER_PART = 4  # = windows per source: one part per source, as a job writes


def make_bench_dataset(out: Path, frames: int = 10_000) -> Path:
    """A committed dataset of `frames` frames (PNG bytes of real renders, reused cyclically)."""
    import av
    from PIL import Image

    from amplify.dataset import schema as S
    from amplify.dataset.writer import Manifest, commit, now_iso, staging_dir, to_table, write_part
    from amplify.synth.corpus import SynthConfig, make_corpus

    corpus = out.parent / "bench_corpus"
    # 4 scenes x 12 conditions x 17 frames = 816 distinct PNGs: repeats far apart, so no
    # compressor finds a copy within a page (real frames do not repeat either).
    small = {"weathers": ("clear",), "times_of_day": ("day",)} if frames < 2000 else {}
    cfg = SynthConfig(
        out=str(corpus), clips=max(1, min(4, frames // 2000)), frames=FRAMES_PER_CLIP, **small
    )
    make_corpus(cfg, progress=lambda _: None)
    pngs = []
    for mp4 in sorted(corpus.glob("*.mp4")):
        with av.open(str(mp4)) as c:
            for f in c.decode(video=0):
                buf = io.BytesIO()
                Image.fromarray(f.to_ndarray(format="rgb24")).save(buf, format="PNG")
                pngs.append(buf.getvalue())
    box = {"track_id": 1, "category": "car", "x0": 10.0, "y0": 20.0, "x1": 60.0, "y1": 70.0}
    box["is_generated"] = False
    stage = staging_dir(out, "bench")
    n_clips = -(-frames // FRAMES_PER_CLIP)
    names, f_rows, c_rows, k = [], [], [], 0
    for ci in range(n_clips):
        source = S.source_id(f"{ci // 4:064x}")  # 4 windows per source
        cid = S.clip_id(source, "bench", ci % 4)
        split = S.split_of(source, 0.1, 0.1)
        n = min(FRAMES_PER_CLIP, frames - ci * FRAMES_PER_CLIP)
        for i in range(n):
            f_rows.append(
                {
                    "frame_id": S.frame_id(cid, i), "clip_id": cid, "source_id": source,
                    "split": split, "variation": "source", "frame_index": i,
                    "timestamp_s": i / 10, "image": {"bytes": pngs[k % len(pngs)], "path": None},
                    "width": 256, "height": 128, "boxes": [box] * (1 + i % 3),
                    "weather": "clear", "time_of_day": "day", "intensity": 0.7,
                }
            )  # fmt: skip
            k += 1
        c_rows.append(
            {
                "clip_id": cid, "source_id": source, "source_path": f"bench/{ci // 4}.mp4",
                "source_sha256": f"{ci // 4:064x}", "split": split, "window_index": ci % 4,
                "shot_index": 0, "start_s": 0.0, "num_frames": n, "fps": 10.0, "width": 256,
                "height": 128, "variation": "source", "weather": "clear", "time_of_day": "day",
                "intensity": 0.7, "seed": 0, "generator": "source", "has_labels": True,
                "num_boxes": n * 2, "ingest": "bench",
            }
        )  # fmt: skip
        if len(c_rows) == CLIPS_PER_PART or ci == n_clips - 1:
            name = f"part-{len(names):04d}.parquet"
            write_part(to_table("frames", f_rows), stage / "frames" / name)
            write_part(to_table("clips", c_rows), stage / "clips" / name)
            names.append(name)
            f_rows, c_rows = [], []
    m = Manifest(job_id="bench", created=now_iso(), config={}, counts={"frames": frames})
    commit(out, m, {"frames": names, "clips": names})
    return out


def evict(files: list[Path]) -> None:
    """Drop `files` from the page cache (written back first), so the next read is from storage."""
    for f in files:
        fd = os.open(f, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_export(frames: int = 10_000, repeats: int = 5, folder: str | Path | None = None) -> dict:
    """Export `frames` frames vs reading them once; returns the figures (seconds, ratio)."""
    from amplify.data.targets import decode_image
    from amplify.dataset.reader import committed_files
    from amplify.export import ExportConfig, ShardConfig, run_export
    from amplify.export.shards import ShardWriter

    tmp = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="amplify-export-bench-"))
    try:
        ds = make_bench_dataset(tmp / "dataset", frames)
        files = committed_files(ds, "frames")

        def read_once() -> None:
            for f in files:
                pq.read_table(f)

        def decode_once() -> None:
            for f in files:
                for b in (
                    pq.read_table(f, columns=["image"])["image"].combine_chunks().field("bytes")
                ):
                    decode_image(b.as_py())

        # Each run writes a fresh folder, removed after it is timed: deleting the previous
        # output is not part of either figure.
        def copy_once() -> None:
            (tmp / "copy").mkdir()
            for f in files:
                t = pq.read_table(f)
                options = ShardWriter(tmp / "copy", "x", t.schema, ShardConfig()).options
                pq.write_table(t, tmp / "copy" / f.name, **options)

        def export_once() -> None:
            run_export(ExportConfig(input=str(ds), output=str(tmp / "export")), log=lambda *_: None)

        def copy_export_once() -> None:
            cfg = ExportConfig(input=str(ds), output=str(tmp / "export"), link=False)
            run_export(cfg, log=lambda *_: None)

        # Cold: the dataset's pages evicted before each run, so both sides read from storage
        # (an export of a dataset a job wrote earlier); then warm, from the page cache.
        cold_reads, cold_exports = [], []
        for _ in range(repeats):
            evict(files)
            cold_reads.append(_median_time(read_once, 1))
            evict(files)
            cold_exports.append(_median_time(export_once, 1))
            shutil.rmtree(tmp / "export")
        read_once()  # warm the page cache for both sides
        # Interleaved, medians: on a shared machine the load changes between runs.
        reads, copies, exports, copy_exports = [], [], [], []
        for _ in range(repeats):
            reads.append(_median_time(read_once, 1))
            copies.append(_median_time(copy_once, 1))
            exports.append(_median_time(export_once, 1))
            shutil.rmtree(tmp / "export")
            copy_exports.append(_median_time(copy_export_once, 1))
            shutil.rmtree(tmp / "copy")
            shutil.rmtree(tmp / "export")
        read_s, copy_s = statistics.median(reads), statistics.median(copies)
        export_s = statistics.median(exports)
        cold_read_s, cold_export_s = statistics.median(cold_reads), statistics.median(cold_exports)
        decode_s = _median_time(decode_once, 1)
        nbytes = sum(f.stat().st_size for f in files)
        return {
            "bench": "export",
            "frames": frames,
            "dataset_mb": round(nbytes / 2**20, 1),
            "read_s": round(read_s, 3),
            "copy_s": round(copy_s, 3),
            "export_s": round(export_s, 3),
            "export_over_copy": round(export_s / copy_s, 2),
            "export_over_read": round(export_s / read_s, 2),
            "copy_export_s": round(statistics.median(copy_exports), 3),
            "copy_export_over_read": round(statistics.median(copy_exports) / read_s, 2),
            "cold_read_s": round(cold_read_s, 3),
            "cold_export_s": round(cold_export_s, 3),
            "cold_export_over_read": round(cold_export_s / cold_read_s, 2),
            "target_over_read": 1.2,
            "decode_s": round(decode_s, 3),
            "export_frames_per_s": round(frames / export_s),
        }
    finally:
        if folder is None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    print(json.dumps(bench_export()))
