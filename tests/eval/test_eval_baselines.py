"""Classical augmentation baselines: deterministic, and change the image the expected way."""

from __future__ import annotations

import numpy as np
import pytest

from amplify.conditions import Condition
from amplify.eval import metrics as M

pytest.importorskip("albumentations")
from amplify.eval.baselines import augment, identity  # noqa: E402


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    from amplify.synth.render import render_clip
    from amplify.synth.scene import sample_scene

    return render_clip(sample_scene(5, duration_s=1.0), Condition(), 5, 128, 64, 10.0).rgb


@pytest.mark.parametrize(
    "name", ["rain_day", "fog_day", "snow_day", "clear_dusk", "clear_night", "rain_night"]
)
def test_deterministic_and_changes_the_clip(clip, name):
    c = Condition.parse(name, 0.7)
    a, b = augment(clip, c, seed=3), augment(clip, c, seed=3)
    assert a.shape == clip.shape and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a, clip)
    if c.weather == "rain":  # drops are drawn from the seed (snow "bleach" has no randomness)
        assert not np.array_equal(a, augment(clip, c, seed=4))


def test_expected_direction(clip):
    night = augment(clip, Condition("clear", "night", 0.7))
    dusk = augment(clip, Condition("clear", "dusk", 0.7))
    assert night.mean() < dusk.mean() < clip.mean()
    assert night[..., 2].mean() > night[..., 0].mean()  # blue tint
    assert dusk[..., 0].mean() > dusk[..., 2].mean()  # warm tint
    fog = augment(clip, Condition("fog", "day", 0.9))
    assert M.luma(fog).std() < M.luma(clip).std()  # fog lowers contrast
    assert np.array_equal(augment(clip, Condition()), clip)
    assert np.array_equal(identity(clip, Condition("rain", "night")), clip)
