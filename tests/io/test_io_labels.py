"""Label sidecars: round trip, validation, and labels that follow resampling and resizing."""

from __future__ import annotations

import json

import pytest

from amplify.errors import LabelError
from amplify.io.ingest import IngestConfig, read_windows
from amplify.io.samples import write_video
from amplify.labels import Box, ClipLabels, read_labels, write_labels


def moving_box_labels(n: int, width: int, height: int) -> ClipLabels:
    frames = tuple((Box(7, "car", 10 + 2 * i, 20, 40 + 2 * i, 50),) for i in range(n))
    return ClipLabels(width=width, height=height, categories=("car", "pedestrian"), frames=frames)


def test_json_round_trip(tmp_path):
    labels = moving_box_labels(5, 160, 96)
    write_labels(labels, tmp_path / "x.labels.json")
    back = read_labels(tmp_path / "x.labels.json")
    assert back.frames == labels.frames and back.categories == labels.categories


def test_parquet_sidecar(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "frame": [0, 1],
            "track_id": [3, 3],
            "category": ["car", "car"],
            "x0": [1.0, 2.0],
            "y0": [1.0, 1.0],
            "x1": [9.0, 10.0],
            "y1": [8.0, 8.0],
        }
    )
    meta = {
        b"amplify.labels": json.dumps(
            {"version": 1, "width": 16, "height": 16, "categories": ["car"]}
        ).encode()
    }
    pq.write_table(table.replace_schema_metadata(meta), tmp_path / "y.labels.parquet")
    back = read_labels(tmp_path / "y.labels.parquet")
    assert back.frames[1][0].x1 == 10.0


@pytest.mark.parametrize(
    "track, reason",
    [
        (
            {"track_id": 1, "category": "bus", "frames": [0], "boxes": [[1, 1, 5, 5]]},
            "not in categories",
        ),
        (
            {"track_id": 1, "category": "car", "frames": [-1], "boxes": [[1, 1, 5, 5]]},
            "out of range",
        ),
        ({"track_id": 1, "category": "car", "frames": [0], "boxes": [[5, 1, 1, 5]]}, "x1<=x0"),
        ({"track_id": 1, "category": "car", "frames": [0], "boxes": [[1, 1, 500, 5]]}, "outside"),
        (
            {"track_id": 1, "category": "car", "frames": [0, 1], "boxes": [[1, 1, 5, 5]]},
            "differ in length",
        ),
    ],
)
def test_invalid_labels_name_file_and_reason(tmp_path, track, reason):
    p = tmp_path / "bad.labels.json"
    p.write_text(
        json.dumps(
            {"version": 1, "width": 16, "height": 16, "categories": ["car"], "tracks": [track]}
        )
    )
    with pytest.raises(LabelError, match=reason) as info:
        read_labels(p)
    assert "bad.labels.json" in str(info.value)


def test_labels_follow_resampling_and_resize(tmp_path):
    # 20 fps source, 10 fps job: output frame k shows source frame 2k; 160x96 -> 80x48 (x0.5)
    video = write_video(tmp_path / "c.mp4", frames=40, width=160, height=96, fps=20)
    write_labels(moving_box_labels(40, 160, 96), tmp_path / "c.labels.json")
    cfg = IngestConfig(fps=10, width=80, height=48, window=9, stride=9, resize="crop")
    (w, *_) = read_windows(video, cfg)
    for k, boxes in enumerate(w.labels.frames):
        src = int(w.source_indices[k])
        assert src == 2 * k
        (b,) = boxes
        assert b.x0 == pytest.approx((10 + 2 * src) * 0.5) and b.y1 == pytest.approx(25.0)


def test_labels_for_another_aspect_ratio_are_rejected(tmp_path):
    video = write_video(tmp_path / "d.mp4", frames=12, width=160, height=96)
    write_labels(moving_box_labels(12, 100, 100), tmp_path / "d.labels.json")
    with pytest.raises(LabelError, match="aspect"):
        read_windows(video, IngestConfig(fps=10, width=64, height=32, window=9, stride=9))
