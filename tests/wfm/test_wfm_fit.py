"""Training a grade-head world model in plain PyTorch: a bank of twins and real windows, a few
steps that lower the loss, resume, export, and the Generator using the export."""

from __future__ import annotations

import numpy as np
import torch

from amplify.conditions import Condition
from amplify.wfm.fit import GradeBank, GradeFitConfig, GradeSampler, build_bank, fit


def _bank(wfm_corpus, tok_tiny_path, tmp_path):
    from amplify.io.ingest import IngestConfig
    from amplify.io.samples import write_video

    real = write_video(tmp_path / "drive.mp4", frames=12, width=64, height=32)
    ing = IngestConfig(fps=10, width=64, height=32, window=9, stride=9)
    return build_bank([wfm_corpus], [(real, "clear_night")], str(tok_tiny_path), ing,
                      real_windows=1, progress=lambda s: None)  # fmt: skip


def test_bank_keeps_frames_and_real_conditions(wfm_corpus, tok_tiny_path, tmp_path):
    bank = _bank(wfm_corpus, tok_tiny_path, tmp_path)
    S, V, T, H, W, _ = bank.synth.frames.shape
    assert (V, T, H, W) == (4, 9, 32, 64) and bank.synth.latents.shape[:2] == (S, V)
    assert bank.real.frames.shape[:2] == (1, 1)
    torch.testing.assert_close(bank.real_conds, torch.tensor([[0.0, 2.0, 0.7]]))  # clear, night
    bank.save(tmp_path / "bank.pt")
    again = GradeBank.load(tmp_path / "bank.pt")
    assert torch.equal(again.synth.frames, bank.synth.frames)
    assert again.tokenizer["sha256"] == bank.tokenizer["sha256"]
    b = GradeSampler(bank, GradeFitConfig(model="wfm-grade-tiny", latent_frames=2, crop_h=4,
                                          crop_w=4, p_real=0.5)).batch(4)  # fmt: skip
    T = 5 if b["first_latent"] == 0 else 8
    assert b["source"].shape == b["target"].shape == (4, 3, T, 32, 32)
    assert b["latents"].shape == (4, 16, 2, 4, 4)
    assert b["controls"]["edges"].shape == (4, 4, 2, 8, 8)


def test_fit_lowers_the_loss_resumes_and_exports(wfm_corpus, tok_tiny_path, tmp_path):
    from amplify.wfm.generate import Generator

    bank = _bank(wfm_corpus, tok_tiny_path, tmp_path)
    cfg = GradeFitConfig(model="wfm-grade-tiny", steps=30, batch=4, lr=3e-3, warmup=2,
                         latent_frames=2, crop_h=4, crop_w=4, log_every=5, ckpt_every=10)  # fmt: skip
    out = tmp_path / "run"
    first = fit(bank, GradeFitConfig(**{**cfg.__dict__, "steps": 10}), out, progress=lambda s: None)
    assert first["steps"] == 10 and (out / "last.pt").is_file()
    done = fit(bank, cfg, out, export=tmp_path / "wfm-grade-tiny", progress=lambda s: None)
    losses = [h["loss"] for h in done["history"]]
    assert done["steps"] == 30 and losses[-1] < losses[0]  # resumed at 10, kept learning
    gen = Generator(done["export"], str(tok_tiny_path))
    assert gen.model.cfg.head == "grade" and gen.name.startswith("wfm:")
    frames = bank.synth.frames[0, 0].numpy()  # (9, 32, 64, 3)
    reqs = [(Condition("rain", "day"), 0), (Condition("clear", "night"), 0)]
    many = gen.generate_many(frames, reqs)
    assert all(m.shape == frames.shape and m.dtype == np.uint8 for m in many)
    one = gen.generate(frames, Condition("clear", "night"))
    assert np.abs(one.astype(int) - many[1].astype(int)).max() <= 1  # batched == alone
    assert not np.array_equal(many[0], many[1])  # the condition changes the grade


