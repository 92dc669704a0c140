"""The condition and scenario vocabulary: every accepted name parses, bad ones are refused naming
the value and the allowed names, and ids round-trip."""

from __future__ import annotations

import pytest

from amplify.conditions import (
    CONDITION_NAMES,
    SCENARIOS,
    TIMES_OF_DAY,
    WEATHERS,
    Condition,
    all_conditions,
    parse_scenario,
    scenario_id,
    scenario_name,
)
from amplify.errors import ConfigError


@pytest.mark.parametrize("name", CONDITION_NAMES)
def test_parse_full_names(name):
    c = Condition.parse(name, 0.4)
    assert c.name == name and c.intensity == 0.4
    assert c == Condition(*name.split("_"), 0.4)


@pytest.mark.parametrize(
    "name,weather,tod",
    [("rain", "rain", "day"), ("snow", "snow", "day"), ("night", "clear", "night"),
     ("dusk", "clear", "dusk"), ("clear_day", "clear", "day"), ("fog_night", "fog", "night")],
)  # fmt: skip
def test_parse_short_forms(name, weather, tod):
    assert Condition.parse(name) == Condition(weather, tod, 0.7)


@pytest.mark.parametrize("bad", ["hail", "rain_noon", "hail_day", "", "rain_", "_night",
                                 "night_rain", "rain_night_x", "Rain_day", None, 3])  # fmt: skip
def test_parse_refuses_naming_value_and_allowed(bad):
    with pytest.raises(ConfigError) as e:
        Condition.parse(bad)
    assert e.value.key == "condition" and e.value.value == bad
    msg = str(e.value)
    assert repr(bad) in msg
    assert all(w in msg for w in WEATHERS) and all(t in msg for t in TIMES_OF_DAY)


def test_parse_names_the_key_and_checks_intensity():
    with pytest.raises(ConfigError) as e:
        Condition.parse("hail", key="targets")
    assert e.value.key == "targets"
    with pytest.raises(ConfigError) as e:
        Condition.parse("rain_day", 1.5)
    assert e.value.key == "intensity"


def test_ids_round_trip():
    for c in all_conditions(intensity=0.3):
        w, t, x = c.ids
        assert Condition(WEATHERS[w], TIMES_OF_DAY[t], x) == c
    assert Condition("clear", "day").ids == (0, 0, 0.7)
    assert Condition("snow", "night", 1).ids == (3, 2, 1.0)


def test_condition_names_are_all_conditions_in_order():
    assert len(CONDITION_NAMES) == 12 == len(set(CONDITION_NAMES))
    assert list(CONDITION_NAMES) == [c.name for c in all_conditions()]


def test_backward_compatible_reexport():
    from amplify.synth import conditions as old

    assert old.Condition is Condition and old.all_conditions is all_conditions
    assert old.WEATHERS is WEATHERS and old.TIMES_OF_DAY is TIMES_OF_DAY


def test_scenarios_unique_and_ordered():
    assert len(SCENARIOS) == 12 == len(set(SCENARIOS))
    assert SCENARIOS[0] == "pedestrian_crossing" and SCENARIOS[-1] == "recolour_vehicle"


def test_scenario_ids_round_trip():
    assert scenario_id(None) == 0 and scenario_name(0) is None
    for i, name in enumerate(SCENARIOS):
        assert scenario_id(name) == i + 1
        assert scenario_name(scenario_id(name)) == name
        assert parse_scenario(name) == name


@pytest.mark.parametrize("bad", ["teleport", "", "Cut_in", None])
def test_scenario_refused_naming_value_and_allowed(bad):
    with pytest.raises(ConfigError) as e:
        parse_scenario(bad)
    assert e.value.key == "scenario" and repr(bad) in str(e.value)
    assert all(s in str(e.value) for s in SCENARIOS)
    if bad is not None:  # None is "no scenario" (id 0) for scenario_id
        with pytest.raises(ConfigError):
            scenario_id(bad)


@pytest.mark.parametrize("bad", [-1, len(SCENARIOS) + 1, True, "1"])
def test_scenario_name_refuses_unknown_ids(bad):
    with pytest.raises(ConfigError, match="scenario"):
        scenario_name(bad)
