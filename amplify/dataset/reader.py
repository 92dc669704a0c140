"""Read a committed dataset back: only files a manifest lists, each checked against the schema
version this code knows (`SchemaError` names the file and both versions)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from amplify.dataset.schema import SCHEMA_VERSION, TABLES
from amplify.dataset.writer import read_manifests
from amplify.errors import SchemaError


def check_schema(path: str | Path) -> dict:
    """The `amplify` metadata of a Parquet file; raise `SchemaError` if its version is not ours."""
    meta = pq.read_schema(path).metadata or {}
    raw = meta.get(b"amplify")
    if raw is None:
        raise SchemaError(f"{path}: not an amplify dataset file (no 'amplify' schema metadata)")
    doc = json.loads(raw)
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise SchemaError(
            f"{path}: schema version {doc.get('schema_version')} but this reader knows "
            f"{SCHEMA_VERSION}; rewrite the dataset or use a matching amplify version"
        )
    return doc


def committed_files(out: str | Path, table: str) -> list[Path]:
    if table not in TABLES:
        raise ValueError(f"table {table!r} not in {TABLES}")
    out = Path(out)
    return [out / f for m in read_manifests(out) for f in m.files.get(table, [])]


def read_table(out: str | Path, table: str, columns: list[str] | None = None) -> pa.Table:
    """All committed rows of `table` (optionally only `columns`), schema-checked."""
    files = committed_files(out, table)
    for f in files:
        check_schema(f)
    if not files:
        from amplify.dataset.schema import schema_for

        schema = schema_for(table)
        if columns:
            schema = pa.schema([schema.field(c) for c in columns])
        return schema.empty_table()
    return pa.concat_tables(pq.read_table(f, columns=columns) for f in files)