def test_camera_look_is_a_colour_response():
    from amplify.wfm.fit import camera_look

    x = torch.rand(3, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(camera_look(x, torch.ones(3), 1.0, 1.0), x)
    grey = camera_look(x, torch.ones(3), 1.0, 0.0)
    torch.testing.assert_close(grey[0], grey[1])  # no saturation: one grey level
    assert camera_look(x, torch.ones(3), 1.25, 1.0).mean() < x.mean()  # gamma > 1 darkens


def test_look_change_measures_brightness_contrast_saturation_and_cast():
    from amplify.wfm.fit import look_change, look_stats

    g = torch.Generator().manual_seed(0)
    x = 0.2 + 0.5 * torch.rand(2, 3, 3, 16, 8, generator=g)  # (B, 3, T, H, W)
    st = look_stats(x, 4)
    assert st.shape == (2, 4, 5)
    same = look_change(st, st)
    torch.testing.assert_close(same[..., 1:3], torch.zeros(2, 4, 2))  # no change of proportion
    grey = x.mean(1, keepdim=True).expand_as(x)
    flat = look_change(look_stats(grey, 4), st)
    assert (flat[..., 2] < -1).all()  # saturation gone
    darker = look_change(look_stats(0.5 * x, 4), st)
    assert (darker[..., 0] < same[..., 0]).all()  # lower brightness reached
    bottom_only = x.clone()
    bottom_only[:, :, :, 12:] *= 0.3  # the last band (the road) changes, the others not
    d = look_change(look_stats(bottom_only, 4), st)
    torch.testing.assert_close(d[:, :3], same[:, :3])
    assert (d[:, 3, 0] < same[:, 3, 0]).all()


def test_real_windows_asked_for_another_condition(wfm_corpus, tok_tiny_path, tmp_path):
    from amplify.wfm.config import get_config
    from amplify.wfm.fit import expected_changes, grade_loss, look_change, look_stats
    from amplify.wfm.model import WorldModel

    bank = _bank(wfm_corpus, tok_tiny_path, tmp_path)
    table = expected_changes(bank.synth, 4)
    V = bank.synth.frames.shape[1]
    assert table.shape == (V, V, 4, 5)
    # the diagonal (a condition to itself): no change of contrast or saturation
    torch.testing.assert_close(table[range(V), range(V), :, 1:3], torch.zeros(V, 4, 2))
    x = bank.synth.frames[:, 1, ::4].permute(0, 4, 1, 2, 3).float() / 255
    y = bank.synth.frames[:, 2, ::4].permute(0, 4, 1, 2, 3).float() / 255
    torch.testing.assert_close(table[1, 2], look_change(look_stats(y, 4), look_stats(x, 4)).mean(0))
    cfg = GradeFitConfig(model="wfm-grade-tiny", latent_frames=2, crop_h=4, crop_w=4,
                         p_real=1.0, p_real_change=1.0, batch=4)  # fmt: skip
    b = GradeSampler(bank, cfg).batch(4)
    assert b["change"].all()  # every sample: the real window under another condition
    own = (0, 2)  # the real clip is clear_night
    asked = list(zip(b["cond"]["weather"].tolist(), b["cond"]["time_of_day"].tolist(), strict=True))
    assert own not in asked
    ids = [tuple(int(v) for v in c[:2]) for c in bank.synth.conds.tolist()]
    a = ids.index(own)
    for i, c in enumerate(asked):
        torch.testing.assert_close(b["expect"][i], table[a, ids.index(c)])
    model = WorldModel(get_config("wfm-grade-tiny"))
    loss = grade_loss(model, b, torch.device("cpu"), weight=1.0)
    loss.backward()  # the look term alone trains the head
    assert loss > 0 and model.out.weight.grad.abs().sum() > 0
    with torch.no_grad():  # a zero head is ~the identity (the layer is at opacity 0.007)
        only = grade_loss(model, b, torch.device("cpu"), 1.0, ("contrast", "saturation"))
        torch.testing.assert_close(only, b["expect"][..., 1:3].abs().mean(), atol=0.01, rtol=0)
    off = GradeSampler(bank, GradeFitConfig(**{**cfg.__dict__, "p_real_change": 0.0})).batch(4)
    assert not off["change"].any()


def test_source_condition_is_told_to_the_model(wfm_corpus, tok_tiny_path, tmp_path):
    """`p_source_known`: samples carry the source's own condition (synthetic: the source twin's,
    real: its label) or "unknown"; a warm start is unchanged until trained; the generator
    passes a known source condition through."""
    from amplify.conditions import TIMES_OF_DAY, WEATHERS
    from amplify.wfm.fit import build_model
    from amplify.wfm.generate import Generator

    bank = _bank(wfm_corpus, tok_tiny_path, tmp_path)
    kw = dict(model="wfm-grade-tiny", latent_frames=2, crop_h=4, crop_w=4, batch=64)
    b = GradeSampler(bank, GradeFitConfig(**kw, p_real=0.5, p_source_known=0.5)).batch(64)
    sw, st = b["cond"]["source_weather"], b["cond"]["source_time_of_day"]
    unknown = (sw == len(WEATHERS)) & (st == len(TIMES_OF_DAY))
    assert 10 < int(unknown.sum()) < 54  # about half told
    told = torch.stack([sw, st], 1)[~unknown]  # (n, 2) the (weather, time) ids told
    allowed = {tuple(c) for c in bank.synth.conds[:, :2].long().tolist()}
    allowed.add(tuple(bank.real_conds[0, :2].long().tolist()))  # the real window's label
    assert all(tuple(x) in allowed for x in told.tolist())
    # the source twin's condition, not the target's: identity pairs aside, they differ
    target = torch.stack([b["cond"]["weather"], b["cond"]["time_of_day"]], 1)[~unknown]
    assert (told != target).any(1).any()

    # A model with the input, warm-started from one without: the same output, told or not.
    plain = GradeFitConfig(**kw, steps=2, warmup=1)
    base = fit(bank, plain, tmp_path / "plain", export=tmp_path / "plain", progress=lambda s: None)
    cfg = GradeFitConfig(**kw, init_from=base["export"], p_source_known=0.5)
    model, fresh = build_model(cfg, bank, torch.device("cpu"))
    assert model.eval().cfg.source_condition
    assert fresh == {"cond.source_weather.weight", "cond.source_time.weight"}  # not warm-started
    gen = Generator.from_models(model, Generator(base["export"], str(tok_tiny_path)).tokenizer)
    frames = bank.synth.frames[0, 0].numpy()
    night, rain = Condition("clear", "night"), [(Condition("rain", "day"), 0)]
    blind = gen.generate_many(frames, rain)[0]
    assert np.array_equal(blind, gen.generate_many(frames, rain, source=night)[0])
    with torch.no_grad():  # once trained, being told changes the grade
        model.cond.source_time.weight[: len(TIMES_OF_DAY)].normal_(0, 1.0)  # the known rows
    assert not np.array_equal(blind, gen.generate_many(frames, rain, source=night)[0])
    assert np.array_equal(blind, gen.generate_many(frames, rain)[0])  # not told: unknown row
