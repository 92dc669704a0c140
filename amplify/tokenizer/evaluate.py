"""Tokenizer evaluation (`amplify eval tokenizer input=DIR`): reconstruction quality and speed.

Every clip under `input` goes through the normal ingest; every window is encoded and decoded in
temporal tiles, and scored with PSNR (over the window) and SSIM (mean over frames). Bad clips are
counted, not fatal. The last line printed is one JSON object with psnr, ssim, clips, frames,
encode_fps and decode_fps.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from amplify.errors import ConfigError


@dataclass(frozen=True)
class TokenizerEvalConfig:
    input: str = "../shared/data/real"
    tokenizer: str = "tok-small"  # a committed checkpoint name or a .safetensors path
    fps: float = 10.0
    width: int = 256
    height: int = 128
    window: int = 17  # 1 + 4k frames
    stride: int = 17
    tile: int = 4  # latent frames per temporal tile (memory stays flat in clip length)
    max_clips: int = 0  # 0 = all
    threads: int = 0  # torch threads; 0 = leave torch's default
    out: str = ""  # also write the summary JSON here if set

    def __post_init__(self) -> None:
        if not self.input:
            raise ConfigError("input", self.input, "need a folder of clips")
        if self.window < 1 or (self.window - 1) % 4:
            raise ConfigError("window", self.window, "must be 1 + 4k")
        for key in ("width", "height"):
            v = getattr(self, key)
            if v < 8 or v % 8:
                raise ConfigError(key, v, "must be a positive multiple of 8")
        if self.tile < 1:
            raise ConfigError("tile", self.tile, "must be >= 1")


def evaluate(cfg: TokenizerEvalConfig) -> dict:
    """Score the tokenizer on every clip under cfg.input; prints and returns the summary."""
    import torch

    with torch.no_grad():
        return _evaluate(cfg)


def _evaluate(cfg: TokenizerEvalConfig) -> dict:
    import numpy as np
    import torch

    from amplify.errors import InputError
    from amplify.io.ingest import IngestConfig, list_inputs, read_windows
    from amplify.tokenizer.checkpoint import load_tokenizer
    from amplify.tokenizer.data import to_tensor
    from amplify.tokenizer.losses import psnr, ssim

    root = Path(cfg.input)
    if not root.is_dir():
        raise ConfigError("input", cfg.input, "not a folder")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    model = load_tokenizer(cfg.tokenizer)
    icfg = IngestConfig(
        fps=cfg.fps, width=cfg.width, height=cfg.height, window=cfg.window, stride=cfg.stride
    )
    paths = list_inputs(root)
    if cfg.max_clips:
        paths = paths[: cfg.max_clips]
    ps, ss, frames, clips, errors = [], [], 0, 0, []
    t_enc = t_dec = 0.0
    per_clip = []
    for p in paths:
        try:
            windows = read_windows(p, icfg)
        except InputError as e:
            errors.append({"clip": str(p), "error": type(e).__name__, "reason": e.reason})
            continue
        clip_ps = []
        for w in windows:
            T = 1 + (w.frames.shape[0] - 1) // 4 * 4
            x = to_tensor(w.frames[:T])  # (1, 3, T, H, W)
            t0 = time.perf_counter()
            z = model.encode(x, tile=cfg.tile)
            t1 = time.perf_counter()
            y = model.decode(z, tile=cfg.tile).clamp(-1, 1)
            t2 = time.perf_counter()
            t_enc, t_dec = t_enc + t1 - t0, t_dec + t2 - t1
            a, b = (y + 1) / 2, (x + 1) / 2
            # Score the uint8 image a consumer would see.
            a = (a * 255).round() / 255
            clip_ps.append(psnr(a, b).item())
            ss.append(ssim(a[0].transpose(0, 1), b[0].transpose(0, 1)).mean().item())
            frames += T
        if clip_ps:
            clips += 1
            ps.extend(clip_ps)
            per_clip.append(
                {"clip": p.name, "windows": len(clip_ps), "psnr": float(np.mean(clip_ps))}
            )
    summary = {
        "tokenizer": str(cfg.tokenizer),
        "psnr": round(float(np.mean(ps)), 3) if ps else None,
        "ssim": round(float(np.mean(ss)), 4) if ss else None,
        "clips": clips,
        "windows": len(ps),
        "frames": frames,
        "errors": len(errors),
        "encode_fps": round(frames / t_enc, 2) if t_enc else None,
        "decode_fps": round(frames / t_dec, 2) if t_dec else None,
        "width": cfg.width,
        "height": cfg.height,
        "threads": torch.get_num_threads(),
    }
    for row in per_clip:
        print(json.dumps(row))
    for row in errors:
        print(json.dumps(row))
    if cfg.out:
        Path(cfg.out).write_text(
            json.dumps(
                {"summary": summary, "clips": per_clip, "errors": errors, "config": asdict(cfg)},
                indent=2,
            )
            + "\n"
        )
    print(json.dumps(summary), flush=True)
    return summary


if __name__ == "__main__":
    # The verb itself: configs/eval_tokenizer.yaml through the same loader.
    import sys

    from amplify.cli import main

    sys.exit(main(["eval", "tokenizer", *sys.argv[1:]]))
