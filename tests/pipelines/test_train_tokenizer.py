"""Tokenizer training pipeline: a short Ray Train run writes a safetensors checkpoint, a stopped
run resumes from its last checkpoint (step N, not 0), and the export loads by path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from amplify.errors import ConfigError


def _write_clip(path: Path, seed: int, frames: int = 21) -> None:
    import av

    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, size=(16, 32, 3)).astype(np.uint8)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 128, 64, "yuv420p"
        for t in range(frames):
            img = np.roll(np.kron(base, np.ones((4, 4, 1), np.uint8)), t, axis=1)
            c.mux(s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        c.mux(s.encode())


def test_config_validation():
    from pipelines.train_tokenizer import TokenizerTrainConfig

    with pytest.raises(ConfigError, match="frames"):
        TokenizerTrainConfig(frames=8)
    with pytest.raises(ConfigError, match="model"):
        TokenizerTrainConfig(model="tok-nope")
    with pytest.raises(ConfigError, match="crop_h"):
        TokenizerTrainConfig(crop_h=12)
    assert TokenizerTrainConfig(data="a,b").data == ("a", "b")


# Two Ray Train runs: ~50-90 s on the shared 2-core machine (Ray start-up dominates). In the
# default run: it is the proof that a killed training resumes from its last checkpoint.
def test_train_stop_and_resume(tmp_path):
    pytest.importorskip("ray")
    from pipelines.train_tokenizer import TokenizerTrainConfig, train

    data = tmp_path / "clips"
    data.mkdir()
    for i in range(3):
        _write_clip(data / f"scene_{i:04d}_clear_day.mp4", seed=i)
    common = dict(
        model="tok-tiny",
        data=(str(data),),
        out=str(tmp_path / "run"),
        steps=6,
        batch=2,
        frames=5,
        crop_h=32,
        crop_w=32,
        width=128,
        height=64,
        window=9,
        stride=8,
        holdout_every=3,
        ckpt_every=2,
        eval_every=3,
        log_every=1,
        warmup=2,
        mlflow_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        export=str(tmp_path / "export" / "tok-t"),
    )
    # 1. "Killed" after step 4: the last checkpoint says 4, no export yet.
    r1 = train(TokenizerTrainConfig(**common, stop_at=4))
    ckpt = tmp_path / "run" / "ckpt" / "last.safetensors"
    assert r1["step"] == 4 and ckpt.is_file() and not r1["exported"]
    assert json.loads(ckpt.with_suffix(".json").read_text())["step"] == 4
    w4 = ckpt.read_bytes()
    # 2. The rerun continues from step 4 to 6 (and the weights moved on from step 4's).
    r2 = train(TokenizerTrainConfig(**common))
    assert r2["step"] == 6 and r2["run_id"] == r1["run_id"]
    assert ckpt.read_bytes() != w4
    assert "heldout_psnr" in r2
    # 3. The export (fp16 + JSON config) loads by path.
    from amplify.tokenizer.checkpoint import load_tokenizer

    m = load_tokenizer(r2["exported"])
    assert m.cfg.widths == (8, 16, 32)
    import mlflow

    mlflow.set_tracking_uri(common["mlflow_uri"])
    hist = mlflow.MlflowClient().get_metric_history(r1["run_id"], "train_loss")
    assert sorted(h.step for h in hist) == [1, 2, 3, 4, 5, 6]
