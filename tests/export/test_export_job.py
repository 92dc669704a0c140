"""`amplify export` on a committed dataset: layout and manifest, splits never share a source in any
format, filters counted, shards, only committed data read, a killed export leaves nothing, a
source keeps its split as the dataset grows, the card, COCO and WebDataset contents."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from amplify.errors import ConfigError
from amplify.export import ExportConfig, FilterConfig, ShardConfig, SplitConfig, run_export
from amplify.export.job import MANIFEST


def quiet(*_):
    pass


def frames_of(export: Path, split: str | None = None):
    pattern = f"{split}-*.parquet" if split else "*.parquet"
    files = sorted((export / "parquet" / "frames").glob(pattern))
    return pq.read_table(files) if files else None


def test_layout_manifest_and_counts(exported, dataset):
    m = json.loads((exported / MANIFEST).read_text())
    assert set(m["files"]) == {"parquet", "webdataset", "coco"}
    for files in (m["files"]["parquet"]["frames"], m["files"]["webdataset"], m["files"]["coco"]):
        assert all((exported / f).is_file() for f in files)
    assert m["input_jobs"] == ["ingest", "variations"]
    assert set(m["counts"]) == {"train", "validation", "test"}
    frames = frames_of(exported)
    assert frames.num_rows == sum(c["frames"] for c in m["counts"].values()) == m["total"]["frames"]
    assert m["categories"] == sorted(m["categories"]) and "car" in m["categories"]
    # no hidden leftovers beside the export
    assert not list(exported.parent.glob(f".{exported.name}.*"))
    # HF-style shard names, a real split column that agrees with the file name
    shards = sorted((exported / "parquet" / "frames").glob("*.parquet"))
    for f in shards:
        split = f.name.split("-")[0]
        assert set(pq.read_table(f, columns=["split"]).column(0).to_pylist()) == {split}
        n = sum(g.name.startswith(f"{split}-") for g in shards)
        assert f.name.endswith(f"-of-{n:05d}.parquet")
    # the image column keeps its Hugging Face Image feature
    meta = pq.read_schema(next((exported / "parquet" / "frames").glob("*.parquet"))).metadata
    assert b'"_type": "Image"' in meta[b"huggingface"]


def test_splits_never_share_a_source_in_any_format(exported):
    def sources_by_split(rows, key="source_id"):
        out: dict[str, set[str]] = {}
        for r in rows:
            out.setdefault(r["split"], set()).add(r[key])
        return out

    clips = pq.read_table(sorted((exported / "parquet" / "clips").glob("*.parquet")))
    by = sources_by_split(clips.to_pylist())
    splits = list(by)
    assert len(splits) == 3
    for i, a in enumerate(splits):
        for b in splits[i + 1 :]:
            assert not by[a] & by[b], f"{a} and {b} share sources"
    # scene grouping: the twins of one synthetic scene share a split
    scenes: dict[str, set[str]] = {}
    for r in clips.to_pylist():
        name = Path(r["source_path"]).name
        if name.startswith("scene_"):
            scenes.setdefault(name[:10], set()).add(r["split"])
    assert scenes and all(len(s) == 1 for s in scenes.values())
    # frames, the WebDataset index and COCO agree with the clips' splits
    split_of_clip = dict(zip(clips["clip_id"].to_pylist(), clips["split"].to_pylist(), strict=True))
    frames = frames_of(exported).select(["clip_id", "split"]).to_pylist()
    assert all(split_of_clip[r["clip_id"]] == r["split"] for r in frames)
    index = pq.read_table(exported / "webdataset" / "index.parquet").to_pylist()
    assert all(split_of_clip[r["clip_id"]] == r["split"] for r in index)
    assert all(r["shard"].startswith(r["split"] + "-") for r in index)
    for split in splits:
        coco = json.loads((exported / "coco" / f"{split}.json").read_text())
        assert {split_of_clip[i["clip_id"]] for i in coco["images"]} == {split}


def test_filters_recorded_in_manifest_and_card(dataset, tmp_path):
    cfg = ExportConfig(
        input=str(dataset),
        output=str(tmp_path / "f"),
        filter=FilterConfig(
            origin="generated", scenarios=["cut_in", "none"], min={"blur_ssim": 0.6}
        ),
    )
    m = run_export(cfg, log=quiet)
    clips = pq.read_table(sorted((tmp_path / "f" / "parquet" / "clips").glob("*.parquet")))
    assert set(clips["generator"].to_pylist()) == {"wfm:wfm-test"}
    assert set(clips["scenario"].to_pylist()) == {"cut_in"}  # rain_day (none) has ssim 0.5
    assert min(clips["blur_ssim"].to_pylist()) >= 0.6
    assert list(m["removed"]) == ["scenarios", "origin", "blur_ssim>=0.6"]
    kept = sum(c["clips"] for c in m["counts"].values())
    assert m["total"]["clips"] - sum(r["clips"] for r in m["removed"].values()) == kept
    card = (tmp_path / "f" / "README.md").read_text()
    assert "| `origin` |" in card and "| `blur_ssim>=0.6` |" in card
    with pytest.raises(ConfigError, match="lane_iou"):
        run_export(
            ExportConfig(
                input=str(dataset),
                output=str(tmp_path / "g"),
                filter=FilterConfig(where=["lane_iou>=0.5"]),
            ),
            log=quiet,
        )
    with pytest.raises(ConfigError, match="removed every clip"):
        run_export(
            ExportConfig(
                input=str(dataset),
                output=str(tmp_path / "h"),
                filter=FilterConfig(conditions=["snow_night"]),
            ),
            log=quiet,
        )
    assert not (tmp_path / "g").exists() and not (tmp_path / "h").exists()
    assert not list(tmp_path.glob(".*"))


def test_shards_by_rows_and_bytes_keep_clips_whole(dataset, tmp_path):
    m = run_export(
        ExportConfig(
            input=str(dataset),
            output=str(tmp_path / "rows"),
            formats=["parquet", "webdataset"],
            split=SplitConfig(validation=0.0, test=0.0),
            shard=ShardConfig(max_rows=20, max_bytes=0, row_group_rows=4),
        ),
        log=quiet,
    )
    files = sorted((tmp_path / "rows" / "parquet" / "frames").glob("train-*.parquet"))
    assert len(files) > 5 and files[0].name.endswith(f"-of-{len(files):05d}.parquet")
    seen: set[str] = set()
    for f in files:
        t = pq.read_table(f)
        assert t.num_rows <= 20 + 16  # ends at the first clip boundary after 20 rows
        ids = set(t["clip_id"].to_pylist())
        assert not ids & seen, "a clip spans two shards"
        seen |= ids
    tars = [f for f in m["files"]["webdataset"] if f.endswith(".tar")]
    assert len(tars) == -(-m["counts"]["train"]["clips"] // 20)
    # by bytes: every shard but the last holds at least the limit, and ends at a clip
    out = tmp_path / "bytes"
    run_export(
        ExportConfig(
            input=str(dataset),
            output=str(out),
            split=SplitConfig(validation=0.0, test=0.0),
            shard=ShardConfig(max_bytes=40_000),
        ),
        log=quiet,
    )
    files = sorted((out / "parquet" / "frames").glob("train-*.parquet"))
    assert len(files) > 2
    assert sum(pq.ParquetFile(f).metadata.num_rows for f in files) == m["counts"]["train"]["frames"]


def test_reads_committed_data_only(copy_dataset, tmp_path, exported):
    ds = copy_dataset()
    # a part no manifest lists (a job that died mid-commit) and a running job's staging
    part = next((ds / "frames").glob("*.parquet"))
    (ds / "frames" / "zz-orphan.parquet").write_bytes(part.read_bytes())
    (ds / "_staging" / "job9" / "frames").mkdir(parents=True)
    (ds / "_staging" / "job9" / "frames" / "x.parquet").write_bytes(part.read_bytes())
    m = run_export(ExportConfig(input=str(ds), output=str(tmp_path / "e")), log=quiet)
    first = json.loads((exported / MANIFEST).read_text())
    assert m["total"] == first["total"]


def test_a_killed_export_leaves_nothing(dataset, tmp_path, monkeypatch):
    from amplify.export import shards

    out = tmp_path / "exp"
    run_export(ExportConfig(input=str(dataset), output=str(out)), log=quiet)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    calls = {"n": 0}
    real_write, real_link = shards.ShardWriter.write, shards.ShardWriter.link

    def dying(real):
        def call(self, *args):
            calls["n"] += 1
            if calls["n"] == 3:  # the third shard written or linked
                raise KeyboardInterrupt  # as a Ctrl-C mid-export
            return real(self, *args)

        return call

    monkeypatch.setattr(shards.ShardWriter, "write", dying(real_write))
    monkeypatch.setattr(shards.ShardWriter, "link", dying(real_link))
    with pytest.raises(KeyboardInterrupt):
        run_export(ExportConfig(input=str(dataset), output=str(out), overwrite=True), log=quiet)
    # the old export is untouched; nothing new is visible or left beside it
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert not list(tmp_path.glob(".exp.*"))
    # a SIGKILL cannot clean up: its hidden partial folder is removed by the next export
    monkeypatch.setattr(shards.ShardWriter, "write", real_write)
    monkeypatch.setattr(shards.ShardWriter, "link", real_link)
    stale = tmp_path / ".new.partial-1234-abcd"
    (stale / "parquet").mkdir(parents=True)
    logs = []
    run_export(ExportConfig(input=str(dataset), output=str(tmp_path / "new")), log=logs.append)
    assert not stale.exists() and any("interrupted" in x for x in logs)
    with pytest.raises(ConfigError, match="overwrite"):
        run_export(ExportConfig(input=str(dataset), output=str(out)), log=quiet)


def test_sources_keep_their_split_as_the_dataset_grows(copy_dataset, tmp_path, exported):
    from amplify.io.samples import write_video

    from .conftest import _ingest_job

    ds = copy_dataset()
    new = tmp_path / "new_clips"
    new.mkdir()
    for i in range(4):
        write_video(new / f"extra_{i}.mp4", frames=10 + i, width=64, height=32, fps=10)
    # a second ingest job, committed beside the first two
    _ingest_job(new, [], ds, job_id="ingest2")
    cfg = json.loads((exported / MANIFEST).read_text())["config"]
    split = SplitConfig(**cfg["split"])
    run_export(ExportConfig(input=str(ds), output=str(tmp_path / "e2"), split=split), log=quiet)

    def splits(export):
        t = pq.read_table(sorted((export / "parquet" / "clips").glob("*.parquet")))
        return dict(zip(t["source_id"].to_pylist(), t["split"].to_pylist(), strict=True))

    before, after = splits(exported), splits(tmp_path / "e2")
    assert len(after) > len(before)
    assert {s: after[s] for s in before} == before


def test_same_input_same_bytes(dataset, tmp_path):
    digests = []
    for name in ("a", "b"):
        run_export(ExportConfig(input=str(dataset), output=str(tmp_path / name)), log=quiet)
        files = sorted((tmp_path / name / "parquet").rglob("*.parquet"))
        digests.append([hashlib.sha256(f.read_bytes()).hexdigest() for f in files])
    assert digests[0] == digests[1]


def test_card(exported):
    card = (exported / "README.md").read_text()
    assert card.startswith("---\nconfigs:\n- config_name: frames\n  default: true")
    assert "| split | condition | scenario | clips | frames |" in card
    assert "| train |" in card and "cut_in" in card and "pedestrian_crossing" in card
    assert "`wfm:wfm-test` (checkpoint `abababababababab`)" in card
    assert "`ingest`" in card and "`variations`" in card  # lineage: the jobs
    assert "synthetic (amplify synth)" in card
    from .conftest import REAL

    if (REAL / "test_video.mp4").is_file():
        assert "| `test_video.mp4` | MIT" in card


def test_coco(exported):
    m = json.loads((exported / MANIFEST).read_text())
    cats = None
    for split, counts in m["counts"].items():
        coco = json.loads((exported / "coco" / f"{split}.json").read_text())
        assert len(coco["images"]) == counts["frames"]
        cats = cats or coco["categories"]
        assert coco["categories"] == cats  # one vocabulary in every split
        ids = {i["id"] for i in coco["images"]}
        for a in coco["annotations"]:
            assert a["image_id"] in ids and a["category_id"] in {c["id"] for c in cats}
            x, y, w, h = a["bbox"]
            assert w > 0 and h > 0 and a["area"] == pytest.approx(w * h)
        image = coco["images"][0]
        assert (exported / "coco" / image["file_name"]).read_bytes()[:4] == b"\x89PNG"
    assert [c["name"] for c in cats] == m["categories"]


def test_webdataset_loads_with_its_own_reader(exported):
    wds = pytest.importorskip("webdataset")
    from amplify.export.webdataset import decode_mp4

    index = pq.read_table(exported / "webdataset" / "index.parquet").to_pylist()
    frames_per_clip: dict[str, int] = {}
    for r in index:
        frames_per_clip[r["clip_id"]] = frames_per_clip.get(r["clip_id"], 0) + 1
    shards = sorted(str(p) for p in (exported / "webdataset").glob("*.tar"))
    n = 0
    for sample in wds.WebDataset(shards, shardshuffle=False).decode():
        video = decode_mp4(sample["mp4"])  # (T, H, W, 3)
        labels = sample["json"]
        assert video.shape[0] == frames_per_clip[sample["__key__"]] == len(labels["frames"])
        assert video.shape[1:] == (labels["height"], labels["width"], 3)
        n += 1
    assert n == len(frames_per_clip)
    # the mp4 is close to the PNG frames it was made from (crf 18)
    from amplify.data.targets import decode_image

    frames = frames_of(exported).to_pylist()
    clip = labels["clip_id"]
    first = next(f for f in frames if f["clip_id"] == clip and f["frame_index"] == 0)
    png = decode_image(first["image"]["bytes"]).astype(float)
    mse = ((video[0].astype(float) - png) ** 2).mean()
    assert 10 * __import__("math").log10(255**2 / max(mse, 1e-9)) > 25


def test_cli_export(dataset, tmp_path, capsys):
    from amplify.cli import main

    out = tmp_path / "cli"
    rc = main(["export", f"input={dataset}", f"output={out}", "formats=[parquet,coco]"])
    assert rc == 0 and (out / MANIFEST).is_file() and (out / "coco").is_dir()
    assert "manifest:" in capsys.readouterr().out
    assert main(["export", "--help"]) == 0
    assert main(["export", f"input={dataset}", f"output={out}", "formats=[tfrecord]"]) == 2


def test_frames_in_clip_order_are_not_copied_and_splits_are_slices():
    import pyarrow as pa

    from amplify.export.job import in_clip_order, split_runs

    rows = [
        {"clip_id": c, "frame_index": i, "split": s, "image": bytes([k]) * 1000}
        for k, (c, s) in enumerate([("a", "train"), ("b", "test"), ("c", "train")])
        for i in range(3)
    ]
    t = pa.Table.from_pylist(rows)
    assert in_clip_order(t) is t  # already in order: the same table, nothing taken
    shuffled = t.take([4, 0, 8, 2, 1, 3, 7, 6, 5])
    again = in_clip_order(shuffled)
    assert again.to_pylist() == rows
    parts = dict(split_runs(t))
    assert list(parts) == ["train", "test"]  # each split once, in SPLITS order
    assert [r["clip_id"] for r in parts["train"].to_pylist()] == ["a"] * 3 + ["c"] * 3
    assert parts["test"]["frame_index"].to_pylist() == [0, 1, 2]
    # zero-copy: the train rows' image bytes are the input's buffer, not a copy of it
    src = t["image"].chunk(0).buffers()[2].address
    got = {c.buffers()[2].address for c in parts["train"]["image"].chunks}
    assert got == {src}


def test_dataset_writer_keeps_a_clips_frames_together(dataset):
    from amplify.dataset.reader import committed_files

    for f in committed_files(dataset, "frames"):
        t = pq.read_table(f, columns=["clip_id", "frame_index"])
        keys = list(zip(t["clip_id"].to_pylist(), t["frame_index"].to_pylist(), strict=True))
        assert keys == sorted(keys), f


def _inodes(paths) -> set[tuple[int, int]]:
    return {(p.stat().st_dev, p.stat().st_ino) for p in paths}


def test_parts_that_go_in_unchanged_are_linked_not_rewritten(tmp_path):
    """A job writes one frames part per source (or window of one); with the default splits
    (those of the job's dataset) and no filter, the Parquet export hard-links every part."""
    import pyarrow as pa

    from amplify.dataset.reader import committed_files
    from amplify.export.bench import make_bench_dataset

    ds = make_bench_dataset(tmp_path / "ds", frames=170)  # 10 clips: parts of 4, 4 and 2
    parts = committed_files(ds, "frames")
    assert len(parts) == 3
    linked = tmp_path / "linked"
    m = run_export(ExportConfig(input=str(ds), output=str(linked)), log=quiet)
    assert m["linked"] == len(parts)
    shards = sorted((linked / "parquet" / "frames").glob("*.parquet"))
    assert len(shards) == len(parts) and _inodes(shards) == _inodes(parts)
    # the same rows as the dataset, each shard's split column naming its file's split
    want = pq.read_table(parts).sort_by("frame_id")
    got = pq.read_table(shards).sort_by("frame_id")
    assert got.column("frame_id").equals(want.column("frame_id"))
    assert got.column("image").equals(want.column("image"))
    for f in shards:
        assert set(pq.read_table(f, columns=["split"])["split"].to_pylist()) == {
            f.name.split("-")[0]
        }
    # link=false: the same rows, written anew, sharing nothing with the dataset
    copied = tmp_path / "copied"
    run_export(ExportConfig(input=str(ds), output=str(copied), link=False), log=quiet)
    written = sorted((copied / "parquet" / "frames").glob("*.parquet"))
    assert not _inodes(written) & _inodes(parts)
    again = pq.read_table(written).sort_by("frame_id")
    assert again.column("image").equals(want.column("image"))
    # a source moved to another split than its dataset's: its part is rewritten, the rest linked
    first = pq.read_table(parts[0], columns=["source_id", "split"])
    source, was = first["source_id"][0].as_py(), first["split"][0].as_py()
    moved = tmp_path / "moved"
    split = (
        SplitConfig(validation_sources=[source])
        if was != "validation"
        else SplitConfig(test_sources=[source])
    )
    m = run_export(ExportConfig(input=str(ds), output=str(moved), split=split), log=quiet)
    shards = sorted((moved / "parquet" / "frames").glob("*.parquet"))
    assert _inodes(shards) & _inodes(parts) == _inodes(parts[1:])
    rows = pq.read_table(shards)
    mine = rows.filter(pa.compute.equal(rows["source_id"], source))
    assert set(mine["split"].to_pylist()) == {"validation" if was != "validation" else "test"}
    assert sum(c["frames"] for c in m["counts"].values()) == 170


def test_a_part_that_cannot_be_linked_is_copied(tmp_path, monkeypatch):
    """Another file system (or a system that forbids the link): the part is copied whole."""
    import os

    from amplify.dataset.reader import committed_files
    from amplify.export.bench import make_bench_dataset

    ds = make_bench_dataset(tmp_path / "ds", frames=68)  # one source, one part
    parts = committed_files(ds, "frames")

    def no_link(src, dst):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_link)
    m = run_export(ExportConfig(input=str(ds), output=str(tmp_path / "e")), log=quiet)
    shards = sorted((tmp_path / "e" / "parquet" / "frames").glob("*.parquet"))
    assert m["linked"] == 1 and len(shards) == 1
    assert not _inodes(shards) & _inodes(parts)
    assert shards[0].read_bytes() == parts[0].read_bytes()
