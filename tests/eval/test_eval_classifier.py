"""The condition classifier: shapes, a tiny training run whose loss drops, save and load."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from amplify.conditions import TIMES_OF_DAY, WEATHERS
from amplify.errors import ConfigError
from amplify.eval.classifier import (
    FEATURE_DIM,
    ClassifierTrainConfig,
    ConditionClassifier,
    _augment,
    classify_clip,
    clip_features,
    evaluate_clips,
    load_classifier,
    train_classifier,
)


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
    assert r["frames"]["train"] == 2 * 12 * 2 and r["frames"]["held_out"] == 12 * 2
    assert r["frames"]["real_train"] == 0 and r["real_licences"] == []
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


def test_augment_keeps_shape_range_and_changes_the_frames():
    cfg = ClassifierTrainConfig(overlay_p=0.9)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(8, 3, 64, 128) - 0.5
    y = _augment(x.clone(), cfg, g)
    assert y.shape == x.shape and y.min() >= -0.5 and y.max() <= 0.5
    assert (y - x).abs().mean() > 0.01
    # colour jitter keeps night dark and day bright: it is small next to their gap
    dark, bright = torch.full((16, 3, 64, 128), -0.4), torch.full((16, 3, 64, 128), 0.2)
    cfg0 = ClassifierTrainConfig(overlay_p=0.0, noise_max=0.0)
    assert (
        _augment(dark, cfg0, g).mean((1, 2, 3)).max()
        < _augment(bright, cfg0, g).mean((1, 2, 3)).min()
    )


def test_evaluate_clips_reports_frame_and_clip_accuracy():
    m = ConditionClassifier()
    frames = np.random.default_rng(0).integers(0, 255, (4, 128, 256, 3), dtype=np.uint8)
    r = evaluate_clips(m, [("a.mp4", "clear_day", frames), ("b.mp4", "clear_night", frames)])
    assert set(r["per_condition"]) == {"clear_day", "clear_night"}
    assert 0 <= r["frame_acc"] <= 1 and r["clips"][0]["frames"] == 4
    assert r["clip_acc_mean_prob"] in (0.0, 0.5, 1.0)


def test_training_with_real_frames_records_their_licences(tmp_path):
    from PIL import Image

    from amplify.io.samples import write_video

    root = tmp_path / "train_real"
    for d in ("r", "v"):
        (root / d).mkdir(parents=True)
    write_video(root / "r" / "rain.mp4", frames=20, width=96, height=48, fps=10)
    (root / "n" / "night").mkdir(parents=True)
    for i in range(6):
        Image.fromarray(np.full((48, 96, 3), 20 + i, np.uint8)).save(
            root / "n" / "night" / f"{i}.png"
        )
    write_video(root / "v" / "val.mp4", frames=20, width=96, height=48, fps=10)
    items = [("r/rain.mp4", "rain", "day", "MIT"), ("n/night", "clear", "night", "none"),
             ("v/val.mp4", "clear", "dusk", "none")]  # fmt: skip
    manifest = [{"file": f, "weather": w, "time_of_day": t, "license": lic, "repo": f, "fps": 10}
                for f, w, t, lic in items]  # fmt: skip
    (root / "manifest.json").write_text(json.dumps(manifest))
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"validation": ["v/val.mp4"]}))
    cfg = ClassifierTrainConfig(out=str(tmp_path / "out"), name="tiny", train_scenes=1,
                                val_scenes=1, width=64, height=32, epochs=1, batch_size=16,
                                real_root=str(root), real_split=str(split), real_fps=5,
                                real_rare_fps=5)  # fmt: skip
    r = train_classifier(cfg, progress=lambda s: None)
    assert r["frames"]["real_train_per_condition"] == {"rain_day": 10, "clear_night": 3}
    assert [lic["license"] for lic in r["real_licences"]] == ["MIT", "none"]
    assert r["real_accuracy"]["real_val"]["clips"][0]["clip"] == "v/val.mp4"
    from safetensors.torch import load_file

    assert (
        load_file(str(tmp_path / "out" / "tiny.safetensors"))["proj.weight"].dtype == torch.float16
    )
    load_classifier(str(tmp_path / "out" / "tiny.safetensors"))
