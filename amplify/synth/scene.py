"""Scene sampling: road geometry, ego motion, agent tracks and roadside objects of one seed.

Everything geometric about a clip is drawn here from one RNG seeded by the scene seed, so the
same seed gives the same scene under every condition. World frame (metres): x right, y down
(ground at y = 0, heights are negative y), z forward along the road at its start. The road is
a centreline `x = road.x(z)`; a point is addressed by road coordinates (s, d): s along the road
(~ z), d perpendicular, positive to the right. Ego drives on the right; oncoming lanes are d < 0.
Tracks are analytic functions of time, so any frame rate or clip length samples the same motion.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from amplify.synth.classes import AGENT_SIZES

SAMPLED_AGENTS = ("car", "truck", "pedestrian", "cyclist")  # what `sample_scene` places

# Colours (display RGB in [0, 1]) that vehicles and people are drawn from.
CAR_COLOURS = (
    (0.75, 0.75, 0.78),
    (0.12, 0.12, 0.14),
    (0.55, 0.08, 0.07),
    (0.10, 0.20, 0.45),
    (0.90, 0.90, 0.88),
    (0.35, 0.37, 0.40),
    (0.70, 0.55, 0.20),
    (0.15, 0.35, 0.20),
)
SHIRT_COLOURS = (
    (0.70, 0.15, 0.15),
    (0.15, 0.30, 0.65),
    (0.85, 0.75, 0.20),
    (0.20, 0.55, 0.25),
    (0.80, 0.80, 0.80),
    (0.15, 0.15, 0.15),
    (0.85, 0.45, 0.10),
    (0.50, 0.20, 0.55),
)
BUILDING_COLOURS = (
    (0.62, 0.55, 0.48),
    (0.70, 0.68, 0.62),
    (0.55, 0.35, 0.28),
    (0.48, 0.50, 0.55),
    (0.78, 0.72, 0.60),
    (0.40, 0.38, 0.36),
    (0.66, 0.60, 0.70),
)


@dataclass(frozen=True)
class Road:
    """Centreline `x(z) = sum a_k sin(2 pi z / L_k + phi_k)`, lanes, sidewalks and crosswalks."""

    amps: tuple[float, ...]
    wavelengths: tuple[float, ...]
    phases: tuple[float, ...]
    lanes_right: int
    lanes_left: int
    lane_width: float
    sidewalk_width: float
    crosswalks: tuple[float, ...]  # s of each zebra crossing
    asphalt: tuple[float, float, float]
    sidewalk: tuple[float, float, float]
    terrain: tuple[float, float, float]

    @property
    def right_edge(self) -> float:
        return self.lanes_right * self.lane_width

    @property
    def left_edge(self) -> float:
        return -self.lanes_left * self.lane_width

    def x(self, z: np.ndarray) -> np.ndarray:
        out = np.zeros_like(z)
        for a, wl, ph in zip(self.amps, self.wavelengths, self.phases, strict=True):
            out += a * np.sin(z * (2 * np.pi / wl) + ph)
        return out

    def slope(self, z: np.ndarray) -> np.ndarray:
        """dx/dz of the centreline."""
        out = np.zeros_like(z)
        for a, wl, ph in zip(self.amps, self.wavelengths, self.phases, strict=True):
            k = 2 * np.pi / wl
            out += a * k * np.cos(z * k + ph)
        return out

    def to_world(self, s: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Road coordinates -> world (x, z) and the road heading (yaw from +z toward +x)."""
        m = self.slope(s)
        n = np.sqrt(1.0 + m * m)
        return self.x(s) + d / n, s - d * m / n, np.arctan(m)

    def to_road(self, x: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World (x, z) on the ground -> road coordinates (s, d), first order in the slope."""
        m = self.slope(z)
        n = np.sqrt(1.0 + m * m)
        d = (x - self.x(z)) / n
        return z + d * m / n, d


@dataclass(frozen=True)
class Track:
    """Motion in road coordinates: s(t) = s0 + v t; d moves at `vd` only while t0 <= t <= t1.

    From `ta` on, s accelerates at `acc` (m/s^2) until the speed reaches 0 (a braking lead car
    stops; it never reverses). `acc = 0` (every sampled scene) is plain constant speed.
    """

    s0: float
    v: float
    d0: float
    vd: float = 0.0
    t0: float = 0.0
    t1: float = 0.0
    acc: float = 0.0
    ta: float = 0.0

    def at(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(s, d, ds/dt, dd/dt) at times `t` (seconds)."""
        t = np.asarray(t, dtype=np.float64)
        s = self.s0 + self.v * t
        ds = np.full_like(t, self.v)
        if self.acc != 0.0:
            stop = -self.v / self.acc if self.v * self.acc < 0 else np.inf
            tau = np.clip(t - self.ta, 0.0, stop)
            s = self.s0 + self.v * np.minimum(t, self.ta) + self.v * tau + 0.5 * self.acc * tau**2
            ds = np.where(
                t < self.ta, self.v, np.where(t - self.ta < stop, self.v + self.acc * tau, 0.0)
            )
        tau = np.clip(t, self.t0, self.t1) - self.t0
        d = self.d0 + self.vd * tau
        moving = (t >= self.t0) & (t <= self.t1)
        dd = np.where(moving, self.vd, 0.0)
        return s, d, ds, dd


@dataclass(frozen=True)
class Agent:
    """A labelled road user. Size: length (along heading), width, height in metres."""

    track_id: int
    category: str  # one of classes.AGENT_CATEGORIES
    length: float
    width: float
    height: float
    colour: tuple[float, float, float]
    track: Track
    # Heading when the agent stands still (pedestrian waiting to cross): +1 right, -1 left.
    facing: float = 0.0


@dataclass(frozen=True)
class Static:
    """A roadside object: building, tree, streetlight or sign, placed at road coordinates."""

    kind: str
    s: float
    d: float
    length: float
    width: float
    height: float
    colour: tuple[float, float, float]
    side: int  # +1 right of the road, -1 left: which way faces the road
    variant: int = 0  # per-object pattern seed (window layout, lit windows)


@dataclass(frozen=True)
class Ego:
    """Ego motion: constant speed along the road, slight sinusoidal lateral drift in its lane."""

    track: Track
    drift_amp: float
    drift_period: float
    drift_phase: float
    cam_height: float = 1.5
    pitch: float = 0.05  # radians, camera tilted down

    def at(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        s, d, ds, _ = self.track.at(t)
        w = 2 * np.pi / self.drift_period
        d = d + self.drift_amp * np.sin(w * t + self.drift_phase)
        dd = self.drift_amp * w * np.cos(w * t + self.drift_phase)
        return s, d, ds, dd


@dataclass(frozen=True)
class Scene:
    seed: int
    road: Road
    ego: Ego
    agents: tuple[Agent, ...]
    statics: tuple[Static, ...]
    duration_s: float


def pose_at(road: Road, s, d, ds, dd) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World (x, z, yaw) of something at road coordinates moving at (ds, dd)."""
    x, z, heading = road.to_world(np.asarray(s, float), np.asarray(d, float))
    return x, z, heading + np.arctan2(dd, np.where(ds == 0, 1e-9, ds))


def sample_scene(seed: int, duration_s: float = 10.0) -> Scene:
    """Draw one scene from `seed`. `duration_s` bounds how far the ego drives (and so the extent
    of the world that is populated); clips up to that length stay plausible."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, 1234567]))
    u = rng.uniform

    # 1. Road: gentle curves (radius >= ~200 m), 1-2 lanes each way.
    n_waves = int(rng.integers(0, 3))
    wls = tuple(float(u(180, 600)) for _ in range(n_waves))
    amps = tuple(float(u(0.3, 1.0) * 0.09 * wl / (2 * np.pi)) for wl in wls)
    phases = tuple(float(u(0, 2 * np.pi)) for _ in range(n_waves))
    asphalt_g = u(0.30, 0.42)
    road = Road(
        amps=amps,
        wavelengths=wls,
        phases=phases,
        lanes_right=int(rng.integers(1, 3)),
        lanes_left=int(rng.integers(1, 3)),
        lane_width=float(u(3.2, 3.7)),
        sidewalk_width=float(u(2.0, 3.5)),
        crosswalks=(),
        asphalt=(asphalt_g, asphalt_g, asphalt_g * 1.03),
        sidewalk=(0.62, 0.60, 0.57),
        terrain=(0.30, 0.42 + u(0, 0.08), 0.20),
    )
    lw = road.lane_width

    # 2. Ego in one of its lanes.
    speed = float(u(8.0, 15.0))
    ego_lane = int(rng.integers(0, road.lanes_right))
    ego = Ego(
        track=Track(s0=0.0, v=speed, d0=(ego_lane + 0.5) * lw),
        drift_amp=float(u(0.05, 0.3)),
        drift_period=float(u(4.0, 9.0)),
        drift_phase=float(u(0, 2 * np.pi)),
    )
    s_end = speed * duration_s
    s_max = s_end + 160.0

    agents: list[Agent] = []

    def add(category: str, track: Track, colour, facing: float = 0.0) -> None:
        # A size is drawn for each of the four sampled kinds and one kept: the RNG stream (and so
        # every scene of a seed) stays what it has always been.
        drawn = {c: tuple(u(lo, hi) for lo, hi in AGENT_SIZES[c]) for c in SAMPLED_AGENTS}
        size = drawn[category]
        tid = len(agents) + 1
        agents.append(Agent(tid, category, *map(float, size), tuple(colour), track, facing))

    def vehicle() -> str:
        return "truck" if u() < 0.18 else "car"

    def car_colour():
        return CAR_COLOURS[int(rng.integers(len(CAR_COLOURS)))]

    # 3. Vehicles, lane by lane: one speed per lane (+-0.3 m/s) and >= 14 m gaps, so none collide.
    for lane in range(road.lanes_right):
        d = (lane + 0.5) * lw
        if lane == ego_lane:
            v_lane = speed + u(-0.4, 2.0)
            s = float(u(14, 40))
        else:
            v_lane = speed + u(-3.0, 3.0)
            s = float(u(-25, 10))
        while s < s_max:
            if u() < 0.75:
                add(vehicle(), Track(s, v_lane + u(-0.3, 0.3), d + u(-0.2, 0.2)), car_colour())
            s += float(u(16, 45)) + (8 if agents and agents[-1].category == "truck" else 0)
    for lane in range(road.lanes_left):
        d = -(lane + 0.5) * lw
        v_lane = -float(u(8, 15))
        s = float(u(10, 40))
        while s < s_max + 150:
            if u() < 0.7:
                add(vehicle(), Track(s, v_lane + u(-0.3, 0.3), d + u(-0.2, 0.2)), car_colour())
            s += float(u(20, 60))

    # 4. Cyclists near the right kerb, slower than traffic.
    for _ in range(int(rng.integers(0, 3))):
        d = road.right_edge - 0.8
        add("cyclist", Track(float(u(8, 90)), float(u(3.5, 6.5)), d), car_colour())

    # 5. Pedestrians walking on both sidewalks, and 0-2 crossing ahead at a zebra crossing.
    for side in (1, -1):
        edge = road.right_edge if side > 0 else road.left_edge
        for _ in range(int(rng.integers(2, 8))):
            d = edge + side * road.sidewalk_width * u(0.25, 0.8)
            v = float(u(0.9, 1.6)) * (1 if u() < 0.5 else -1)
            shirt = SHIRT_COLOURS[int(rng.integers(len(SHIRT_COLOURS)))]
            add("pedestrian", Track(float(u(3, s_max * 0.7)), v, d), shirt)
    crosswalks: list[float] = []
    if u() < 0.7:
        sc = float(s_end * u(0.7, 1.0) + u(15, 35))
        crosswalks.append(sc)
        for _ in range(int(rng.integers(1, 3))):
            side = 1 if u() < 0.5 else -1
            start = (road.right_edge + 0.7) if side > 0 else (road.left_edge - 0.7)
            end = road.left_edge - 0.7 if side > 0 else road.right_edge + 0.7
            vd = float(u(1.1, 1.6)) * (-side)
            t0 = float(u(0, duration_s * 0.6))
            t1 = t0 + abs(end - start) / abs(vd)
            shirt = SHIRT_COLOURS[int(rng.integers(len(SHIRT_COLOURS)))]
            track = Track(sc + u(-1.0, 1.0), 0.0, start + u(-0.3, 0.3), vd, t0, t1)
            add("pedestrian", track, shirt, facing=-side)

    # 6. Roadside: buildings or trees behind the sidewalk, streetlights and signs at the kerb.
    statics: list[Static] = []
    urban = float(u(0.2, 1.0))
    for side in (1, -1):
        edge = road.right_edge if side > 0 else road.left_edge
        outer = edge + side * road.sidewalk_width
        s = float(u(-40, -20))
        while s < s_max:
            if u() < urban:
                length, depth, height = u(8, 24), u(8, 14), u(5, 26)
                setback = u(0.5, 5.0)
                colour = BUILDING_COLOURS[int(rng.integers(len(BUILDING_COLOURS)))]
                jitter = u(0.9, 1.1)
                d = outer + side * (setback + depth / 2)
                tint = tuple(min(1.0, c * jitter) for c in colour)
                variant = int(rng.integers(1 << 30))
                statics.append(
                    Static(
                        "building", s + length / 2, d, length, depth, height, tint, side, variant
                    )
                )
                s += float(length + u(0, 6))
            else:
                h = u(4, 9)
                green = (u(0.12, 0.22), u(0.30, 0.45), u(0.10, 0.18))
                d = outer + side * u(1.0, 4.0)
                variant = int(rng.integers(1 << 30))
                statics.append(Static("tree", s, d, h * 0.45, h * 0.45, h, green, side, variant))
                s += float(u(6, 14))
        spacing = u(24, 36)
        if u() < 0.8:
            for s in np.arange(u(0, spacing), s_max, spacing):
                height = u(6.5, 8.0)
                grey = (0.45, 0.46, 0.48)
                d = edge + side * 0.5
                statics.append(Static("streetlight", float(s), d, 0.2, 0.2, height, grey, side))
        for _ in range(int(rng.integers(0, 3))):
            colour = ((0.1, 0.3, 0.7), (0.8, 0.1, 0.1), (0.9, 0.8, 0.1))[int(rng.integers(3))]
            statics.append(
                Static("sign", float(u(10, s_max)), edge + side * 0.8, 0.08, 0.8, 2.6, colour, side)
            )

    road = Road(**{**road.__dict__, "crosswalks": tuple(crosswalks)})
    return Scene(int(seed), road, ego, tuple(agents), tuple(statics), float(duration_s))
