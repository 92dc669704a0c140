"""A grade model's bank rendered in memory (what a GPU machine builds): twins of every condition,
real windows with their conditions, latents from the tokenizer, and `fit` trains on it."""

from __future__ import annotations

import numpy as np
import torch

from amplify.wfm.fit import GradeFitConfig, fit
from amplify.wfm.renders import bank_from_renders


def test_rendered_bank_trains(tok_tiny_path, tmp_path):
    from amplify.tokenizer.checkpoint import load_tokenizer

    rng = np.random.default_rng(0)
    real = [(rng.integers(0, 255, (9, 32, 64, 3), dtype=np.uint8), "rain_day")]
    bank = bank_from_renders(2, 7, real, load_tokenizer(tok_tiny_path), {"name": "tok-tiny"},
                             frames=9, width=64, height=32, progress=lambda s: None)  # fmt: skip
    assert bank.synth.frames.shape == (2, 12, 9, 32, 64, 3)
    assert bank.synth.latents.shape[:2] == (2, 12) and bank.synth.has_depth.all()
    # twins: one geometry, twelve looks
    assert not torch.equal(bank.synth.frames[0, 0], bank.synth.frames[0, 1])
    assert bank.real.frames.shape == (1, 1, 9, 32, 64, 3) and not bank.real.has_layout.any()
    torch.testing.assert_close(bank.real_conds, torch.tensor([[1.0, 0.0, 0.7]]))  # rain, day
    cfg = GradeFitConfig(model="wfm-grade-tiny", steps=2, batch=2, latent_frames=2, crop_h=4,
                         crop_w=4, p_real=0.5)  # fmt: skip
    assert fit(bank, cfg, tmp_path / "run", progress=lambda s: None)["steps"] == 2
