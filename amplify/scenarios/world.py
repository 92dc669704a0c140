"""The 3D world a scenario edits: a clip's own scene, or a ground-plane model built from the clip.

Edits happen in the scene, not on the picture: a template adds, moves or removes agents on roads
in metres and seconds, and the edited scene is rasterised with the clip's camera. Two worlds:

- `World.from_scene`: a synthetic clip's own `Scene` (its seed is in the label sidecar) and its
  exact camera. Twins rendered from the edited scene are ground truth (training, `eval scenarios`).
- `World.from_clip`: any other clip (real footage). The road is assumed straight and flat, the
  ego drives in its lane at `ego_speed` m/s with the camera `cam_height` m above the ground and a
  70 degree horizontal field of view; the camera's pitch comes from the horizon, estimated from
  labelled boxes (Hoiem et al. 2006: a box's bottom row and its height in pixels give the
  horizon for an object of known height) or set in config. Labelled agents are lifted onto the
  ground plane (bottom-centre of each box) so that inserted agents hide behind nearer ones and
  `swap_vehicle` / `recolour_vehicle` know where a labelled vehicle is.
  How it fails: hills, banked or curved roads, a camera that is not level or not at the assumed
  height or field of view put agents at the wrong scale or floating; agents whose box bottom lies
  above the horizon (cut off by the bonnet or the frame) cannot be lifted; the ego's true speed
  is unknown, so a stopped car approaches at the assumed speed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from amplify.labels import ClipLabels, transform_intrinsics
from amplify.synth import camera
from amplify.synth.classes import AGENT_CATEGORIES, AGENT_SIZES
from amplify.synth.scene import CAR_COLOURS, Agent, Ego, Road, Scene, Track

LANE_WIDTH_M = 3.5
DEFAULT_PITCH_RAD = 0.05  # the synthetic camera's: horizon ~9% of the width above the centre
# Heights (m) used to read the horizon off labelled boxes.
TYPICAL_HEIGHT_M = {"car": 1.5, "pedestrian": 1.7, "van": 2.1, "truck": 3.4, "cyclist": 1.7}


@dataclass(frozen=True)
class GroundCamera:
    """What `World.from_clip` assumes of a clip's camera (config `scenario.camera`)."""

    cam_height: float = 1.5  # metres above the road
    ego_speed: float = 10.0  # m/s, the ego's assumed speed
    horizon: float | None = None  # image row as a fraction of the height; None = estimate


