"""Shared fixtures: sample clips written with PyAV, the real clips when present, a local Ray."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"


@pytest.fixture(scope="session")
def real_clips() -> Path:
    if not REAL.is_dir() or not list(REAL.glob("*.mp4")):
        pytest.skip(f"real clips not found at {REAL}")
    return REAL


@pytest.fixture(scope="session")
def ray_local():
    """One embedded Ray for the whole session (starting Ray costs ~5 s)."""
    import ray

    from amplify.config import RayConfig
    from pipelines.run import init_ray

    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    init_ray(RayConfig(num_cpus=2, object_store_mb=256))
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, str]:
    """Untrained tiny checkpoints on disk (world model, tokenizer, scenario painter): real files
    through the real loaders, seconds to run."""
    import json

    import torch
    from safetensors.torch import save_file

    from amplify.tokenizer.checkpoint import save_tokenizer
    from amplify.tokenizer.config import get_config as tok_config
    from amplify.tokenizer.model import CausalVideoTokenizer
    from amplify.wfm.checkpoint import save_wfm
    from amplify.wfm.config import get_config as wfm_config
    from amplify.wfm.model import WorldModel
    from amplify.wfm.painter import Painter, PainterConfig

    d = tmp_path_factory.mktemp("tiny_models")
    torch.manual_seed(0)
    tok = save_tokenizer(CausalVideoTokenizer(tok_config("tok-tiny")), d / "tok-tiny")
    wfm = save_wfm(WorldModel(wfm_config("wfm-tiny")), d / "wfm-tiny")
    cfg = PainterConfig(widths=(4, 4, 8, 8))
    painter = Painter(cfg)
    save_file({k: v.half().contiguous() for k, v in painter.state_dict().items()},
              str(d / "painter-tiny.safetensors"))  # fmt: skip
    (d / "painter-tiny.json").write_text(json.dumps({"config": json.loads(cfg.to_json())}))
    return {"wfm": str(wfm), "tokenizer": str(tok), "painter": str(d / "painter-tiny.safetensors")}
