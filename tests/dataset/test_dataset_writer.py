"""Schema, atomic parts, commit by manifest, recovery and the schema-version check."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from amplify.dataset import schema as S
from amplify.dataset.reader import check_schema, read_table
from amplify.dataset.writer import (
    Manifest,
    commit,
    now_iso,
    recover,
    staging_dir,
    to_table,
    write_part,
)
from amplify.errors import SchemaError


def error_rows(n: int) -> list[dict]:
    return [
        {
            "error_id": S.error_id(f"/x/{i}.mp4", "decode", None),
            "source_path": f"/x/{i}.mp4",
            "source_sha256": None,
            "stage": "decode",
            "error_type": "CorruptVideoError",
            "message": f"/x/{i}.mp4: bad",
            "job_id": "j",
        }
        for i in range(n)
    ]


def test_ids_are_deterministic_and_distinct():
    src = S.source_id("ab" * 32)
    assert src == S.source_id("ab" * 32)
    a = S.clip_id(src, "cfg", 0)
    assert a == S.clip_id(src, "cfg", 0) != S.clip_id(src, "cfg", 1) != S.clip_id(src, "cfg2", 1)
    assert S.clip_id(src, "cfg", 0, "rain_day", 1) != S.clip_id(src, "cfg", 0, "rain_day", 2)


def test_split_is_by_source_and_roughly_the_fraction():
    splits = [S.split_of(S.source_id(f"{i:064x}"), 0.2, 0.1) for i in range(2000)]
    assert 0.15 < splits.count("validation") / len(splits) < 0.25
    assert 0.06 < splits.count("test") / len(splits) < 0.14
    assert set(splits) == set(S.SPLITS)


def test_the_dataset_and_a_default_export_split_a_source_alike():
    from amplify.config import RunConfig
    from amplify.export.config import SplitConfig
    from amplify.export.select import split_of

    run, export = RunConfig(input="x"), SplitConfig()
    keys = [S.source_id(f"{i:064x}") for i in range(500)]
    ours = [S.split_of(k, run.validation_fraction, run.test_fraction) for k in keys]
    assert ours == [split_of(k, export) for k in keys]


def test_frames_schema_carries_hugging_face_image_metadata():
    meta = S.schema_for("frames").metadata
    hf = json.loads(meta[b"huggingface"])
    assert hf["info"]["features"]["image"] == {"_type": "Image"}
    assert json.loads(meta[b"amplify"])["schema_version"] == S.SCHEMA_VERSION


def test_commit_then_read_and_recover(tmp_path):
    out = tmp_path / "ds"
    stage = staging_dir(out, "job1")
    write_part(to_table("errors", error_rows(3)), stage / "errors" / "p0.parquet")
    # nothing is visible before commit
    assert read_table(out, "errors").num_rows == 0
    m = Manifest(job_id="job1", created=now_iso(), config={})
    commit(out, m, {"errors": ["p0.parquet"]})
    assert read_table(out, "errors").num_rows == 3
    assert (out / "README.md").read_text().startswith("---\nconfigs:")
    # a stray part (a job died mid-commit) is removed and never read
    write_part(to_table("errors", error_rows(1)), out / "errors" / "stray.parquet")
    removed = recover(out, log=lambda *_: None)
    assert [p.name for p in removed] == ["stray.parquet"]
    assert read_table(out, "errors").num_rows == 3


def test_reader_rejects_another_schema_version(tmp_path):
    table = to_table("errors", error_rows(1))
    meta = dict(table.schema.metadata)
    meta[b"amplify"] = json.dumps({"schema_version": 999, "table": "errors"}).encode()
    path = tmp_path / "old.parquet"
    pq.write_table(table.replace_schema_metadata(meta), path)
    with pytest.raises(SchemaError, match="old.parquet: schema version 999"):
        check_schema(path)


def test_a_part_committed_twice_is_listed_once(tmp_path):
    out = tmp_path / "ds"
    for job in ("j1", "j2"):
        write_part(
            to_table("errors", error_rows(2)), staging_dir(out, job) / "errors" / "same.parquet"
        )
        commit(
            out, Manifest(job_id=job, created=now_iso(), config={}), {"errors": ["same.parquet"]}
        )
    assert read_table(out, "errors").num_rows == 2


def test_reader_reads_a_schema_2_part_with_the_new_columns_as_nulls(tmp_path):
    """Schema 3 only added nullable clips columns (spec, quality metrics): a dataset committed
    by an older job still reads as one table with a newer job's parts."""
    import pyarrow as pa

    out = tmp_path / "ds"
    row = {n: None for n in S.CLIPS.names} | {"clip_id": "c1", "variation": "source"}
    new = to_table("clips", [row | {"clip_id": "c2", "blur_ssim": 0.9, "spec": "{}"}])
    old_fields = [f for f in S.CLIPS if f.name not in ("spec", "blur_ssim", "edge_f1",
                                                       "sharpness", "cls_score")]  # fmt: skip
    meta = dict(S.schema_for("clips").metadata)
    meta[b"amplify"] = json.dumps({"schema_version": 2, "table": "clips"}).encode()
    old = pa.Table.from_pylist([row], schema=pa.schema(old_fields, metadata=meta))
    for job, table in (("j1", old), ("j2", new)):
        write_part(table, staging_dir(out, job) / "clips" / f"{job}.parquet")
        commit(
            out, Manifest(job_id=job, created=now_iso(), config={}), {"clips": [f"{job}.parquet"]}
        )
    rows = sorted(read_table(out, "clips").to_pylist(), key=lambda r: r["clip_id"])
    assert [r["blur_ssim"] for r in rows] == [None, pytest.approx(0.9)]
    assert rows[0]["spec"] is None and rows[1]["spec"] == "{}"
    assert read_table(out, "clips", ["clip_id", "cls_score"]).num_rows == 2


def test_a_job_refuses_an_unreadable_output_before_any_work(tmp_path):
    """A dataset committed by an amplify whose schema this one cannot read: `run_job` names the
    file at once, before hashing or ingesting anything."""
    from amplify.config import RunConfig, TrackingConfig
    from amplify.dataset.reader import check_dataset
    from pipelines.run import run_job

    out = tmp_path / "ds"
    table = to_table("errors", error_rows(1))
    meta = dict(table.schema.metadata)
    meta[b"amplify"] = json.dumps({"schema_version": 999, "table": "errors"}).encode()
    write_part(table, staging_dir(out, "old") / "errors" / "old.parquet")
    commit(out, Manifest(job_id="old", created=now_iso(), config={}), {"errors": ["old.parquet"]})
    # ... then the committed file as a future (or long-gone) version of amplify wrote it:
    pq.write_table(table.replace_schema_metadata(meta), out / "errors" / "old.parquet")
    with pytest.raises(SchemaError, match="old.parquet: schema version 999"):
        check_dataset(out)
    cfg = RunConfig(input=str(tmp_path / "nothing"), output=str(out),
                    tracking=TrackingConfig(enabled=False))  # fmt: skip
    logs: list[str] = []
    with pytest.raises(SchemaError, match="old.parquet"):
        run_job(cfg, log=logs.append)
    assert logs == []  # nothing was started
