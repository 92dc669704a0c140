"""Splits and filters on plain clip tables: stable splits by source, explicit lists, scene groups,
each filter counted, numeric filters on any column, config errors that name the key."""

from __future__ import annotations

import hashlib

import pyarrow as pa
import pytest

from amplify.dataset.schema import schema_for
from amplify.errors import ConfigError
from amplify.export.config import ExportConfig, FilterConfig, SplitConfig
from amplify.export.select import assign_splits, filter_clips, group_key, split_of


def clips_table(rows: list[dict]) -> pa.Table:
    base = {f.name: None for f in schema_for("clips")}
    full = [{**base, "num_frames": 9, "generator": "source", **r} for r in rows]
    t = pa.Table.from_pylist(full, schema=schema_for("clips"))
    if any("blur_ssim" in r for r in rows) and "blur_ssim" not in t.column_names:
        t = t.append_column("blur_ssim", pa.array([r.get("blur_ssim") for r in rows], pa.float32()))
    return t


def test_split_is_a_pure_function_of_the_source():
    cfg = SplitConfig(validation=0.2, test=0.1, seed=3)
    keys = [f"source-{i}" for i in range(2000)]
    first = {k: split_of(k, cfg) for k in keys[:1000]}
    # The dataset grows: the first sources keep their split, whatever else is there.
    assert {k: split_of(k, cfg) for k in keys[:1000]} == first
    got = [split_of(k, cfg) for k in keys]
    share = {s: got.count(s) / len(got) for s in ("train", "validation", "test")}
    assert abs(share["validation"] - 0.2) < 0.04 and abs(share["test"] - 0.1) < 0.03
    # Raising the validation fraction only moves sources out of train.
    more = SplitConfig(validation=0.3, test=0.1, seed=3)
    for k in keys:
        if split_of(k, cfg) != "train":
            assert split_of(k, more) == split_of(k, cfg)
    # Another seed, another draw.
    assert [split_of(k, SplitConfig(seed=4)) for k in keys] != [
        split_of(k, SplitConfig(seed=3)) for k in keys
    ]


def test_assign_splits_keeps_variations_with_their_source_and_honours_lists():
    rows = []
    for i in range(40):
        sha = hashlib.sha256(str(i).encode()).hexdigest()
        for v in ("source", "rain_day", "fog_night"):
            rows.append(
                {
                    "clip_id": f"c{i}-{v}",
                    "source_id": f"s{i}",
                    "source_sha256": sha,
                    "source_path": f"/data/scene_{i // 4:04d}_{v}.mp4",
                    "split": "train",
                    "variation": v,
                }
            )
    t = assign_splits(
        clips_table(rows),
        SplitConfig(
            validation=0.3,
            test=0.3,
            validation_sources=["s1"],
            test_sources=[hashlib.sha256(b"2").hexdigest()[:12], "*/scene_0009_*"],
        ),
    )
    by_source: dict[str, set[str]] = {}
    for r in t.to_pylist():
        by_source.setdefault(r["source_id"], set()).add(r["split"])
    assert all(len(s) == 1 for s in by_source.values())
    assert by_source["s1"] == {"validation"} and by_source["s2"] == {"test"}
    assert all(by_source[f"s{i}"] == {"test"} for i in range(36, 40))  # scene_0009
    # Scene groups: the twins of one scene share a split.
    g = assign_splits(
        clips_table(rows), SplitConfig(validation=0.3, test=0.3, group_pattern=r"^(scene_\d+)_")
    )
    by_scene: dict[str, set[str]] = {}
    for r in g.to_pylist():
        by_scene.setdefault(r["source_path"].split("_")[1], set()).add(r["split"])
    assert all(len(s) == 1 for s in by_scene.values())
    assert group_key("s", "/d/other.mp4", r"^(scene_\d+)_") == "s"


