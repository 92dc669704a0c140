"""The job's generate stage: real Ray actor pool, real (tiny, untrained) world model and tokenizer
checkpoints on disk, variations written beside the source rows with their labels and lineage."""

from __future__ import annotations

import pytest

from amplify.config import GenerateConfig, RunConfig, TrackingConfig
from amplify.dataset.reader import read_table
from amplify.errors import ConfigError
from amplify.io.ingest import IngestConfig
from amplify.io.samples import write_video
from amplify.labels import Box, ClipLabels, write_labels
from pipelines.run import run_job


@pytest.fixture(scope="module")
def tiny_checkpoints(tiny_models):
    return tiny_models["wfm"], tiny_models["tokenizer"]


def test_variations_carry_labels_condition_and_lineage(tmp_path, tiny_checkpoints, ray_local):
    wfm, tok = tiny_checkpoints
    d = tmp_path / "in"
    d.mkdir()
    video = write_video(d / "drive.mp4", frames=20, width=64, height=32)
    write_video(d / "other.mp4", frames=20, width=72, height=40)
    boxes = tuple((Box(1, "car", 10, 8, 30, 20),) for _ in range(20))
    write_labels(ClipLabels(64, 32, ("car",), boxes), d / "drive.labels.json")
    cfg = RunConfig(
        input=str(d),
        output=str(tmp_path / "ds"),
        ingest=IngestConfig(fps=10, width=64, height=32, window=9, stride=9),
        generate=GenerateConfig(
            variations=["rain_day", "clear_night"],
            match=["drive*"],
            checkpoint=wfm,
            tokenizer=tok,
            steps=2,
        ),
        tracking=TrackingConfig(enabled=False),
    )
    result = run_job(cfg, log=lambda *_: None)
    clips = read_table(tmp_path / "ds", "clips").to_pylist()
    sources = [c for c in clips if c["variation"] == "source"]
    variations = [c for c in clips if c["variation"] != "source"]
    drive_sources = [c for c in sources if c["source_path"] == str(video)]
    assert len(sources) == 4 and len(drive_sources) == 2  # 20 frames -> 2 windows of 9, each clip
    assert len(variations) == 2 * 2 == result.counts["variations"]  # only drive.mp4 matched
    assert {c["parent_clip_id"] for c in variations} == {c["clip_id"] for c in drive_sources}
    assert all(
        c["generator"] == f"wfm:{wfm}" and len(c["checkpoint_sha256"]) == 64 for c in variations
    )
    frames = read_table(tmp_path / "ds", "frames").to_pylist()
    night = [f for f in frames if f["variation"] == "clear_night"]
    assert len(night) == 2 * 9 and all(f["time_of_day"] == "night" for f in night)
    # geometry is kept, so the labels are carried to every generated frame
    assert all(f["boxes"] and f["boxes"][0]["category"] == "car" for f in night)
    assert len({f["frame_id"] for f in frames}) == len(frames)
    # the visual report: one row per source window with variations, source + 2 columns
    from PIL import Image

    sheet = Image.open(result.report)
    assert sheet.width == 3 * 64 and sheet.height >= 2 * 32


def test_unknown_variation_is_refused():
    with pytest.raises(ConfigError, match="generate.variations"):
        GenerateConfig(variations=["hail_day"])
