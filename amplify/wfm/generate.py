"""The one generation path: source frames + conditions -> generated variations (uint8 frames).

    gen = Generator()                      # the default world model + its tokenizer, CPU
    out = gen.generate(frames, Condition("rain", "night"), seed=3)   # (T, H, W, 3) uint8
    outs = gen.generate_many(frames, [(Condition("fog"), 0), (Condition("snow"), 0)])

Every caller goes through here: the job (`stages.generate_clip`), training evaluation
(`Generator.from_models` over the model being trained), `amplify eval wfm` and `amplify eval real`.
`generate_many` prepares a window once (controls, source latents) and makes its variations in
one batch (grade head) or one after another from the shared preparation (flow head).

Two kinds of world model (`WFMConfig.head`):
- `grade` (the default, `wfm-grade`): one pass over the source latents and controls predicts an
  appearance transform that is applied to the source pixels (`appearance.apply_grade`): real
  detail and geometry are kept by construction. Rain and snow then fall over it
  (`appearance.precipitation`, drawn from the seed; `precipitation=False` leaves them out).
- `flow`: samples target latents with the rectified-flow sampler (`sampler.py`) and decodes them
  with the tokenizer; with `refine` > 0 the source's fine edges are put back (`refine.py`).
The tokenizer is the one named, unless the world model was trained on the latents of another one
(sha256 in its JSON) and carries a copy of it: then that copy is used. Same inputs, same bytes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from amplify.conditions import Condition
from amplify.tokenizer.checkpoint import load_tokenizer
from amplify.wfm.appearance import apply_grade, precipitation
from amplify.wfm.checkpoint import (
    DEFAULT_WFM,
    load_wfm,
    read_meta,
    resolve_checkpoint,
    sha256_file,
    tokenizer_for,
)
from amplify.wfm.config import SOURCE, UNKNOWN_SOURCE
from amplify.wfm.controls import extract_controls
from amplify.wfm.model import WorldModel
from amplify.wfm.refine import RefineConfig, restore_detail
from amplify.wfm.sampler import SamplerConfig, sample

Request = tuple[Condition | None, int]  # (condition, seed); None keeps the source's look


class Generator:
    """Loads a world model and its tokenizer once; `generate` / `generate_many` make variations."""

    def __init__(
        self,
        checkpoint: str = DEFAULT_WFM,
        tokenizer: str = "tok-small",
        device: str = "cpu",
        steps: int = 12,
        guidance: float = 2.0,
        strength: float | None = None,
        refine: float = 0.0,
        precipitation: bool = True,
        painter: str = "painter",
    ) -> None:
        self.painter_name = painter  # loaded on first scenario edit
        self.checkpoint_path = resolve_checkpoint(checkpoint)
        self.checkpoint_sha256 = sha256_file(self.checkpoint_path)
        self.tokenizer_path = tokenizer_for(self.checkpoint_path, tokenizer)
        model = load_wfm(self.checkpoint_path, device)
        tok = load_tokenizer(self.tokenizer_path, device)
        if tok.cfg.latent_channels != model.cfg.latent_channels:
            raise ValueError(
                f"tokenizer {tokenizer!r} has {tok.cfg.latent_channels} latent channels, "
                f"world model {checkpoint!r} expects {model.cfg.latent_channels}"
            )
        # strength None: the checkpoint's recommended start (its JSON `sampler.strength`), else 1.
        if strength is None:
            strength = float(
                read_meta(self.checkpoint_path).get("sampler", {}).get("strength", 1.0)
            )
        self._setup(model, tok, steps, guidance, strength, refine, name=f"wfm:{checkpoint}")
        self.precipitation = precipitation

    @classmethod
    def from_models(
        cls,
        model: WorldModel,
        tokenizer: torch.nn.Module,
        steps: int = 12,
        guidance: float = 2.0,
        strength: float = 1.0,
        refine: float = 0.0,
        name: str = "wfm:in-memory",
    ) -> Generator:
        """A generator over models already in memory (training evaluation: the model being trained)."""
        gen = cls.__new__(cls)
        gen.checkpoint_path, gen.checkpoint_sha256, gen.tokenizer_path = None, "", None
        gen._setup(model, tokenizer, steps, guidance, strength, refine, name=name)
        gen.precipitation, gen.painter_name = True, "painter"
        return gen

    def _setup(self, model, tokenizer, steps, guidance, strength, refine, name: str) -> None:
        self.model, self.tokenizer, self.name = model, tokenizer, name
        self.device = next(model.parameters()).device
        if strength < 1.0 and SOURCE not in model.cfg.controls:
            strength = 1.0
        self.sampler = SamplerConfig(steps=steps, guidance=guidance, strength=strength)
        self.refine = RefineConfig(radius=refine)
        self._painter = None

    @property
    def painter(self):
        """The scenario painter (amplify/wfm/painter.py), loaded once on first use."""
        if self._painter is None:
            from amplify.wfm.painter import load_painter

            self._painter = load_painter(self.painter_name)
        return self._painter

    @property
    def painter_sha256(self) -> str:
        return sha256_file(resolve_checkpoint(self.painter_name))

    # ---- the public calls --------------------------------------------------------------------
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
        source: Condition | None = None,
    ) -> np.ndarray:
        """(T, H, W, 3) uint8 source, T = 1 + 4k, H and W multiples of 8 -> the variation, same shape.

        layout: optional (T, H, W, K) box raster (`controls.layout_raster`); depth: optional
        (T, H, W) metres. scenario: the scenario/agent-edit id (0 = none). refine=False returns
        a flow model's decoded frames as they are (no detail restoration). source: the source
        clip's own condition when known (read by a model with `source_condition`; else unknown).
        """
        return self.generate_many(
            frames, [(condition, seed)], layout, depth, scenario, refine, source=source
        )[0]

    @torch.no_grad()
    def generate_many(
        self,
        frames: np.ndarray,
        requests: Sequence[Request],
        layout: np.ndarray | None = None,
        depth: np.ndarray | None = None,
        scenario: int = 0,
        refine: bool = True,
        edit=None,
        source: Condition | None = None,
    ) -> list[np.ndarray]:
        """Every (condition, seed) of one window: the window is prepared once, then varied.

        edit: a scenario edit (`amplify.scenarios.edit.EditMaps`): the painter first renders its
        agents into the source (scenario id `scenario`), then every request varies the edited
        frames, with the edited boxes as layout. A request whose condition is None returns the
        edited frames in the source's own look.
        """
        if edit is not None:
            from amplify.wfm.controls import layout_raster
            from amplify.wfm.painter import paint

            frames = paint(self.painter, frames, edit, scenario)
            layout = layout_raster(edit.labels, *frames.shape[:3])
        outs: list[np.ndarray | None] = [frames.copy() if c is None else None for c, _ in requests]
        todo = [(i, r) for i, r in enumerate(requests) if r[0] is not None]
        if not todo:
            return outs  # type: ignore[return-value]
        prep = self.prepare(frames, layout, depth)
        prep["source"] = source
        # The grade head's scenario embedding was never trained: scenarios are the painter's.
        if self.model.cfg.head == "grade":
            made = self._grade(prep, [r for _, r in todo], 0)
        else:
            made = []
            for condition, seed in (r for _, r in todo):
                out = self._flow(prep, condition, seed, 0)
                made.append(restore_detail(out, frames, self.refine) if refine else out)
        for (i, _), out in zip(todo, made, strict=True):
            outs[i] = out
        return outs  # type: ignore[return-value]

    # ---- the steps -----------------------------------------------------------------------------
    def prepare(
        self, frames: np.ndarray, layout: np.ndarray | None = None, depth: np.ndarray | None = None
    ) -> dict:
        """Checks, the controls and the source latents of one window (computed once)."""
        T, H, W, _ = frames.shape
        if (T - 1) % 4 or H % 8 or W % 8 or frames.dtype != np.uint8:
            raise ValueError(f"frames {frames.shape} {frames.dtype}: need uint8 (1+4k, 8a, 8b, 3)")
        ctl = extract_controls(frames, layout=layout, depth=depth, names=self.model.cfg.controls)
        controls = {
            k: None if v is None else torch.from_numpy(v)[None].to(self.device)
            for k, v in ctl.items()
        }
        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(3, 0, 1, 2).float() / 255.0
        x = x[None].to(self.device)  # (1, 3, T, H, W) in [0, 1]
        latents = None
        if self.model.cfg.head == "grade" or SOURCE in self.model.cfg.controls:
            latents = self.tokenizer.encode(x * 2 - 1)  # (1, C, n, h, w)
        if SOURCE in self.model.cfg.controls:
            controls[SOURCE] = latents
        return {"frames": frames, "pixels": x, "latents": latents, "controls": controls}

    def _cond(
        self, conditions: Sequence[Condition], scenario: int, source: Condition | None = None
    ) -> dict[str, torch.Tensor]:
        ids = [c.ids for c in conditions]
        B = len(ids)
        sw, st = source.ids[:2] if source is not None else UNKNOWN_SOURCE  # the source's own
        return {
            "weather": torch.tensor([w for w, _, _ in ids], device=self.device),
            "time_of_day": torch.tensor([t for _, t, _ in ids], device=self.device),
            "intensity": torch.tensor([i for _, _, i in ids], device=self.device),
            "scenario": torch.full((B,), scenario, device=self.device),
            "keep": torch.ones(B, device=self.device),
            "source_weather": torch.full((B,), sw, device=self.device),
            "source_time_of_day": torch.full((B,), st, device=self.device),
        }

    def _grade(self, prep: dict, requests: Sequence[Request], scenario: int) -> list[np.ndarray]:
        """One batched pass: the appearance transform of every request, applied to the source."""
        B = len(requests)
        z = self.model.normalize(prep["latents"]).expand(B, -1, -1, -1, -1)  # (B, C, n, h, w)
        controls = {
            k: None if v is None else v.expand(B, *v.shape[1:]) for k, v in prep["controls"].items()
        }
        t = torch.zeros(B, z.shape[2], device=self.device)
        cond = self._cond([c for c, _ in requests], scenario, prep.get("source"))
        coeffs = self.model(z, t, cond, controls)  # (B, K, n, h, w)
        src = prep["pixels"].expand(B, -1, -1, -1, -1)
        cfg = self.model.cfg
        y = apply_grade(src, coeffs, cfg.grade_bins, smooth=cfg.grade_smooth)  # (B, 3, T, H, W)
        y = (y * 255).round().to(torch.uint8).permute(0, 2, 3, 4, 1).cpu().numpy()
        if not self.precipitation:
            return list(y)  # B x (T, H, W, 3)
        return [
            precipitation(o, prep["frames"], c, s) for o, (c, s) in zip(y, requests, strict=True)
        ]

    def _flow(self, prep: dict, condition: Condition, seed: int, scenario: int) -> np.ndarray:
        """Sample target latents from noise (or the noised source) and decode them."""
        _, _, T, H, W = prep["pixels"].shape
        shape = (self.model.cfg.latent_channels, 1 + (T - 1) // 4, H // 8, W // 8)
        cond = self._cond([condition], scenario, prep.get("source"))
        z = sample(self.model, shape, cond, prep["controls"], seed=seed, cfg=self.sampler)
        x = self.tokenizer.decode(self.model.denormalize(z)).clamp(-1, 1)  # (1, 3, T, H, W)
        return ((x[0] + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 3, 0).cpu().numpy()
