"""The ingest job end to end on a real local Ray, real PyAV files, a real MLflow store, and the
Parquet read back by the real consumers (Hugging Face datasets, polars, Ray Data)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from amplify.config import RunConfig, TrackingConfig
from amplify.dataset.reader import read_table
from amplify.io.ingest import IngestConfig, scan_inputs
from amplify.io.samples import FORMATS, write_bad_inputs, write_video
from pipelines.run import run_job

INGEST = IngestConfig(
    fps=10, width=64, height=32, window=9, stride=9, short_window_min=5, decode_timeout_s=60
)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("inputs")
    sizes = [(178, 100, 12.5), (320, 180, 30), (96, 64, 10), (200, 112, 24), (144, 80, 15)]
    for (ext, _), (w, h, fps) in zip(FORMATS.items(), sizes, strict=True):
        write_video(d / f"clip_{ext}.{ext}", frames=int(fps * 2), width=w, height=h, fps=fps)
    write_video(d / "with_cut.mp4", frames=40, fps=10, cut_at=20)
    write_video(d / "vfr.mkv", frames=30, fps=10, vfr=True)
    write_bad_inputs(d / "bad", d / "clip_mp4.mp4")
    return d


def job(inputs: Path, out: Path, real: Path | None = None, **kw) -> object:
    cfg = RunConfig(
        input=str(inputs),
        output=str(out),
        extra_inputs=[str(real)] if real else [],
        ingest=kw.pop("ingest", INGEST),
        tracking=TrackingConfig(uri=f"sqlite:///{out.parent / 'mlflow.db'}"),
        **kw,
    )
    return run_job(cfg, log=lambda *_: None)


@pytest.fixture(scope="module")
def first_run(inputs, tmp_path_factory, ray_local, request):
    real = None
    try:
        real = request.getfixturevalue("real_clips")
    except pytest.skip.Exception:
        pass
    out = tmp_path_factory.mktemp("job") / "dataset"
    return job(inputs, out, real), out, real


def test_every_input_ends_as_rows_or_an_error_row(inputs, first_run):
    result, out, real = first_run
    paths = {str(p) for p in scan_inputs(inputs).inputs} | (
        {str(p) for p in scan_inputs(real).inputs} if real else set()
    )
    clips = read_table(out, "clips").to_pylist()
    errors = read_table(out, "errors").to_pylist()
    with_rows = {c["source_path"] for c in clips}
    with_errors = [e["source_path"] for e in errors]
    assert len(with_errors) == len(set(with_errors)), "an input has two error rows"
    assert with_rows.isdisjoint(with_errors)
    assert with_rows | set(with_errors) == paths
    by_name = {Path(e["source_path"]).name: e["error_type"] for e in errors}
    assert by_name["empty.mp4"] == "EmptyFileError"
    assert by_name["broken_link.mp4"] == "MissingFileError"
    assert by_name["huge.y4m"] == "BadDimensionsError"
    assert by_name["bad_labels.mp4"] == "LabelError"
    assert "DuplicateClipError" in by_name.values()
    assert all(e["message"] and e["stage"] for e in errors)
    assert result.counts["errors"] == len(errors)
    # the cut clip: no window spans the cut at 2.0 s
    cut = [c for c in clips if c["source_path"].endswith("with_cut.mp4")]
    assert {c["shot_index"] for c in cut} == {0, 1}


def test_dataset_loads_in_hugging_face_polars_and_ray(first_run, ray_local):
    import datasets
    import polars as pl
    import ray
    from PIL import Image

    _, out, _ = first_run
    frames = datasets.load_dataset("parquet", data_files=f"{out}/frames/*.parquet", split="train")
    assert isinstance(frames.features["image"], datasets.Image)
    img = frames[0]["image"]
    assert isinstance(img, Image.Image) and img.size == (64, 32)
    by_config = datasets.load_dataset(str(out), "clips", split="train")
    assert by_config.num_rows == read_table(out, "clips").num_rows
    df = pl.read_parquet(f"{out}/frames/*.parquet")
    assert df.height == frames.num_rows and set(df["split"].unique()) <= {
        "train",
        "validation",
        "test",
    }
    assert ray.data.read_parquet(f"{out}/clips").count() == by_config.num_rows
    # windows of one clip share a split; ids are unique
    assert df["frame_id"].n_unique() == df.height


def test_mlflow_run_records_config_counts_and_artifacts(first_run):
    import mlflow

    result, _, _ = first_run
    client = mlflow.MlflowClient(tracking_uri=result.tracking_uri)
    run = client.get_run(result.mlflow_run_id)
    assert run.data.params["ingest.window"] == "9"
    assert run.data.metrics["count.errors"] == result.counts["errors"]
    assert run.data.metrics["count.frames"] == result.counts["frames"] > 0
    names = {a.path for a in client.list_artifacts(result.mlflow_run_id)}
    assert {"manifest", "dataset"} <= names


def test_rerun_skips_committed_and_duplicates_nothing(inputs, first_run):
    _, out, real = first_run
    before = {t: read_table(out, t).num_rows for t in ("frames", "clips", "errors")}
    again = job(inputs, out, real)
    assert again.counts["skipped"] == again.counts["inputs"]
    assert {t: read_table(out, t).num_rows for t in ("frames", "clips", "errors")} == before


def test_same_inputs_same_bytes(inputs, first_run, tmp_path):
    _, out, real = first_run
    second = tmp_path / "dataset"
    job(inputs, second, real)
    for table in ("frames", "clips"):
        a = sorted((out / table).glob("*.parquet"))
        b = sorted((second / table).glob("*.parquet"))
        assert [p.name for p in a] == [p.name for p in b]
        for pa_, pb in zip(a, b, strict=True):
            assert pq.read_table(pa_).num_rows > 0
            assert pa_.read_bytes() == pb.read_bytes(), f"{pa_.name} differs between two runs"


def test_hung_decode_is_cut_off_and_recorded(tmp_path, ray_local):
    d = tmp_path / "in"
    d.mkdir()
    write_video(d / "slow.mp4", frames=30)
    cfg = IngestConfig(fps=10, width=64, height=32, window=9, stride=9, decode_timeout_s=0.001)
    result = job(d, tmp_path / "ds", ingest=cfg)
    (err,) = read_table(tmp_path / "ds", "errors").to_pylist()
    assert err["error_type"] == "DecodeTimeoutError" and "slow.mp4" in err["message"]
    assert result.counts["clips_ok"] == 0


def test_interrupted_commit_leaves_nothing_visible(tmp_path, ray_local):
    d = tmp_path / "in"
    d.mkdir()
    write_video(d / "a.mp4", frames=20)
    out = tmp_path / "ds"
    job(d, out)
    # a part from a job that died before its manifest: readers must never see it
    stray = out / "frames" / "stray.parquet"
    shutil.copy(next((out / "frames").glob("*.parquet")), stray)
    (out / "_staging" / "deadjob" / "frames").mkdir(parents=True)
    write_video(d / "b.mp4", frames=20, width=120)
    job(d, out)
    assert not stray.exists() and not (out / "_staging").exists()
    clips = read_table(out, "clips")
    assert sorted(Path(p).name for p in clips.column("source_path").to_pylist()) == [
        "a.mp4",
        "a.mp4",
        "b.mp4",
        "b.mp4",
    ]
