"""Read a committed dataset back: only files a manifest lists, each checked against the schema
versions this code knows (`SchemaError` names the file and both versions). Files of an older
readable version (`READABLE_VERSIONS`) lack only nullable columns: they are read with those
columns as nulls, so one job's rerun over an older dataset reads as one table."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from amplify.dataset.schema import READABLE_VERSIONS, SCHEMA_VERSION, TABLES, schema_for
from amplify.dataset.writer import read_manifests
from amplify.errors import SchemaError


def check_schema(path: str | Path, schema: pa.Schema | None = None) -> dict:
    """The `amplify` metadata of a Parquet file (its `schema`, when already read); raise
    `SchemaError` if its version is not ours."""
    meta = (schema if schema is not None else pq.read_schema(path)).metadata or {}
    raw = meta.get(b"amplify")
    if raw is None:
        raise SchemaError(f"{path}: not an amplify dataset file (no 'amplify' schema metadata)")
    doc = json.loads(raw)
    if doc.get("schema_version") not in READABLE_VERSIONS:
        raise SchemaError(
            f"{path}: schema version {doc.get('schema_version')} but this reader knows "
            f"{SCHEMA_VERSION} (and reads {list(READABLE_VERSIONS)}); rewrite the dataset or use "
            "a matching amplify version"
        )
    return doc


def check_dataset(out: str | Path) -> None:
    """Raise `SchemaError` (naming the file) if any committed file of the dataset at `out` is of
    a version this code cannot read: a job checks its output before any work."""
    for table in TABLES:
        for f in committed_files(out, table):
            if f.is_file():
                check_schema(f)


def committed_files(out: str | Path, table: str) -> list[Path]:
    if table not in TABLES:
        raise ValueError(f"table {table!r} not in {TABLES}")
    out = Path(out)
    return [out / f for m in read_manifests(out) for f in m.files.get(table, [])]


def read_table(
    out: str | Path, table: str, columns: list[str] | None = None, filters: list | None = None
) -> pa.Table:
    """All committed rows of `table` (optionally only `columns`, and only rows that pass the
    pyarrow `filters`, e.g. `[("clip_id", "in", ids)]`, read without loading the others)."""
    files = committed_files(out, table)
    schema = schema_for(table)
    if columns:
        schema = pa.schema([schema.field(c) for c in columns], metadata=schema.metadata)
    parts = []
    for f in files:
        doc = check_schema(f)
        if doc["schema_version"] == SCHEMA_VERSION:
            parts.append(pq.read_table(f, columns=columns, filters=filters))
        else:
            t = _upgrade(f, schema)
            if filters:
                t = _filter(t, filters)
            parts.append(t)
    if not parts:
        return schema.empty_table()
    return pa.concat_tables(parts)


def _filter(t: pa.Table, filters: list) -> pa.Table:
    """`t` filtered by pyarrow DNF `filters` (a list of (column, op, value) ANDed)."""
    import pyarrow.parquet as pq_

    return t.filter(pq_.filters_to_expression(filters))


def _upgrade(path: Path, schema: pa.Schema) -> pa.Table:
    """A file of an older readable version as `schema`: its columns, nulls for the new ones."""
    have = set(pq.read_schema(path).names)
    t = pq.read_table(path, columns=[n for n in schema.names if n in have])
    cols = [t.column(f.name) if f.name in have else pa.nulls(t.num_rows, f.type) for f in schema]
    return pa.Table.from_arrays(cols, schema=schema)
