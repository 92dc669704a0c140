"""An edit of a world's agents, and what it renders to: the world model's controls and the labels.

    edit = template.build(params, world)          # library.py: who is added, removed, replaced
    maps = render_edit(world, edit)               # the edited scene rasterised with the clip's camera

`EditMaps` holds, per frame, where new agents show (`insert`, after occlusion by everything nearer),
their proxy G-buffer (albedo, normals, depth, category, lights: the layout and depth controls of
the painter), where removed agents were (`remove`: their source boxes, dilated), and the edited
labels: inserted and replaced agents carry `is_generated`, removed ones are gone.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from amplify.labels import Box, ClipLabels
from amplify.scenarios.world import World
from amplify.synth.classes import AGENT_CATEGORIES
from amplify.synth.raster import GBuffer, rasterize_clip
from amplify.synth.scene import Agent

REMOVE_DILATE_PX = 2  # a removed agent's box grows by this much: edges and antialiasing go too


class NothingToEdit(ValueError):
    """The template needs something the window does not have (no vehicle to swap, ...)."""


@dataclass(frozen=True)
class Edit:
    add: tuple[Agent, ...] = ()
    remove: frozenset[int] = field(default_factory=frozenset)  # track ids that disappear
    replace: tuple[Agent, ...] = ()  # agents that keep their track id but change (swap, colour)

    @property
    def new_ids(self) -> frozenset[int]:
        return frozenset(a.track_id for a in self.add + self.replace)

    @property
    def gone_ids(self) -> frozenset[int]:
        """Ids whose source pixels must be painted over: removed and replaced agents."""
        return self.remove | frozenset(a.track_id for a in self.replace)

    def record(self, params: dict) -> dict:
        """What a row or a twin's labels record of the edit: its template parameters plus the
        track ids it added (or replaced) and removed. The template's `params` names pick the
        parameters back out."""
        return {**params, "added": sorted(int(t) for t in self.new_ids),
                "removed": sorted(int(t) for t in self.gone_ids - self.new_ids)}  # fmt: skip


@dataclass(frozen=True)
class EditMaps:
    insert: np.ndarray  # (T, H, W) bool: pixels of new agents (visible ones)
    remove: np.ndarray  # (T, H, W) bool: source boxes of removed / replaced agents, dilated
    albedo: np.ndarray  # (T, H, W, 3) float32, 0 outside `insert`
    normal: np.ndarray  # (T, H, W, 3) float32 (level frame), 0 outside `insert`
    depth: np.ndarray  # (T, H, W) float32 metres, 0 outside `insert`
    category: np.ndarray  # (T, H, W) uint8: 1 + index in AGENT_CATEGORIES, 0 outside `insert`
    emissive: np.ndarray  # (T, H, W) uint8 raster.EMIT_* codes, 0 outside `insert`
    labels: ClipLabels  # the edited labels
    gbuffer: GBuffer  # the edited scene's G-buffer (twins are shaded from it)

    @property
    def region(self) -> np.ndarray:
        """(T, H, W) bool: every pixel the edit may change."""
        return self.insert | self.remove


def edited_scene(world: World, edit: Edit):
    keep = [a for a in world.scene.agents if a.track_id not in edit.gone_ids]
    return replace(world.scene, agents=tuple(keep) + edit.replace + edit.add)


def render_edit(world: World, edit: Edit) -> EditMaps:
    """Rasterise the edited scene and read off the controls and labels of the edit."""
    from amplify.synth.render import clip_boxes

    scene = edited_scene(world, edit)
    T, H, W = world.frames, world.height, world.width
    g = rasterize_clip(scene, T, W, H, world.fps, world.start_s, world.k)
    new = np.array(sorted(edit.new_ids), np.int32)
    insert = np.isin(g.instance, new)
    cat_ids = {a.track_id: 1 + AGENT_CATEGORIES.index(a.category) for a in scene.agents}
    lut = np.zeros(int(g.instance.max()) + 1, np.uint8)
    for tid, c in cat_ids.items():
        if tid < len(lut):
            lut[tid] = c
    category = np.where(insert, lut[g.instance], 0).astype(np.uint8)
    remove = box_mask(world.labels, edit.gone_ids, T, H, W)
    if world.exact and edit.gone_ids:
        # Far agents have pixels but no box in frames where they are tiny (boxes.MIN_PIXELS):
        # their own pixels, grown like the boxes, go too, or a removed agent would flicker.
        from scipy import ndimage

        src = rasterize_clip(world.scene, T, W, H, world.fps, world.start_s, world.k).instance
        own = np.isin(src, np.array(sorted(edit.gone_ids), np.int32))
        grow = np.zeros((1, 3, 3), bool)
        grow[0] = True
        remove |= ndimage.binary_dilation(own, structure=grow, iterations=REMOVE_DILATE_PX)

    gen = edit.new_ids
    rendered = clip_boxes(g, scene)  # boxes of every agent the edited scene shows
    if world.exact:
        frames = tuple(
            tuple(replace(b, is_generated=b.track_id in gen) for b in boxes) for boxes in rendered
        )
    else:  # the clip's own boxes, minus what went, plus what the edit placed
        src = world.labels.frames if world.labels is not None else ((),) * T
        frames = tuple(
            tuple(
                sorted(
                    [b for b in (src[i] if i < len(src) else ()) if b.track_id not in edit.gone_ids]
                    + [
                        replace(b, is_generated=True, box_3d=None)
                        for b in rendered[i]
                        if b.track_id in gen
                    ],
                    key=lambda b: b.track_id,
                )
            )
            for i in range(T)
        )
    base = world.labels
    cats = tuple(dict.fromkeys((base.categories if base else ()) + AGENT_CATEGORIES))
    labels = ClipLabels(
        W, H, cats, frames, fps=world.fps,
        condition=base.condition if base else None,
        extra=dict(base.extra) if base else {},
    )  # fmt: skip
    return EditMaps(
        insert=insert,
        remove=remove,
        albedo=np.where(insert[..., None], g.albedo, 0).astype(np.float32),
        normal=np.where(insert[..., None], g.normal, 0).astype(np.float32),
        depth=np.where(insert, g.depth, 0).astype(np.float32),
        category=category,
        emissive=np.where(insert, g.emissive, 0).astype(np.uint8),
        labels=labels,
        gbuffer=g,
    )


def box_mask(labels: ClipLabels | None, ids, T: int, H: int, W: int) -> np.ndarray:
    """(T, H, W) bool: the boxes of track `ids` in each frame, grown by `REMOVE_DILATE_PX`."""
    out = np.zeros((T, H, W), bool)
    if labels is None or not ids:
        return out
    d = REMOVE_DILATE_PX
    for i, boxes in enumerate(labels.frames[:T]):
        for b in boxes:
            if b.track_id in ids:
                x0, y0 = max(0, int(np.floor(b.x0)) - d), max(0, int(np.floor(b.y0)) - d)
                x1, y1 = min(W, int(np.ceil(b.x1)) + d), min(H, int(np.ceil(b.y1)) + d)
                out[i, y0:y1, x0:x1] = True
    return out


def box_of(labels: ClipLabels, track_id: int) -> list[Box | None]:
    """The box of `track_id` in each frame (None where it is not visible)."""
    return [next((b for b in boxes if b.track_id == track_id), None) for boxes in labels.frames]
