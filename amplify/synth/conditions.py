"""Rendering conditions: weather x time of day x intensity, and their condition-only RNG.

A condition changes appearance only. Randomness it needs (rain streaks, snow flakes) comes from
`condition_rng(seed, condition, frame)`, never from the scene's geometry RNG, so every condition of
one seed renders the same geometry and motion (paired twins).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from amplify.errors import ConfigError

WEATHERS: tuple[str, ...] = ("clear", "rain", "fog", "snow")
TIMES_OF_DAY: tuple[str, ...] = ("day", "dusk", "night")


@dataclass(frozen=True)
class Condition:
    """`intensity` in [0, 1] scales the weather (and how deep dusk or night is)."""

    weather: str = "clear"
    time_of_day: str = "day"
    intensity: float = 0.7

    def __post_init__(self) -> None:
        if self.weather not in WEATHERS:
            raise ConfigError("weather", self.weather, f"must be one of {list(WEATHERS)}")
        if self.time_of_day not in TIMES_OF_DAY:
            raise ConfigError(
                "time_of_day", self.time_of_day, f"must be one of {list(TIMES_OF_DAY)}"
            )
        x = self.intensity
        if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
            raise ConfigError("intensity", x, "must be a finite number in [0, 1]")
        if not 0.0 <= float(x) <= 1.0:
            raise ConfigError("intensity", x, "must lie in [0, 1]")

    @property
    def name(self) -> str:
        return f"{self.weather}_{self.time_of_day}"

    def as_dict(self) -> dict:
        return {
            "weather": self.weather,
            "time_of_day": self.time_of_day,
            "intensity": float(self.intensity),
        }


def all_conditions(
    weathers: tuple[str, ...] = WEATHERS,
    times_of_day: tuple[str, ...] = TIMES_OF_DAY,
    intensity: float = 0.7,
) -> list[Condition]:
    """Every (weather, time of day) pair, weather-major, at one intensity."""
    return [Condition(w, t, intensity) for w in weathers for t in times_of_day]


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
