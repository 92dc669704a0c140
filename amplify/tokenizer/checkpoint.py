"""Tokenizer checkpoints: weights in safetensors, the config as JSON beside them, loaded by name.

`load_tokenizer("tok-small")` resolves `checkpoints/tokenizer/tok-small.safetensors` in the repo
(the committed default); a path to any `.safetensors` file (with its `.json`) works too.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from amplify.checkpoints import ROOT as CHECKPOINTS_ROOT
from amplify.checkpoints import resolve_checkpoint as resolve
from amplify.checkpoints import save_checkpoint
from amplify.tokenizer.config import TokenizerConfig
from amplify.tokenizer.model import CausalVideoTokenizer

CHECKPOINT_DIR = CHECKPOINTS_ROOT / "tokenizer"
DEFAULT_TOKENIZER = "tok-small"


def save_tokenizer(
    model: CausalVideoTokenizer,
    path: str | Path,
    dtype: torch.dtype = torch.float32,
    meta: dict | None = None,
) -> Path:
    """Write PATH.safetensors and PATH.json (config + `meta`); returns the safetensors path."""
    return save_checkpoint(model, path, dtype, meta)


def resolve_checkpoint(name_or_path: str | Path) -> Path:
    """A registry name (committed file) or a path -> the .safetensors path; raises if absent."""
    return resolve(name_or_path, "tokenizer")


def load_tokenizer(
    name_or_path: str | Path = DEFAULT_TOKENIZER, device: str | torch.device = "cpu"
) -> CausalVideoTokenizer:
    """Load a trained tokenizer in eval mode, float32, on `device`."""
    path = resolve_checkpoint(name_or_path)
    side = path.with_suffix(".json")
    cfg_dict = json.loads(side.read_text())["config"] if side.is_file() else None
    if cfg_dict is None:
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            cfg_dict = json.loads(f.metadata()["config"])
    model = CausalVideoTokenizer(TokenizerConfig.from_dict(cfg_dict))
    state = {k: v.float() for k, v in load_file(str(path)).items()}
    model.load_state_dict(state)
    return model.to(device).eval()
