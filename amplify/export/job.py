"""`amplify export`: committed rows of a dataset -> filters -> splits by source -> formats, written
to a hidden folder beside the output and renamed into place after its manifest: a killed export
leaves no half-written output (only a hidden `.NAME.partial-*` folder, removed by the next export).

    OUT/parquet/frames/<split>-NNNNN-of-MMMMM.parquet   Hugging Face-ready (image = Image feature)
    OUT/parquet/clips/<split>-NNNNN-of-MMMMM.parquet    one row per clip, lineage and metrics
    OUT/webdataset/<split>-NNNNNN.tar + index.parquet   mp4 per clip + labels (video models)
    OUT/coco/<split>.json (+ coco/<split>/*.png)        detection boxes, COCO style
    OUT/README.md                                        dataset card
    OUT/_export.json                                     the manifest: config, counts, files

The export reads each committed frames file once (memory-mapped, the next file read by a second
thread while this one is written), keeps the rows of the selected clips, sets their export split
and streams them to every format (one pass: see amplify/export/bench.py).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from amplify.dataset.reader import check_schema, committed_files
from amplify.dataset.schema import BOX, schema_for
from amplify.dataset.writer import now_iso, read_manifests
from amplify.errors import ConfigError
from amplify.export.card import write_card
from amplify.export.coco import CocoWriter
from amplify.export.config import SPLITS, ExportConfig
from amplify.export.licences import load_licences
from amplify.export.select import select_clips
from amplify.export.shards import ShardWriter
from amplify.export.webdataset import WebDatasetWriter, write_index

MANIFEST = "_export.json"
EXPORT_VERSION = 1


def _with_meta(schema: pa.Schema, table: str) -> pa.Schema:
    return schema.with_metadata(schema_for(table).metadata)


def conform(t: pa.Table, schema: pa.Schema) -> pa.Table:
    """`t` with `schema`'s columns in its order; a column `t` lacks reads as null."""
    cols = [
        t.column(f.name).cast(f.type) if f.name in t.column_names else pa.nulls(t.num_rows, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(cols, schema=schema)


def unified_schema(files: list[Path], table: str) -> pa.Schema:
    base = schema_for(table)
    extra = pa.unify_schemas(
        [pq.read_schema(f).remove_metadata() for f in files], promote_options="default"
    )
    fields = list(base) + [f for f in extra if f.name not in base.names]
    return pa.schema(fields, metadata=base.metadata)


def _prepare_output(out: Path, overwrite: bool, log) -> Path:
    if out.exists() and not overwrite:
        raise ConfigError("output", str(out), "exists; pass overwrite=true to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in sorted(out.parent.glob(f".{out.name}.partial-*")) + sorted(
        out.parent.glob(f".{out.name}.old-*")
    ):
        log(f"export: removing {stale.name} left by an interrupted export")
        shutil.rmtree(stale, ignore_errors=True)
    stage = out.parent / f".{out.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    stage.mkdir()
    return stage


def _commit(stage: Path, out: Path) -> None:
    """The manifest is inside `stage`; one rename makes the whole export visible."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, old)
    os.replace(stage, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _read_part(f: Path, kept_ids: pa.Array | None) -> pa.Table | None:
    """A committed frames file, memory-mapped (its image pages are not copied on read); None
    when `kept_ids` is given and the file holds none of them (only its ids are read then)."""
    if kept_ids is not None:
        ids = pq.read_table(f, columns=["clip_id"], memory_map=True).column(0)
        if not pc.any(pc.is_in(ids, value_set=kept_ids)).as_py():
            return None
    return pq.read_table(f, memory_map=True)


def prefetch(files: list[Path], kept_ids: pa.Array | None):
    """(file, table) of each file that holds kept rows, in order; the next file is read by a
    second thread while the caller writes this one (pyarrow releases the GIL for both), so the
    export costs about max(read, write) rather than their sum."""
    if not files:
        return
    with ThreadPoolExecutor(1, thread_name_prefix="export-read") as pool:
        pending = pool.submit(_read_part, files[0], kept_ids)
        for i, f in enumerate(files):
            t = pending.result()
            if i + 1 < len(files):
                pending = pool.submit(_read_part, files[i + 1], kept_ids)
            if t is not None:
                yield f, t


def in_clip_order(t: pa.Table) -> pa.Table:
    """`t` with each clip's frames together and in order, so that a clip reader streams it and a
    clip never spans two shards. The dataset writer already writes frames in this order; then
    nothing is copied (a part of an older dataset, in frame-id order, is taken once)."""
    order = pc.sort_indices(t, sort_keys=[("clip_id", "ascending"), ("frame_index", "ascending")])
    if (order.to_numpy() == np.arange(t.num_rows)).all():
        return t
    return t.take(order)


def split_runs(t: pa.Table):
    """(split, rows of `t` in that split), each split once, its rows in `t`'s order: zero-copy
    slices of `t` joined as chunks, so the image bytes are not copied before the write."""
    runs = pc.run_end_encode(t["split"].combine_chunks())
    slices: dict[str, list[pa.Table]] = {}
    start = 0
    for s, end in zip(runs.values.to_pylist(), runs.run_ends.to_pylist(), strict=True):
        slices.setdefault(s, []).append(t.slice(start, end - start))
        start = end
    for s in sorted(slices, key=SPLITS.index):
        yield s, pa.concat_tables(slices[s])


def run_export(cfg: ExportConfig, log=print) -> dict:
    """Write the export; return its manifest (as a dict)."""
    t0 = time.perf_counter()
    src, out = Path(cfg.input), Path(cfg.output).resolve()
    jobs = read_manifests(src)
    if not jobs:
        raise ConfigError("input", cfg.input, "has no committed job (_manifests/*.json)")
    if out == src.resolve() or src.resolve() in out.parents:
        raise ConfigError("output", cfg.output, "must lie outside the dataset folder")

    # 1. Select: committed clips -> filters -> splits by source
    sel = select_clips(src, cfg.filter, cfg.split)
    clips = sel.clips
    if not clips.num_rows:
        raise ConfigError(
            "filter", dataclasses.asdict(cfg.filter), f"removed every clip: {sel.removed}"
        )
    t_select = time.perf_counter()
    stage = _prepare_output(out, cfg.overwrite, log)
    try:
        # 2. Frames: one pass over the committed frames files, rows of the kept clips only
        files = committed_files(src, "frames")
        for f in files:
            check_schema(f)
        frames_schema = unified_schema(files, "frames")
        split_by_clip = dict(
            zip(clips["clip_id"].to_pylist(), clips["split"].to_pylist(), strict=True)
        )
        clip_rows = {r["clip_id"]: r for r in clips.to_pylist()}
        kept_ids = pa.array(sorted(split_by_clip), pa.string())
        split_values = pa.array([split_by_clip[c] for c in kept_ids.to_pylist()], pa.string())
        split_names = [s for s in SPLITS if s in set(split_by_clip.values())]
        parquet = {
            s: ShardWriter(stage / "parquet" / "frames", s, frames_schema, cfg.shard)
            for s in split_names
            if "parquet" in cfg.formats
        }
        wds = (
            WebDatasetWriter(stage / "webdataset", cfg.shard, cfg.webdataset)
            if "webdataset" in cfg.formats
            else None
        )
        coco = CocoWriter(stage / "coco", cfg.coco) if "coco" in cfg.formats else None
        frames_out = {s: 0 for s in split_names}
        categories: set[str] = set()
        wds_clips: set[str] = set()
        filtered = clips.num_rows < sel.total["clips"]
        for f, t in prefetch(files, kept_ids if filtered else None):
            where = pc.index_in(t["clip_id"], value_set=kept_ids)
            if where.null_count:
                t, where = t.filter(pc.is_valid(where)), where.filter(pc.is_valid(where))
            if not t.num_rows:
                continue
            splits = pc.take(split_values, where)
            t = t.set_column(t.schema.get_field_index("split"), "split", splits)
            t = in_clip_order(conform(t, frames_schema))
            cats = pc.struct_field(pc.list_flatten(t["boxes"]), "category")
            categories.update(c for c in pc.unique(cats).to_pylist() if c is not None)
            for s, part in split_runs(t):
                frames_out[s] += part.num_rows
                if s in parquet:
                    parquet[s].write(part)
            if wds is not None or coco is not None:
                rows = t.to_pylist()
                if coco is not None:
                    for r in rows:
                        coco.add(r["split"], r, clip_rows[r["clip_id"]])
                if wds is not None:
                    by_clip: dict[str, list[dict]] = {}
                    for r in rows:
                        by_clip.setdefault(r["clip_id"], []).append(r)
                    for cid in sorted(by_clip):
                        # The dataset writer keeps a window's frames in one part; a clip split
                        # over two parts would become two samples with one key.
                        if cid in wds_clips:
                            raise RuntimeError(f"{f}: clip {cid} also in an earlier part")
                        wds_clips.add(cid)
                        wds.add(clip_rows[cid], by_clip[cid])

        # 3. Close each format; the clips table per split beside the frames
        written: dict[str, object] = {}
        if "parquet" in cfg.formats:
            clips_schema = _with_meta(
                pa.unify_schemas([schema_for("clips"), clips.schema.remove_metadata()]), "clips"
            )
            frames_files = [p for w in parquet.values() for p in w.close()]
            clip_files = []
            for s in split_names:
                w = ShardWriter(stage / "parquet" / "clips", s, clips_schema, cfg.shard)
                w.write(conform(clips.filter(pc.equal(clips["split"], s)), clips_schema))
                clip_files += w.close()
            written["parquet"] = {
                "frames": [str(p.relative_to(stage)) for p in frames_files],
                "clips": [str(p.relative_to(stage)) for p in clip_files],
            }
        if wds is not None:
            tars, index = wds.close()
            idx = write_index(index, stage / "webdataset" / "index.parquet", BOX)
            written["webdataset"] = [str(p.relative_to(stage)) for p in tars + [idx]]
        if coco is not None:
            written["coco"] = [str(p.relative_to(stage)) for p in coco.close()]

        # 4. Manifest (the commit marker) and card, then one rename
        counts = {}
        for s in split_names:
            part = clips.filter(pc.equal(clips["split"], s))
            counts[s] = {
                "clips": part.num_rows,
                "frames": frames_out[s],
                "sources": len(set(part["source_id"].to_pylist())),
            }
        manifest = {
            "export_id": f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}",
            "export_version": EXPORT_VERSION,
            "created": now_iso(),
            "input": str(src.resolve()),
            "input_jobs": [m.job_id for m in jobs],
            "config": dataclasses.asdict(cfg),
            "counts": counts,
            # box categories of the whole export, sorted: class index i is categories[i]
            "categories": sorted(categories),
            "total": sel.total,
            "removed": sel.removed,
            "files": written,
            "timings": {
                "select_s": round(t_select - t0, 3),
                "frames_s": round(time.perf_counter() - t_select, 3),
            },
        }
        write_card(stage / "README.md", clips, manifest, jobs, load_licences(cfg.licence_sources))
        manifest["timings"]["total_s"] = round(time.perf_counter() - t0, 3)
        (stage / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
        _commit(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    summary = ", ".join(f"{s} {c['clips']} clips / {c['frames']} frames" for s, c in counts.items())
    log(f"export: {out} ({summary}) in {manifest['timings']['total_s']:.1f} s")
    return manifest


def read_export_manifest(path: str | Path) -> dict:
    """The manifest of a committed export; `FileNotFoundError` if `path` is not one."""
    m = Path(path) / MANIFEST
    if not m.is_file():
        raise FileNotFoundError(f"{path}: not a committed amplify export (no {MANIFEST})")
    return json.loads(m.read_text())


def export(cfg: ExportConfig) -> int:
    """The `amplify export` handler."""
    m = run_export(cfg)
    print(f"manifest: {Path(cfg.output) / MANIFEST}")
    for fmt, files in m["files"].items():
        n = sum(len(v) for v in files.values()) if isinstance(files, dict) else len(files)
        print(f"{fmt:<11} {n} file(s)")
    return 0
