"""Tokenizer model: shapes, causality, tiling, FSQ ids, config validation (tiny configs, CPU)."""

from __future__ import annotations

import pytest
import torch

from amplify.errors import ConfigError
from amplify.tokenizer.config import TOKENIZER_CONFIGS, TokenizerConfig, get_config
from amplify.tokenizer.model import CausalVideoTokenizer


def _model(name: str = "tok-tiny", **over) -> CausalVideoTokenizer:
    cfg = get_config(name) if not over else TokenizerConfig(**{**get_config(name).__dict__, **over})
    torch.manual_seed(0)
    m = CausalVideoTokenizer(cfg).eval()
    # Zero-initialised residual branches would hide temporal mixing: randomise every weight.
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.15)
    return m


@pytest.mark.parametrize("T,H,W", [(1, 16, 24), (5, 32, 40), (9, 24, 56), (13, 8, 8)])
def test_shapes(T, H, W):
    m = _model()
    x = torch.rand(2, 3, T, H, W) * 2 - 1
    with torch.no_grad():
        z = m.encode(x)
        y = m.decode(z)
    assert z.shape == (2, 16, 1 + (T - 1) // 4, H // 8, W // 8)
    assert y.shape == x.shape


def test_bad_shapes_raise():
    m = _model()
    with pytest.raises(ValueError, match="1 \\+ 4k"):
        m.encode(torch.zeros(1, 3, 4, 16, 16))
    with pytest.raises(ValueError, match="multiple of 8"):
        m.encode(torch.zeros(1, 3, 5, 12, 16))


def test_encoder_and_decoder_are_causal():
    m = _model()
    x = torch.rand(1, 3, 13, 16, 16) * 2 - 1
    x2 = x.clone()
    x2[:, :, 9:] = torch.rand_like(x2[:, :, 9:])  # frames 9..12 = latent frame 3 only
    with torch.no_grad():
        z, z2 = m.encode(x), m.encode(x2)
        # Latent j depends on frames <= 4j: latents 0..2 unchanged, latent 3 changed.
        torch.testing.assert_close(z[:, :, :3], z2[:, :, :3])
        assert (z[:, :, 3] - z2[:, :, 3]).abs().max() > 1e-3
        # A prefix of the clip encodes to the prefix of the latents; images are clips of 1.
        torch.testing.assert_close(m.encode(x[:, :, :5]), z[:, :, :2])
        torch.testing.assert_close(m.encode(x[:, :, :1]), z[:, :, :1])
        # Decoder: frames 0..4 depend on latents 0..1 only.
        zb = z.clone()
        zb[:, :, 2:] += 1.0
        y, yb = m.decode(z), m.decode(zb)
        torch.testing.assert_close(y[:, :, :5], yb[:, :, :5])
        assert (y[:, :, 5:] - yb[:, :, 5:]).abs().max() > 1e-3


@pytest.mark.parametrize("tile", [1, 2, 3])
def test_tiled_equals_untiled(tile):
    m = _model()
    x = torch.rand(1, 3, 25, 16, 24) * 2 - 1  # 7 latent frames
    with torch.no_grad():
        z = m.encode(x)
        torch.testing.assert_close(m.encode(x, tile=tile), z, atol=1e-5, rtol=1e-5)
        y = m.decode(z)
        torch.testing.assert_close(m.decode(z, tile=tile), y, atol=1e-5, rtol=1e-5)


def test_fsq_ids_round_trip():
    m = _model("tok-tiny-fsq")
    fsq = m.fsq
    assert fsq.codebook_size == 8 * 5 * 5 * 5
    ids = torch.arange(fsq.codebook_size).view(1, 10, 100)
    torch.testing.assert_close(fsq.codes_to_ids(fsq.ids_to_codes(ids)), ids)
    x = torch.rand(1, 3, 5, 16, 16) * 2 - 1
    with torch.no_grad():
        ids = m.encode_ids(x)
        assert ids.shape == (1, 2, 2, 2) and ids.dtype == torch.int64
        assert 0 <= ids.min() and ids.max() < fsq.codebook_size
        torch.testing.assert_close(m.decode_ids(ids), m.decode(m.encode(x)))


def test_untrained_model_is_the_shortcut():
    """At init the learned paths output zero: a flat clip comes back exactly."""
    m = CausalVideoTokenizer(get_config("tok-tiny")).eval()
    x = torch.full((1, 3, 9, 16, 24), 0.25)
    with torch.no_grad():
        torch.testing.assert_close(m(x), x)


def test_fsq_gradients_flow():
    m = _model("tok-tiny-fsq").train()
    x = torch.rand(1, 3, 5, 16, 16) * 2 - 1
    m(x).square().mean().backward()
    assert m.enc_in.weight.grad is not None and m.enc_in.weight.grad.abs().sum() > 0


def test_config_validation_and_registry():
    assert {"tok-tiny", "tok-small"} <= set(TOKENIZER_CONFIGS)
    with pytest.raises(ConfigError, match="widths"):
        TokenizerConfig(widths=(8, 16))
    with pytest.raises(ConfigError, match="fsq_levels"):
        TokenizerConfig(fsq_levels=(8, 1))
    with pytest.raises(ConfigError, match="shortcut"):
        TokenizerConfig(fsq_levels=(8, 8, 8))  # 3 channels < 12
    with pytest.raises(ConfigError, match="tokenizer"):
        get_config("tok-huge")
    cfg = get_config("tok-small")
    import json

    assert TokenizerConfig.from_dict(json.loads(cfg.to_json())) == cfg
