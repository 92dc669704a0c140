"""World model: shapes, zero-initialised output, every control can be absent or dropped,
frame causality, and the same output from the reference and SDPA attention backends."""

from __future__ import annotations

import pytest
import torch

from amplify.attention import attention_backend
from amplify.errors import ConfigError
from amplify.wfm.config import ALL_CONTROLS, WFM_CONFIGS, WFMConfig, get_config
from amplify.wfm.model import WorldModel, count_params, patchify, unpatchify


def test_registry_and_validation():
    assert {"wfm-tiny", "wfm-small"} <= set(WFM_CONFIGS)
    assert get_config("wfm-small").head_dim == 64
    with pytest.raises(ConfigError, match="rope_split"):
        WFMConfig(dim=32, heads=2, rope_split=(4, 4, 4))
    with pytest.raises(ConfigError, match="controls"):
        WFMConfig(controls=("edges", "nope"))
    with pytest.raises(ConfigError, match="wfm"):
        get_config("wfm-huge")
    assert WFMConfig.from_dict({**get_config("wfm-tiny").__dict__}) == get_config("wfm-tiny")


def test_patchify_roundtrip():
    x = torch.randn(2, 16, 3, 4, 8)
    assert patchify(x, 2).shape == (2, 3 * 2 * 4, 64)
    assert torch.equal(unpatchify(patchify(x, 2), 2, 16, 3, 4, 8), x)


def test_forward_shapes_and_zero_init(wfm_util):
    cfg = get_config("wfm-tiny")
    model = WorldModel(cfg)
    x, t, cond, controls = wfm_util.inputs(cfg)
    y = model(x, t, cond, controls)
    assert y.shape == x.shape
    assert torch.count_nonzero(y) == 0  # adaLN-zero: the untrained model predicts zero
    assert count_params(model) > 0
    small = get_config("wfm-small")
    # 17 x 128 x 256 -> 5 latent frames of 16 x 32 cells -> 128 tokens per frame.
    assert small.tokens_per_frame(16, 32) == 128


def test_every_control_can_be_absent_or_dropped(wfm_util):
    cfg = get_config("wfm-tiny")
    model = wfm_util.randomize(WorldModel(cfg))
    x, t, cond, controls = wfm_util.inputs(cfg)
    with torch.no_grad():
        full = model(x, t, cond, controls)
        for name in ALL_CONTROLS:
            absent = model(x, t, cond, {**controls, name: None})
            keep = {k: torch.ones(2) for k in ALL_CONTROLS}
            keep[name] = torch.tensor([0.0, 1.0])
            dropped = model(x, t, cond, controls, keep)
            assert not torch.allclose(absent, full), name
            # Dropped for sample 0 only: sample 0 equals "absent", sample 1 equals "present".
            torch.testing.assert_close(dropped[0], absent[0], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(dropped[1], full[1], atol=1e-5, rtol=1e-5)
        none = model(x, t, cond, {k: None for k in ALL_CONTROLS})
        assert torch.isfinite(none).all()
        null = model(x, t, {**cond, "keep": torch.zeros(2)}, controls)
        assert not torch.allclose(null, full)


def test_frame_causal(wfm_util):
    cfg = get_config("wfm-tiny")
    model = wfm_util.randomize(WorldModel(cfg))
    x, t, cond, controls = wfm_util.inputs(cfg, n=3)
    x2 = x.clone()
    x2[:, :, 2] += 1.0
    c2 = {k: v.clone() for k, v in controls.items()}
    c2["edges"][:, :, 2] += 1.0
    with torch.no_grad():
        a = model(x, t, cond, controls)
        b = model(x2, t, cond, c2)
    torch.testing.assert_close(a[:, :, :2], b[:, :, :2])
    assert not torch.allclose(a[:, :, 2], b[:, :, 2])


def test_kv_cache_equals_full_pass(wfm_util):
    """Frames 2.. with cached keys/values of frames 0..1 equal the same frames of a full pass."""
    cfg = get_config("wfm-tiny")
    model = wfm_util.randomize(WorldModel(cfg))
    x, t, cond, controls = wfm_util.inputs(cfg, n=4)
    with torch.no_grad():
        full = model(x, t, cond, controls)
        kv: list = []
        head = {k: v[:, :, :2] for k, v in controls.items()}
        model(x[:, :, :2], t[:, :2], cond, head, collect_kv=kv)
        tail = {k: v[:, :, 2:] for k, v in controls.items()}
        part = model(x[:, :, 2:], t[:, 2:], cond, tail, frame_offset=2, past_kv=kv)
    torch.testing.assert_close(part, full[:, :, 2:], atol=1e-4, rtol=1e-4)


def test_backends_agree(wfm_util):
    cfg = get_config("wfm-tiny")
    model = wfm_util.randomize(WorldModel(cfg))
    x, t, cond, controls = wfm_util.inputs(cfg)
    with torch.no_grad():
        with attention_backend("reference"):
            ref = model(x, t, cond, controls)
        with attention_backend("sdpa"):
            sdpa = model(x, t, cond, controls)
    torch.testing.assert_close(sdpa, ref, atol=1e-4, rtol=1e-4)