@dataclass(frozen=True)
class World:
    """A window's scene: what templates edit and the edit is rendered with."""

    scene: Scene
    frames: int
    width: int
    height: int
    fps: float
    start_s: float
    labels: ClipLabels | None  # the source window's boxes (pixel coordinates of this size)
    exact: bool  # True: the clip's own scene (synthetic); False: the ground-plane model
    lifted: frozenset[int] = field(default_factory=frozenset)  # labelled ids placed in `scene`
    intrinsics: tuple[tuple[float, ...], ...] | None = None  # 3x3; None = `camera.intrinsics`
    camera_from: str = "scene"  # how the camera was found: scene, labels_3d, config, boxes_2d

    @property
    def k(self) -> np.ndarray | None:
        """The 3x3 intrinsics the edit is rendered with (None: the default camera's)."""
        return None if self.intrinsics is None else np.array(self.intrinsics, np.float64)

    @property
    def times(self) -> np.ndarray:
        return self.start_s + np.arange(self.frames) / self.fps

    @property
    def duration_s(self) -> float:
        return (self.frames - 1) / self.fps

    def ego_s(self, t: float) -> float:
        return float(self.scene.ego.track.at(np.array([t]))[0][0])

    @property
    def ego_lane_d(self) -> float:
        return float(self.scene.ego.track.d0)

    @property
    def lane_width(self) -> float:
        return float(self.scene.road.lane_width)

    def visible_ids(self) -> list[int]:
        """Track ids with a box in any frame of the window, biggest (nearest) first."""
        if self.labels is None:
            return []
        area: dict[int, float] = {}
        for boxes in self.labels.frames:
            for b in boxes:
                a = (b.x1 - b.x0) * (b.y1 - b.y0)
                area[b.track_id] = max(area.get(b.track_id, 0.0), a)
        return sorted(area, key=lambda k: -area[k])

    def category_of(self, track_id: int) -> str | None:
        for a in self.scene.agents:
            if a.track_id == track_id:
                return a.category
        if self.labels is not None:
            for boxes in self.labels.frames:
                for b in boxes:
                    if b.track_id == track_id:
                        return b.category
        return None

    def next_track_id(self) -> int:
        ids = [a.track_id for a in self.scene.agents] + self.visible_ids()
        return max(ids, default=0) + 1

    @classmethod
    def from_scene(
        cls,
        scene: Scene,
        frames: int,
        width: int,
        height: int,
        fps: float,
        start_s: float = 0.0,
        labels: ClipLabels | None = None,
    ) -> World:
        """A synthetic clip's own scene. `labels` None: read off a rasterisation of the scene."""
        if labels is None:
            from amplify.synth.raster import rasterize_clip
            from amplify.synth.render import clip_boxes

            g = rasterize_clip(scene, frames, width, height, fps, start_s)
            labels = ClipLabels(
                width, height, AGENT_CATEGORIES, clip_boxes(g, scene), fps=float(fps)
            )
        ids = frozenset(a.track_id for a in scene.agents)
        return cls(scene, frames, width, height, float(fps), float(start_s), labels, True, ids)

    @classmethod
    def from_clip(
        cls,
        frames: int,
        width: int,
        height: int,
        fps: float,
        labels: ClipLabels | None = None,
        cam: GroundCamera = GroundCamera(),
    ) -> World:
        """The ground-plane model of any clip (module docstring): straight road, level camera.

        Where the labels carry the camera (`intrinsics`) and 3D boxes (`box_3d`, camera frame),
        they are used: the camera's height and pitch are fitted to the boxes' bottoms (agents
        stand on the road) and those agents are placed where their 3D boxes say, with their own
        sizes. A horizon set in `cam` still wins over the fit."""
        if labels is not None and (labels.width, labels.height) != (width, height):
            sx, sy = width / labels.width, height / labels.height
            labels = labels.transform(sx, sy, 0.0, 0.0, width, height)
        intr = labels.intrinsics if labels is not None else None
        k = np.array(intr, np.float64) if intr is not None else camera.intrinsics(width, height)
        boxes3d = boxes_3d(labels, fps)
        cam_height = float(cam.cam_height)
        if cam.horizon is not None:
            pitch = math.atan((k[1, 2] - float(cam.horizon) * height) / k[1, 1])
            how = "config"
        elif boxes3d:
            pitch, cam_height = fit_ground(boxes3d, cam_height)
            how = "labels_3d"
        else:
            row = estimate_horizon(labels, k, cam_height)
            pitch = math.atan((k[1, 2] - row) / k[1, 1])
            how = "boxes_2d"
        lw = LANE_WIDTH_M
        road = Road(
            amps=(),
            wavelengths=(),
            phases=(),
            lanes_right=2,
            lanes_left=2,
            lane_width=lw,
            sidewalk_width=3.0,
            crosswalks=(),
            asphalt=(0.35, 0.35, 0.36),
            sidewalk=(0.62, 0.60, 0.57),
            terrain=(0.30, 0.45, 0.20),
        )
        ego = Ego(
            track=Track(0.0, float(cam.ego_speed), lw / 2),
            drift_amp=0.0,
            drift_period=1.0,
            drift_phase=0.0,
            cam_height=cam_height,
            pitch=float(pitch),
        )
        scene = Scene(0, road, ego, (), (), max(1.0, frames / fps))
        placed = place_agents_3d(boxes3d, scene) if boxes3d else {}
        flat = lift_agents(labels, scene, k, fps) if labels is not None else ()
        agents = tuple(sorted([*placed.values(), *(a for a in flat if a.track_id not in placed)],
                              key=lambda a: a.track_id))  # fmt: skip
        scene = replace(scene, agents=agents)
        lifted = frozenset(a.track_id for a in agents)
        intrinsics = tuple(tuple(float(v) for v in row) for row in k) if intr is not None else None
        return cls(scene, frames, width, height, float(fps), 0.0, labels, False, lifted,
                   intrinsics, how)  # fmt: skip


