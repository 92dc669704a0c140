"""`render_clip`: one scene under one condition, as RGB frames with every ground-truth map.

The geometry pass (`raster.rasterize_clip`) does not see the condition and the appearance pass
(`shade.shade_clip`) does not change geometry, so `render_twins` rasterises once and shades each
condition: all twins share depth, semantic and instance maps, boxes, poses and intrinsics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from amplify.conditions import Condition
from amplify.errors import ConfigError
from amplify.labels import Box, ClipLabels
from amplify.synth.boxes import instance_boxes
from amplify.synth.classes import AGENT_CATEGORIES, SEMANTIC_CLASSES, SKY_DEPTH
from amplify.synth.raster import GBuffer, rasterize_clip
from amplify.synth.scene import Scene
from amplify.synth.shade import shade_clip


@dataclass(frozen=True)
class RenderedClip:
    rgb: np.ndarray  # (T, H, W, 3) uint8
    depth: np.ndarray  # (T, H, W) float32 metres, camera z; sky = classes.SKY_DEPTH
    semantic: np.ndarray  # (T, H, W) uint8 ids into classes.SEMANTIC_CLASSES
    instance: np.ndarray  # (T, H, W) int32 track id, 0 = none
    labels: ClipLabels
    ego_pose: np.ndarray  # (T, 4, 4) camera-to-world
    intrinsics: np.ndarray  # (3, 3)
    condition: Condition


def check_size(num_frames: int, width: int, height: int, fps: float) -> None:
    """Raise ConfigError for sizes the renderer (and H.264 yuv420p) cannot take."""
    for key, v in (("frames", num_frames), ("width", width), ("height", height)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(key, v, "must be a positive integer")
    for key, v in (("width", width), ("height", height)):
        if v % 2 or v < 16 or v > 4096:
            raise ConfigError(key, v, "must be even and in [16, 4096] (yuv420p video)")
    if isinstance(fps, bool) or not isinstance(fps, int | float) or not 0 < fps <= 240:
        raise ConfigError("fps", fps, "must be a number in (0, 240]")


def render_clip(
    scene: Scene, condition: Condition, num_frames: int, width: int, height: int, fps: float
) -> RenderedClip:
    """Render `num_frames` frames of `scene` under `condition`."""
    return render_twins(scene, [condition], num_frames, width, height, fps)[0]


def render_twins(
    scene: Scene,
    conditions: Sequence[Condition],
    num_frames: int,
    width: int,
    height: int,
    fps: float,
) -> list[RenderedClip]:
    """Render `scene` once per condition, sharing one geometry pass."""
    check_size(num_frames, width, height, fps)
    g = rasterize_clip(scene, num_frames, width, height, float(fps))
    frames = clip_boxes(g, scene)
    out = []
    for cond in conditions:
        rgb = shade_clip(g, cond, scene.seed)
        labels = gbuffer_labels(g, frames, cond, fps, label_extra(scene))
        out.append(
            RenderedClip(
                rgb, g.depth, g.semantic, g.instance, labels, g.ego_pose, g.intrinsics, cond
            )
        )
    return out


def gbuffer_labels(
    g: GBuffer, frames: tuple[tuple[Box, ...], ...], cond: Condition, fps: float, extra: dict
) -> ClipLabels:
    """The label sidecar of a clip shaded from `g` under `cond`: `frames`' boxes plus the camera
    (intrinsics, ego pose per frame) and condition."""
    T, H, W = g.shape
    return ClipLabels(
        width=W,
        height=H,
        categories=AGENT_CATEGORIES,
        frames=frames,
        fps=float(fps),
        condition=cond.as_dict(),
        intrinsics=tuple(tuple(float(v) for v in row) for row in g.intrinsics),
        ego_pose=tuple(tuple(float(v) for v in m.ravel()) for m in g.ego_pose),
        extra=extra,
    )


def clip_boxes(g: GBuffer, scene: Scene) -> tuple[tuple[Box, ...], ...]:
    """Boxes of the agents visible in each frame: 2D from the instance mask, 3D from the scene."""
    category = {a.track_id: a.category for a in scene.agents}
    frames = []
    for f, boxes in enumerate(instance_boxes(g.instance)):
        frames.append(
            tuple(
                Box(
                    tid,
                    category[tid],
                    float(x0),
                    float(y0),
                    float(x1),
                    float(y1),
                    tuple(float(v) for v in g.boxes_3d[tid][f]),
                )
                for tid, (x0, y0, x1, y1) in sorted(boxes.items())
            )
        )
    return tuple(frames)


def label_extra(scene: Scene) -> dict:
    """What a reader needs to interpret the synthetic labels and dense ground truth."""
    return {
        "source": "amplify.synth",
        "scene_seed": int(scene.seed),
        "semantic_classes": list(SEMANTIC_CLASSES),
        "sky_depth_m": SKY_DEPTH,
        "box_3d": "camera frame (x right, y down, z forward): centre x, y, z, length, width, "
        "height (m), yaw (rad, heading from +z toward +x about the vertical)",
        "ego_pose": "camera-to-world 4x4; world x right, y down (ground y=0), z forward",
    }
