"""`amplify export`: committed rows of a dataset -> filters -> splits by source -> formats, written
to a hidden folder beside the output and renamed into place after its manifest: a killed export
leaves no half-written output (only a hidden `.NAME.partial-*` folder, removed by the next export).

    OUT/parquet/frames/<split>-NNNNN-of-MMMMM.parquet   Hugging Face-ready (image = Image feature)
    OUT/parquet/clips/<split>-NNNNN-of-MMMMM.parquet    one row per clip, lineage and metrics
    OUT/webdataset/<split>-NNNNNN.tar + index.parquet   mp4 per clip + labels (video models)
    OUT/coco/<split>.json (+ coco/<split>/*.png)        detection boxes, COCO style
    OUT/README.md                                        dataset card
    OUT/_export.json                                     the manifest: config, counts, files

While the clips are selected, a second thread reads each committed frames file's schema and the
few columns that decide its fate (`peek`). A file that goes into the Parquet export unchanged
(every row kept, one split that its `split` column names: what a job's parts are under the
default splits) is hard-linked as a shard (`linkable`). Any other is read once (memory-mapped,
the next one read while this one is written), its kept rows get their export split and are
streamed to every format (one pass: see amplify/export/bench.py).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
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
from amplify.export.config import SPLITS, ExportConfig, ShardConfig
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


def unified_schema(schemas: list[pa.Schema], table: str) -> pa.Schema:
    """`table`'s schema plus every extra column of `schemas` (the committed files')."""
    base = schema_for(table)
    extra = pa.unify_schemas([s.remove_metadata() for s in schemas], promote_options="default")
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


LINK_COLUMNS = ["clip_id", "frame_index", "split", "boxes.list.element.category"]


@dataclass
class Part:
    """One committed frames file, as the export will use it. `link`: the export split when the
    file goes into the Parquet export as it is (hard-linked, not rewritten); `table`: all its
    columns, when its rows must be rewritten or another format needs them (None otherwise)."""

    path: Path
    rows: int
    link: str | None
    table: pa.Table | None
    categories: set[str]


@dataclass
class PartPlan:
    """What the reader needs to decide a file's fate: the kept clips and their export split
    (aligned arrays), the export's frames schema and shard limits, and whether a file may be
    linked at all and whether another format needs every row."""

    kept_ids: pa.Array
    split_values: pa.Array
    schema: pa.Schema  # as stored (`as_stored`)
    shard: ShardConfig
    filtered: bool
    link: bool
    rows_needed: bool


def as_stored(schema: pa.Schema) -> pa.Schema:
    """`schema` as a Parquet file written with it reads back (lists name their items "element"):
    what a committed file's schema is compared with."""
    buf = pa.BufferOutputStream()
    pq.write_table(schema.empty_table(), buf)
    return pq.ParquetFile(pa.BufferReader(buf.getvalue())).schema_arrow


def linkable(f: Path, schema: pa.Schema, meta: pa.Table, plan: PartPlan) -> str | None:
    """The export split when file `f` can go into the Parquet export unchanged: its schema (and
    Hugging Face metadata) is the export's, every row is kept, all in one export split that its
    `split` column already names, its clips' frames together and in order, and it fits the shard
    limits. A job writes one part per source (or per window of one), so with the default splits
    and no filter every part of a job qualifies; a part of an older dataset is rewritten."""
    if not schema.equals(plan.schema, check_metadata=True):
        return None
    where = pc.index_in(meta["clip_id"], value_set=plan.kept_ids)
    if where.null_count:
        return None
    splits = pc.unique(pc.take(plan.split_values, where)).to_pylist()
    if len(splits) != 1 or pc.unique(meta["split"]).to_pylist() != splits:
        return None
    if clip_order(meta) is not None:
        return None
    if plan.shard.max_rows and meta.num_rows > plan.shard.max_rows:
        return None
    if plan.shard.max_bytes and f.stat().st_size > plan.shard.max_bytes:
        return None
    return splits[0]


@dataclass
class Peek:
    """A committed frames file's schema and the few columns that decide its fate (`LINK_COLUMNS`),
    read before the clips are selected."""

    path: Path
    schema: pa.Schema
    meta: pa.Table


def peek(f: Path) -> Peek:
    with pq.ParquetFile(f, memory_map=True) as pf:
        return Peek(f, pf.schema_arrow, pf.read(columns=LINK_COLUMNS))