def estimate_horizon(labels: ClipLabels | None, k: np.ndarray, cam_height: float) -> float:
    """Image row of the horizon: from labelled boxes of known height where there are >= 3 (a box
    of real height Hm, pixel height h and bottom row v sits at depth f Hm / h, so the horizon is
    v - h cam_height / Hm; the median over boxes), else the default pitch's row."""
    default = float(k[1, 2] - k[1, 1] * math.tan(DEFAULT_PITCH_RAD))
    if labels is None:
        return default
    rows = []
    for boxes in labels.frames:
        for b in boxes:
            hm = TYPICAL_HEIGHT_M.get(b.category)
            h = b.y1 - b.y0
            if hm is None or h < 6 or b.y1 >= labels.height - 1:  # cut by the frame: skip
                continue
            rows.append(b.y1 - h * cam_height / hm)
    if len(rows) < 3:
        return default
    est = float(np.median(rows))
    return float(np.clip(est, 0.2 * labels.height, 0.7 * labels.height))


def with_sidecar_3d(
    window: ClipLabels, sidecar: ClipLabels, times: list[float] | np.ndarray
) -> ClipLabels:
    """A window's 2D labels (as the dataset stores them) given back the 3D boxes and camera of
    the clip's label sidecar: each window frame takes the sidecar frame nearest its source time
    (`times`, seconds; needs the sidecar's fps), each box the `box_3d` of its track there, and the
    intrinsics follow the window's crop and scale, read off the matched 2D boxes (median scale and
    offset, so boxes cut by the window's edge do not bias it). Unchanged when nothing matches."""
    if not sidecar.fps or not any(b.box_3d for fr in sidecar.frames for b in fr):
        return window
    n = len(sidecar.frames)
    frames, pairs = [], []
    for t, boxes in zip(times, window.frames, strict=True):
        i = int(round(float(t) * sidecar.fps))
        side = {b.track_id: b for b in sidecar.frames[i]} if 0 <= i < n else {}
        out = []
        for b in boxes:
            sb = side.get(b.track_id)
            if sb is not None and not b.is_generated:
                pairs.append((sb, b))
                b = replace(b, box_3d=sb.box_3d)
            out.append(b)
        frames.append(tuple(out))
    if not pairs:
        return window
    k = sidecar.intrinsics
    if k is not None:
        sx = float(np.median([(b.x1 - b.x0) / max(s.x1 - s.x0, 1e-6) for s, b in pairs]))
        sy = float(np.median([(b.y1 - b.y0) / max(s.y1 - s.y0, 1e-6) for s, b in pairs]))
        ox = float(np.median([(b.x0 + b.x1) / 2 - sx * (s.x0 + s.x1) / 2 for s, b in pairs]))
        oy = float(np.median([(b.y0 + b.y1) / 2 - sy * (s.y0 + s.y1) / 2 for s, b in pairs]))
        k = transform_intrinsics(k, sx, sy, ox, oy)
    return replace(window, frames=tuple(frames), intrinsics=k)


def boxes_3d(labels: ClipLabels | None, fps: float) -> dict[int, list[tuple[float, str, tuple]]]:
    """Per track id: (time, category, box_3d) of every labelled box that carries a 3D box."""
    out: dict[int, list[tuple[float, str, tuple]]] = {}
    if labels is None:
        return out
    for i, boxes in enumerate(labels.frames):
        for b in boxes:
            if b.box_3d is not None and len(b.box_3d) >= 6 and b.box_3d[2] > 0.5:
                out.setdefault(b.track_id, []).append((i / fps, b.category, tuple(b.box_3d)))
    return out


