"""World-model training pipeline: pairs from twins, a short Ray Train run that writes a
safetensors checkpoint, stops, resumes from its step, exports, and loads in the Generator."""

from __future__ import annotations

import json
from dataclasses import replace
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


def test_corpora_of_several_intensities_keep_their_own(tmp_path, tok_tiny_path):
    from amplify.io.ingest import IngestConfig, list_inputs
    from amplify.synth.corpus import SynthConfig, make_corpus
    from amplify.tokenizer.checkpoint import load_tokenizer
    from amplify.wfm.data import PairSampler, PairSpec, encode_corpus

    for x in (0.3, 0.9):
        make_corpus(SynthConfig(out=str(tmp_path / f"i{x}"), clips=1, seed=int(10 * x), frames=9,
                                width=64, height=32, weathers=("clear", "fog"),
                                times_of_day=("day",), intensity=x), progress=lambda s: None)  # fmt: skip
    files = [p for p in list_inputs(tmp_path) if p.suffix == ".mp4"]
    icfg = IngestConfig(width=64, height=32, window=9, stride=8)
    bank = encode_corpus(files, load_tokenizer(tok_tiny_path), icfg, progress=lambda s: None)
    got = {n.split("/")[-3]: float(v) for n, v in zip(bank.names, bank.intensity, strict=True)}
    assert got == pytest.approx({"i0.3": 0.3, "i0.9": 0.9})
    spec = PairSpec(frames=2, crop_h=2, crop_w=4, p_uncond=0.0)
    drawn = PairSampler(bank, spec, seed=0).batch(32)["cond"]["intensity"]
    assert {round(float(v), 3) for v in drawn} == {0.3, 0.9}


@pytest.fixture(scope="module")
def real_logs(tmp_path_factory) -> Path:
    """Two "real" clips (not synthetic scene names: odd size at 15 fps, a scene cut at 12 fps)
    and a file that is not a video."""
    from amplify.io.samples import write_video

    root = tmp_path_factory.mktemp("logs")
    write_video(root / "drive_a.mkv", frames=30, width=90, height=50, fps=15.0)
    write_video(root / "drive_b.mp4", frames=24, width=64, height=32, fps=12.0, cut_at=12)
    (root / "notes.txt").write_text("not a clip")
    return root


def test_real_clips_are_reconstruction_pairs(wfm_corpus, real_logs, tok_tiny_path):
    from amplify.io.ingest import IngestConfig, list_inputs
    from amplify.tokenizer.checkpoint import load_tokenizer
    from amplify.wfm.data import PairSampler, PairSpec, encode_corpus, encode_real, is_synthetic

    tok = load_tokenizer(tok_tiny_path)
    icfg = IngestConfig(width=64, height=32, window=9, stride=8)
    files = [p for p in list_inputs(wfm_corpus) if p.suffix == ".mp4"]
    assert all(is_synthetic(p) for p in files)
    reals = [p for p in list_inputs(real_logs) if not is_synthetic(p)]
    bank = encode_corpus(files, tok, icfg, progress=lambda s: None)
    real = encode_real(reals, tok, icfg, progress=lambda s: None)
    assert real is not None and real.latents.shape[1] == 1  # one "condition": itself
    assert {n.split("/w")[0].rsplit("/", 1)[1] for n in real.names} == {
        "drive_a.mkv",
        "drive_b.mp4",
    }
    assert real.latents.shape[2:] == bank.latents.shape[2:]
    assert not real.has_depth.any()
    spec = PairSpec(frames=2, crop_h=2, crop_w=4, p_drop=0.0, p_uncond=0.0, p_real=1.0)
    b = PairSampler(bank, spec, seed=0, real=real).batch(8)
    assert (b["cond"]["keep"] == 0).all()  # condition null: "as it is"
    assert torch.equal(b["x0"], b["controls"]["source"])  # target = the clip itself
    assert not b["keep"]["depth"].any()
    mixed = PairSampler(bank, replace(spec, p_real=0.5), seed=1, real=real)
    keep = mixed.batch(64)["cond"]["keep"]
    assert 0 < keep.sum() < 64  # synthetic pairs keep their condition, real ones drop it


def test_prepare_data_banks_real_clips(wfm_corpus, real_logs, tmp_path):
    from pipelines.train_wfm import WFMTrainConfig, prepare_data

    cfg = WFMTrainConfig(model="wfm-tiny", data=(str(wfm_corpus), str(real_logs)), width=64,
                         height=32, window=9, stride=8, holdout_every=3, eval_pairs=0)  # fmt: skip
    data = prepare_data(cfg, tmp_path)
    split = json.loads((tmp_path / "split.json").read_text())
    assert sorted(Path(p).name for p in split["real"]) == ["drive_a.mkv", "drive_b.mp4"]
    assert not any("drive" in p for p in split["train"] + split["heldout"])
    assert Path(data["real_frames"]).is_file()
    with pytest.raises(ConfigError, match="no synthetic twins"):
        prepare_data(replace(cfg, data=(str(real_logs),)), tmp_path / "only_real")


@pytest.mark.slow  # two Ray Train fits: ~2 min on a loaded 2-core machine
def test_train_stop_and_resume(wfm_corpus, tok_tiny_path, tmp_path):
    pytest.importorskip("ray")
    from amplify.conditions import Condition
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
