"""The condition-only RNG of the renderer; `Condition` and its vocabulary live in
`amplify.conditions` (re-exported here for backward compatibility: import from there).

A condition changes appearance only. Randomness it needs (rain streaks, snow flakes) comes from
`condition_rng(seed, condition, frame)`, never from the scene's geometry RNG, so every condition of
one seed renders the same geometry and motion (paired twins).
"""

from __future__ import annotations

import numpy as np

from amplify.conditions import TIMES_OF_DAY, WEATHERS, Condition, all_conditions

__all__ = ["TIMES_OF_DAY", "WEATHERS", "Condition", "all_conditions", "condition_rng"]


def condition_rng(seed: int, condition: Condition, frame: int) -> np.random.Generator:
    """An RNG for condition-only effects of one frame; it never touches the geometry RNG."""
    key = [
        int(seed) & 0xFFFFFFFF,
        WEATHERS.index(condition.weather),
        TIMES_OF_DAY.index(condition.time_of_day),
        int(round(float(condition.intensity) * 1_000_000)),
        int(frame),
    ]
    return np.random.default_rng(np.random.SeedSequence(key))
