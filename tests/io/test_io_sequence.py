"""Frame folders read as one clip: listing, natural order, fps sidecar, resize, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from amplify.errors import BadDimensionsError, CorruptVideoError, LabelError, NotAVideoError
from amplify.io.decode import decode_frames
from amplify.io.ingest import IngestConfig, list_inputs, read_windows
from amplify.io.probe import content_hash, probe
from amplify.io.samples import write_video
from amplify.io.sequence import frame_files, is_frame_folder, natural_key

SMALL = IngestConfig(fps=10, width=64, height=32, window=5, stride=5, short_window_min=0)
TRAIN_REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "train_real"


def write_frames(
    folder: Path, n: int, pattern: str = "frame_{i}_hazy.png", size: tuple[int, int] = (96, 48)
) -> list[Path]:
    """`n` frames of one scene (a grey ramp) whose top-left quarter-height square encodes the
    frame's index as its grey level (10 * i + 5): small enough a change to be no scene cut."""
    folder.mkdir(parents=True, exist_ok=True)
    w, h = size
    ramp = np.broadcast_to(np.linspace(60, 200, w, dtype=np.uint8)[None, :, None], (h, w, 3))
    paths = []
    for i in range(n):
        img = ramp.copy()
        img[: h // 2, : h // 2] = 10 * i + 5
        p = folder / pattern.format(i=i)
        Image.fromarray(img).save(p)
        paths.append(p)
    return paths


def frame_index(img: np.ndarray) -> int:
    """The index written by `write_frames`, read back from the output's top-left corner."""
    return round((float(img[2:8, 2:8].mean()) - 5) / 10)


def test_natural_order_puts_2_before_10(tmp_path):
    write_frames(tmp_path / "seq", 12)
    names = [p.name for p in frame_files(tmp_path / "seq")]
    assert names[:3] == ["frame_0_hazy.png", "frame_1_hazy.png", "frame_2_hazy.png"]
    assert names[-1] == "frame_11_hazy.png"
    assert sorted(["a10.png", "a9.png", "a010b.png"], key=natural_key)[0] == "a9.png"


def test_list_inputs_lists_a_frame_folder_as_one_input(tmp_path):
    write_frames(tmp_path / "cam" / "seq_a", 3)
    write_frames(tmp_path / "cam" / "seq_b", 3, "{i:06d}.png")
    (tmp_path / "cam" / "seq_a" / "fps.txt").write_text("5\n")
    write_video(tmp_path / "clip.mp4", frames=10, width=64, height=32, fps=10)
    # a folder with a video in it is not a frame folder: its files are listed one by one
    mixed = tmp_path / "mixed"
    write_frames(mixed, 2)
    write_video(mixed / "v.mp4", frames=10, width=64, height=32, fps=10)
    one = tmp_path / "one"
    write_frames(one, 1)
    got = [p.relative_to(tmp_path).as_posix() for p in list_inputs(tmp_path)]
    assert got == [
        "cam/seq_a",
        "cam/seq_b",
        "clip.mp4",
        "mixed/frame_0_hazy.png",
        "mixed/frame_1_hazy.png",
        "mixed/v.mp4",
        "one/frame_0_hazy.png",
    ]
    assert list_inputs(tmp_path / "cam" / "seq_a") == [tmp_path / "cam" / "seq_a"]
    assert is_frame_folder(tmp_path / "cam" / "seq_b") and not is_frame_folder(mixed)


def test_frame_folder_decodes_like_a_video_at_the_sidecar_or_default_rate(tmp_path):
    seq = tmp_path / "seq"
    write_frames(seq, 12)  # 12 frames at 20 fps = 0.55 s -> 6 frames at 10 fps
    (seq / "fps.txt").write_text("20")
    info = probe(seq)
    assert (info.width, info.height, info.fps, info.frames) == (96, 48, 20.0, 12)
    assert info.container == "image_sequence"
    frames = list(decode_frames(str(seq), 10, 64, 32))
    assert [f.source_index for f in frames] == [0, 2, 4, 6, 8, 10]
    assert [frame_index(f.image) for f in frames] == [0, 2, 4, 6, 8, 10]
    assert all(f.image.shape == (32, 64, 3) for f in frames)
    assert np.allclose([f.time_s for f in frames], np.arange(6) / 10)
    # without the sidecar the config's sequence_fps applies: 5 fps -> every frame held twice
    (seq / "fps.txt").unlink()
    w = read_windows(seq, IngestConfig(**{**SMALL.__dict__, "sequence_fps": 5.0}))
    assert [int(i) for i in w[0].source_indices] == [0, 0, 1, 1, 2]
    assert len(read_windows(seq, SMALL)) == 2  # 12 frames at 10 fps: two windows of 5


def test_frame_folder_resizes_with_the_video_area_filter_and_crop(tmp_path):
    yy, xx = np.mgrid[0:90, 0:160]
    img = np.stack([xx * 1.5, yy * 2.5, 128 + 100 * np.sin(xx / 9)], -1).astype(np.uint8)
    seq = tmp_path / "seq"
    seq.mkdir()
    for i in range(3):
        Image.fromarray(img).save(seq / f"{i}.png")
    out = next(decode_frames(str(seq), 10, 64, 32, "crop")).image
    box = next(decode_frames(str(seq), 10, 64, 64, "letterbox")).image
    assert out.shape == (32, 64, 3) and box.shape == (64, 64, 3)
    assert box[:8].max() == 0 and box[-8:].max() == 0  # black bars above and below
    small = np.asarray(Image.fromarray(img).resize((64, 36), Image.BOX))[2:34]
    # the same area filter as videos: a smooth image lands within rounding of a box resize
    assert np.abs(out.astype(int) - small.astype(int)).mean() < 2


def test_content_hash_follows_frames_and_order(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_frames(a, 3)
    write_frames(b, 3)
    assert content_hash(a) == content_hash(b)
    (b / "frame_2_hazy.png").unlink()
    write_frames(b, 3, "frame_{i}_hazy.png", size=(96, 48))
    Image.fromarray(np.zeros((48, 96, 3), np.uint8)).save(b / "frame_2_hazy.png")
    assert content_hash(a) != content_hash(b)


def test_errors_name_the_folder_and_the_frame(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no frames")
    with pytest.raises(NotAVideoError, match="empty.*no frames"):
        read_windows(empty, SMALL)

    mixed = tmp_path / "mixed"
    write_frames(mixed, 4)
    write_frames(mixed, 1, "frame_9_hazy.png", size=(64, 48))
    with pytest.raises(BadDimensionsError, match=r"mixed.*frame 4.*frame_9_hazy.png is 64x48"):
        read_windows(mixed, SMALL)

    broken = tmp_path / "broken"
    write_frames(broken, 4, "{i:03d}.jpg")
    (broken / "002.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    with pytest.raises(CorruptVideoError, match=r"broken.*frame 2.*002.jpg") as e:
        read_windows(broken, SMALL)
    assert e.value.frame == 2 and e.value.path == str(broken)

    bad_fps = tmp_path / "bad_fps"
    write_frames(bad_fps, 3)
    (bad_fps / "fps.txt").write_text("fast")
    with pytest.raises(LabelError, match="bad_fps.*fps.txt"):
        read_windows(bad_fps, SMALL)


def test_sequence_fps_is_validated_and_in_the_fingerprint():
    from amplify.errors import ConfigError

    with pytest.raises(ConfigError, match="sequence_fps"):
        IngestConfig(sequence_fps=0)
    assert IngestConfig().fingerprint() == "10fps-256x128-crop-w17s17"
    assert IngestConfig(sequence_fps=15).fingerprint().endswith("-seq15")


@pytest.mark.skipif(not TRAIN_REAL.is_dir(), reason="../shared/data/train_real is absent")
def test_reads_the_radiate_frame_folder():
    folder = TRAIN_REAL / "radiate_sdk" / "tiny_foggy_zed_left"
    info = probe(folder)
    assert (info.width, info.height, info.frames) == (672, 376, 50)
    windows = read_windows(folder, IngestConfig(sequence_fps=15.0))
    assert windows[0].frames.shape == (17, 128, 256, 3)
    assert list(windows[0].source_indices[:4]) == [0, 1, 3, 4]
