"""The corpus on disk: videos decode, label sidecars round-trip, dense GT loads, config errors."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from amplify.conditions import Condition
from amplify.errors import ConfigError
from amplify.labels import read_labels, write_labels
from amplify.synth.corpus import SynthConfig, make_corpus
from amplify.synth.gtfile import read_gt
from amplify.synth.render import render_clip
from amplify.synth.scene import sample_scene


def test_corpus_files_decode_and_agree(tmp_path: Path) -> None:
    cfg = SynthConfig(out=str(tmp_path), clips=1, frames=5, width=64, height=32,
                      weathers=["fog"], times_of_day=["dusk"], crf=20)  # fmt: skip
    lines: list[str] = []
    index = make_corpus(cfg, progress=lines.append)
    assert lines and json.loads((tmp_path / "_corpus.json").read_text()) == index
    clip = index["scenes"][0]["clips"][0]
    assert (clip["weather"], clip["time_of_day"]) == ("fog", "dusk")
    with av.open(str(tmp_path / clip["video"])) as c:
        s = c.streams.video[0]
        assert (s.codec_context.name, s.codec_context.pix_fmt) == ("h264", "yuv420p")
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == 5 and frames[0].shape == (32, 64, 3)
    labels = read_labels(tmp_path / clip["labels"], num_frames=len(frames))
    assert labels.condition == {"weather": "fog", "time_of_day": "dusk", "intensity": 0.7}
    gt = read_gt(tmp_path / clip["gt"])
    assert gt["depth"].shape == (5, 32, 64) and gt["depth"].dtype == np.float32
    assert gt["instance"].dtype == np.int32 and gt["ego_pose"].shape == (5, 4, 4)
    for f, boxes in enumerate(labels.frames):
        for b in boxes:
            assert (gt["instance"][f] == b.track_id).any()


def test_scenario_twins_are_the_same_scene_with_the_event_in_it(tmp_path: Path) -> None:
    """`scenarios=[...]`: each scene is also written edited by each template, under every
    condition; the twin differs from its source only where agents changed, inserted agents are
    labelled `is_generated` and in the twin's instance map, removed ones are gone."""
    cfg = SynthConfig(out=str(tmp_path), clips=1, seed=3, frames=9, width=96, height=48,
                      weathers=["clear"], times_of_day=["day", "night"], crf=0,
                      scenarios=["lead_stopped", "remove_agent"])  # fmt: skip
    lines: list[str] = []
    index = make_corpus(cfg, progress=lines.append)
    assert "scenario twins" in lines[0]
    scene = index["scenes"][0]
    twins = {t["scenario"]: t for t in scene["scenarios"]}
    assert set(twins) | set(scene["skipped"]) == {"lead_stopped", "remove_agent"}
    files = set(index["files"])
    for t in twins.values():
        assert len(t["clips"]) == 2 and all(c["video"] in files for c in t["clips"])

    def frames(name: str) -> np.ndarray:
        with av.open(str(tmp_path / name)) as c:
            return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])

    lead = twins["lead_stopped"]
    src = next(c for c in scene["clips"] if c["time_of_day"] == "night")
    twin = next(c for c in lead["clips"] if c["time_of_day"] == "night")
    assert twin["video"] == src["video"].replace(".mp4", "+lead_stopped.mp4")
    labels = read_labels(tmp_path / twin["labels"])
    assert labels.extra["scenario"] == "lead_stopped"
    assert labels.extra["scenario_params"]["added"] == lead["params"]["added"]
    added = set(lead["params"]["added"])
    gen = {b.track_id for f in labels.frames for b in f if b.is_generated}
    assert gen == added
    gt = read_gt(tmp_path / twin["gt"])
    assert all(np.isin(gt["instance"], list(added)).any(axis=(1, 2))[-3:])  # it shows at the end
    a, b = frames(src["video"]), frames(twin["video"])
    changed = np.abs(a.astype(int) - b.astype(int)).max(-1) > 12
    gone = lead["params"]["removed"]  # the agents cleared from the lead car's path
    near = np.isin(gt["instance"], list(added)) | np.isin(
        read_gt(tmp_path / src["gt"])["instance"], gone
    )
    # Lossless video: outside the agents the edit touched (plus lamp glow), frames are equal.
    assert changed.any() and changed[~near].mean() < 0.05
    if "remove_agent" in twins:
        removed = set(twins["remove_agent"]["params"]["removed"])
        lab = read_labels(tmp_path / twins["remove_agent"]["clips"][0]["labels"])
        assert removed and not any(b.track_id in removed for f in lab.frames for b in f)


def test_labels_round_trip(tmp_path: Path) -> None:
    clip = render_clip(sample_scene(2), Condition("rain", "night", 0.6), 3, 64, 32, 10.0)
    path = tmp_path / "x.labels.json"
    write_labels(clip.labels, path)
    back = read_labels(path, num_frames=3)
    assert back.num_frames == 3 and back.categories == clip.labels.categories
    assert back.fps == 10.0 and back.condition == clip.labels.condition
    assert back.extra["semantic_classes"][0] == "sky"
    for fa, fb in zip(clip.labels.frames, back.frames, strict=True):
        assert [b.track_id for b in fa] == [b.track_id for b in fb]
        for a, b in zip(fa, fb, strict=True):
            assert (a.x0, a.y0, a.x1, a.y1) == (b.x0, b.y0, b.x1, b.y1)
            assert np.allclose(a.box_3d, b.box_3d, atol=1e-4)
    assert np.allclose(np.array(back.ego_pose).reshape(-1, 4, 4), clip.ego_pose, atol=1e-4)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        (dict(clips=0), "clips"),
        (dict(seed=-1), "seed"),
        (dict(frames=0), "frames"),
        (dict(width=63), "width"),
        (dict(height=8), "height"),
        (dict(fps=0), "fps"),
        (dict(weathers=["hail"]), "weathers"),
        (dict(weathers=[]), "weathers"),
        (dict(times_of_day=["noon"]), "times_of_day"),
        (dict(intensity=1.2), "intensity"),
        (dict(crf=60), "crf"),
        (dict(out=""), "out"),
        (dict(scenarios=["alien_landing"]), "scenarios"),
    ],
)
def test_config_errors_name_the_key(kwargs, key) -> None:
    with pytest.raises(ConfigError) as e:
        SynthConfig(**kwargs)
    assert e.value.key == key and f"config {key}=" in str(e.value)


def test_config_lists_become_tuples() -> None:
    cfg = SynthConfig(weathers=["rain", "fog"])
    assert cfg.weathers == ("rain", "fog") and cfg.times_of_day == ("day", "dusk", "night")
