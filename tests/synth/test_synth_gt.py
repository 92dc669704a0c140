"""Ground truth is self-consistent: boxes equal mask extents, depths are positive, poses rigid."""

from __future__ import annotations

import numpy as np

from amplify.conditions import Condition
from amplify.synth.classes import CLASS_ID, SEMANTIC_CLASSES, SKY_DEPTH
from amplify.synth.render import render_clip
from amplify.synth.scene import sample_scene


def _clip(seed: int = 3):
    return render_clip(sample_scene(seed), Condition("clear", "day", 0.5), 4, 128, 64, 10.0)


def test_boxes_match_instance_masks() -> None:
    clip = _clip()
    n_boxes = 0
    for f, boxes in enumerate(clip.labels.frames):
        inst = clip.instance[f]
        ids = {b.track_id for b in boxes}
        for b in boxes:
            ys, xs = np.nonzero(inst == b.track_id)
            assert (b.x0, b.y0, b.x1, b.y1) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
            assert b.box_3d is not None and len(b.box_3d) == 7 and b.box_3d[2] > 0
            cls = clip.semantic[f][inst == b.track_id]
            assert (cls == CLASS_ID[b.category]).all()
            n_boxes += 1
        # every agent with a sizeable visible mask is labelled
        vis, counts = np.unique(inst[inst > 0], return_counts=True)
        assert {int(i) for i, c in zip(vis, counts, strict=True) if c >= 20} <= ids
    assert n_boxes > 0


def test_depth_semantic_and_pose_are_valid() -> None:
    clip = _clip(4)
    assert clip.depth.dtype == np.float32 and clip.semantic.dtype == np.uint8
    assert clip.instance.dtype == np.int32 and clip.rgb.dtype == np.uint8
    assert np.isfinite(clip.depth).all() and (clip.depth > 0).all()
    sky = clip.semantic == CLASS_ID["sky"]
    assert (clip.depth[sky] == SKY_DEPTH).all() and (clip.depth[~sky] < SKY_DEPTH).all()
    assert clip.semantic.max() < len(SEMANTIC_CLASSES)
    assert (clip.instance[clip.semantic < CLASS_ID["car"]] == 0).all()
    for m in clip.ego_pose:
        r = m[:3, :3]
        assert np.allclose(r @ r.T, np.eye(3), atol=1e-9) and np.isclose(np.linalg.det(r), 1)
    # ego moves forward; the camera is 1.5 m above the ground (y down)
    z = clip.ego_pose[:, 2, 3]
    assert (np.diff(z) > 0).all() and np.allclose(clip.ego_pose[:, 1, 3], -1.5)
    k = clip.intrinsics
    assert k[0, 2] == 64 and k[1, 2] == 32 and k[0, 0] > 0


def test_ground_depth_follows_the_plane() -> None:
    # Road pixels lie on y = 0: depth * ray_y = camera height, in the level frame.
    clip = _clip(6)
    road = clip.semantic[0] == CLASS_ID["road"]
    rows = np.nonzero(road)[0]
    assert rows.size and clip.depth[0][road].max() > clip.depth[0][road].min()
    # lower rows are nearer
    bottom = clip.depth[0][-1][road[-1]].mean()
    middle = clip.depth[0][rows.min() + 2][road[rows.min() + 2]].mean()
    assert bottom < middle
