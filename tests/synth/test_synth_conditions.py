"""Conditions differ visibly and plausibly; invalid ones are rejected naming the field."""

from __future__ import annotations

import numpy as np
import pytest

from amplify.conditions import Condition
from amplify.errors import ConfigError
from amplify.synth.classes import CLASS_ID
from amplify.synth.conditions import condition_rng
from amplify.synth.render import render_twins
from amplify.synth.scene import sample_scene

NAMES = ["clear_day", "clear_night", "clear_dusk", "fog_day", "rain_day", "snow_day"]


@pytest.fixture(scope="module")
def clips():
    conds = [Condition.parse(n, 0.8) for n in NAMES]
    out = render_twins(sample_scene(3), conds, 2, 128, 64, 10.0)
    return {n: c for n, c in zip(NAMES, out, strict=True)}


def _lum(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def test_night_is_darker_than_dusk_darker_than_day(clips) -> None:
    day, dusk, night = (
        _lum(clips[n].rgb).mean() for n in ("clear_day", "clear_dusk", "clear_night")
    )
    assert night < dusk < day
    assert night < 0.75 * day


def test_dusk_is_warmer_than_day(clips) -> None:
    def warmth(c):
        return float(c.rgb[..., 0].mean() - c.rgb[..., 2].mean())

    assert warmth(clips["clear_dusk"]) > warmth(clips["clear_day"]) + 5


def test_fog_hides_distance(clips) -> None:
    far = clips["fog_day"].depth > 40  # same geometry in both
    near = clips["fog_day"].depth < 10
    clear, fog = _lum(clips["clear_day"].rgb), _lum(clips["fog_day"].rgb)
    assert fog[far].std() < 0.5 * clear[far].std()
    assert abs(fog[near].mean() - clear[near].mean()) < abs(fog[far].mean() - clear[far].mean())


def test_snow_covers_the_ground_and_rain_wets_it(clips) -> None:
    side = np.isin(clips["clear_day"].semantic, (CLASS_ID["sidewalk"], CLASS_ID["terrain"]))
    clear = _lum(clips["clear_day"].rgb)
    assert _lum(clips["snow_day"].rgb)[side].mean() > clear[side].mean() + 30
    # rain: frames differ from clear everywhere there is ground
    road = clips["clear_day"].semantic == CLASS_ID["road"]
    assert np.abs(_lum(clips["rain_day"].rgb)[road] - clear[road]).mean() > 5


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        (dict(weather="hail"), "weather"),
        (dict(time_of_day="noon"), "time_of_day"),
        (dict(intensity=1.5), "intensity"),
        (dict(intensity=float("nan")), "intensity"),
        (dict(intensity="high"), "intensity"),
    ],
)
def test_invalid_condition_names_the_field(kwargs, key) -> None:
    with pytest.raises(ConfigError) as e:
        Condition(**kwargs)
    assert e.value.key == key and key in str(e.value)


def test_condition_rng_is_per_condition_and_frame() -> None:
    a = Condition("rain", "day", 0.5)
    x = condition_rng(1, a, 0).random(4)
    assert np.array_equal(x, condition_rng(1, a, 0).random(4))
    assert not np.array_equal(x, condition_rng(1, a, 1).random(4))
    assert not np.array_equal(x, condition_rng(1, Condition("snow", "day", 0.5), 0).random(4))