def fit_ground(boxes: dict[int, list], cam_height: float) -> tuple[float, float]:
    """(pitch, camera height) that put the bottoms of the 3D boxes on the road.

    A box's bottom centre, rotated by the pitch into the level frame, lies `cam_height` below
    the camera: cos(p) y + sin(p) z + h/2 = cam_height, linear in (p, cam_height) for a small p.
    Boxes spread over >= 5 m of depth fit both; otherwise the given height is kept and the pitch
    alone is fitted (the median over boxes)."""
    rows = np.array([(b[1], b[2], b[5]) for track in boxes.values() for _, _, b in track])
    y, z, h = rows[:, 0], rows[:, 1], rows[:, 2]
    rhs = y + h / 2
    if np.ptp(z) >= 5.0:
        a = np.stack([z, -np.ones_like(z)], 1)
        (p, ch), *_ = np.linalg.lstsq(a, -rhs, rcond=None)
        p, ch = float(p), float(ch)
        if 0.5 <= ch <= 5.0:
            return float(np.clip(p, -0.4, 0.4)), ch
    p = float(np.median((cam_height - rhs) / z))
    return float(np.clip(p, -0.4, 0.4)), cam_height


def place_agents_3d(boxes: dict[int, list], scene: Scene) -> dict[int, Agent]:
    """Agents where their 3D boxes say (straight road: along-road s = ego s + level z, lateral
    d = ego lane + level x), their size the boxes' median, a straight-line track through the
    frames. The box yaw is not used: an agent heads the way its track moves (along the road when
    it stands still)."""
    ego = scene.ego
    c, s_ = math.cos(ego.pitch), math.sin(ego.pitch)
    out: dict[int, Agent] = {}
    for tid, track in sorted(boxes.items()):
        t = np.array([r[0] for r in track])
        b = np.array([r[2][:6] for r in track], np.float64)
        x_l, z_l = b[:, 0], -s_ * b[:, 1] + c * b[:, 2]
        es = ego.track.at(t)[0]
        s_road, d_road = es + z_l, ego.track.d0 + x_l
        if len(t) >= 2 and np.ptp(t) > 0:
            v, s0 = np.polyfit(t, s_road, 1)
            vd, d0 = np.polyfit(t, d_road, 1)
        else:
            v, s0, vd, d0 = 0.0, float(s_road[0]), 0.0, float(d_road[0])
        cat = track[0][1] if track[0][1] in AGENT_SIZES else "car"
        L, W, H = (float(np.median(b[:, j])) for j in (3, 4, 5))
        out[tid] = Agent(tid, cat, L, W, H, CAR_COLOURS[0],
                         Track(float(s0), float(v), float(d0), float(vd), 0.0, float(t.max())))  # fmt: skip
    return out


def lift_agents(labels: ClipLabels, scene: Scene, k: np.ndarray, fps: float) -> tuple[Agent, ...]:
    """Labelled agents on the ground plane: each box's bottom centre cast onto the road, a
    straight-line track fitted through the frames. Boxes above the horizon are skipped."""
    ego = scene.ego
    rays = camera.level_rays(k, labels.width, labels.height, ego.pitch)  # (H, W, 3)
    pts: dict[int, list[tuple[float, float, float]]] = {}
    cats: dict[int, str] = {}
    for i, boxes in enumerate(labels.frames):
        t = i / fps
        es = float(ego.track.at(np.array([t]))[0][0])
        for b in boxes:
            u = int(np.clip((b.x0 + b.x1) / 2, 0, labels.width - 1))
            v = int(np.clip(b.y1 - 0.5, 0, labels.height - 1))
            r = rays[v, u]
            if r[1] <= 1e-3:  # at or above the horizon: no ground hit
                continue
            depth = ego.cam_height / r[1]
            if depth > 150:
                continue
            pts.setdefault(b.track_id, []).append(
                (t, es + r[2] * depth, ego.track.d0 + r[0] * depth)
            )
            cats[b.track_id] = b.category
    agents = []
    for tid, p in sorted(pts.items()):
        a = np.array(p)  # (n, 3): t, s, d
        if len(a) >= 2 and np.ptp(a[:, 0]) > 0:
            v, s0 = np.polyfit(a[:, 0], a[:, 1], 1)
        else:
            v, s0 = 0.0, a[0, 1]
        cat = cats[tid] if cats[tid] in AGENT_SIZES else "car"
        L, W, H = (float(np.mean(r)) for r in AGENT_SIZES[cat])
        agents.append(
            Agent(
                tid,
                cat,
                L,
                W,
                H,
                CAR_COLOURS[0],
                Track(float(s0), float(v), float(np.median(a[:, 2]))),
            )
        )
    return tuple(agents)
