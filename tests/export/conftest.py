"""A small committed dataset built without Ray (a few seconds): a synthetic corpus ingested
through `amplify.stages.ingest_clip`, one real clip when `../shared/data/real` is there, then a
second job of variations (copies of the clear-day windows relabelled as world-model output, some
with a scenario, with a `blur_ssim` quality column as issue 11 will add) committed through the
dataset writer. The export fixture exports it in every format once per session."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"
VARIATIONS = [("rain_day", None), ("fog_night", "cut_in"), ("snow_dusk", "pedestrian_crossing")]


def _get(result, key: str):
    # Stage results became dataclasses (HashResult, IngestResult); older code returned dicts.
    return result[key] if isinstance(result, dict) else getattr(result, key)


def _ingest_job(corpus: Path, extra: list[Path], out: Path, job_id: str = "ingest") -> None:
    from amplify.dataset import schema as S
    from amplify.dataset.writer import Manifest, commit, now_iso
    from amplify.io.ingest import IngestConfig
    from amplify.stages import ClipTask, hash_input, ingest_clip

    ing = IngestConfig(fps=10, width=64, height=32, window=9, stride=9, short_window_min=5)
    staged: dict[str, list[str]] = {"frames": [], "clips": []}
    paths = sorted(corpus.glob("*.mp4")) + extra
    for p in paths:
        h = hash_input(str(p), job_id)
        sha, labels_sha = _get(h, "sha256"), _get(h, "labels_sha256")
        split = S.split_of(S.source_id(sha), 0.1, 0.1)
        task = ClipTask(str(p), sha, str(out), job_id, split, ing, labels_sha)
        parts = _get(ingest_clip(task), "parts")
        for t in staged:
            staged[t] += parts[t]
    m = Manifest(
        job_id=job_id,
        created=now_iso(),
        config={"input": str(corpus), "ingest": asdict(ing), "generate": {"variations": []}},
        counts={"clips": len(paths)},
    )
    commit(out, m, staged)


def _variations_job(out: Path) -> None:
    """Relabelled copies of the clear-day windows: rows shaped like `generate_clip`'s output."""
    from amplify.dataset import schema as S
    from amplify.dataset.reader import read_table
    from amplify.dataset.writer import Manifest, commit, now_iso, staging_dir, to_table, write_part

    clips = [c for c in read_table(out, "clips").to_pylist() if c["variation"] == "source"]
    frames = read_table(out, "frames").to_pylist()
    stage = staging_dir(out, "variations")
    c_rows, f_rows, ssim = [], [], []
    for c in clips:
        if (c["weather"], c["time_of_day"]) != ("clear", "day"):
            continue
        for k, (name, scenario) in enumerate(VARIATIONS):
            w, t = name.split("_")
            cid = S.clip_id(c["source_id"], c["ingest"], c["window_index"], name, 0)
            c_rows.append(
                {
                    **c,
                    "clip_id": cid,
                    "variation": name,
                    "weather": w,
                    "time_of_day": t,
                    "scenario": scenario,
                    "scenario_params": json.dumps({"template": scenario}) if scenario else None,
                    "generator": "wfm:wfm-test",
                    "checkpoint_sha256": "ab" * 32,
                    "parent_clip_id": c["clip_id"],
                }
            )
            ssim.append(0.5 + 0.2 * k)  # 0.5, 0.7, 0.9 by variation
            for f in frames:
                if f["clip_id"] == c["clip_id"]:
                    f_rows.append(
                        {
                            **f,
                            "clip_id": cid,
                            "frame_id": S.frame_id(cid, f["frame_index"]),
                            "variation": name,
                            "weather": w,
                            "time_of_day": t,
                        }
                    )
    ct = to_table("clips", c_rows)
    order = {r["clip_id"]: s for r, s in zip(c_rows, ssim, strict=True)}
    metric = pa.array([order[i] for i in ct["clip_id"].to_pylist()], pa.float32())
    if "blur_ssim" in ct.column_names:  # schema v3 declares it
        ct = ct.set_column(ct.schema.get_field_index("blur_ssim"), "blur_ssim", metric)
    else:
        ct = ct.append_column("blur_ssim", metric)
    write_part(ct, stage / "clips" / "gen-0000.parquet")
    write_part(to_table("frames", f_rows), stage / "frames" / "gen-0000.parquet")
    m = Manifest(
        job_id="variations",
        created=now_iso(),
        config={"generate": {"variations": [v for v, _ in VARIATIONS], "checkpoint": "wfm-test"}},
        counts={"variations": len(c_rows)},
    )
    commit(out, m, {"frames": ["gen-0000.parquet"], "clips": ["gen-0000.parquet"]})


def build_dataset(root: Path, scenes: int = 3, real: bool = True) -> Path:
    import torch

    from amplify.synth.corpus import SynthConfig, make_corpus

    torch.set_num_threads(1)
    corpus, out = root / "corpus", root / "dataset"
    make_corpus(
        SynthConfig(
            out=str(corpus),
            clips=scenes,
            frames=18,
            width=64,
            height=32,
            weathers=("clear", "rain"),
            times_of_day=("day", "night"),
        )
    )
    extra = [REAL / "test_video.mp4"] if real and (REAL / "test_video.mp4").is_file() else []
    _ingest_job(corpus, extra, out)
    _variations_job(out)
    return out


@pytest.fixture(scope="session")
def dataset(tmp_path_factory) -> Path:
    return build_dataset(tmp_path_factory.mktemp("export_ds"))


@pytest.fixture(scope="session")
def exported(dataset, tmp_path_factory) -> Path:
    """The dataset exported once in every format, with a test split and scene grouping."""
    from amplify.export import ExportConfig, SplitConfig, run_export

    out = tmp_path_factory.mktemp("export") / "exp"
    cfg = ExportConfig(
        input=str(dataset),
        output=str(out),
        formats=["parquet", "webdataset", "coco"],
        split=SplitConfig(validation=0.25, test=0.25, seed=6, group_pattern=r"^(scene_\d+)_"),
        licence_sources=[str(REAL)],
    )
    run_export(cfg, log=lambda *_: None)
    return out


@pytest.fixture
def copy_dataset(dataset, tmp_path):
    def make() -> Path:
        d = tmp_path / "ds"
        shutil.copytree(dataset, d)
        return d

    return make


def parquet_rows(path: Path) -> int:
    return sum(pq.ParquetFile(f).metadata.num_rows for f in path.glob("*.parquet"))


os.environ.setdefault("RAY_DEDUP_LOGS", "0")
