"""Tokenizer checkpoints: weights in safetensors, the config as JSON beside them, loaded by name.

`load_tokenizer("tok-small")` resolves `checkpoints/tokenizer/tok-small.safetensors` in the repo
(the committed default); a path to any `.safetensors` file (with its `.json`) works too.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from amplify.errors import ConfigError
from amplify.tokenizer.config import TokenizerConfig
from amplify.tokenizer.model import CausalVideoTokenizer

CHECKPOINT_DIR = Path(__file__).resolve().parents[2] / "checkpoints" / "tokenizer"
DEFAULT_TOKENIZER = "tok-small"


def save_tokenizer(
    model: CausalVideoTokenizer,
    path: str | Path,
    dtype: torch.dtype = torch.float32,
    meta: dict | None = None,
) -> Path:
    """Write PATH.safetensors and PATH.json (config + `meta`); returns the safetensors path."""
    path = Path(path).with_suffix(".safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in model.state_dict().items()}
    cfg = json.loads(model.cfg.to_json())
    save_file(state, str(path), metadata={"config": json.dumps(cfg)})
    doc = {"config": cfg, **(meta or {})}
    path.with_suffix(".json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return path


def resolve_checkpoint(name_or_path: str | Path) -> Path:
    """A registry name (committed file) or a path -> the .safetensors path; raises if absent."""
    p = Path(name_or_path)
    candidates = [p, p.with_suffix(".safetensors"), CHECKPOINT_DIR / f"{name_or_path}.safetensors"]
    for c in candidates:
        if c.suffix == ".safetensors" and c.is_file():
            return c
    raise ConfigError("tokenizer", str(name_or_path), f"no checkpoint (looked in {CHECKPOINT_DIR})")


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
