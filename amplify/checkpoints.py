"""Saving and finding model checkpoints, shared by every model family: weights in safetensors,
the model config (plus training metadata) as JSON beside them, committed defaults by name."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from amplify.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1] / "checkpoints"


def save_checkpoint(
    model: nn.Module,
    path: str | Path,
    dtype: torch.dtype = torch.float32,
    meta: dict | None = None,
    keep_fp32: tuple[str, ...] = (),
) -> Path:
    """Write PATH.safetensors and PATH.json (`model.cfg` + `meta`); returns the safetensors path.

    Tensors whose names start with a prefix in `keep_fp32` (statistics) stay float32 whatever
    `dtype` the weights are stored in.
    """
    path = Path(path).with_suffix(".safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        k: v.detach()
        .to("cpu", torch.float32 if k.startswith(keep_fp32 or ("\0",)) else dtype)
        .contiguous()
        for k, v in model.state_dict().items()
    }
    cfg = json.loads(model.cfg.to_json())
    save_file(state, str(path), metadata={"config": json.dumps(cfg)})
    doc = {"config": cfg, **(meta or {})}
    path.with_suffix(".json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return path


def resolve_checkpoint(name_or_path: str | Path, family: str) -> Path:
    """A committed name (`checkpoints/<family>/<name>.safetensors`) or a path -> the file."""
    directory = ROOT / family
    p = Path(name_or_path)
    for c in (p, p.with_suffix(".safetensors"), directory / f"{name_or_path}.safetensors"):
        if c.suffix == ".safetensors" and c.is_file():
            return c
    raise ConfigError(family, str(name_or_path), f"no checkpoint (looked in {directory})")
