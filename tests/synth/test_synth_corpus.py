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
    ],
)
def test_config_errors_name_the_key(kwargs, key) -> None:
    with pytest.raises(ConfigError) as e:
        SynthConfig(**kwargs)
    assert e.value.key == key and f"config {key}=" in str(e.value)


def test_config_lists_become_tuples() -> None:
    cfg = SynthConfig(weathers=["rain", "fog"])
    assert cfg.weathers == ("rain", "fog") and cfg.times_of_day == ("day", "dusk", "night")
