"""The pure-torch pieces of the tokenizer pipeline (shared with amplify.gpu.train): warm start
from a committed checkpoint, one optimisation step, and the split into per-folder groups."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from amplify.errors import ConfigError
from pipelines.train_tokenizer import TokenizerTrainConfig, init_model, make_sampler, train_step


def test_init_from_loads_the_checkpoint():
    from amplify.tokenizer.checkpoint import load_tokenizer

    model, opt = init_model(TokenizerTrainConfig(init_from="tok-small"))
    ref = load_tokenizer("tok-small")
    for k, v in ref.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
    assert model.training and opt.param_groups[0]["params"]
    # Another name, the same architecture (tok-real is a fine-tuned tok-small): accepted.
    tuned, _ = init_model(TokenizerTrainConfig(init_from="tok-real"))
    assert tuned.cfg.name == "tok-small"
    with pytest.raises(ConfigError, match="init_from"):
        init_model(TokenizerTrainConfig(model="tok-tiny", init_from="tok-small"))


def test_one_step_moves_the_weights():
    torch.manual_seed(0)
    cfg = TokenizerTrainConfig(model="tok-tiny", batch=2, frames=5, crop_h=16, crop_w=16,
                               balance=True)  # fmt: skip
    model, opt = init_model(cfg)
    rng = np.random.default_rng(0)
    groups = [[rng.integers(0, 255, (9, 32, 32, 3), np.uint8) for _ in range(n)] for n in (3, 1)]
    sampler = make_sampler(cfg, groups, seed=0)
    before = [p.detach().clone() for p in model.parameters()]
    loss, parts = train_step(cfg, model, model, opt, sampler, 0, torch.device("cpu"))
    assert np.isfinite(loss) and set(parts) >= {"l1"}
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_split_groups_keeps_no_holdout_folders_whole(tmp_path):
    from pipelines.train_tokenizer import split_groups

    synth, real = tmp_path / "synth", tmp_path / "real"
    synth.mkdir()
    real.mkdir()
    for i in range(4):
        (synth / f"scene_{i:04d}_clear_day.mp4").write_bytes(b"")
    for n in ("a", "b", "c"):
        (real / f"{n}.mp4").write_bytes(b"")
    cfg = TokenizerTrainConfig(data=(str(synth), str(real)), no_holdout=(str(real),),
                               holdout_every=2)  # fmt: skip
    groups, held = split_groups(cfg)
    assert [p.name for p in groups[1]] == ["a.mp4", "b.mp4", "c.mp4"]
    assert [p.name for p in held] == ["scene_0000_clear_day.mp4", "scene_0002_clear_day.mp4"]
    assert len(groups[0]) == 2
