"""The condition and scenario vocabulary: the one place that names weathers, times of day and
scenarios, and parses `rain_night`-style names.

A `Condition` is weather x time of day x intensity; it changes appearance only (the renderer's
condition RNG lives in `amplify.synth.conditions`). Its ids (weather index, time index,
intensity) are what the world model embeds, so the order of `WEATHERS` and `TIMES_OF_DAY` is
part of every checkpoint and classifier: append, never reorder.

A scenario names a parametric agent edit (`amplify/scenarios/` holds the templates, keyed by
these names). Scenario id 0 is "none"; a name's id is 1 + its position in `SCENARIOS`, so this
order is part of checkpoints too: append, never reorder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from amplify.errors import ConfigError

WEATHERS: tuple[str, ...] = ("clear", "rain", "fog", "snow")
TIMES_OF_DAY: tuple[str, ...] = ("day", "dusk", "night")
# Every "<weather>_<time_of_day>" name, weather-major (the order of `all_conditions`).
CONDITION_NAMES: tuple[str, ...] = tuple(f"{w}_{t}" for w in WEATHERS for t in TIMES_OF_DAY)

SCENARIOS: tuple[str, ...] = (
    "pedestrian_crossing",
    "cyclist_crossing",
    "cut_in",
    "lead_braking",
    "lead_stopped",
    "animal_on_road",
    "debris_in_lane",
    "oncoming_in_lane",
    "remove_agent",
    "add_traffic",
    "swap_vehicle",
    "recolour_vehicle",
)


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

    @classmethod
    def parse(cls, name: str, intensity: float = 0.7, *, key: str = "condition") -> Condition:
        """'rain_night' -> Condition('rain', 'night'); a weather alone is at day ('rain'), a time
        of day alone is clear ('night'). Raises `ConfigError` (key `key`) naming the bad value
        and the allowed names."""
        if isinstance(name, str):
            w, sep, t = name.partition("_")
            if sep and w in WEATHERS and t in TIMES_OF_DAY:
                return cls(w, t, intensity)
            if not sep and name in WEATHERS:
                return cls(name, "day", intensity)
            if not sep and name in TIMES_OF_DAY:
                return cls("clear", name, intensity)
        raise ConfigError(
            key,
            name,
            f"must be <weather>_<time_of_day>, a weather or a time of day, with weather in "
            f"{list(WEATHERS)} and time of day in {list(TIMES_OF_DAY)}",
        )

    @property
    def name(self) -> str:
        return f"{self.weather}_{self.time_of_day}"

    @property
    def ids(self) -> tuple[int, int, float]:
        """(weather index, time-of-day index, intensity): what the world model embeds."""
        return (
            WEATHERS.index(self.weather),
            TIMES_OF_DAY.index(self.time_of_day),
            float(self.intensity),
        )

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


def parse_scenario(name: str) -> str:
    """The scenario `name` itself if it is one of `SCENARIOS`; otherwise a `ConfigError` naming
    it and the allowed names."""
    if not isinstance(name, str) or name not in SCENARIOS:
        raise ConfigError("scenario", name, f"must be one of {list(SCENARIOS)}")
    return name


def scenario_id(name: str | None) -> int:
    """0 for no scenario (None), else 1 + the name's position in `SCENARIOS`."""
    return 0 if name is None else 1 + SCENARIOS.index(parse_scenario(name))


def scenario_name(sid: int) -> str | None:
    """The inverse of `scenario_id`: None for 0, the name for 1..len(SCENARIOS)."""
    if isinstance(sid, bool) or not isinstance(sid, int) or not 0 <= sid <= len(SCENARIOS):
        raise ConfigError("scenario", sid, f"must be an id in [0, {len(SCENARIOS)}]")
    return None if sid == 0 else SCENARIOS[sid - 1]
