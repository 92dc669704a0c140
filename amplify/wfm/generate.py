"""The high-level API: source frames + a condition -> a generated variation (uint8 frames).

    gen = Generator()                      # wfm-small + tok-small from checkpoints/, CPU
    out = gen.generate(frames, Condition("rain", "night"), seed=3)   # (T, H, W, 3) uint8

The tokenizer is the one named, unless the world model was trained on the latents of another
one (sha256 in its JSON) and carries a copy of it (`<checkpoint>.tokenizer.safetensors`): then
that copy decodes, since latents of two tokenizers do not mix.
Controls (edges, blur; layout and depth when given) come from the source frames
(`amplify.wfm.controls`); the world model samples target latents (`amplify.wfm.sampler`); the
tokenizer decodes them; with `refine` > 0 the source's fine edges are put back
(`amplify.wfm.refine`, the guided filter; off by default). Same inputs and seed, same bytes.
"""

from __future__ import annotations

import numpy as np
import torch

from amplify.synth.conditions import Condition
from amplify.tokenizer.checkpoint import load_tokenizer
from amplify.wfm.checkpoint import (
    load_wfm,
    read_meta,
    resolve_checkpoint,
    sha256_file,
    tokenizer_for,
)
from amplify.wfm.config import SOURCE
from amplify.wfm.controls import extract_controls
from amplify.wfm.data import condition_ids
from amplify.wfm.refine import RefineConfig, restore_detail
from amplify.wfm.sampler import SamplerConfig, sample


class Generator:
    """Loads a world model and its tokenizer once; `generate` makes one variation per call."""

    def __init__(
        self,
        checkpoint: str = "wfm-small",
        tokenizer: str = "tok-small",
        device: str = "cpu",
        steps: int = 12,
        guidance: float = 2.0,
        strength: float | None = None,
        refine: float = 0.0,
    ) -> None:
        self.device = torch.device(device)
        self.checkpoint_path = resolve_checkpoint(checkpoint)
        self.checkpoint_sha256 = sha256_file(self.checkpoint_path)
        self.model = load_wfm(self.checkpoint_path, self.device)
        self.tokenizer_path = tokenizer_for(self.checkpoint_path, tokenizer)
        self.tokenizer = load_tokenizer(self.tokenizer_path, self.device)
        if self.tokenizer.cfg.latent_channels != self.model.cfg.latent_channels:
            raise ValueError(
                f"tokenizer {tokenizer!r} has {self.tokenizer.cfg.latent_channels} latent channels, "
                f"world model {checkpoint!r} expects {self.model.cfg.latent_channels}"
            )
        # strength None: the checkpoint's recommended start (its JSON `sampler.strength`), else 1.
        if strength is None:
            strength = float(
                read_meta(self.checkpoint_path).get("sampler", {}).get("strength", 1.0)
            )
        if strength < 1.0 and SOURCE not in self.model.cfg.controls:
            strength = 1.0
        self.sampler = SamplerConfig(steps=steps, guidance=guidance, strength=strength)
        self.refine = RefineConfig(radius=refine)

    @torch.no_grad()
    def generate(
        self,
        frames: np.ndarray,
        condition: Condition,
        seed: int = 0,
        layout: np.ndarray | None = None,
        depth: np.ndarray | None = None,
        scenario: int = 0,
        refine: bool = True,
    ) -> np.ndarray:
        """(T, H, W, 3) uint8 source, T = 1 + 4k, H and W multiples of 8 -> the variation, same shape.

        layout: optional (T, H, W, K) box raster (`controls.layout_raster`); depth: optional
        (T, H, W) metres. scenario: the scenario/agent-edit id (0 = none). refine=False returns
        the decoded frames as they are (no detail restoration, whatever the Generator's setting).
        """
        T, H, W, _ = frames.shape
        if (T - 1) % 4 or H % 8 or W % 8 or frames.dtype != np.uint8:
            raise ValueError(f"frames {frames.shape} {frames.dtype}: need uint8 (1+4k, 8a, 8b, 3)")
        ctl = extract_controls(frames, layout=layout, depth=depth, names=self.model.cfg.controls)
        controls = {
            k: None if v is None else torch.from_numpy(v)[None].to(self.device)
            for k, v in ctl.items()
        }
        if SOURCE in self.model.cfg.controls:  # the source clip's own latents
            x = torch.from_numpy(np.ascontiguousarray(frames)).permute(3, 0, 1, 2).float()
            controls[SOURCE] = self.tokenizer.encode((x / 127.5 - 1)[None].to(self.device))
        w, t, i = condition_ids(condition)
        cond = {
            "weather": torch.tensor([w], device=self.device),
            "time_of_day": torch.tensor([t], device=self.device),
            "intensity": torch.tensor([i], device=self.device),
            "scenario": torch.tensor([scenario], device=self.device),
            "keep": torch.ones(1, device=self.device),
        }
        shape = (self.model.cfg.latent_channels, 1 + (T - 1) // 4, H // 8, W // 8)
        z = sample(
            self.model, shape, cond, controls, seed=seed, cfg=self.sampler
        )  # (1, C, n, h, w)
        x = self.tokenizer.decode(self.model.denormalize(z)).clamp(-1, 1)  # (1, 3, T, H, W)
        out = ((x[0] + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 3, 0).cpu().numpy()
        return restore_detail(out, frames, self.refine) if refine else out
