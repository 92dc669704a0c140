"""Generator API: loads a world model + tokenizer by path, returns uint8 frames of the source
shape, same seed same bytes; fp16 checkpoints round-trip; a time budget caps training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from amplify.conditions import Condition
from amplify.wfm.checkpoint import load_wfm, read_meta, save_wfm
from amplify.wfm.config import get_config
from amplify.wfm.model import WorldModel


@pytest.fixture
def tiny_wfm_path(tmp_path, wfm_util):
    model = wfm_util.randomize(WorldModel(get_config("wfm-tiny")))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(0.3)
        model.latent_mean.fill_(0.1)
        model.latent_std.fill_(0.5)
    return save_wfm(model, tmp_path / "wfm-tiny", torch.float16, {"step": 3}), model


def test_checkpoint_roundtrip(tiny_wfm_path):
    path, model = tiny_wfm_path
    loaded = load_wfm(path)
    assert loaded.cfg == model.cfg and read_meta(path)["step"] == 3
    assert torch.equal(loaded.latent_std, model.latent_std)  # statistics stay float32
    w = dict(model.named_parameters())["x_embed.weight"]
    torch.testing.assert_close(loaded.x_embed.weight, w.half().float())


def test_generator(tiny_wfm_path, tok_tiny_path):
    from amplify.wfm.generate import Generator
    from amplify.wfm.refine import restore_detail

    gen = Generator(str(tiny_wfm_path[0]), str(tok_tiny_path), steps=2, guidance=2.0)
    assert len(gen.checkpoint_sha256) == 64
    frames = np.random.default_rng(0).integers(0, 255, (9, 32, 64, 3), dtype=np.uint8)
    a = gen.generate(frames, Condition("snow", "dusk", 0.4), seed=1)
    b = gen.generate(frames, Condition("snow", "dusk", 0.4), seed=1)
    c = gen.generate(frames, Condition("snow", "dusk", 0.4), seed=2)
    assert a.shape == frames.shape and a.dtype == np.uint8
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    depth = np.full((9, 32, 64), 10.0)
    layout = np.zeros((9, 32, 64, 5), np.float32)
    d = gen.generate(frames, Condition("fog", "night"), seed=1, layout=layout, depth=depth)
    assert d.shape == frames.shape
    # 25 frames = 7 latent frames: chunks of 5, then 3 new with 2 cached (frame-causal).
    long = np.concatenate([frames, frames[1:], frames[1:]])  # (25, 32, 64, 3)
    e = gen.generate(long, Condition("snow", "dusk", 0.4), seed=1)
    assert e.shape == long.shape
    assert np.array_equal(e[:9], a)  # causal end to end: later frames never change earlier ones
    with pytest.raises(ValueError, match="1\\+4k"):
        gen.generate(frames[:8], Condition())
    # Detail restoration is the last step: off, the decoded frames as they are.
    sharp = Generator(str(tiny_wfm_path[0]), str(tok_tiny_path), steps=2, refine=0.25)
    refined = sharp.generate(frames, Condition("snow", "dusk", 0.4), seed=1)
    raw = sharp.generate(frames, Condition("snow", "dusk", 0.4), seed=1, refine=False)
    assert np.array_equal(raw, a)  # refine=0 (the default) is the decoded frames
    assert not np.array_equal(refined, a)
    assert np.array_equal(restore_detail(raw, frames, sharp.refine), refined)


def test_time_budget():
    from pipelines.train_wfm import WFMTrainConfig, _budget_s

    assert _budget_s(WFMTrainConfig(), 0.0) is None
    assert _budget_s(WFMTrainConfig(max_minutes=2), 30.0) == 120.0
    past = WFMTrainConfig(max_minutes=2, deadline="2000-01-01T00:00:00Z")
    assert _budget_s(past, 30.0) == 30.0  # past the deadline: only what is done


def test_bundled_tokenizer_wins_on_mismatch(tiny_wfm_path, tok_tiny_path, tmp_path):
    """A model trained on tokenizer A decodes with its bundled copy of A when asked for B."""
    from amplify.tokenizer.checkpoint import load_tokenizer, save_tokenizer
    from amplify.wfm.checkpoint import bundled_tokenizer, sha256_file, tokenizer_for

    path, model = tiny_wfm_path
    other = save_tokenizer(load_tokenizer(tok_tiny_path), tmp_path / "other", torch.float16)
    assert tokenizer_for(path, tok_tiny_path) == tok_tiny_path  # records nothing: as named
    save_wfm(model, path, torch.float16, {"tokenizer": {"sha256": sha256_file(tok_tiny_path)}})
    assert tokenizer_for(path, tok_tiny_path) == tok_tiny_path  # no bundled copy: as named
    save_tokenizer(load_tokenizer(tok_tiny_path), bundled_tokenizer(path))
    assert tokenizer_for(path, tok_tiny_path) == tok_tiny_path  # the one trained on
    assert tokenizer_for(path, other) == bundled_tokenizer(path)  # another one: the copy
    assert tokenizer_for(path, tmp_path / "missing") == bundled_tokenizer(path)
