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
    """2D boxes only (the renderer's 3D boxes dropped): the ground-plane guess is what runs."""
    import dataclasses

    g = rasterize_clip(scene, T, W, H, FPS)
    frames = tuple(tuple(dataclasses.replace(b, box_3d=None) for b in f)
                   for f in clip_boxes(g, scene))  # fmt: skip
    return ClipLabels(W, H, AGENT_CATEGORIES, frames, fps=FPS), g


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


def _ious(labels, again, min_px: float = 12) -> list[float]:
    out = []
    for f0, f1 in zip(labels.frames, again, strict=True):
        other = {b.track_id: b for b in f1}
        for b in f0:
            if b.y1 - b.y0 >= min_px and b.track_id in other:
                o = other[b.track_id]
                ix = max(0, min(b.x1, o.x1) - max(b.x0, o.x0))
                iy = max(0, min(b.y1, o.y1) - max(b.y0, o.y0))
                u = (b.x1 - b.x0) * (b.y1 - b.y0) + (o.x1 - o.x0) * (o.y1 - o.y0) - ix * iy
                out.append(ix * iy / u)
    return out


def test_sidecar_3d_boxes_and_intrinsics_give_the_camera_and_place_agents():
    """A user sidecar with a camera matrix and 3D boxes (not the default camera: 55 degree field
    of view, 1.9 m high, pitched 0.09 rad): the world fits height and pitch to the boxes, places
    every agent where its 3D box is, and renders them back onto their own 2D boxes."""
    import dataclasses

    s = _straight_scene(6)
    s = dataclasses.replace(s, ego=dataclasses.replace(s.ego, cam_height=1.9, pitch=0.09))
    f = 0.5 * W / np.tan(np.radians(55) / 2)
    k = np.array([[f, 0, W / 2 + 3], [0, f, H / 2 - 2], [0, 0, 1.0]])
    g = rasterize_clip(s, T, W, H, FPS, 0.0, k)
    labels = ClipLabels(W, H, AGENT_CATEGORIES, clip_boxes(g, s), fps=FPS,
                        intrinsics=tuple(tuple(r) for r in k))  # fmt: skip
    world = World.from_clip(T, W, H, FPS, labels, GroundCamera(cam_height=1.5))
    assert world.camera_from == "labels_3d"
    assert world.scene.ego.cam_height == pytest.approx(1.9, abs=0.05)
    assert world.scene.ego.pitch == pytest.approx(0.09, abs=0.01)
    assert np.allclose(world.k, k)
    truth = {a.track_id: a for a in s.agents}
    for a in world.scene.agents:
        if a.track_id in truth:  # its size is the labelled one, not the category's mean
            assert a.length == pytest.approx(truth[a.track_id].length, rel=1e-3)
    again = clip_boxes(rasterize_clip(world.scene, T, W, H, FPS, 0.0, world.k), world.scene)
    ious = _ious(labels, again)
    assert len(ious) >= 3 and np.median(ious) > 0.85, ious
    # The same boxes without their 3D part and camera: the ground-plane guess is rougher.
    flat = dataclasses.replace(
        labels, intrinsics=None,
        frames=tuple(tuple(dataclasses.replace(b, box_3d=None) for b in fr) for fr in labels.frames),
    )  # fmt: skip
    guess = World.from_clip(T, W, H, FPS, flat, GroundCamera(cam_height=1.5))
    assert guess.camera_from == "boxes_2d" and guess.k is None
    rough = _ious(flat, clip_boxes(rasterize_clip(guess.scene, T, W, H, FPS), guess.scene))
    assert np.median(rough) < np.median(ious)


def test_an_edit_of_a_3d_labelled_clip_renders_through_the_clips_camera():
    import dataclasses

    s = _straight_scene(6)
    f = 0.5 * W / np.tan(np.radians(55) / 2)
    k = np.array([[f, 0, W / 2], [0, f, H / 2], [0, 0, 1.0]])
    g = rasterize_clip(s, T, W, H, FPS, 0.0, k)
    labels = ClipLabels(W, H, AGENT_CATEGORIES, clip_boxes(g, s), fps=FPS,
                        intrinsics=tuple(tuple(r) for r in k))  # fmt: skip
    from amplify.scenarios.library import sample_spec

    params = {**sample_spec("lead_stopped", 1).params, "distance_m": 20.0}
    world = World.from_clip(T, W, H, FPS, labels)
    maps = render_edit(world, TEMPLATES["lead_stopped"].build(params, world))
    new = [b for fr in maps.labels.frames for b in fr if b.is_generated]
    assert new
    # A car 20 m ahead through a 55 degree lens is taller than through the default 70 degrees.
    default = World.from_clip(T, W, H, FPS, dataclasses.replace(labels, intrinsics=None))
    edit70 = TEMPLATES["lead_stopped"].build(params, default)
    new70 = [b for fr in render_edit(default, edit70).labels.frames for b in fr if b.is_generated]
    assert np.median([b.y1 - b.y0 for b in new]) > 1.15 * np.median([b.y1 - b.y0 for b in new70])


def test_window_labels_get_the_sidecars_3d_boxes_and_the_windows_camera_back():
    """The dataset keeps 2D boxes only: `with_sidecar_3d` finds each window frame's sidecar frame
    by time, gives its boxes their 3D part, and moves the camera matrix with the window's crop and
    scale (here every other frame, scaled by 0.75 and cropped 10 px from the left)."""
    import dataclasses

    from amplify.scenarios.world import with_sidecar_3d

    s = _straight_scene(7)
    g = rasterize_clip(s, T, W, H, FPS)
    k = tuple(tuple(float(v) for v in r) for r in g.intrinsics)
    sidecar = ClipLabels(W, H, AGENT_CATEGORIES, clip_boxes(g, s), fps=FPS, intrinsics=k)
    idx = list(range(0, T, 2))
    win = sidecar.select(idx).transform(0.75, 0.75, -10.0, 0.0, 160, 96)
    flat = dataclasses.replace(
        win, intrinsics=None,
        frames=tuple(tuple(dataclasses.replace(b, box_3d=None) for b in f) for f in win.frames),
    )  # fmt: skip
    back = with_sidecar_3d(flat, sidecar, [i / FPS for i in idx])
    assert np.allclose(np.array(back.intrinsics), np.array(win.intrinsics), atol=0.5)
    for f0, f1 in zip(back.frames, win.frames, strict=True):
        assert [b.box_3d for b in f0] == [b.box_3d for b in f1]
    assert any(b.box_3d for f in back.frames for b in f)
    # Without the sidecar's fps the times cannot be matched: the labels stay as they were.
    assert with_sidecar_3d(flat, dataclasses.replace(sidecar, fps=None), idx) == flat