def test_filters_are_counted_in_order():
    rows = [
        {"clip_id": "a", "source_id": "s1", "weather": "clear", "time_of_day": "day"},
        {"clip_id": "b", "source_id": "s2", "weather": None, "time_of_day": None},
        {
            "clip_id": "c",
            "source_id": "s1",
            "weather": "rain",
            "time_of_day": "night",
            "generator": "wfm:wfm-grade",
            "scenario": "cut_in",
            "blur_ssim": 0.9,
        },
        {
            "clip_id": "d",
            "source_id": "s1",
            "weather": "fog",
            "time_of_day": "day",
            "generator": "wfm:wfm-grade",
            "blur_ssim": 0.5,
        },
    ]
    t = clips_table(rows)
    kept, removed = filter_clips(t, FilterConfig(conditions=["rain_night", "unknown"]))
    assert kept["clip_id"].to_pylist() == ["b", "c"]
    assert removed == {"conditions": {"clips": 2, "frames": 18}}
    kept, removed = filter_clips(t, FilterConfig(origin="generated", scenarios=["none"]))
    assert kept["clip_id"].to_pylist() == ["d"]
    assert list(removed) == ["scenarios", "origin"]
    kept, _ = filter_clips(t, FilterConfig(generators=["source"]))
    assert kept["clip_id"].to_pylist() == ["a", "b"]
    kept, removed = filter_clips(t, FilterConfig(min={"blur_ssim": 0.7}))
    assert kept["clip_id"].to_pylist() == ["a", "b", "c"]  # sources have no metric: they pass
    assert removed["blur_ssim>=0.7"]["clips"] == 1
    unmeasured = t.set_column(
        t.schema.get_field_index("blur_ssim"), "blur_ssim", pa.array([None] * 4, pa.float32())
    )
    kept, _ = filter_clips(unmeasured, FilterConfig(min={"blur_ssim": 0.1}))
    assert kept["clip_id"].to_pylist() == ["a", "b"]  # generated without a metric: dropped
    kept, _ = filter_clips(t, FilterConfig(where=["blur_ssim<0.7"]))
    assert kept["clip_id"].to_pylist() == ["a", "b", "d"]
    kept, _ = filter_clips(t, FilterConfig(max_variations_per_source=1))
    assert sorted(kept["clip_id"].to_pylist()) in (["a", "b", "c"], ["a", "b", "d"])
    with pytest.raises(ConfigError, match="no column 'lane_iou'.*blur_ssim"):
        filter_clips(t, FilterConfig(where=["lane_iou>=0.8"]))


def test_config_errors_name_the_key():
    for kw, key in [
        ({"conditions": ["rain"]}, "filter.conditions"),  # a weather alone is ambiguous here
        ({"conditions": ["hail_day"]}, "filter.conditions"),
        ({"scenarios": ["meteor"]}, "filter.scenarios"),
        ({"origin": "real"}, "filter.origin"),
        ({"where": ["blur_ssim ~ 3"]}, "filter.where"),
        ({"max_variations_per_source": -1}, "filter.max_variations_per_source"),
    ]:
        with pytest.raises(ConfigError) as e:
            FilterConfig(**kw)
        assert e.value.key == key
    with pytest.raises(ConfigError, match="split.validation"):
        SplitConfig(validation=1.5)
    with pytest.raises(ConfigError, match="train"):
        SplitConfig(validation=0.6, test=0.5)
    with pytest.raises(ConfigError, match="formats"):
        ExportConfig(input="a", output="b", formats=["tfrecord"])
    with pytest.raises(ConfigError, match="input"):
        ExportConfig(output="b")


def test_cli_config_composes(tmp_path):
    from amplify.config import load_config

    cfg = load_config(
        "export",
        ExportConfig,
        [
            "input=a",
            "output=b",
            "formats=[parquet,coco]",
            "+filter.min.blur_ssim=0.7",
            'filter.where=["cls_score>=0.8"]',
            "split.test=0.2",
        ],
    )
    assert cfg.filter.min == {"blur_ssim": 0.7} and cfg.filter.where == ["cls_score>=0.8"]
    assert cfg.formats == ["parquet", "coco"] and cfg.split.test == 0.2
