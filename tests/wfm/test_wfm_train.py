"""World-model training pipeline: pairs from twins, a short Ray Train run that writes a
safetensors checkpoint, stops, resumes from its step, exports, and loads in the Generator."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from amplify.errors import ConfigError


def test_config_validation():
    from pipelines.train_wfm import WFMTrainConfig

    with pytest.raises(ConfigError, match="model"):
        WFMTrainConfig(model="wfm-nope")
    with pytest.raises(ConfigError, match="crop_h"):
        WFMTrainConfig(crop_h=3)
    with pytest.raises(ConfigError, match="p_drop"):
        WFMTrainConfig(p_drop=2.0)
    assert WFMTrainConfig(data="a,b").data == ("a", "b")


def test_pairs_are_twins(wfm_corpus, tok_tiny_path):
    from amplify.io.ingest import IngestConfig, list_inputs
    from amplify.tokenizer.checkpoint import load_tokenizer
    from amplify.wfm.data import PairSampler, PairSpec, encode_corpus, group_twins

    files = [p for p in list_inputs(wfm_corpus) if p.suffix == ".mp4"]
    assert len(group_twins(files)) == 3
    icfg = IngestConfig(width=64, height=32, window=9, stride=8)
    bank = encode_corpus(files, load_tokenizer(tok_tiny_path), icfg, progress=lambda s: None)
    S, V, C, n, h, w = bank.latents.shape
    assert (S, V, C, n, h, w) == (3, 4, 16, 3, 4, 8)
    assert bank.has_layout.all() and bank.has_depth.all()
    assert len({tuple(c.tolist()) for c in bank.conds}) == V  # one column per condition
    assert not torch.equal(bank.latents[:, 0], bank.latents[:, 1])  # twins differ in appearance
    spec = PairSpec(frames=2, crop_h=2, crop_w=4, p_drop=0.5)
    batch = PairSampler(bank, spec, seed=0).batch(16)
    assert batch["x0"].shape == (16, 16, 2, 2, 4)
    assert batch["controls"]["edges"].shape == (16, 4, 2, 4, 8)
    assert batch["controls"]["layout"].shape == (16, 20, 2, 2, 4)
    assert batch["controls"]["source"].shape == batch["x0"].shape  # latents of the twin under A
    for k in ("edges", "blur", "layout", "depth", "source"):
        assert 0 < batch["keep"][k].sum() < 16, k  # every control is dropped for some samples
    assert set(batch["cond"]["keep"].tolist()) <= {0.0, 1.0}


@pytest.mark.slow  # two Ray Train fits: ~2 min on a loaded 2-core machine
def test_train_stop_and_resume(wfm_corpus, tok_tiny_path, tmp_path):
    pytest.importorskip("ray")
    from amplify.synth.conditions import Condition
    from amplify.wfm.generate import Generator
    from pipelines.train_wfm import WFMTrainConfig, train

    common = dict(
        model="wfm-tiny", tokenizer=str(tok_tiny_path), data=(str(wfm_corpus),),
        out=str(tmp_path / "run"), steps=4, batch=2, latent_frames=2, crop_h=2, crop_w=4,
        width=64, height=32, window=9, stride=8, holdout_every=3, eval_pairs=1, eval_steps=2,
        ckpt_every=1, eval_every=4, log_every=1, threads=1,
        mlflow_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
    )  # fmt: skip
    first = train(WFMTrainConfig(**common, stop_at=2))
    assert first["step"] == 2 and not first["exported"]
    ckpt = Path(first["checkpoint"])
    assert ckpt.suffix == ".safetensors" and ckpt.is_file()
    assert json.loads(ckpt.with_suffix(".json").read_text())["step"] == 2
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    assert split["heldout"] and all("scene_0000" in p for p in split["heldout"])
    assert not any("scene_0000" in p for p in split["train"])

    export = tmp_path / "export" / "wfm-test"
    second = train(WFMTrainConfig(**common, export=str(export)))
    assert second["step"] == 4  # resumed at 2, not restarted
    assert "heldout_psnr" in second and "heldout_psnr_source" in second
    meta = json.loads(export.with_suffix(".json").read_text())
    assert meta["config"]["name"] == "wfm-tiny" and meta["tokenizer"]["sha256"]

    gen = Generator(str(export.with_suffix(".safetensors")), str(tok_tiny_path), steps=2)
    assert len(gen.checkpoint_sha256) == 64
    frames = np.random.default_rng(0).integers(0, 255, (9, 32, 64, 3), dtype=np.uint8)
    a = gen.generate(frames, Condition("rain", "night"), seed=3)
    b = gen.generate(frames, Condition("rain", "night"), seed=3)
    assert a.shape == frames.shape and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert torch.get_num_threads() >= 1


@pytest.mark.slow  # one Ray Train fit: ~1 min on a loaded 2-core machine
def test_train_time_budget_exports(wfm_corpus, tok_tiny_path, tmp_path):
    """A run ended by its time budget (not its step count) still evaluates and exports."""
    pytest.importorskip("ray")
    from pipelines.train_wfm import WFMTrainConfig, train

    export = tmp_path / "export" / "wfm-budget"
    res = train(WFMTrainConfig(
        model="wfm-tiny", tokenizer=str(tok_tiny_path), data=(str(wfm_corpus),),
        out=str(tmp_path / "run"), steps=100000, max_minutes=0.05, batch=2, latent_frames=2,
        crop_h=2, crop_w=4, width=64, height=32, window=9, stride=8, holdout_every=3,
        eval_pairs=1, eval_steps=1, ckpt_every=1000, eval_every=1000, log_every=5, threads=1,
        export=str(export), bundle_tokenizer=True, mlflow_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
    ))  # fmt: skip
    assert 0 < res["step"] < 100000 and res["budget_done"]
    assert (
        res["exported"]
        and json.loads(export.with_suffix(".json").read_text())["step"] == res["step"]
    )
