"""The export loads with nothing but each library's own loader call (Hugging Face `datasets`,
pyarrow, polars, DuckDB, Ray Data), and through `amplify.data`: frames with boxes and condition,
clips T x C x H x W split across workers without overlap, a few training steps."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
import torch
from torch.utils.data import DataLoader

from amplify.conditions import CONDITION_NAMES
from amplify.data import (
    ClipDataset,
    FrameDataset,
    collate_clips,
    collate_frames,
    ray_dataset,
)
from amplify.export import ExportConfig, ShardConfig, SplitConfig, run_export
from amplify.export.job import MANIFEST


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(1)


def counts(export):
    return json.loads((export / MANIFEST).read_text())["counts"]


def test_huggingface_datasets_into_a_torch_dataloader(exported, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from datasets import Image, load_dataset

    ds = load_dataset(str(exported))
    assert {s: ds[s].num_rows for s in ds} == {s: c["frames"] for s, c in counts(exported).items()}
    assert isinstance(ds["train"].features["image"], Image)
    train = ds["train"].select_columns(["image", "frame_index"]).with_format("torch")
    batch = next(iter(DataLoader(train, batch_size=4)))
    assert batch["image"].shape == (4, 3, 32, 64) and batch["image"].dtype == torch.uint8
    clips = load_dataset(str(exported), "clips")
    assert sum(clips[s].num_rows for s in clips) == sum(
        c["clips"] for c in counts(exported).values()
    )


def test_pyarrow_polars_duckdb(exported):
    import pyarrow.dataset as pads

    polars = pytest.importorskip("polars")
    duckdb = pytest.importorskip("duckdb")
    total = sum(c["frames"] for c in counts(exported).values())
    assert pads.dataset(exported / "parquet" / "frames").count_rows() == total
    clips = polars.read_parquet(str(exported / "parquet" / "clips" / "*.parquet"))
    assert clips.height == sum(c["clips"] for c in counts(exported).values())
    assert "blur_ssim" in clips.columns  # the dataset's metric column travels
    rows = duckdb.sql(
        f"SELECT split, count(*) FROM '{exported}/parquet/frames/*.parquet' GROUP BY split"
    ).fetchall()
    assert dict(rows) == {s: c["frames"] for s, c in counts(exported).items()}
    # the same split never holds another split's source
    overlap = duckdb.sql(
        f"SELECT count(*) FROM (SELECT source_id FROM '{exported}/parquet/frames/*.parquet' "
        "GROUP BY source_id HAVING count(DISTINCT split) > 1)"
    ).fetchall()[0][0]
    assert overlap == 0


def test_ray_data(exported, ray_local):
    ray = ray_local
    frames = ray.data.read_parquet(str(exported / "parquet" / "frames"))
    assert frames.count() == sum(c["frames"] for c in counts(exported).values())
    train = ray_dataset(exported, "train", max_boxes=8)
    batch = train.take_batch(5)
    assert batch["image"].shape == (5, 3, 32, 64) and batch["image"].dtype == "float32"
    assert batch["boxes"].shape == (5, 8, 4) and batch["labels"].shape == (5, 8)
    assert (batch["num_boxes"] <= 8).all() and (batch["condition"] < len(CONDITION_NAMES)).all()


def test_frame_dataset_and_collate(exported):
    ds = FrameDataset(exported, "validation")
    assert len(ds) == counts(exported)["validation"]["frames"]
    batch = next(iter(DataLoader(ds, batch_size=16, shuffle=True, collate_fn=collate_frames)))
    assert batch["image"].shape == (16, 3, 32, 64) and 0 <= batch["image"].min() <= 1
    n = [len(b) for b in batch["boxes"]]
    assert batch["boxes_padded"].shape == (16, max(n), 4)
    assert batch["box_mask"].sum(1).tolist() == n
    assert ((batch["labels_padded"] >= 0) == batch["box_mask"]).all()
    # real footage has no condition label: -1, never a wrong class
    conditions = {FrameDataset(exported, s)[0]["condition"] for s in counts(exported)}
    assert conditions <= set(range(-1, len(CONDITION_NAMES)))
    with pytest.raises(FileNotFoundError, match="split 'holdout'"):
        FrameDataset(exported, "holdout")
    with pytest.raises(FileNotFoundError, match="not a committed amplify export"):
        FrameDataset(exported / "parquet", "train")


def test_clip_dataset_over_workers_and_small_row_groups(dataset, tmp_path):
    export = tmp_path / "e"
    run_export(
        ExportConfig(
            input=str(dataset),
            output=str(export),
            split=SplitConfig(validation=0.0, test=0.0),
            shard=ShardConfig(max_rows=40, row_group_rows=4),  # clips cross row groups
        ),
        log=lambda *_: None,
    )
    frames = pq.read_table(sorted((export / "parquet" / "frames").glob("*.parquet")))
    want: dict[str, int] = {}
    for c in frames["clip_id"].to_pylist():
        want[c] = want.get(c, 0) + 1
    for workers in (0, 2):
        ds = ClipDataset(export, "train", shuffle_buffer=5 if workers else 0)
        assert len(ds) == len(want)
        seen = {}
        loader = DataLoader(ds, batch_size=3, num_workers=workers, collate_fn=collate_clips)
        for b in loader:
            assert b["video"].dim() == 5 and b["video"].shape[2:] == (3, 32, 64)
            for cid, m, boxes in zip(b["clip_id"], b["frame_mask"], b["boxes"], strict=True):
                assert cid not in seen, "a clip was read twice"
                seen[cid] = int(m.sum())
                assert len(boxes) == seen[cid]
        assert seen == want


def test_a_few_training_steps_from_the_export(exported):
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, stride=2),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, len(CONDITION_NAMES)),
    )
    opt = torch.optim.AdamW(model.parameters(), lr=3e-2)
    loader = DataLoader(
        FrameDataset(exported, "train"), batch_size=32, shuffle=True, collate_fn=collate_frames
    )
    batch = next(iter(loader))
    known = batch["condition"] >= 0
    losses = []
    for _ in range(8):  # fit one batch: the loss must fall
        loss = torch.nn.functional.cross_entropy(
            model(batch["image"][known]), batch["condition"][known]
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    # and clips feed a video model the same way
    clips = DataLoader(ClipDataset(exported, "train"), batch_size=2, collate_fn=collate_clips)
    video = next(iter(clips))["video"]  # (B, T, 3, H, W)
    conv = torch.nn.Conv3d(3, 4, (3, 3, 3))
    out = conv(video.permute(0, 2, 1, 3, 4))  # (B, 4, T-2, H-2, W-2)
    out.mean().backward()
    assert conv.weight.grad is not None
