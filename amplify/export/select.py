"""Which clips leave the dataset and in which split: the committed clip rows, filtered (each
filter counted), with a split per source clip that stays put as the dataset grows."""

from __future__ import annotations

import fnmatch
import operator
import re
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from amplify.dataset.reader import check_schema, committed_files
from amplify.dataset.schema import split_of as schema_split_of
from amplify.dataset.schema import stable_rank
from amplify.errors import ConfigError
from amplify.export.config import SPLITS, FilterConfig, SplitConfig

OPS = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
}


def read_committed(dataset: str | Path, table: str, columns: list[str] | None = None) -> pa.Table:
    """Every committed row of `table`; files may carry extra columns (quality metrics added by a
    later job): schemas are unified, a column missing from a file reads as null."""
    files = committed_files(dataset, table)
    if not files:
        raise FileNotFoundError(f"{dataset}: no committed {table} (no manifest lists any file)")
    parts = []
    for f in files:  # one open per file: its footer gives the schema checked, then its rows
        with pq.ParquetFile(f) as pf:
            check_schema(f, pf.schema_arrow)
            names = pf.schema_arrow.names
            cols = None if columns is None else [c for c in columns if c in names]
            parts.append(pf.read(columns=cols))
    return pa.concat_tables(parts, promote_options="default")


@dataclass
class Selection:
    """The clips to export (`clips`, with the export's `split`) and what each filter removed."""

    clips: pa.Table
    removed: dict[str, dict[str, int]] = field(default_factory=dict)  # filter -> clips, frames
    total: dict[str, int] = field(default_factory=dict)  # clips, frames before filtering


def _frames(t: pa.Table) -> int:
    return int(pc.sum(t.column("num_frames")).as_py() or 0)


def _mask_in(col: pa.ChunkedArray, values: list[str], null_name: str) -> pa.ChunkedArray:
    names = [v for v in values if v != null_name]
    mask = pc.is_in(col, value_set=pa.array(names, pa.string()))
    mask = pc.fill_null(mask, False)
    if null_name in values:
        mask = pc.or_(mask, pc.is_null(col))
    return mask


def _numeric_mask(clips: pa.Table, col: str, op: str, value: float) -> pa.ChunkedArray:
    if col not in clips.column_names:
        numeric = sorted(
            n
            for n, t in zip(clips.column_names, clips.schema.types, strict=True)
            if pa.types.is_integer(t) or pa.types.is_floating(t)
        )
        raise ConfigError(
            f"filter ({col}{op}{value:g})",
            col,
            f"the dataset's clips have no column {col!r}; numeric columns: {numeric}",
        )
    column = clips.column(col)
    if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
        raise ConfigError(f"filter ({col}{op}{value:g})", col, f"is {column.type}, not numeric")
    fn = {
        ">=": pc.greater_equal,
        "<=": pc.less_equal,
        ">": pc.greater,
        "<": pc.less,
        "==": pc.equal,
        "!=": pc.not_equal,
    }[op]
    # Quality metrics are measured against a source, so source clips have none: a null passes
    # on a source clip and fails on a generated one (unmeasured output is not trusted).
    unmeasured_source = pc.and_(pc.is_null(column), pc.equal(clips["generator"], "source"))
    return pc.or_(pc.fill_null(fn(column, value), False), pc.fill_null(unmeasured_source, False))


