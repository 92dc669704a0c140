"""The condition classifier: shapes, a tiny training run whose loss drops, save and load."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from amplify.errors import ConfigError
from amplify.eval.classifier import (
    FEATURE_DIM,
    ClassifierTrainConfig,
    ConditionClassifier,
    classify_clip,
    clip_features,
    load_classifier,
    train_classifier,
)
from amplify.synth.conditions import TIMES_OF_DAY, WEATHERS


def test_shapes_and_clip_outputs():
    m = ConditionClassifier()
    lw, lt = m(torch.zeros(2, 3, 64, 128))
    assert lw.shape == (2, len(WEATHERS)) and lt.shape == (2, len(TIMES_OF_DAY))
    frames = np.random.default_rng(0).integers(0, 255, (3, 128, 256, 3), dtype=np.uint8)
    assert clip_features(m, frames).shape == (3, FEATURE_DIM)
    c = classify_clip(m, frames)
    assert c["weather"] in WEATHERS and c["time_of_day"] in TIMES_OF_DAY
    assert sum(c["p_weather"].values()) == pytest.approx(1.0, abs=1e-5)


def test_tiny_training_loss_drops_and_round_trips(tmp_path):
    cfg = ClassifierTrainConfig(out=str(tmp_path), name="tiny", train_scenes=2, val_scenes=1,
                                frames_per_clip=2, width=64, height=32, epochs=8, batch_size=16,
                                lr=3e-3)  # fmt: skip
    r = train_classifier(cfg, progress=lambda s: None)
    loss = r["loss_history"]
    assert np.mean(loss[-3:]) < 0.8 * np.mean(loss[:3])
    assert r["frames"] == {"train": 2 * 12 * 2, "held_out": 12 * 2}
    meta = json.loads((tmp_path / "tiny.json").read_text())
    assert set(meta["held_out_accuracy"]) >= {"weather", "time_of_day", "both"}
    m = load_classifier(str(tmp_path / "tiny.safetensors"))
    x = torch.rand(2, 3, 64, 128) - 0.5
    assert not m.training
    assert torch.isfinite(m(x)[0]).all()


def test_config_errors_and_missing_checkpoint(tmp_path):
    with pytest.raises(ConfigError, match="train_scenes"):
        ClassifierTrainConfig(train_scenes=0)
    with pytest.raises(ConfigError, match="intensity_min"):
        ClassifierTrainConfig(intensity_min=0.9, intensity_max=0.2)
    with pytest.raises(ConfigError, match="classifier"):
        load_classifier(str(tmp_path / "none.safetensors"))
