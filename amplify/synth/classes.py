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
    # Agents that only scenario edits place (amplify.scenarios); appended so older ids stay.
    "van",
    "animal",
    "debris",
)
CLASS_ID: dict[str, int] = {name: i for i, name in enumerate(SEMANTIC_CLASSES)}

# Agents carry a track id (instance map value) and a box in the labels.
AGENT_CATEGORIES: tuple[str, ...] = (
    "car",
    "truck",
    "pedestrian",
    "cyclist",
    "van",
    "animal",
    "debris",
)
# Sizes (length, width, height) in metres an agent of each category is drawn from: the scene
# sampler and the scenario templates share them.
AGENT_SIZES: dict[str, tuple[tuple[float, float], ...]] = {
    "car": ((3.9, 4.8), (1.7, 1.9), (1.4, 1.6)),
    "truck": ((7.0, 11.0), (2.3, 2.5), (3.0, 3.8)),
    "pedestrian": ((0.3, 0.4), (0.45, 0.55), (1.55, 1.9)),
    "cyclist": ((1.6, 1.8), (0.5, 0.6), (1.6, 1.85)),
    "van": ((4.8, 5.4), (1.9, 2.05), (1.9, 2.3)),
    "animal": ((1.3, 1.8), (0.35, 0.5), (1.0, 1.3)),
    "debris": ((0.5, 1.2), (0.4, 1.0), (0.2, 0.5)),
}

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
    (0, 60, 100),
    (170, 110, 40),
    (110, 90, 60),
)