def filter_clips(clips: pa.Table, cfg: FilterConfig, seed: int = 0) -> tuple[pa.Table, dict]:
    """Apply each filter of `cfg` in order; return the kept rows and {filter: {clips, frames}}."""
    removed: dict[str, dict[str, int]] = {}

    def apply(name: str, mask) -> None:
        nonlocal clips
        kept = clips.filter(mask)
        removed[name] = {
            "clips": clips.num_rows - kept.num_rows,
            "frames": _frames(clips) - _frames(kept),
        }
        clips = kept

    if cfg.conditions:
        cond = pc.binary_join_element_wise(clips["weather"], clips["time_of_day"], "_")
        apply("conditions", _mask_in(cond, cfg.conditions, "unknown"))
    if cfg.weather:
        apply("weather", _mask_in(clips["weather"], cfg.weather, "unknown"))
    if cfg.time_of_day:
        apply("time_of_day", _mask_in(clips["time_of_day"], cfg.time_of_day, "unknown"))
    if cfg.scenarios:
        apply("scenarios", _mask_in(clips["scenario"], cfg.scenarios, "none"))
    if cfg.generators:
        gens = clips["generator"].to_pylist()
        keep = [any(fnmatch.fnmatchcase(g or "", p) for p in cfg.generators) for g in gens]
        apply("generators", pa.array(keep, pa.bool_()))
    if cfg.origin != "any":
        is_source = pc.equal(clips["generator"], "source")
        apply("origin", is_source if cfg.origin == "source" else pc.invert(is_source))
    if cfg.labelled:
        apply("labelled", pc.fill_null(clips["has_labels"], False))
    for col, op, value in cfg.numeric_terms():
        apply(f"{col}{op}{value:g}", _numeric_mask(clips, col, op, value))
    if cfg.max_variations_per_source:
        # A stable seeded choice: a variation's rank depends on its own id only, so adding
        # variations later never evicts one that was kept unless a new one outranks it.
        rows = clips.select(["clip_id", "source_id", "generator"]).to_pylist()
        by_source: dict[str, list[tuple[int, int]]] = {}
        for i, r in enumerate(rows):
            if r["generator"] != "source":
                by_source.setdefault(r["source_id"], []).append(
                    (stable_rank(seed, r["clip_id"]), i)
                )
        drop = {
            i
            for ranked in by_source.values()
            for _, i in sorted(ranked)[cfg.max_variations_per_source :]
        }
        apply(
            "max_variations_per_source",
            pa.array([i not in drop for i in range(len(rows))], pa.bool_()),
        )
    return clips, removed


def group_key(source_id: str, source_path: str | None, pattern: str) -> str:
    """The key a split is drawn for: the source (its content id), or the pattern's group on the
    file name. Never the folder: moving the inputs must not move a source to another split (two
    corpora with the same scene names share a key, which only makes the grouping coarser)."""
    if pattern and source_path:
        m = re.search(pattern, Path(source_path).name)
        if m:
            return f"group/{m.group(1) if m.groups() else m.group(0)}"
    return source_id


def _explicit(patterns: list[str], source_id: str, sha: str | None, path: str | None) -> bool:
    for p in patterns:
        if p == source_id or (sha and len(p) >= 8 and sha.startswith(p.lower())):
            return True
        if path and (fnmatch.fnmatchcase(path, p) or fnmatch.fnmatchcase(Path(path).name, p)):
            return True
    return False


def split_of(key: str, cfg: SplitConfig) -> str:
    """The split of a group key under `cfg` (`amplify.dataset.schema.split_of`: the function the
    job's dataset uses too, so with the same fractions and seed a source has one split in both)."""
    return schema_split_of(key, cfg.validation, cfg.test, cfg.seed)


def assign_splits(clips: pa.Table, cfg: SplitConfig) -> pa.Table:
    """`clips` with its `split` column set per source (see `split_of`)."""
    rows = clips.select(["source_id", "source_sha256", "source_path", "split"]).to_pylist()
    # Keyed by source id: a generated variation has its parent's source id, so the same split.
    cache: dict[str, str] = {}
    out = []
    for r in rows:
        k = r["source_id"]
        if k not in cache:
            sid, sha, path = r["source_id"], r["source_sha256"], r["source_path"]
            if cfg.keep_dataset_split:
                s = r["split"] or "train"
            elif _explicit(cfg.test_sources, sid, sha, path):
                s = "test"
            elif _explicit(cfg.validation_sources, sid, sha, path):
                s = "validation"
            else:
                s = split_of(group_key(sid, path, cfg.group_pattern), cfg)
            cache[k] = s
        out.append(cache[k])
    assert set(out) <= set(SPLITS), set(out)
    i = clips.schema.get_field_index("split")
    return clips.set_column(i, clips.schema.field("split"), pa.array(out, pa.string()))


def select_clips(dataset: str | Path, fcfg: FilterConfig, scfg: SplitConfig) -> Selection:
    """Committed clips -> filters -> splits. Sorted by (split, clip id): same input, same order."""
    clips = read_committed(dataset, "clips")
    total = {"clips": clips.num_rows, "frames": _frames(clips)}
    clips, removed = filter_clips(clips, fcfg, seed=scfg.seed)
    clips = assign_splits(clips, scfg)
    clips = clips.sort_by([("split", "ascending"), ("clip_id", "ascending")])
    return Selection(clips=clips, removed=removed, total=total)
