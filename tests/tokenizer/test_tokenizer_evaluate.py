"""`evaluate` (the `amplify eval tokenizer` verb) and `bench` on tiny models."""

from __future__ import annotations

import json

import pytest
import torch

from amplify.errors import ConfigError
from amplify.tokenizer.checkpoint import save_tokenizer
from amplify.tokenizer.config import get_config
from amplify.tokenizer.evaluate import TokenizerEvalConfig, evaluate
from amplify.tokenizer.model import CausalVideoTokenizer


def test_evaluate_prints_summary_last(tiny_corpus, tmp_path, capsys):
    (tiny_corpus / "_ignored.mp4").write_bytes(b"")  # '_' names are skipped by ingest
    (tmp_path / "bad").mkdir()
    m = CausalVideoTokenizer(get_config("tok-tiny"))
    ckpt = save_tokenizer(m, tmp_path / "tok-tiny")
    cfg = TokenizerEvalConfig(input=str(tiny_corpus), tokenizer=str(ckpt), window=17, tile=2)
    summary = evaluate(cfg)
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last) == summary
    for key in ("psnr", "ssim", "clips", "frames", "encode_fps", "decode_fps"):
        assert summary[key] is not None
    assert (
        summary["clips"] == 4 and summary["frames"] == 4 * 17
    )  # 33 frames: one 17-frame window each
    # The untrained model is the shortcut alone: a blurry but sane reconstruction.
    assert 12 < summary["psnr"] < 40 and 0 < summary["ssim"] <= 1


def test_eval_config_validation():
    with pytest.raises(ConfigError, match="window"):
        TokenizerEvalConfig(input="x", window=16)
    with pytest.raises(ConfigError, match="width"):
        TokenizerEvalConfig(input="x", width=100)


def test_bench_returns_figures():
    from amplify.tokenizer.bench import bench

    r = bench("tok-tiny", width=64, height=32, frames=5, threads=1, repeats=1, pretrained=False)
    assert r["encode_fps"] > 0 and r["decode_fps"] > 0 and r["encode_gflop_per_frame"] > 0
    assert torch.get_num_threads() == 1
