"""Semantic classes of the synthetic corpus (ids are positions in `SEMANTIC_CLASSES`) and agents."""

from __future__ import annotations

SEMANTIC_CLASSES: tuple[str, ...] = (
    "sky",
    "road",
    "lane_marking",
    "sidewalk",
    "building",
    "vegetation",
    "pole",
    "car",
    "truck",
    "pedestrian",
    "cyclist",
    "terrain",
    "traffic_sign",
)
CLASS_ID: dict[str, int] = {name: i for i, name in enumerate(SEMANTIC_CLASSES)}

# Agents carry a track id (instance map value) and a box in the labels.
AGENT_CATEGORIES: tuple[str, ...] = ("car", "truck", "pedestrian", "cyclist")

# Depth given to sky pixels (metres): far beyond any geometry, finite so that arithmetic stays sane.
SKY_DEPTH = 1000.0

# Display colours of the semantic classes (contact sheets, debugging), Cityscapes-like.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (70, 130, 180),
    (128, 64, 128),
    (255, 255, 255),
    (244, 35, 232),
    (70, 70, 70),
    (107, 142, 35),
    (153, 153, 153),
    (0, 0, 142),
    (0, 0, 70),
    (220, 20, 60),
    (255, 0, 0),
    (152, 251, 152),
    (220, 220, 0),
)
