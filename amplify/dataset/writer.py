"""Write a dataset so that a crash never leaves half a job visible, and a rerun never duplicates.

Layout under OUT:
    frames/*.parquet  clips/*.parquet  errors/*.parquet   committed data (what readers see)
    _staging/<job_id>/<table>/*.parquet                 a running job's parts, invisible
    _manifests/<job_id>.json                             the commit marker, written last
    README.md                                            the dataset card

Parts are written to staging (tmp file + rename, so no torn file), moved into place at commit,
then the manifest is written. A part in a table folder that no manifest lists is the remains of a
job that died mid-commit: `recover` removes it before the next job starts.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from amplify.dataset.schema import SCHEMA_VERSION, TABLES, schema_for

ROW_GROUP_ROWS = 256  # ~10-20 MB of PNG frames at 256x128: readers stream row groups


def write_part(table: pa.Table, path: str | Path) -> Path:
    """Write one Parquet file atomically (temporary name, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp, compression="zstd", row_group_size=ROW_GROUP_ROWS)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def to_table(name: str, rows: list[dict]) -> pa.Table:
    """Rows (dicts) -> an Arrow table of `name`'s schema, sorted: same rows, same bytes. Frames
    are sorted by clip, then frame index (a clip's frames together, in order: what a clip reader
    and the export stream); other tables by their id."""
    schema = schema_for(name)
    key = "clip_id" if name == "frames" else schema.names[0]
    rows = sorted(rows, key=lambda r: (r[key], r.get("frame_index", 0)))
    return pa.Table.from_pylist(rows, schema=schema)


def staging_dir(out: str | Path, job_id: str) -> Path:
    return Path(out) / "_staging" / job_id


@dataclass
class Manifest:
    """What one job committed. `sources` maps a source key to the path and outcome, for resume."""

    job_id: str
    created: str
    config: dict
    files: dict[str, list[str]] = field(default_factory=dict)  # table -> relative paths
    sources: dict[str, dict] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    # Inputs that were no media and no label sidecar (a README.md, notes.txt): not error rows.
    ignored: list[str] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=1, sort_keys=True)


def read_manifests(out: str | Path) -> list[Manifest]:
    """Every committed job under `out`, oldest first."""
    d = Path(out) / "_manifests"
    if not d.is_dir():
        return []
    found = []
    for p in sorted(d.glob("*.json")):
        doc = json.loads(p.read_text())
        found.append(Manifest(**doc))
    return sorted(found, key=lambda m: (m.created, m.job_id))


def committed_sources(out: str | Path) -> dict[str, dict]:
    """Source key -> {path, status, ...} over every committed job."""
    done: dict[str, dict] = {}
    for m in read_manifests(out):
        done.update(m.sources)
    return done


def recover(out: str | Path, log=print) -> list[Path]:
    """Remove parts no manifest lists (a job died mid-commit) and stale staging; return removed."""
    out = Path(out)
    listed = {f for m in read_manifests(out) for files in m.files.values() for f in files}
    removed = []
    for table in TABLES:
        for p in sorted((out / table).glob("*.parquet")) if (out / table).is_dir() else []:
            rel = f"{table}/{p.name}"
            if rel not in listed:
                p.unlink()
                removed.append(p)
    if removed:
        log(f"recover: removed {len(removed)} uncommitted part(s) left by an interrupted job")
    if (out / "_staging").is_dir():
        shutil.rmtree(out / "_staging")
    return removed


def commit(out: str | Path, manifest: Manifest, staged: dict[str, list[str]]) -> Path:
    """Move staged parts into place, then write the manifest (the commit point) and the card."""
    out = Path(out)
    stage = staging_dir(out, manifest.job_id)
    # Part names are derived from content ids: a part an earlier job committed under the same
    # name holds the same rows. Keep that one; listing it twice would duplicate rows.
    earlier = {f for m in read_manifests(out) for fs in m.files.values() for f in fs}
    files: dict[str, list[str]] = {}
    for table, names in staged.items():
        (out / table).mkdir(parents=True, exist_ok=True)
        for name in sorted(names):
            rel = f"{table}/{name}"
            if rel in earlier:
                continue
            os.replace(stage / table / name, out / table / name)
            files.setdefault(table, []).append(rel)
    manifest.files = files
    mdir = out / "_manifests"
    mdir.mkdir(parents=True, exist_ok=True)
    path = mdir / f"{manifest.job_id}.json"
    tmp = mdir / f".{manifest.job_id}.json.tmp"
    tmp.write_text(manifest.to_json())
    os.replace(tmp, path)
    shutil.rmtree(stage, ignore_errors=True)
    if (out / "_staging").is_dir() and not any((out / "_staging").iterdir()):
        (out / "_staging").rmdir()
    from amplify.dataset.card import write_card  # card reads the committed tables

    write_card(out)
    return path


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
