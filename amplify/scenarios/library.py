"""The scenario library: parametric templates named after the catalogues safety engineers use.

    spec = sample_spec("cut_in", seed=3)                  # params drawn from the template's ranges
    spec = sample_spec("cut_in", 3, {"side": "left"})     # some fixed, the rest drawn
    edit = TEMPLATES[spec.name].build(spec.params, world) # who is added, removed, replaced

A template turns its parameters (distances, speeds, onset, side, agent size and kind) into an
`Edit` of a `World` (world.py): new agents with tracks in road coordinates (s along the road,
d across it, positive right; the ego drives on the right), agents removed or replaced. Events that
put an agent in the ego's path first clear that path of other agents, so nothing overlaps.
Catalogue references: Euro NCAP AEB VRU and AEB Car-to-Car test protocols (v4.x, 2023) and the
NHTSA pre-crash scenario typology (Najm, Smith and Yanagisawa 2007, DOT HS 810 767).
docs/SCENARIOS.md lists every template with its parameters and ranges (written from this module).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from amplify.errors import ConfigError
from amplify.scenarios.edit import Edit, NothingToEdit
from amplify.scenarios.world import World
from amplify.synth.classes import AGENT_SIZES
from amplify.synth.scene import CAR_COLOURS, SHIRT_COLOURS, Agent, Track

ANIMAL_COLOURS = ((0.45, 0.32, 0.20), (0.30, 0.22, 0.15), (0.60, 0.50, 0.38), (0.20, 0.18, 0.16))
DEBRIS_COLOURS = ((0.55, 0.42, 0.25), (0.08, 0.08, 0.08), (0.45, 0.45, 0.47), (0.65, 0.50, 0.30))
VEHICLES = ("car", "van", "truck")


@dataclass(frozen=True)
class Param:
    """A float in [low, high], or one of `choices` (uniform)."""

    name: str
    doc: str
    low: float = 0.0
    high: float = 0.0
    unit: str = ""
    choices: tuple = ()

    def sample(self, rng: np.random.Generator):
        if self.choices:
            return self.choices[int(rng.integers(len(self.choices)))]
        return round(float(rng.uniform(self.low, self.high)), 3)

    def check(self, value, template: str):
        key = f"{template}.{self.name}"
        if self.choices:
            if value not in self.choices:
                raise ConfigError(key, value, f"must be one of {list(self.choices)}")
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(key, value, f"must be a number in [{self.low}, {self.high}]")
        if not self.low <= float(value) <= self.high:
            raise ConfigError(key, value, f"must lie in [{self.low}, {self.high}] {self.unit}")
        return float(value)

    def describe(self) -> str:
        c = self.choices
        if c and all(isinstance(v, int) for v in c) and list(c) == list(range(c[0], c[-1] + 1)):
            return f"integer {c[0]} to {c[-1]}"
        if c:
            n = {v: c.count(v) for v in dict.fromkeys(c)}
            if len(set(n.values())) == 1:
                return " / ".join(str(v) for v in n)
            return " / ".join(f"{v} (p {k / len(c):.2f})" for v, k in n.items())
        return f"{self.low:g} to {self.high:g} {self.unit}".strip()


@dataclass(frozen=True)
class Template:
    name: str
    kind: str  # "event" (rare event) or "agents" (everyday variation)
    summary: str
    catalogue: str
    params: tuple[Param, ...]
    build: Callable[[dict, World], Edit]


@dataclass(frozen=True)
class ScenarioSpec:
    """A template and one full set of its parameters: what a generated row records."""

    name: str
    params: dict

    def to_json(self) -> str:
        return json.dumps({"name": self.name, "params": self.params}, sort_keys=True)


def sample_spec(name: str, seed: int, overrides: dict | None = None) -> ScenarioSpec:
    """Parameters of template `name` drawn from its ranges by `seed`; `overrides` fix some."""
    t = template(name)
    overrides = dict(overrides or {})
    unknown = set(overrides) - {p.name for p in t.params}
    if unknown:
        raise ConfigError(
            f"scenario.{name}",
            sorted(unknown),
            f"unknown parameters; known: {[p.name for p in t.params]}",
        )
    idx = list(TEMPLATES).index(name)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, 4242, idx]))
    params = {}
    for p in t.params:
        drawn = p.sample(rng)  # always drawn: fixing one parameter leaves the others as they were
        params[p.name] = p.check(overrides[p.name], name) if p.name in overrides else drawn
    return ScenarioSpec(name, params)


def template(name: str) -> Template:
    if name not in TEMPLATES:
        raise ConfigError("scenario", name, f"must be one of {list(TEMPLATES)}")
    return TEMPLATES[name]


# ---- helpers shared by the templates ------------------------------------------------------------


def _size(category: str, scale: float = 0.5) -> tuple[float, float, float]:
    """A size of `category` at `scale` in [0, 1] along its range (0.5 = the middle)."""
    return tuple(lo + (hi - lo) * scale for lo, hi in AGENT_SIZES[category])


def _onset(world: World, p: dict) -> float:
    return world.start_s + float(p.get("onset", 0.0)) * world.duration_s


def _ahead_at_end(world: World, distance: float) -> float:
    """Road position `distance` m ahead of the ego at the window's last frame: distances are
    measured there, so the event stays in view for the whole window (the ego keeps its speed)."""
    return world.ego_s(world.start_s + world.duration_s) + distance


def _clear(world: World, t: float, s_lo: float, s_hi: float, d_lo: float, d_hi: float) -> set[int]:
    """Ids of agents whose position at time `t` lies in the road rectangle (their path is taken)."""
    out = set()
    for a in world.scene.agents:
        s, d, _, _ = a.track.at(np.array([t, t + world.duration_s]))
        inside = (s >= s_lo) & (s <= s_hi) & (d >= d_lo) & (d <= d_hi)
        if inside.any():
            out.add(a.track_id)
    return out


def _ego_lane(world: World) -> tuple[float, float]:
    d = world.ego_lane_d
    return d - world.lane_width / 2, d + world.lane_width / 2


def _crossing(world: World, p: dict, category: str, colour, size) -> Edit:
    road = world.scene.road
    t_on = _onset(world, p)
    s_c = _ahead_at_end(world, p["distance_m"])
    near = p["side"] == "near"
    sign = 1.0 if near else -1.0
    kerb = road.right_edge if near else road.left_edge
    start = kerb + sign * (0.6 - p["step_out_m"])
    end = (road.left_edge - 0.6) if near else (road.right_edge + 0.6)
    speed = p["speed_mps"]
    t1 = t_on + abs(end - start) / speed
    tid = world.next_track_id()
    track = Track(s_c, 0.0, start, -sign * speed, t_on, t1)
    agents = [Agent(tid, category, *size, colour, track, facing=-sign)]
    lo, hi = _ego_lane(world)
    gone = _clear(world, t_on, world.ego_s(t_on) + 1, s_c + 8, lo, hi)
    gone |= _clear(world, t_on, s_c - 6, s_c + 6, road.left_edge - 3, road.right_edge + 3)
    if p.get("behind_parked_car") == "yes":
        car = _size("car")
        parked = Track(s_c - 3.0, 0.0, kerb + sign * 0.4)  # just before the crossing point
        agents.append(Agent(tid + 1, "car", *car, CAR_COLOURS[int(p["colour"]) % 8], parked))
    return Edit(add=tuple(agents), remove=frozenset(gone))


# ---- the templates ------------------------------------------------------------------------------

ONSET = Param("onset", "when the event starts, as a share of the window", 0.0, 0.4)
COLOUR = Param("colour", "colour index", choices=tuple(range(8)))
VEHICLE = Param("vehicle", "kind of vehicle", choices=VEHICLES)


def pedestrian_crossing(p: dict, world: World) -> Edit:
    h = p["height_m"]
    size = (0.35 * h / 1.75, 0.5 * h / 1.75, h)
    return _crossing(world, p, "pedestrian", SHIRT_COLOURS[int(p["colour"]) % 8], size)


def cyclist_crossing(p: dict, world: World) -> Edit:
    return _crossing(world, p, "cyclist", CAR_COLOURS[int(p["colour"]) % 8], _size("cyclist"))


def cut_in(p: dict, world: World) -> Edit:
    t_on = _onset(world, p)
    lc = p["lane_change_s"]
    sign = 1.0 if p["side"] == "right" else -1.0
    d_e = world.ego_lane_d
    d_from = d_e + sign * world.lane_width
    ego_v = float(world.scene.ego.track.v)
    v = ego_v + p["rel_speed_mps"]
    t_end = t_on + lc
    s0 = world.ego_s(t_end) + p["gap_m"] - v * t_end
    tid = world.next_track_id()
    track = Track(s0, v, d_from, (d_e - d_from) / lc, t_on, t_end)
    car = Agent(tid, p["vehicle"], *_size(p["vehicle"]), CAR_COLOURS[int(p["colour"])], track)
    lo, hi = _ego_lane(world)
    s_car = s0 + v * t_on
    gone = _clear(world, t_on, world.ego_s(t_on), s_car + 25, lo, hi)
    lo2, hi2 = sorted((d_from - world.lane_width / 2, d_from + world.lane_width / 2))
    gone |= _clear(world, t_on, s_car - 15, s_car + 15, lo2, hi2)
    return Edit(add=(car,), remove=frozenset(gone))


def _lead(p: dict, world: World, v: float, acc: float = 0.0) -> Edit:
    t_on = _onset(world, p)
    t_end = world.start_s + world.duration_s
    moved = float(Track(0.0, v, 0.0, acc=acc, ta=t_on).at(np.array([t_end]))[0][0])
    s0 = _ahead_at_end(world, p["distance_m"]) - moved  # the headway at the last frame
    s_at_on = s0 + v * t_on
    tid = world.next_track_id()
    track = Track(s0, v, world.ego_lane_d, acc=acc, ta=t_on)
    kind = p["vehicle"]
    lead = Agent(tid, kind, *_size(kind), CAR_COLOURS[int(p["colour"])], track)
    lo, hi = _ego_lane(world)
    gone = _clear(world, t_on, world.ego_s(world.start_s), s_at_on + 30, lo, hi)
    return Edit(add=(lead,), remove=frozenset(gone))


def lead_braking(p: dict, world: World) -> Edit:
    return _lead(p, world, float(world.scene.ego.track.v), -p["decel_mps2"])


def lead_stopped(p: dict, world: World) -> Edit:
    return _lead({**p, "onset": 0.0}, world, 0.0)


def animal_on_road(p: dict, world: World) -> Edit:
    t_on = _onset(world, p)
    s = _ahead_at_end(world, p["distance_m"])
    d = world.ego_lane_d + p["lateral_m"]
    scale = p["height_m"] / 1.15
    L, W, H = (v * scale for v in _size("animal"))
    sign = 1.0 if p["heading"] == "right" else -1.0
    speed = p["speed_mps"]
    track = Track(s, 0.0, d, sign * speed, t_on, t_on + world.duration_s + 10)
    tid = world.next_track_id()
    animal = Agent(tid, "animal", L, W, H, ANIMAL_COLOURS[int(p["colour"]) % 4], track, sign)
    lo, hi = _ego_lane(world)
    gone = _clear(world, t_on, world.ego_s(t_on), s + 6, lo - 1, hi + 1)
    return Edit(add=(animal,), remove=frozenset(gone))


def debris_in_lane(p: dict, world: World) -> Edit:
    s = _ahead_at_end(world, p["distance_m"])
    track = Track(s, 0.0, world.ego_lane_d + p["lateral_m"])
    tid = world.next_track_id()
    size = (p["length_m"], p["width_m"], p["height_m"])
    debris = Agent(tid, "debris", *size, DEBRIS_COLOURS[int(p["colour"]) % 4], track, 1.0)
    lo, hi = _ego_lane(world)
    gone = _clear(world, world.start_s, world.ego_s(world.start_s), s + 6, lo - 1, hi + 1)
    return Edit(add=(debris,), remove=frozenset(gone))


def oncoming_in_lane(p: dict, world: World) -> Edit:
    t_on = _onset(world, p)
    d_e = world.ego_lane_d
    d_from = -world.lane_width / 2  # the first oncoming lane
    v = -p["speed_mps"]
    t_end = world.start_s + world.duration_s
    s0 = _ahead_at_end(world, p["distance_m"]) - v * t_end
    s_on = s0 + v * t_on
    drift = p["drift_s"]
    tid = world.next_track_id()
    track = Track(s0, v, d_from, (d_e - d_from) / drift, t_on, t_on + drift)
    kind = p["vehicle"]
    car = Agent(tid, kind, *_size(kind), CAR_COLOURS[int(p["colour"])], track)
    lo, hi = _ego_lane(world)
    gone = _clear(world, t_on, world.ego_s(t_on), s_on + 10, lo, hi)
    gone |= _clear(world, t_on, s_on - 20, s_on + 20, d_from - 1.7, d_from + 1.7)
    return Edit(add=(car,), remove=frozenset(gone))


def _pick(world: World, p: dict, categories: tuple[str, ...], lifted_only: bool) -> int:
    ids = [i for i in world.visible_ids() if world.category_of(i) in categories]
    if lifted_only:
        ids = [i for i in ids if i in world.lifted]
    if not ids:
        raise NothingToEdit(f"no visible {'/'.join(categories)} in this window")
    if p.get("pick", "nearest") == "nearest":
        return ids[0]
    return ids[int(p["index"] * len(ids)) % len(ids)]


def remove_agent(p: dict, world: World) -> Edit:
    cats = {"vehicle": VEHICLES, "pedestrian": ("pedestrian", "cyclist")}.get(
        p["agent"], VEHICLES + ("pedestrian", "cyclist", "animal", "debris")
    )
    return Edit(remove=frozenset({_pick(world, p, cats, lifted_only=False)}))


def add_traffic(p: dict, world: World) -> Edit:
    road = world.scene.road
    rng = np.random.default_rng(int(p["variant"]))
    ego_v = float(world.scene.ego.track.v)
    tid = world.next_track_id()
    agents = []
    taken: list[tuple[float, float]] = []
    for a in world.scene.agents:
        s, d, _, _ = a.track.at(np.array([world.start_s]))
        taken.append((float(s[0]), float(d[0])))
    s_ego = world.ego_s(world.start_s)
    for _ in range(int(p["count"])):
        for _try in range(20):
            lanes = [(i + 0.5) * road.lane_width for i in range(road.lanes_right)]
            lanes += [-(i + 0.5) * road.lane_width for i in range(road.lanes_left)]
            d = float(lanes[int(rng.integers(len(lanes)))])
            s = s_ego + float(rng.uniform(15, 60))
            if all(abs(s - s2) > 10 or abs(d - d2) > 2.5 for s2, d2 in taken):
                break
        else:
            continue
        same = d > 0
        v = ego_v + float(rng.uniform(-3, 2)) if same else -float(rng.uniform(8, 14))
        kind = VEHICLES[int(rng.integers(3))] if rng.uniform() < 0.4 else "car"
        colour = CAR_COLOURS[int(rng.integers(8))]
        s0 = s - v * world.start_s
        agents.append(Agent(tid, kind, *_size(kind, float(rng.uniform())), colour, Track(s0, v, d)))
        taken.append((s, d))
        tid += 1
    if not agents:
        raise NothingToEdit("no free place for traffic in this window")
    return Edit(add=tuple(agents))


def swap_vehicle(p: dict, world: World) -> Edit:
    to = p["to"]
    tid = _pick(world, {**p, "pick": "nearest"}, tuple(v for v in VEHICLES if v != to), True)
    a = next(a for a in world.scene.agents if a.track_id == tid)
    L, W, H = _size(to)
    # A longer vehicle grows backwards: its front stays where the old one's was.
    track = Track(a.track.s0 - (L - a.length) / 2 * np.sign(a.track.v or 1.0), a.track.v, a.track.d0,
                  a.track.vd, a.track.t0, a.track.t1, a.track.acc, a.track.ta)  # fmt: skip
    return Edit(replace=(Agent(tid, to, L, W, H, a.colour, track, a.facing),))


def recolour_vehicle(p: dict, world: World) -> Edit:
    tid = _pick(world, {**p, "pick": "nearest"}, VEHICLES, lifted_only=True)
    a = next(a for a in world.scene.agents if a.track_id == tid)
    colour = CAR_COLOURS[int(p["colour"])]
    if np.allclose(colour, a.colour):
        colour = CAR_COLOURS[(int(p["colour"]) + 1) % 8]
    return Edit(replace=(dataclasses.replace(a, colour=colour),))


NCAP_VRU = "Euro NCAP AEB VRU protocol"
NCAP_C2C = "Euro NCAP AEB Car-to-Car protocol"
NHTSA = "NHTSA pre-crash typology"
_CROSS = (
    Param("side", "near = from the right kerb (Euro NCAP nearside), far = from the left", choices=("near", "far")),
    Param("distance_m", "crossing point ahead of the ego at the last frame", 8.0, 30.0, "m"),
    Param("step_out_m", "how far into the road the agent stands at onset", 0.0, 1.5, "m"),
    ONSET,
    COLOUR,
)  # fmt: skip

TEMPLATES: dict[str, Template] = {
    t.name: t
    for t in (
        Template(
            "pedestrian_crossing", "event",
            "a pedestrian steps out and crosses the road ahead, optionally from behind a parked car",
            f"{NCAP_VRU}: CPNA (nearside adult), CPFA (farside adult), CPNC (nearside child behind "
            f"an obstruction); {NHTSA}: pedestrian crash without prior vehicle manoeuvre",
            _CROSS + (
                Param("speed_mps", "walking speed (Euro NCAP: 1.4 adult, 2.2 child running)", 0.8, 2.5, "m/s"),
                Param("height_m", "body height (child to tall adult)", 1.1, 1.95, "m"),
                Param("behind_parked_car", "a parked car hides the start", choices=("no", "no", "yes")),
            ),
            pedestrian_crossing,
        ),
        Template(
            "cyclist_crossing", "event", "a cyclist crosses the road ahead",
            f"{NCAP_VRU}: CBNA (nearside adult), CBFA (farside adult); {NHTSA}: pedalcyclist crash "
            "without prior vehicle manoeuvre",
            _CROSS + (
                Param("speed_mps", "riding speed (Euro NCAP: 4.2 and 5.6)", 2.5, 6.0, "m/s"),
                Param("behind_parked_car", "a parked car hides the start", choices=("no", "no", "yes")),
            ),
            cyclist_crossing,
        ),
        Template(
            "cut_in", "event", "a vehicle from the next lane changes into the ego lane ahead",
            f"Euro NCAP Assisted Driving: cut-in; {NHTSA}: vehicle(s) changing lanes, same direction",
            (
                Param("side", "lane it comes from", choices=("left", "right")),
                Param("gap_m", "distance ahead of the ego when it is in the lane", 8.0, 25.0, "m"),
                Param("rel_speed_mps", "its speed minus the ego's", -3.0, 3.0, "m/s"),
                Param("lane_change_s", "duration of the lane change", 1.0, 2.5, "s"),
                ONSET, VEHICLE, COLOUR,
            ),
            cut_in,
        ),
        Template(
            "lead_braking", "event", "the vehicle ahead in the ego lane brakes hard",
            f"{NCAP_C2C}: CCRb (car-to-car rear, braking); {NHTSA}: lead vehicle decelerating",
            (
                Param("distance_m", "headway at the last frame", 8.0, 30.0, "m"),
                Param("decel_mps2", "deceleration (Euro NCAP: 2 and 6; hard from 4)", 4.0, 8.0, "m/s^2"),
                ONSET, VEHICLE, COLOUR,
            ),
            lead_braking,
        ),
        Template(
            "lead_stopped", "event", "a vehicle stands still in the ego lane ahead",
            f"{NCAP_C2C}: CCRs (car-to-car rear, stationary); {NHTSA}: lead vehicle stopped",
            (Param("distance_m", "distance ahead at the last frame", 10.0, 40.0, "m"), VEHICLE, COLOUR),
            lead_stopped,
        ),
        Template(
            "animal_on_road", "event", "an animal (dog to deer size) stands on or crosses the road",
            f"{NHTSA}: animal crash without prior vehicle manoeuvre",
            (
                Param("distance_m", "distance ahead at the last frame", 8.0, 35.0, "m"),
                Param("lateral_m", "offset from the ego lane's centre, right positive", -1.5, 1.5, "m"),
                Param("height_m", "shoulder-to-head height", 0.6, 1.3, "m"),
                Param("speed_mps", "crossing speed (0: standing)", 0.0, 3.0, "m/s"),
                Param("heading", "direction it walks", choices=("left", "right")),
                ONSET,
                Param("colour", "coat colour index", choices=(0, 1, 2, 3)),
            ),
            animal_on_road,
        ),
        Template(
            "debris_in_lane", "event", "a lost load lies in the ego lane",
            f"{NHTSA}: object crash without prior vehicle manoeuvre",
            (
                Param("distance_m", "distance ahead at the last frame", 8.0, 35.0, "m"),
                Param("lateral_m", "offset from the ego lane's centre", -1.0, 1.0, "m"),
                Param("length_m", "size along the road", 0.5, 1.2, "m"),
                Param("width_m", "size across the road", 0.4, 1.0, "m"),
                Param("height_m", "height", 0.2, 0.5, "m"),
                Param("colour", "cardboard / tyre black / grey / wood", choices=(0, 1, 2, 3)),
            ),
            debris_in_lane,
        ),
        Template(
            "oncoming_in_lane", "event", "an oncoming vehicle drifts into the ego lane",
            f"{NCAP_C2C}: CCFhos (car-to-car front, head-on straight); {NHTSA}: opposite direction "
            "without prior vehicle manoeuvre",
            (
                Param("distance_m", "distance ahead at the last frame", 15.0, 50.0, "m"),
                Param("speed_mps", "its speed toward the ego", 6.0, 15.0, "m/s"),
                Param("drift_s", "time it takes to cross into the ego lane", 1.0, 2.5, "s"),
                ONSET, VEHICLE, COLOUR,
            ),
            oncoming_in_lane,
        ),
        Template(
            "remove_agent", "agents", "a labelled agent disappears (painted over)",
            "everyday variation",
            (
                Param("agent", "what may be removed", choices=("vehicle", "pedestrian", "any")),
                Param("pick", "the nearest or any one", choices=("nearest", "random")),
                Param("index", "which one when random (share of the candidates)", 0.0, 0.999),
            ),
            remove_agent,
        ),
        Template(
            "add_traffic", "agents", "more vehicles in free places of both directions",
            "everyday variation",
            (
                Param("count", "vehicles added", choices=(1, 2, 3, 4)),
                Param("variant", "seed of their places, kinds and colours", choices=tuple(range(1000))),
            ),
            add_traffic,
        ),
        Template(
            "swap_vehicle", "agents", "the nearest labelled vehicle becomes another kind",
            "everyday variation", (Param("to", "new kind", choices=("truck", "van")),), swap_vehicle,
        ),
        Template(
            "recolour_vehicle", "agents", "the nearest labelled vehicle gets another colour",
            "everyday variation", (COLOUR,), recolour_vehicle,
        ),
    )
}  # fmt: skip


def catalogue_markdown() -> str:
    """The template table of docs/SCENARIOS.md (a test keeps the doc equal to this)."""
    lines = []
    for t in TEMPLATES.values():
        lines += [f"### `{t.name}` ({'rare event' if t.kind == 'event' else 'agent variation'})",
                  "", f"{t.summary[0].upper()}{t.summary[1:]}.", "", f"Catalogue: {t.catalogue}.", "",
                  "| parameter | range | meaning |", "|---|---|---|"]  # fmt: skip
        lines += [f"| `{p.name}` | {p.describe()} | {p.doc} |" for p in t.params]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
