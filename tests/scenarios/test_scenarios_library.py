"""Scenario templates edit the scene in 3D: real renders of edited scenes, real label checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from amplify.conditions import SCENARIOS, Condition
from amplify.errors import ConfigError
from amplify.scenarios.edit import NothingToEdit, edited_scene, render_edit
from amplify.scenarios.library import TEMPLATES, catalogue_markdown, sample_spec, template
from amplify.scenarios.world import World
from amplify.synth.raster import rasterize_clip
from amplify.synth.scene import Track, sample_scene
from amplify.synth.shade import shade_clip

T, W, H, FPS = 9, 128, 64, 8.0
EVENTS = [n for n, t in TEMPLATES.items() if t.kind == "event"]


@pytest.fixture(scope="module")
def world():
    return World.from_scene(sample_scene(7, duration_s=3.0), T, W, H, FPS)


def test_registry_is_the_vocabulary():
    assert tuple(TEMPLATES) == SCENARIOS
    for t in TEMPLATES.values():
        assert t.kind in ("event", "agents") and t.catalogue and t.params


def test_sampling_is_seeded_in_range_and_overridable():
    for name, t in TEMPLATES.items():
        a, b = sample_spec(name, 3), sample_spec(name, 3)
        assert a == b
        for p in t.params:
            v = a.params[p.name]
            assert v in p.choices if p.choices else p.low <= v <= p.high
    specs = {sample_spec("cut_in", s).to_json() for s in range(8)}
    assert len(specs) == 8
    fixed = sample_spec("cut_in", 3, {"side": "left"})
    assert fixed.params["side"] == "left"
    assert {k: v for k, v in fixed.params.items() if k != "side"} == {
        k: v for k, v in sample_spec("cut_in", 3).params.items() if k != "side"
    }
    with pytest.raises(ConfigError, match="gap_m"):
        sample_spec("cut_in", 0, {"gap_m": 500.0})
    with pytest.raises(ConfigError, match="unknown parameters"):
        sample_spec("cut_in", 0, {"speed": 1.0})
    with pytest.raises(ConfigError, match="teleport"):
        template("teleport")


@pytest.mark.parametrize("name", EVENTS)
def test_event_inserts_a_visible_labelled_agent(world, name):
    for seed in range(6):  # some parameter sets put the agent out of view; most must not
        edit = TEMPLATES[name].build(sample_spec(name, seed).params, world)
        maps = render_edit(world, edit)
        gen = {b.track_id for f in maps.labels.frames for b in f if b.is_generated}
        if maps.insert.any() and gen:  # visible, and big enough to be labelled
            break
    assert maps.insert.any() and gen <= edit.new_ids and gen
    # Inserted pixels are exactly the new agents' pixels of the edited render.
    assert np.array_equal(maps.insert, np.isin(maps.gbuffer.instance, list(edit.new_ids)))
    # Cleared agents are gone from the labels.
    gone = edit.remove - edit.new_ids
    assert not any(b.track_id in gone for f in maps.labels.frames for b in f)
    assert (maps.category[maps.insert] > 0).all() and (maps.depth[maps.insert] > 0).all()


def test_twin_differs_from_source_only_inside_the_region(world):
    # Clear day only: in rain the streaks take the frame's mean colour (an inserted agent shifts
    # it a little); in fog, rain, dusk and night the lamps of inserted vehicles bloom beyond
    # their pixels. The painter does not draw that glow (the copy-paste ceiling shows its cost).
    cond = Condition("clear", "day")
    edit = TEMPLATES["pedestrian_crossing"].build(
        sample_spec("pedestrian_crossing", 1).params, world
    )
    maps = render_edit(world, edit)
    src = shade_clip(rasterize_clip(world.scene, T, W, H, FPS), cond, world.scene.seed)
    twin = shade_clip(maps.gbuffer, cond, world.scene.seed)
    changed = (src != twin).any(-1)
    old = np.isin(rasterize_clip(world.scene, T, W, H, FPS).instance, list(edit.gone_ids))
    assert changed.any()
    assert not (changed & ~(maps.insert | old)).any()


def test_removed_agent_is_painted_out_region_and_label():
    w = World.from_scene(sample_scene(11, duration_s=3.0), T, W, H, FPS)
    edit = TEMPLATES["remove_agent"].build({"agent": "any", "pick": "nearest", "index": 0}, w)
    (tid,) = edit.remove
    maps = render_edit(w, edit)
    assert tid == w.visible_ids()[0]
    assert maps.remove.any() and not maps.insert.any()
    assert all(b.track_id != tid for f in maps.labels.frames for b in f)
    src_ids = {b.track_id for f in w.labels.frames for b in f}
    after = {b.track_id for f in maps.labels.frames for b in f}
    # Everyone else stays; agents it hid may now show (the twin's labels say so too).
    assert src_ids - {tid} <= after <= {a.track_id for a in w.scene.agents} - {tid}


def test_swap_and_recolour_keep_the_track(world):
    swap = TEMPLATES["swap_vehicle"].build({"to": "truck"}, world)
    (a,) = swap.replace
    assert a.category == "truck" and a.track_id in world.visible_ids()
    recolour = TEMPLATES["recolour_vehicle"].build({"colour": 2}, world)
    (b,) = recolour.replace
    old = next(x for x in world.scene.agents if x.track_id == b.track_id)
    assert b.colour != old.colour and b.track == old.track


def test_occlusion_follows_depth():
    """A pedestrian behind a parked car shows fewer pixels than the same one without the car."""
    w = World.from_scene(sample_scene(3, duration_s=3.0), T, W, H, FPS)
    params = {**sample_spec("pedestrian_crossing", 0).params, "side": "near", "onset": 0.4,
              "step_out_m": 0.0, "distance_m": 15.0}  # fmt: skip
    hidden = TEMPLATES["pedestrian_crossing"].build({**params, "behind_parked_car": "yes"}, w)
    open_ = TEMPLATES["pedestrian_crossing"].build({**params, "behind_parked_car": "no"}, w)
    ped = min(a.track_id for a in hidden.add)
    seen_hidden = (render_edit(w, hidden).gbuffer.instance == ped).sum()
    seen_open = (render_edit(w, open_).gbuffer.instance == ped).sum()
    assert seen_hidden < seen_open


def test_nothing_to_edit_on_an_unlabelled_clip():
    w = World.from_clip(T, W, H, FPS)
    with pytest.raises(NothingToEdit):
        TEMPLATES["swap_vehicle"].build({"to": "van"}, w)
    maps = render_edit(w, TEMPLATES["lead_stopped"].build(sample_spec("lead_stopped", 0).params, w))
    assert maps.insert.any()  # inserted on the ground plane of a clip with nothing known


def test_braking_track_stops_and_never_reverses():
    tr = Track(s0=10.0, v=12.0, d0=0.0, acc=-6.0, ta=1.0)
    t = np.linspace(0, 6, 61)
    s, _, ds, _ = tr.at(t)
    assert np.all(np.diff(s) >= -1e-9) and ds.min() == 0.0
    assert s[-1] == pytest.approx(10 + 12 * 1 + 12**2 / (2 * 6))
    plain = Track(s0=1.0, v=2.0, d0=0.0)
    assert np.array_equal(plain.at(t)[0], 1.0 + 2.0 * t)


def test_edited_scene_keeps_everything_else(world):
    edit = TEMPLATES["add_traffic"].build({"count": 2, "variant": 5}, world)
    scene = edited_scene(world, edit)
    assert scene.statics == world.scene.statics and scene.road == world.scene.road
    assert len(scene.agents) == len(world.scene.agents) + len(edit.add)


def test_scenarios_doc_lists_every_template():
    doc = (Path(__file__).resolve().parents[2] / "docs" / "SCENARIOS.md").read_text()
    assert catalogue_markdown() in doc
