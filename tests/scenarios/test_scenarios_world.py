"""The ground-plane world of clips without a scene: lifting labelled boxes, the horizon."""

from __future__ import annotations

import numpy as np
import pytest

from amplify.labels import ClipLabels
from amplify.scenarios.edit import render_edit
from amplify.scenarios.library import TEMPLATES
from amplify.scenarios.world import GroundCamera, World, estimate_horizon
from amplify.synth.camera import intrinsics
from amplify.synth.classes import AGENT_CATEGORIES
from amplify.synth.raster import rasterize_clip
from amplify.synth.render import clip_boxes
from amplify.synth.scene import Road, sample_scene

T, W, H, FPS = 9, 256, 128, 8.0


def _straight_scene(seed: int):
    """A sampled scene on a straight road (the ground-plane model's assumption holds)."""
    import dataclasses

    s = sample_scene(seed, duration_s=3.0)
    road = Road(**{**s.road.__dict__, "amps": (), "wavelengths": (), "phases": ()})
    ego = dataclasses.replace(s.ego, drift_amp=0.0)
    return dataclasses.replace(s, road=road, ego=ego)


def _labels(scene):
    g = rasterize_clip(scene, T, W, H, FPS)
    return ClipLabels(W, H, AGENT_CATEGORIES, clip_boxes(g, scene), fps=FPS), g


def test_horizon_is_read_off_labelled_boxes():
    labels, g = _labels(_straight_scene(4))
    est = estimate_horizon(labels, intrinsics(W, H), 1.5)
    assert abs(est - g.horizon_row) < 6  # true horizon of the synthetic camera, within 6 px
    assert estimate_horizon(None, intrinsics(W, H), 1.5) == pytest.approx(g.horizon_row, abs=0.5)


def test_lifted_agents_land_where_their_boxes_were():
    """Boxes of a straight-road render -> ground plane -> rendered again: same place."""
    labels, _ = _labels(_straight_scene(5))
    world = World.from_clip(T, W, H, FPS, labels, GroundCamera(horizon=None))
    again = clip_boxes(rasterize_clip(world.scene, T, W, H, FPS), world.scene)
    ious = []
    for f0, f1 in zip(labels.frames, again, strict=True):
        other = {b.track_id: b for b in f1}
        for b in f0:
            if b.y1 - b.y0 >= 12 and b.category in ("car", "truck") and b.track_id in other:
                o = other[b.track_id]
                ix = max(0, min(b.x1, o.x1) - max(b.x0, o.x0))
                iy = max(0, min(b.y1, o.y1) - max(b.y0, o.y0))
                u = (b.x1 - b.x0) * (b.y1 - b.y0) + (o.x1 - o.x0) * (o.y1 - o.y0) - ix * iy
                ious.append(ix * iy / u)
    assert len(ious) >= 3 and np.median(ious) > 0.5


def test_ground_world_edits_keep_the_clip_labels():
    labels, _ = _labels(_straight_scene(6))
    world = World.from_clip(T, W, H, FPS, labels)
    assert not world.exact and world.lifted
    edit = TEMPLATES["debris_in_lane"].build(
        {"distance_m": 15.0, "lateral_m": 0.0, "length_m": 1.0, "width_m": 0.8, "height_m": 0.4,
         "colour": 0}, world)  # fmt: skip
    maps = render_edit(world, edit)
    kept = [[b for b in f if not b.is_generated] for f in maps.labels.frames]
    gone = edit.remove
    assert kept == [[b for b in f if b.track_id not in gone] for f in labels.frames]
    assert any(b.is_generated for f in maps.labels.frames for b in f)
