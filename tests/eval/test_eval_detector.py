"""The agent detector: a tiny training run writes a loadable checkpoint, boxes come back in the
input's pixels, matching counts by hand, and the committed checkpoint finds agents."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from amplify.errors import ConfigError
from amplify.eval.detector import (
    CHECKPOINT_DIR,
    INPUT_H,
    INPUT_W,
    STRIDE,
    AgentDetector,
    DetectorTrainConfig,
    decode,
    detect,
    load_detector,
    match,
    train,
)
from amplify.synth.classes import AGENT_CATEGORIES


def test_tiny_training_writes_a_loadable_checkpoint(tmp_path):
    cfg = DetectorTrainConfig(out=str(tmp_path), name="tiny", scenes=2, val_scenes=1, steps=6,
                              batch=4, lr=3e-3, log_every=3, cache="")  # fmt: skip
    r = train(cfg, progress=lambda s: None)
    assert len(r["loss_history"]) == 6 and np.mean(r["loss_history"][-2:]) < r["loss_history"][0]
    meta = json.loads((tmp_path / "tiny.json").read_text())
    assert meta["command"].startswith("amplify train detector")
    assert set(meta["held_out"]["per_category"]) == set(AGENT_CATEGORIES)
    assert meta["held_out"]["min_box_px"] == 8.0
    assert (tmp_path / "tiny.safetensors").stat().st_size < 2e6
    m = load_detector(str(tmp_path / "tiny.safetensors"))
    assert not m.training
    heat, size, off = m(torch.zeros(1, 3, INPUT_H, INPUT_W))
    assert heat.shape == (1, len(AGENT_CATEGORIES), INPUT_H // STRIDE, INPUT_W // STRIDE)
    assert size.shape == off.shape == (1, 2, INPUT_H // STRIDE, INPUT_W // STRIDE)


def test_focus_sets_edit_every_scene_with_a_focus_template_and_are_measured_apart(tmp_path):
    from amplify.eval.detector import FOCUS_SEED0, VAL_FOCUS_SEED0, RenderedSet, render_set

    cfg = DetectorTrainConfig(out=str(tmp_path), name="tiny", scenes=1, val_scenes=1, steps=2,
                              batch=2, log_every=1, cache="", focus_scenes=3,
                              val_focus_scenes=2, focus_templates=["pedestrian_crossing"])  # fmt: skip
    rs = render_set(FOCUS_SEED0, 3, cfg, 1.0, lambda s: None, ["pedestrian_crossing"])
    assert set(rs.info["edits"]) <= {"pedestrian_crossing"} and sum(rs.info["edits"].values()) >= 1
    ped = AGENT_CATEGORIES.index("pedestrian")
    gen = rs.boxes[rs.boxes[:, 6] == 1]
    assert len(gen) and (gen[:, 1] == ped).all()  # the inserted agents are the crossing pedestrians
    both = RenderedSet.concat([rs, rs])
    assert len(both.frames) == 2 * len(rs.frames)
    assert all(np.array_equal(a[:, 1:], b[:, 1:]) for a, b in
               zip(both.frame_boxes()[len(rs.frames):], rs.frame_boxes(), strict=True))  # fmt: skip
    train(cfg, progress=lambda s: None)
    meta = json.loads((tmp_path / "tiny.json").read_text())
    assert meta["held_out_focus"]["per_category"]["pedestrian"]["generated_boxes"] > 0
    assert str(VAL_FOCUS_SEED0) in meta["data"]["held_out_focus"]
    assert "focus_scenes=3" in meta["command"]
    assert "focus_templates=[pedestrian_crossing]" in meta["command"]  # a valid override


def test_input_scale_2_trains_and_detects_at_twice_the_size(tmp_path):
    cfg = DetectorTrainConfig(out=str(tmp_path), name="x2", scenes=2, val_scenes=1, steps=3,
                              batch=2, log_every=1, cache="", input_scale=2)  # fmt: skip
    train(cfg, progress=lambda s: None)
    m = load_detector(str(tmp_path / "x2.safetensors"))
    assert m.input_size == (2 * INPUT_H, 2 * INPUT_W)
    assert json.loads((tmp_path / "x2.json").read_text())["arch"]["input"] == [256, 512]
    heat, _, _ = m(torch.zeros(1, 3, 2 * INPUT_H, 2 * INPUT_W))
    assert heat.shape[-2:] == (2 * INPUT_H // STRIDE, 2 * INPUT_W // STRIDE)
    # A peak at cell (10, 20) of the 2x grid is a box centred at (20 * 4 / 2, 10 * 4 / 2) in a
    # 256 x 128 frame: detections come back in the frame's pixels.
    h, w = 2 * INPUT_H // STRIDE, 2 * INPUT_W // STRIDE
    logits = torch.full((1, len(AGENT_CATEGORIES), h, w), -10.0)
    logits[0, 0, 10, 20] = 10.0
    dets = decode(logits, torch.zeros(1, 2, h, w), torch.zeros(1, 2, h, w), m.categories)
    ((c, s, x0, y0, x1, y1),) = dets[0]
    assert (x0 + x1) / 2 == pytest.approx(80.0) and (y0 + y1) / 2 == pytest.approx(40.0)  # input px
    sx = 256 / m.input_size[1]
    assert (x0 + x1) / 2 * sx == pytest.approx(40.0)  # what detect() reports in a 256 x 128 frame


def test_config_errors_and_missing_checkpoint(tmp_path):
    with pytest.raises(ConfigError, match="input_scale"):
        DetectorTrainConfig(input_scale=3)
    with pytest.raises(ConfigError, match="focus_templates"):
        DetectorTrainConfig(focus_templates=["no_such_template"])
    with pytest.raises(ConfigError, match="focus_scenes"):
        DetectorTrainConfig(focus_scenes=30_000)
    with pytest.raises(ConfigError, match="steps"):
        DetectorTrainConfig(steps=0)
    with pytest.raises(ConfigError, match="edits"):
        DetectorTrainConfig(edits=1.5)
    with pytest.raises(ConfigError, match="detector"):
        load_detector(str(tmp_path / "none.safetensors"))


def test_decode_places_a_peak_and_detect_scales_to_the_input_size():
    h, w = INPUT_H // STRIDE, INPUT_W // STRIDE
    heat = torch.full((1, len(AGENT_CATEGORIES), h, w), -10.0)
    heat[0, 2, 10, 20] = 5.0  # a pedestrian centred at cell (20.5, 10.25) -> (82, 41) px
    size = torch.zeros(1, 2, h, w)
    size[0, :, 10, 20] = torch.tensor([np.log(8.0), np.log(20.0)])
    off = torch.zeros(1, 2, h, w)
    off[0, :, 10, 20] = torch.tensor([0.5, 0.25])
    (d,) = decode(heat, size, off, AGENT_CATEGORIES, score=0.5)
    assert len(d) == 1 and d[0][0] == "pedestrian"
    assert np.allclose(d[0][2:], (78, 31, 86, 51), atol=1e-4)

    class Fixed(AgentDetector):
        def forward(self, x):
            assert x.shape[-2:] == (INPUT_H, INPUT_W)
            return tuple(t.expand(len(x), -1, -1, -1) for t in (heat, size, off))

    frames = np.zeros((2, 256, 1024, 3), np.uint8)  # 4x the width, 2x the height
    dets = detect(Fixed(), frames, score=0.5)
    assert len(dets) == 2
    assert np.allclose(dets[1][0][2:], (78 * 4, 31 * 2, 86 * 4, 51 * 2), atol=1e-3)


def test_match_counts_recall_and_false_positives():
    boxes = [("car", 0, 0, 40, 20), ("pedestrian", 100, 10, 108, 40), ("car", 200, 50, 204, 54)]
    dets = [
        ("car", 0.9, 1, 1, 40, 21),  # matches box 0
        ("car", 0.8, 100, 10, 108, 40),  # right place, wrong category: a false positive
        ("car", 0.7, 200, 50, 204, 54),  # matches the ignored 4 px box: not counted
        ("truck", 0.6, 150, 0, 190, 30),  # nothing there: a false positive
        ("car", 0.5, 2, 0, 40, 20),  # box 0 already taken: a false positive (duplicate)
    ]
    m = match(dets, boxes, 0.5, min_box_px=8)
    assert m.found == (True, False, None)
    assert m.recall == 0.5
    assert m.false_positives == (1, 3, 4)
    assert m.det_box == (0, -1, 2, -1, -1)
    # Class-agnostic: the mislabelled detection finds the pedestrian.
    assert match(dets, boxes, 0.5, 8, same_category=False).found == (True, True, None)
    # A looser box misses at IoU 0.5 and is found at 0.3.
    loose = [("car", 0.9, 0, 0, 40, 50)]  # IoU 0.4
    assert match(loose, boxes[:1]).found == (False,)
    assert match(loose, boxes[:1], iou_min=0.3).found == (True,)


@pytest.mark.skipif(
    not (CHECKPOINT_DIR / "agent-det.safetensors").exists(),
    reason="no committed checkpoint: amplify train detector",
)
def test_committed_checkpoint_finds_cars_and_pedestrians_on_a_held_out_frame():
    from amplify.conditions import Condition
    from amplify.synth.raster import rasterize_clip
    from amplify.synth.render import clip_boxes
    from amplify.synth.scene import sample_scene
    from amplify.synth.shade import shade_clip

    # Seed 90028 is in the held-out range (never trained on): 1 car and 4 pedestrians >= 12 px.
    scene = sample_scene(90_028, 3.0)
    g = rasterize_clip(scene, 1, 256, 128, 1.0)
    rgb = shade_clip(g, Condition("rain", "day", 0.7), scene.seed)
    boxes = [b for b in clip_boxes(g, scene)[0]
             if b.category in ("car", "pedestrian") and b.y1 - b.y0 >= 12]  # fmt: skip
    assert len(boxes) >= 4
    (dets,) = detect(load_detector("agent-det"), rgb)
    assert match(dets, boxes).recall >= 0.7
