"""The real-footage manifest: items, split, licences, frame order, reading frames by the ingest."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from amplify import realdata as R
from amplify.errors import ConfigError, LabelError, MissingFileError
from amplify.io.samples import write_video


def make_root(tmp_path, order=None):
    """A two-item data root: a video and a frame folder whose names sort wrongly by plain name."""
    root = tmp_path / "train_real"
    (root / "repo_a").mkdir(parents=True)
    write_video(root / "repo_a" / "clip.mp4", frames=20, width=96, height=48, fps=10)
    seq = root / "repo_b" / "frames"
    seq.mkdir(parents=True)
    for i in range(12):
        Image.fromarray(np.full((48, 96, 3), 100 + i, np.uint8)).save(seq / f"frame_{i}_hazy.jpg")
    names = order or [f"frame_{i}_hazy.jpg" for i in range(12)]
    manifest = [
        {"file": "repo_a/clip.mp4", "repo": "a/a", "license": "MIT", "fps": 10.0, "frames": 20,
         "weather": "rain", "time_of_day": "day"},
        {"file": "repo_b/frames", "repo": "b/b", "license": "none (no licence file)", "fps": 5,
         "frames": 12, "weather": "fog", "time_of_day": "day", "frame_order": names},
    ]  # fmt: skip
    (root / "manifest.json").write_text(json.dumps(manifest))
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"validation": ["repo_b/frames"]}))
    return root, split


def test_items_split_licences_and_conditions(tmp_path):
    root, split = make_root(tmp_path)
    items = R.load_manifest(root)
    assert [i.condition for i in items] == ["rain_day", "fog_day"]
    assert items[1].is_sequence and not items[0].is_sequence
    tr, va = R.train_items(root, split), R.val_items(root, split)
    assert [i.file for i in tr] == ["repo_a/clip.mp4"] and [i.file for i in va] == ["repo_b/frames"]
    assert R.licences(tr) == [{"file": "repo_a/clip.mp4", "repo": "a/a", "license": "MIT"}]
    cond = tmp_path / "val.json"
    cond.write_text(json.dumps({"repo_b/frames": "fog_day"}))
    R.check_condition_file(cond, va)
    cond.write_text(json.dumps({"repo_b/frames": "clear_day"}))
    with pytest.raises(ConfigError, match="differs from the manifest"):
        R.check_condition_file(cond, va)


def test_reads_frames_at_the_items_own_rate(tmp_path):
    root, split = make_root(tmp_path)
    clip, seq = R.load_manifest(root)
    frames = R.read_item_frames(seq, fps=5, width=64, height=32)
    assert frames.shape == (12, 32, 64, 3)  # 12 frames at the manifest's 5 fps, every one kept
    assert R.read_item_frames(seq, fps=2.5, width=64, height=32).shape[0] == 6
    assert R.read_item_frames(clip, fps=2, width=64, height=32).shape == (4, 32, 64, 3)
    # frame order: brightness grows with the number in the name
    assert np.all(np.diff(frames.reshape(12, -1).mean(1)) > 0)


def test_manifest_errors(tmp_path):
    root, split = make_root(tmp_path, order=sorted(f"frame_{i}_hazy.jpg" for i in range(12)))
    with pytest.raises(LabelError, match="frame_order differs.*at frame 1"):
        R.load_manifest(root)
    root, split = make_root(tmp_path / "b")
    m = json.loads((root / "manifest.json").read_text())
    (root / "manifest.json").write_text(json.dumps([{**m[0], "weather": "hail"}]))
    with pytest.raises(LabelError, match="item 0.*weather"):
        R.load_manifest(root)
    (root / "manifest.json").write_text(json.dumps([{**m[0], "file": "gone.mp4"}]))
    with pytest.raises(MissingFileError, match="gone.mp4"):
        R.load_manifest(root)
    (root / "manifest.json").write_text(json.dumps(m))
    split.write_text(json.dumps({"validation": ["nope.mp4"]}))
    with pytest.raises(ConfigError, match="nope.mp4"):
        R.val_items(root, split)


needs_data = pytest.mark.skipif(
    not R.DEFAULT_ROOT.is_dir(), reason="../shared/data/train_real is absent"
)


@needs_data
def test_the_real_manifest_split_and_condition_files_agree():
    items = R.load_manifest()  # checks the DVD frame_order against the natural order
    dvd = next(i for i in items if i.frame_order is not None)
    assert dvd.frame_order[:3] == ("frame_0_hazy.jpg", "frame_1_hazy.jpg", "frame_2_hazy.jpg")
    tr, va = R.train_items(), R.val_items()
    assert len(tr) + len(va) == len(items) and not {i.file for i in tr} & {i.file for i in va}
    assert {i.time_of_day for i in va} >= {"night", "dusk"}
    R.check_condition_file(R.VAL_CONDITIONS_FILE, va)
    real = json.loads(R.MEASURE_CONDITIONS_FILE.read_text())
    if R.MEASURE_ROOT.is_dir():
        assert all((R.MEASURE_ROOT / f).is_file() for f in real)
    assert all(len(lic["license"]) > 0 for lic in R.licences(tr))


@needs_data
def test_reads_a_real_frame_folder_through_the_ingest():
    radiate = next(i for i in R.load_manifest() if i.file.startswith("radiate_sdk"))
    frames = R.read_item_frames(radiate, fps=5.0)
    assert frames.shape == (17, 128, 256, 3)  # 50 frames at 15 fps = 3.27 s
