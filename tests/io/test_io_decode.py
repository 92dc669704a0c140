"""Probe, decode, resample, resize and window real PyAV files of every container we claim."""

from __future__ import annotations

import numpy as np
import pytest

from amplify.errors import ConfigError, InputError
from amplify.io.decode import decode_frames, fit_geometry
from amplify.io.ingest import IngestConfig, list_inputs, read_windows
from amplify.io.probe import probe
from amplify.io.samples import write_bad_inputs, write_video

SMALL = IngestConfig(fps=10, width=64, height=32, window=9, stride=9, short_window_min=5)


@pytest.mark.parametrize("ext", ["mp4", "mkv", "mov", "avi", "webm"])
def test_every_container_decodes_to_the_job_size_and_rate(tmp_path, ext):
    path = write_video(tmp_path / f"clip.{ext}", frames=30, width=178, height=102, fps=15)
    info = probe(path)
    assert (info.width, info.height) == (178, 102)
    frames = list(decode_frames(str(path), fps=10, width=64, height=32))
    # 30 frames at 15 fps = 2 s -> 20 frames at 10 fps (last source frame at 1.933 s)
    assert len(frames) == 20
    assert all(f.image.shape == (32, 64, 3) and f.image.dtype == np.uint8 for f in frames)
    times = np.array([f.time_s for f in frames])
    assert np.allclose(np.diff(times), 0.1)
    # resampling by time: output k shows the source frame at or before k/10 s
    assert [f.source_index for f in frames[:4]] == [0, 1, 3, 4]


def test_variable_frame_rate_is_resampled_by_timestamp(tmp_path):
    path = write_video(tmp_path / "vfr.mkv", frames=40, fps=10, vfr=True)
    frames = list(decode_frames(str(path), fps=10, width=64, height=32))
    times = np.array([f.time_s for f in frames])
    assert np.allclose(np.diff(times), 0.1)
    src = [f.source_index for f in frames]
    assert src == sorted(src) and len(set(src)) < len(src) + 1


def test_crop_and_letterbox(tmp_path):
    path = write_video(tmp_path / "wide.mp4", frames=12, width=320, height=96)
    crop = next(decode_frames(str(path), 10, 64, 64, "crop")).image
    box = next(decode_frames(str(path), 10, 64, 64, "letterbox")).image
    assert crop[:4].mean() > 20  # crop fills the frame
    assert box[:10].max() == 0 and box[-10:].max() == 0  # letterbox: black bars top and bottom
    g = fit_geometry(320, 96, 64, 64, "letterbox")
    assert g.oy > 0 and g.ox == 0


def test_windows_never_straddle_a_scene_cut(tmp_path):
    path = write_video(tmp_path / "cut.mp4", frames=60, fps=10, cut_at=25)
    windows = read_windows(path, SMALL)
    for w in windows:
        t0, t1 = w.timestamps[0], w.timestamps[-1]
        assert not (t0 < 2.5 <= t1), f"window {w.window_index} spans the cut at 2.5 s"
    assert {w.shot_index for w in windows} == {0, 1}


def test_stride_and_window_count(tmp_path):
    path = write_video(tmp_path / "long.mp4", frames=50, fps=10)
    cfg = IngestConfig(fps=10, width=64, height=32, window=9, stride=4)
    windows = read_windows(path, cfg)
    assert [w.timestamps[0] for w in windows] == pytest.approx(
        [0.0, 0.4, 0.8, 1.2, 1.6, 2.0, 2.4, 2.8, 3.2, 3.6, 4.0][: len(windows)]
    )
    assert len(windows) == (50 - 9) // 4 + 1
    gap = IngestConfig(fps=10, width=64, height=32, window=9, stride=20)
    assert [w.timestamps[0] for w in read_windows(path, gap)] == pytest.approx(
        [0.0, 2.0, 4.0][: len(read_windows(path, gap))]
    )


def test_short_clip_gives_one_short_window_or_a_clear_error(tmp_path):
    path = write_video(tmp_path / "short.mp4", frames=7, fps=10)
    (w,) = read_windows(path, SMALL)
    assert len(w.frames) == 5  # longest 1 + 4k prefix of 7 frames
    with pytest.raises(InputError, match="a window needs 9"):
        read_windows(
            path, IngestConfig(fps=10, width=64, height=32, window=9, stride=9, short_window_min=0)
        )


def test_every_bad_input_raises_a_named_error(tmp_path):
    good = write_video(tmp_path / "good.mp4", frames=24)
    expected = write_bad_inputs(tmp_path / "bad", good)
    for name, etype in expected.items():
        if etype == "DuplicateClipError":
            continue  # a job-level check (content hash across inputs)
        path = tmp_path / "bad" / name
        if "rows" in etype.split("|"):
            try:
                assert read_windows(path, SMALL)
            except InputError as e:
                assert type(e).__name__ in etype.split("|")
            continue
        with pytest.raises(InputError) as info:
            read_windows(path, SMALL)
        assert type(info.value).__name__ in etype.split("|"), f"{name}: {info.value!r}"
        assert str(path) in str(info.value) or name.split(".")[0] in str(info.value)


def test_list_inputs_skips_sidecars_and_metadata(tmp_path):
    write_video(tmp_path / "a.mp4", frames=3)
    (tmp_path / "a.labels.json").write_text("{}")
    (tmp_path / "_gt").mkdir()
    (tmp_path / "_gt" / "x.npz").write_bytes(b"x")
    (tmp_path / "_corpus.json").write_text("{}")
    (tmp_path / "notes.txt").write_text("not a video, still an input to account for")
    assert [p.name for p in list_inputs(tmp_path)] == ["a.mp4", "notes.txt"]


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="ingest.width=100"):
        IngestConfig(width=100)
    with pytest.raises(ConfigError, match="ingest.resize"):
        IngestConfig(resize="stretch")


def test_real_clips_decode(real_clips):
    for path in sorted(real_clips.glob("*.mp4")):
        windows = read_windows(path, IngestConfig())
        assert windows and windows[0].frames.shape[1:] == (128, 256, 3)


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotation_metadata_is_applied(tmp_path, rotation):
    from amplify.io.samples import pattern_frame

    path = write_video(tmp_path / "phone.mp4", frames=10, width=160, height=96, rotation=rotation)
    info = probe(path)
    upright = np.rot90(pattern_frame(0, 160, 96), k=rotation // 90)  # what a player shows
    assert (info.height, info.width) == upright.shape[:2]
    first = next(decode_frames(str(path), 10, upright.shape[1], upright.shape[0])).image
    assert np.abs(first.astype(int) - upright).mean() < 8
