"""Checkpoints: safetensors + JSON round trip, loading the committed default by name, and a
reconstruction quality floor on a held-out synthetic scene."""

from __future__ import annotations

import pytest
import torch

from amplify.errors import ConfigError
from amplify.tokenizer.checkpoint import (
    CHECKPOINT_DIR,
    DEFAULT_TOKENIZER,
    load_tokenizer,
    save_tokenizer,
)
from amplify.tokenizer.config import get_config
from amplify.tokenizer.model import CausalVideoTokenizer

# Measured on this clip (held-out scene 0, clear day, 17 frames at 256x128): committed tok-small
# 25.4 dB, the untrained model (its shortcut alone) 23.0 dB. The floor sits under the first and
# above the second, so it fails if the trained weights stop loading.
PSNR_FLOOR_DB = 24.5


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    m = CausalVideoTokenizer(get_config("tok-tiny-fsq")).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.1)
    path = save_tokenizer(m, tmp_path / "t", dtype=torch.float16, meta={"step": 3})
    assert path.suffix == ".safetensors" and path.with_suffix(".json").is_file()
    m2 = load_tokenizer(path)
    assert m2.cfg == m.cfg and not m2.training
    x = torch.rand(1, 3, 5, 16, 16) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(m2(x), m(x), atol=2e-2, rtol=2e-2)


def test_unknown_checkpoint_raises():
    with pytest.raises(ConfigError, match="tokenizer"):
        load_tokenizer("tok-does-not-exist")


@pytest.mark.skipif(
    not (CHECKPOINT_DIR / f"{DEFAULT_TOKENIZER}.safetensors").is_file(),
    reason="the default tokenizer checkpoint is not committed in this checkout",
)
def test_default_checkpoint_quality_floor():
    from amplify.conditions import Condition
    from amplify.synth.corpus import scene_seed
    from amplify.synth.render import render_clip
    from amplify.synth.scene import sample_scene
    from amplify.tokenizer.data import to_tensor
    from amplify.tokenizer.losses import psnr

    model = load_tokenizer()  # by name, the default
    assert model.cfg.name == DEFAULT_TOKENIZER
    # Scene 0 of the seed-0 corpus is held out of training (holdout_every=10).
    scene = sample_scene(scene_seed(0, 0), duration_s=1.7)
    clip = render_clip(scene, Condition("clear", "day"), 17, 256, 128, 10.0)
    x = to_tensor(clip.rgb)  # (1, 3, 17, 128, 256)
    with torch.no_grad():
        y = model.decode(model.encode(x, tile=2), tile=2).clamp(-1, 1)
    assert psnr((y + 1) / 2, (x + 1) / 2).item() >= PSNR_FLOOR_DB