def read_part(p: Peek, plan: PartPlan) -> Part | None:
    """A peeked frames file -> a `Part` (None when it holds no kept row); the whole file is read
    (memory-mapped: its image pages are not copied) only when its rows are rewritten or another
    format needs them."""
    kept = p.meta
    if plan.filtered:
        kept = p.meta.filter(pc.is_in(p.meta["clip_id"], value_set=plan.kept_ids))
        if not kept.num_rows:
            return None
    cats = pc.struct_field(pc.list_flatten(kept["boxes"]), "category")
    categories = {c for c in pc.unique(cats).to_pylist() if c is not None}
    link = linkable(p.path, p.schema, p.meta, plan) if plan.link else None
    table = None
    if link is None or plan.rows_needed:
        table = pq.read_table(p.path, memory_map=True)
    return Part(p.path, p.meta.num_rows, link, table, categories)


def prefetch(peeks: list[Peek], plan: PartPlan, pool: ThreadPoolExecutor):
    """The `Part` of each file that holds kept rows, in order; the next one is read on `pool`
    while the caller writes this one (pyarrow releases the GIL for both), so the export costs
    about max(read, write) rather than their sum."""
    if not peeks:
        return
    pending = pool.submit(read_part, peeks[0], plan)
    for i in range(len(peeks)):
        part = pending.result()
        if i + 1 < len(peeks):
            pending = pool.submit(read_part, peeks[i + 1], plan)
        if part is not None:
            yield part


def clip_order(t: pa.Table) -> pa.Array | None:
    """The row order that puts each clip's frames together and in order; None when `t` is in it
    already (as the dataset writer writes frames)."""
    order = pc.sort_indices(t, sort_keys=[("clip_id", "ascending"), ("frame_index", "ascending")])
    return None if (order.to_numpy() == np.arange(t.num_rows)).all() else order


def in_clip_order(t: pa.Table) -> pa.Table:
    """`t` with each clip's frames together and in order, so that a clip reader streams it and a
    clip never spans two shards: `t` itself when it is (nothing copied), else taken once (a part
    of an older dataset, in frame-id order)."""
    order = clip_order(t)
    return t if order is None else t.take(order)


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
    with ThreadPoolExecutor(1, thread_name_prefix="export-read") as reader:
        return _run_export(cfg, log, reader)


def _run_export(cfg: ExportConfig, log, reader: ThreadPoolExecutor) -> dict:
    t0 = time.perf_counter()
    src, out = Path(cfg.input), Path(cfg.output).resolve()
    jobs = read_manifests(src)
    if not jobs:
        raise ConfigError("input", cfg.input, "has no committed job (_manifests/*.json)")
    if out == src.resolve() or src.resolve() in out.parents:
        raise ConfigError("output", cfg.output, "must lie outside the dataset folder")

    # 1. Select: committed clips -> filters -> splits by source (the frames files' schemas and
    #    deciding columns are read meanwhile, on the reader thread)
    files = committed_files(src, "frames")
    peeking = reader.submit(lambda: [peek(f) for f in files])
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
        peeks = peeking.result()
        for p in peeks:
            check_schema(p.path, p.schema)
        frames_schema = unified_schema([p.schema for p in peeks], "frames")
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
        plan = PartPlan(
            kept_ids, split_values, as_stored(frames_schema), cfg.shard,
            filtered=clips.num_rows < sel.total["clips"],
            link="parquet" in cfg.formats and cfg.link,
            rows_needed=wds is not None or coco is not None,
        )  # fmt: skip
        for part in prefetch(peeks, plan, reader):
            f = part.path
            categories |= part.categories
            if part.link is not None:
                parquet[part.link].link(f, part.rows)
                frames_out[part.link] += part.rows
            if part.table is None:
                continue
            t = part.table
            where = pc.index_in(t["clip_id"], value_set=kept_ids)
            if where.null_count:
                t, where = t.filter(pc.is_valid(where)), where.filter(pc.is_valid(where))
            if not t.num_rows:
                continue
            splits = pc.take(split_values, where)
            t = t.set_column(t.schema.get_field_index("split"), "split", splits)
            t = in_clip_order(conform(t, frames_schema))
            if part.link is None:
                for s, rows in split_runs(t):
                    frames_out[s] += rows.num_rows
                    if s in parquet:
                        parquet[s].write(rows)
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
            # Parquet frames shards that are hard links of committed dataset parts (unchanged)
            "linked": sum(w.linked for w in parquet.values()),
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
