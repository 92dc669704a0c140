"""World-model checkpoints: weights in safetensors, config JSON beside them, loaded by name.

`load_wfm("wfm-small")` resolves `checkpoints/wfm/wfm-small.safetensors` in the repo (the
committed default); a path to any `.safetensors` file (with its `.json`) works too. The JSON
carries the model config, the tokenizer the latents came from (name and sha256) and training
metadata. A model trained on another tokenizer than the committed one carries a copy of it
(`NAME.tokenizer.safetensors` + `.json`, see `tokenizer_for`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from amplify.checkpoints import ROOT as CHECKPOINTS_ROOT
from amplify.checkpoints import resolve_checkpoint as resolve
from amplify.checkpoints import save_checkpoint
from amplify.errors import ConfigError
from amplify.wfm.config import WFMConfig
from amplify.wfm.model import WorldModel

CHECKPOINT_DIR = CHECKPOINTS_ROOT / "wfm"
DEFAULT_WFM = "wfm-grade"


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_wfm(
    model: WorldModel,
    path: str | Path,
    dtype: torch.dtype = torch.float32,
    meta: dict | None = None,
) -> Path:
    """Write PATH.safetensors and PATH.json (config + `meta`); returns the safetensors path.

    The latent statistics stay float32 whatever `dtype` the weights are stored in.
    """
    return save_checkpoint(model, path, dtype, meta, keep_fp32=("latent_",))


def resolve_checkpoint(name_or_path: str | Path) -> Path:
    """A registry name (committed file) or a path -> the .safetensors path; raises if absent."""
    return resolve(name_or_path, "wfm")


def read_meta(path: str | Path) -> dict:
    """The JSON document beside a checkpoint (config and metadata); {} without one."""
    side = Path(path).with_suffix(".json")
    return json.loads(side.read_text()) if side.is_file() else {}


def bundled_tokenizer(path: str | Path) -> Path:
    """Where a checkpoint keeps a copy of its tokenizer: NAME.tokenizer.safetensors beside it."""
    return Path(path).with_suffix(".tokenizer.safetensors")


def tokenizer_for(checkpoint: str | Path, tokenizer: str | Path) -> Path:
    """The tokenizer to decode this world model's latents with: `tokenizer` when it is the one the
    model was trained on (or the model records none), else the copy bundled with the model."""
    from amplify.tokenizer.checkpoint import resolve_checkpoint as resolve_tokenizer

    path = resolve_checkpoint(checkpoint)
    want = read_meta(path).get("tokenizer", {}).get("sha256")
    bundled = bundled_tokenizer(path)
    try:
        named = resolve_tokenizer(tokenizer)
    except ConfigError:
        if bundled.is_file():
            return bundled
        raise
    if want and bundled.is_file() and sha256_file(named) != want:
        return bundled
    return named


def load_wfm(
    name_or_path: str | Path = DEFAULT_WFM, device: str | torch.device = "cpu"
) -> WorldModel:
    """Load a trained world model in eval mode, float32, on `device`."""
    path = resolve_checkpoint(name_or_path)
    cfg_dict = read_meta(path).get("config")
    if cfg_dict is None:
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            cfg_dict = json.loads(f.metadata()["config"])
    model = WorldModel(WFMConfig.from_dict(cfg_dict))
    model.load_state_dict({k: v.float() for k, v in load_file(str(path)).items()})
    return model.to(device).eval()
