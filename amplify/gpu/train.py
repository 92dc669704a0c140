"""Train the tokenizer (then, by hook, the world model) on one GPU within a wall-clock budget
(`python -m amplify.gpu.train data=DIR out=$OUT key=value ...`).

Imports only torch, numpy, Pillow, safetensors and amplify/pipelines modules that load neither
Ray, MLflow, Hydra nor PyAV (tests/test_train_gpu.py checks it with those blocked).

Stages:
1. Read the bundle (`bundle.py`) onto the device: every window stays there as uint8.
2. Model and optimizer from `pipelines.train_tokenizer.init_model` (warm start: `init_from`), the
   same `train_step` (loss, schedule, clipping) as the Ray pipeline; crops from
   `TensorCropSampler` on the device, real:synthetic 1:1 (`balance`), bf16 autocast (`amp`).
3. `steps=0` fits the run to the budget: the first `calib` steps time the step, then the cosine
   schedule is laid over as many steps as `tok_s` allows. A step past the budget stops the run
   anyway; the export is written every `save_every_s` and at the end, so a killed run still
   brings weights back.
4. Score the held-out synthetic windows before and after; write OUT/NAME.safetensors (fp16) +
   OUT/NAME.json (config, step, metrics, data) and OUT/summary.json.
5. The world model (`train_world_model`): the grade model for the time left, on a bank rendered
   on the machine (`amplify.wfm.renders`) plus the bundle's real windows, or on DATA/wfm_bank.pt
   when one travelled; exports OUT/wfm-gpu.safetensors + .json. `wfm_scenes=0` skips it.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from amplify.errors import ConfigError
from amplify.gpu.bundle import WFM_BANK, read_bundle
from pipelines.train_tokenizer import (
    TokenizerTrainConfig,
    evaluate_windows,
    export_model,
    init_model,
    train_step,
)


@dataclass(frozen=True, kw_only=True)
class GpuTrainConfig:
    """A GPU run: the budget, where things go, and the tokenizer recipe's keys."""

    data: str  # a folder written by `python -m amplify.gpu.prepare`
    out: str  # $OUT on the device machine: the exports land here
    budget_s: float = 420.0  # whole run, tokenizer + world model (the device run is 9 minutes)
    tok_s: float = 0.0  # tokenizer share of the budget; 0 = half (all of it with wfm_scenes=0)
    name: str = "tok-gpu"  # the export's name (OUT/NAME.safetensors + .json)
    device: str = "cuda"  # "cpu" for tests
    amp: bool = True  # bf16 autocast on CUDA (weights, loss and optimizer stay fp32)
    calib: int = 30  # steps before the schedule is fixed (steps=0); the last 2/3 are timed
    save_every_s: float = 60.0
    # The tokenizer recipe (pipelines/train_tokenizer.py keys); GPU defaults: bigger batches of
    # larger crops (96x192 of the 128x256 frames: still 45 crop positions a window, as the
    # bundle holds only ~150 windows), warm start from the committed tokenizer.
    model: str = "tok-small"
    init_from: str = "tok-small"
    steps: int = 0  # 0 = as many as the budget allows
    batch: int = 32
    frames: int = 9
    crop_h: int = 96
    crop_w: int = 192
    lr: float = 4e-4
    warmup: int = 100
    min_lr_frac: float = 0.05
    balance: bool = True
    seed: int = 0
    # The world-model hook (amplify.wfm.fit.GradeFitConfig keys).
    wfm_model: str = "wfm-grade"
    wfm_init: str = "wfm-grade"  # warm start ("" = the trunk from scratch)
    wfm_batch: int = 32
    wfm_steps: int = 3000  # the cosine schedule's length; the time budget may stop it first
    wfm_scenes: int = 48  # rendered on the machine (0 = no world model)
    wfm_seed: int = 0
    wfm_workers: int = 14  # processes rendering the scenes (the H200 machine has 16 cores)

    def __post_init__(self) -> None:
        if self.budget_s <= 0:
            raise ConfigError("budget_s", self.budget_s, "must be > 0")
        if self.tok_s < 0 or self.tok_s > self.budget_s:
            raise ConfigError("tok_s", self.tok_s, f"must be in [0, budget_s={self.budget_s}]")
        if not Path(self.data).exists():
            raise ConfigError("data", self.data, "not found (run amplify.gpu.prepare)")

    def tokenizer_config(self, steps: int) -> TokenizerTrainConfig:
        """The pipeline's config for this run (same checks, same schedule)."""
        return TokenizerTrainConfig(
            model=self.model,
            init_from=self.init_from,
            data=(self.data,),
            out=self.out,
            export=str(Path(self.out) / self.name),
            steps=steps,
            batch=self.batch,
            frames=self.frames,
            crop_h=self.crop_h,
            crop_w=self.crop_w,
            lr=self.lr,
            warmup=min(self.warmup, max(1, steps // 5)),
            min_lr_frac=self.min_lr_frac,
            balance=self.balance,
            seed=self.seed,
        )


class _Autocast(torch.nn.Module):
    """The model's forward under bf16 autocast, its output back in fp32 for the loss."""

    def __init__(self, model: torch.nn.Module, device_type: str) -> None:
        super().__init__()
        self.model, self.device_type = model, device_type

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(self.device_type, dtype=torch.bfloat16):
            return self.model(x).float()


def _log(msg: str) -> None:
    print(msg, flush=True)


# ---- the tokenizer -------------------------------------------------------------------------------
def train_tokenizer(cfg: GpuTrainConfig, t_start: float) -> dict:
    """Stages 1-4; returns the summary (also in OUT/summary.json)."""
    from amplify.tokenizer.data import TensorCropSampler, group_weights

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(cfg.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    tok_s = cfg.tok_s or (cfg.budget_s / 2 if cfg.wfm_scenes > 0 else 0)
    deadline = t_start + (tok_s or cfg.budget_s)

    # 1. Data onto the device.
    groups, meta = read_bundle(cfg.data)
    train_groups = [groups[k] for k in ("real", "synth") if k in groups]
    if not train_groups:
        raise ConfigError("data", cfg.data, "no real or synth windows in the bundle")
    windows = torch.from_numpy(np.concatenate(train_groups)).to(device)
    heldout = list(groups.get("heldout", []))
    sizes = [len(g) for g in train_groups]
    _log(f"gpu: {dict(zip(('real', 'synth'), sizes, strict=False))} windows on {device} "
         f"({windows.numel() / 1e6:.0f} MB) in {time.time() - t_start:.1f} s")  # fmt: skip

    # 2. Model, optimizer, sampler: the pipeline's.
    tcfg = cfg.tokenizer_config(cfg.steps or 10**6)
    model, opt = init_model(tcfg)
    model.to(device)
    dmodel = _Autocast(model, device.type) if cfg.amp and device.type == "cuda" else model
    weights = group_weights(sizes) if cfg.balance else None
    sampler = TensorCropSampler(windows, tcfg.frames, tcfg.crop_h, tcfg.crop_w, cfg.seed, weights)
    before, _ = evaluate_windows(model, heldout, device) if heldout else ({}, None)
    _log(f"gpu: held-out before {json.dumps(before)}")

    # 3. Train; with steps=0 the schedule is fixed once `calib` steps are timed.
    step, t_loop, t_save, losses = 0, time.time(), time.time(), []
    t_calib = t_loop
    steps = cfg.steps
    while steps == 0 or step < steps:
        if time.time() > deadline:
            _log(f"gpu: budget reached at step {step}")
            break
        loss, _ = train_step(tcfg, model, dmodel, opt, sampler, step, device)
        step += 1
        losses.append(loss)
        if step == cfg.calib // 3:  # the first steps pay for cuDNN's autotuning: not timed
            t_calib = time.time()
        if steps == 0 and step == cfg.calib:
            rate = (step - cfg.calib // 3) / (time.time() - t_calib)
            steps = max(step + 1, int(step + rate * (deadline - time.time()) * 0.97))
            tcfg = cfg.tokenizer_config(steps)
            _log(f"gpu: {rate:.1f} steps/s -> {steps} steps")
        if step % 100 == 0:
            _log(f"gpu: step {step}/{steps or '?'} loss {sum(losses[-100:]) / 100:.4f} "
                 f"({time.time() - t_start:.0f} s)")  # fmt: skip
        if time.time() - t_save > cfg.save_every_s:
            _export(model, tcfg, step, {"partial": True})
            t_save = time.time()
    tcfg = replace(tcfg, steps=max(1, step))  # what ran

    # 4. Score and export.
    after, _ = evaluate_windows(model, heldout, device) if heldout else ({}, None)
    summary = {
        "step": step,
        "seconds": round(time.time() - t_start, 1),
        "steps_per_s": round(step / max(1e-9, time.time() - t_loop), 2),
        "final_loss": round(sum(losses[-50:]) / max(1, len(losses[-50:])), 5),
        "heldout_before": before,
        "heldout_after": after,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "data": {k: meta.get(k) for k in ("windows", "real_items", "config")},
    }
    path = _export(model, tcfg, step, after, gpu=summary)
    summary["export"] = str(path)
    _log(f"gpu: exported {path}; held-out {json.dumps(after)}")
    return summary


def _export(model: torch.nn.Module, tcfg: TokenizerTrainConfig, step: int, metrics: dict, **meta):
    """The pipeline's fp16 export, from a CPU copy (training goes on with the device weights)."""
    import copy

    return export_model(copy.deepcopy(model).cpu().eval(), tcfg, step, metrics, **meta)


# ---- the world model (hook) ----------------------------------------------------------------------
def train_world_model(cfg: GpuTrainConfig, t_start: float) -> dict:
    """The grade world model (`amplify.wfm.fit.fit`) for the time left, on `tok-small` latents.

    Its bank is DATA/wfm_bank.pt when one travelled (`prepare ... wfm_bank=FILE`); otherwise it
    is made here (`amplify.wfm.renders.bank_from_renders`): `wfm_scenes` synthetic scenes rendered
    under all 12 conditions (nothing to carry: a bank of decoded frames is GBs) plus the bundle's
    real windows under their labelled conditions (`meta.json` `real_conditions`). Exports
    OUT/wfm-gpu.safetensors + .json; warm-starts from `wfm_init` when it names a checkpoint."""
    from amplify.tokenizer.checkpoint import load_tokenizer, resolve_checkpoint
    from amplify.wfm.checkpoint import sha256_file
    from amplify.wfm.fit import GradeBank, GradeFitConfig, fit
    from amplify.wfm.renders import bank_from_renders

    if cfg.wfm_scenes <= 0:
        return {"skipped": "wfm_scenes=0"}
    bank_path = Path(cfg.data) / WFM_BANK
    if bank_path.is_file():
        bank = GradeBank.load(bank_path)
    else:
        groups, meta = read_bundle(cfg.data)
        real = list(zip(groups.get("real", []), meta.get("real_conditions", []), strict=False))
        tok_path = resolve_checkpoint("tok-small")
        size = meta.get("config", {})
        bank = bank_from_renders(
            cfg.wfm_scenes, cfg.wfm_seed, real, load_tokenizer(tok_path),
            {"name": "tok-small", "sha256": sha256_file(tok_path)}, frames=size.get("frames", 17),
            width=size.get("width", 256), height=size.get("height", 128), device=cfg.device,
            progress=_log, workers=cfg.wfm_workers,
        )  # fmt: skip
        _log(f"wfm: bank of {cfg.wfm_scenes} rendered scenes + {len(real)} real windows")
    left_min = (t_start + cfg.budget_s - time.time() - 20) / 60  # 20 s for its export
    if left_min <= 0.5:
        return {"skipped": "no time left"}
    n, h, w = bank.synth.latents.shape[-3:]  # crops as on CPU (3 x 16 x 16 cells) where they fit
    fcfg = GradeFitConfig(
        model=cfg.wfm_model, init_from=cfg.wfm_init, batch=cfg.wfm_batch, steps=cfg.wfm_steps,
        max_minutes=left_min, p_jitter=0.5, latent_frames=min(3, n), crop_h=min(16, h),
        crop_w=min(16, w),
        meta={"data": {"rendered_scenes": cfg.wfm_scenes, "seed": cfg.wfm_seed,
                       "real_windows": len(bank.real.names) if bank.real else 0},
              "licences": read_bundle(cfg.data)[1].get("real_items", [])},
    )  # fmt: skip
    out = Path(cfg.out)
    res = fit(bank, fcfg, out / "wfm_run", out / "wfm-gpu", cfg.device, _log)
    # `fit` keeps its resume state (last.pt) beside the run: too large to come back, not needed.
    (out / "wfm_run" / "last.pt").unlink(missing_ok=True)
    return res


def run(cfg: GpuTrainConfig) -> dict:
    """The whole GPU run; the summary is printed last and written to OUT/summary.json."""
    t_start = time.time()
    summary = {"tokenizer": train_tokenizer(cfg, t_start)}
    summary["world_model"] = train_world_model(cfg, t_start)
    summary["config"] = asdict(cfg)
    (Path(cfg.out) / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    print(json.dumps(summary, default=str), flush=True)
    return summary


if __name__ == "__main__":
    from amplify.gpu.args import parse_args

    run(parse_args(GpuTrainConfig, sys.argv[1:]))
