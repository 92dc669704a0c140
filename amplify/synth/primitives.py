"""Objects as a few upright cuboids ("primitives") each, with a class, a material and a colour.

A primitive is placed in its object's frame: `fwd` along the heading, `up` above the ground (box
centre), `right` to the side; its size is (length, height, width). Materials tell the shader what a
face shows: lights on a car's front and rear, glass on a cabin, windows on a building, a lamp.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from amplify.synth.classes import CLASS_ID
from amplify.synth.scene import Agent, Static

PLAIN, FRONT_LIGHTS, REAR_LIGHTS, BOTH_LIGHTS, CABIN, BUILDING, LAMP, FOLIAGE = range(8)

DARK = (0.04, 0.04, 0.045)
SKIN = (0.78, 0.58, 0.45)
PANTS = (0.16, 0.17, 0.24)


@dataclass(frozen=True)
class Prim:
    fwd: float
    up: float
    right: float
    length: float
    height: float
    width: float
    cls: int
    material: int
    colour: tuple[float, float, float]


def agent_prims(a: Agent) -> list[Prim]:
    L, W, H, c = a.length, a.width, a.height, a.colour
    cid = CLASS_ID[a.category]
    if a.category == "car":
        hb = H * 0.42
        return [
            Prim(0.0, 0.2, 0.0, L * 0.86, 0.4, W * 0.9, cid, PLAIN, DARK),
            Prim(0.0, 0.3 + hb / 2, 0.0, L, hb, W, cid, BOTH_LIGHTS, c),
            Prim(
                -L * 0.06, (0.3 + hb + H) / 2, 0.0, L * 0.52, H - 0.3 - hb, W * 0.86, cid, CABIN, c
            ),
        ]
    if a.category == "truck":
        cargo = tuple(min(1.0, 0.55 + 0.45 * v) for v in c)
        return [
            Prim(0.0, 0.35, 0.0, L * 0.95, 0.7, W * 0.9, cid, PLAIN, DARK),
            Prim(L / 2 - 1.15, 0.4 + H * 0.41, 0.0, 2.2, H * 0.82 - 0.1, W, cid, FRONT_LIGHTS, c),
            Prim(-1.2, 0.55 + (H - 0.55) / 2, 0.0, L - 2.5, H - 0.55, W, cid, REAR_LIGHTS, cargo),
        ]
    if a.category == "pedestrian":
        return [
            Prim(0.0, H * 0.235, 0.0, L * 0.8, H * 0.47, W * 0.7, cid, PLAIN, PANTS),
            Prim(0.0, H * 0.645, 0.0, L, H * 0.35, W, cid, PLAIN, c),
            Prim(0.0, H * 0.91, 0.0, 0.22, H * 0.18, 0.2, cid, PLAIN, SKIN),
        ]
    if a.category == "cyclist":
        return [
            Prim(0.0, 0.5, 0.0, L, 0.9, 0.1, cid, REAR_LIGHTS, DARK),
            Prim(-0.05, 0.8, 0.0, 0.35, 0.5, 0.4, cid, PLAIN, PANTS),
            Prim(-0.1, 1.28, 0.0, 0.45, 0.5, 0.45, cid, PLAIN, c),
            Prim(-0.02, (1.53 + H) / 2, 0.0, 0.22, H - 1.53, 0.2, cid, PLAIN, SKIN),
        ]
    if a.category == "van":
        hb = H * 0.55
        return [
            Prim(0.0, 0.2, 0.0, L * 0.9, 0.4, W * 0.9, cid, PLAIN, DARK),
            Prim(0.0, 0.3 + hb / 2, 0.0, L, hb, W, cid, BOTH_LIGHTS, c),
            Prim(-L * 0.08, (0.3 + hb + H) / 2, 0.0, L * 0.84, H - 0.3 - hb, W, cid, CABIN, c),
        ]
    if a.category == "animal":  # a deer-like quadruped: legs, body, neck and head
        leg = H * 0.5
        return [
            Prim(L * 0.3, leg / 2, 0.0, 0.12, leg, W * 0.8, cid, PLAIN, c),
            Prim(-L * 0.3, leg / 2, 0.0, 0.12, leg, W * 0.8, cid, PLAIN, c),
            Prim(0.0, leg + H * 0.12, 0.0, L * 0.75, H * 0.24, W, cid, PLAIN, c),
            Prim(L * 0.38, H * 0.82, 0.0, L * 0.22, H * 0.36, W * 0.6, cid, PLAIN, c),
        ]
    if a.category == "debris":  # a lost load: one low box
        return [Prim(0.0, H / 2, 0.0, L, H, W, cid, PLAIN, c)]
    raise ValueError(a.category)


def static_prims(o: Static) -> list[Prim]:
    toward_road = -o.side
    if o.kind == "building":
        cid = CLASS_ID["building"]
        return [Prim(0.0, o.height / 2, 0.0, o.length, o.height, o.width, cid, BUILDING, o.colour)]
    if o.kind == "tree":
        cid = CLASS_ID["vegetation"]
        h = o.height
        return [
            Prim(0.0, h * 0.2, 0.0, 0.35, h * 0.4, 0.35, cid, PLAIN, (0.30, 0.22, 0.14)),
            Prim(0.0, h * 0.66, 0.0, o.length, h * 0.62, o.width, cid, FOLIAGE, o.colour),
        ]
    if o.kind == "streetlight":
        cid = CLASS_ID["pole"]
        h = o.height
        return [
            Prim(0.0, h / 2, 0.0, 0.18, h, 0.18, cid, PLAIN, o.colour),
            Prim(0.0, h - 0.1, toward_road * 0.9, 0.12, 0.12, 1.8, cid, PLAIN, o.colour),
            Prim(0.0, h - 0.15, toward_road * 1.7, 0.35, 0.15, 0.6, cid, LAMP, (0.8, 0.8, 0.75)),
        ]
    if o.kind == "sign":
        return [
            Prim(0.0, 1.1, 0.0, 0.08, 2.2, 0.08, CLASS_ID["pole"], PLAIN, (0.5, 0.5, 0.5)),
            Prim(0.0, 2.5, 0.0, 0.06, 0.8, 0.8, CLASS_ID["traffic_sign"], PLAIN, o.colour),
        ]
    raise ValueError(o.kind)


def prim_table(prims: list[Prim]) -> dict[str, np.ndarray]:
    """Column arrays of a list of primitives (P rows)."""
    return {
        "offset": np.array([[p.fwd, p.up, p.right] for p in prims], float).reshape(-1, 3),
        "half": np.array([[p.length, p.height, p.width] for p in prims], float).reshape(-1, 3) / 2,
        "cls": np.array([p.cls for p in prims], np.uint8),
        "material": np.array([p.material for p in prims], np.uint8),
        "colour": np.array([p.colour for p in prims], np.float32).reshape(-1, 3),
    }
