"""Train the video tokenizer with Ray Train (`amplify train tokenizer key=value ...`).

Stages:
1. List clips (synthetic corpus and any folder of real clips, through ingest) and split them:
   held-out scenes never train (folders named in `no_holdout` train whole: real footage keeps its
   own fixed validation split outside `data`).
2. Ray Train `TorchTrainer` (DDP over gloo on CPU, `use_gpu` by config): each worker decodes its
   share of the training clips once and samples random (frames x crop) crops from them; with
   `balance` every `data` folder gives the same share of the crops (real:synthetic 1:1).
3. Loss: L1 + SSIM + image-gradient L1 (no downloaded network). AdamW, warmup then cosine.
   `init_from` warm-starts a new run from a trained tokenizer of the same config.
4. Every `ckpt_every` steps rank 0 writes OUT/ckpt/last.safetensors (+ .json with the config and
   step, + optimizer state in safetensors). A rerun with the same `out` resumes from that step.
5. Rank 0 logs loss curves, held-out PSNR/SSIM and sample reconstructions to MLflow (one run per
   `out`, continued on resume); at the end the weights are exported (fp16 by default) to `export`.

The pure-torch pieces (`init_model`, `make_sampler`, `train_step`, `evaluate_windows`) import
neither Ray nor MLflow: `amplify.gpu.train` runs the same step on a machine without them.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from amplify.errors import ConfigError
from amplify.tokenizer.config import TOKENIZER_CONFIGS, TokenizerConfig, get_config
from pipelines import training


@dataclass(frozen=True, kw_only=True)
class TokenizerTrainConfig(training.TrainRunConfig):
    """Everything one training run needs; `out` identifies the run (and its resume point)."""

    model: str = "tok-small"  # a TOKENIZER_CONFIGS name
    frames: int = 9  # training clip length, 1 + 4k
    crop_h: int = 64
    crop_w: int = 96
    w_ssim: float = 0.2
    w_grad: float = 0.5
    max_clips: int = 0  # 0 = all training clips
    eval_windows: int = 12  # held-out windows scored at each eval
    init_from: str = ""  # warm start a new run: a tokenizer name or .safetensors path
    balance: bool = False  # every `data` folder gives the same share of the crops
    no_holdout: tuple[str, ...] = ()  # `data` folders whose clips all train
    # This pipeline's defaults of shared keys (the others: `TrainRunConfig`); the values of a
    # run are configs/train_tokenizer.yaml's (tests/test_config_defaults.py keeps them equal).
    out: str = "runs/tokenizer"
    steps: int = 2000
    lr: float = 8e-4
    min_lr_frac: float = 0.05
    eval_every: int = 250
    mlflow_experiment: str = "tokenizer"

    def _check(self) -> None:
        if self.model not in TOKENIZER_CONFIGS:
            raise ConfigError("model", self.model, f"known: {sorted(TOKENIZER_CONFIGS)}")
        if not self.data:
            raise ConfigError("data", self.data, "need at least one folder of clips")
        if self.frames < 1 or (self.frames - 1) % 4:
            raise ConfigError("frames", self.frames, "must be 1 + 4k")
        if self.frames > self.window:
            raise ConfigError("frames", self.frames, f"longer than window={self.window}")
        for key in ("crop_h", "crop_w", "width", "height"):
            v = getattr(self, key)
            if v < 8 or v % 8:
                raise ConfigError(key, v, "must be a positive multiple of 8")

    @property
    def tokenizer(self) -> TokenizerConfig:
        return get_config(self.model)


# ---- the pure-torch step (shared with amplify.gpu.train) ----------------------------------------
def init_model(cfg: TokenizerTrainConfig):
    """A fresh tokenizer of `cfg.model` (warm-started from `cfg.init_from` if set) and its AdamW."""
    import torch

    from amplify.tokenizer.model import CausalVideoTokenizer

    model = CausalVideoTokenizer(cfg.tokenizer)
    if cfg.init_from:
        from amplify.tokenizer.checkpoint import load_tokenizer

        src = load_tokenizer(cfg.init_from)
        same = {**asdict(src.cfg), "name": ""} == {**asdict(model.cfg), "name": ""}
        if not same:  # the name may differ (tok-real is a tok-small), the architecture not
            raise ConfigError("init_from", cfg.init_from, f"not a {cfg.model} checkpoint")
        model.load_state_dict(src.state_dict())
        model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    return model, opt


def make_sampler(cfg: TokenizerTrainConfig, groups: list[list], seed: int):
    """A CropSampler over the windows of every group (one group per `data` folder)."""
    from amplify.tokenizer.data import CropSampler, group_weights

    windows = [w for g in groups for w in g]
    weights = group_weights([len(g) for g in groups]) if cfg.balance else None
    return CropSampler(windows, cfg.frames, cfg.crop_h, cfg.crop_w, seed=seed, weights=weights)


def train_step(cfg: TokenizerTrainConfig, model, dmodel, opt, sampler, step: int, device):
    """One optimisation step at `step` (lr from the schedule); returns (loss, parts)."""
    from amplify.tokenizer.losses import reconstruction_loss

    for g in opt.param_groups:
        g["lr"] = training.lr_at(cfg, step)
    x = sampler.batch(cfg.batch).to(device, non_blocking=True)  # (B, 3, T, h, w)
    y = dmodel(x)
    loss, parts = reconstruction_loss(y, x, cfg.w_ssim, cfg.w_grad)
    training.optimizer_step(model, opt, loss)
    return loss.item(), parts


def export_model(model, cfg: TokenizerTrainConfig, step: int, metrics: dict, **meta) -> Path:
    """Write `cfg.export` (.safetensors in `export_dtype` + .json), named after its file, with the
    step, the training config, the metrics and `meta`; returns the safetensors path."""
    import torch

    from amplify.tokenizer.checkpoint import save_tokenizer

    model.cfg = TokenizerConfig.from_dict({**asdict(model.cfg), "name": Path(cfg.export).name})
    info = {"step": step, "train": training.jsonable(cfg), "metrics": metrics, **meta}
    return save_tokenizer(model, cfg.export, getattr(torch, cfg.export_dtype), info)


# ---- held-out evaluation ------------------------------------------------------------------------
def evaluate_windows(model, windows: list, device) -> tuple[dict, object]:
    """Mean PSNR/SSIM over whole windows (first 1+4k frames) and a sample strip (uint8)."""
    import torch

    with torch.no_grad():
        return _evaluate_windows(model, windows, device)


def _evaluate_windows(model, windows: list, device) -> tuple[dict, object]:
    import numpy as np

    from amplify.tokenizer.data import to_tensor
    from amplify.tokenizer.losses import psnr, ssim

    model.eval()
    ps, ss, sample = [], [], None
    for w in windows:
        T = 1 + (w.shape[0] - 1) // 4 * 4
        x = to_tensor(w[:T]).to(device)
        y = model(x).clamp(-1, 1)
        a, b = (y + 1) / 2, (x + 1) / 2
        ps.append(psnr(a, b).item())
        ss.append(ssim(a[0].transpose(0, 1), b[0].transpose(0, 1)).mean().item())
        if sample is None:  # frames 0, mid, last: originals above, reconstructions below
            idx = [0, T // 2, T - 1]
            top = np.concatenate([w[i] for i in idx], 1)
            rec = ((a[0].permute(1, 2, 3, 0).cpu().numpy() * 255).round()).astype(np.uint8)
            sample = np.concatenate([top, np.concatenate([rec[i] for i in idx], 1)], 0)
    model.train()
    if not ps:
        return {}, None
    return {"heldout_psnr": float(np.mean(ps)), "heldout_ssim": float(np.mean(ss))}, sample


# ---- the per-worker loop ------------------------------------------------------------------------
def train_loop_per_worker(loop_cfg: dict) -> None:
    import ray.train
    import ray.train.torch
    import torch

    from amplify.io.ingest import IngestConfig
    from amplify.tokenizer.data import load_windows

    cfg = TokenizerTrainConfig(**loop_cfg["cfg"])
    rank, world = training.worker_setup(cfg)
    torch.manual_seed(cfg.seed)
    out = Path(loop_cfg["out"])

    # 1. Data: this worker's share of the training clips, decoded once; held-out on rank 0.
    icfg = IngestConfig(
        fps=cfg.fps, width=cfg.width, height=cfg.height, window=cfg.window, stride=cfg.stride
    )
    t0 = time.time()
    groups, n_files, n_bad = [], 0, 0
    for group in loop_cfg["train_groups"]:
        files = [Path(p) for p in group][rank::world]
        windows, errors = load_windows(files, icfg)
        groups.append(windows)
        n_files, n_bad = n_files + len(files), n_bad + len(errors)
    print(
        f"[rank {rank}] {[len(g) for g in groups]} windows from {n_files} clips "
        f"({n_bad} bad) in {time.time() - t0:.1f}s",
        flush=True,
    )
    heldout: list = []
    if rank == 0 and loop_cfg["eval_files"]:
        heldout, _ = load_windows([Path(p) for p in loop_cfg["eval_files"]], icfg)
        # Evenly spread over the held-out scenes and conditions, not the first few.
        heldout = heldout[:: max(1, len(heldout) // cfg.eval_windows)][: cfg.eval_windows]

    # 2. Model, optimizer, resume.
    model, opt = init_model(cfg)
    start = training.load_state(out, model, opt)
    print(f"[rank {rank}] starting at step {start}", flush=True)
    dmodel = ray.train.torch.prepare_model(model)
    device = ray.train.torch.get_device()
    sampler = make_sampler(cfg, groups, seed=cfg.seed * 1000003 + start * 7 + rank)

    client = None
    if rank == 0 and loop_cfg.get("run_id"):
        from mlflow import MlflowClient

        client = MlflowClient(cfg.tracking_uri)
    run_id = loop_cfg.get("run_id")

    # 3. Train.
    step, last_eval, log = start, {}, training.StepLog(cfg, rank)
    stop = cfg.stop_at if cfg.stop_at and cfg.stop_at > start else cfg.steps
    while step < min(stop, cfg.steps):
        loss, parts = train_step(cfg, model, dmodel, opt, sampler, step, device)
        step += 1
        metrics = log.after(step, loss, parts, opt.param_groups[0]["lr"])
        sample = None
        if rank == 0 and heldout and (step % cfg.eval_every == 0 or step == cfg.steps):
            ev, sample = evaluate_windows(model, heldout, device)
            metrics.update(ev)
            last_eval = {"step": step, **ev}
            print(json.dumps({"step": step, **ev}), flush=True)
        if rank == 0 and (step % cfg.ckpt_every == 0 or step == cfg.steps or step == stop):
            training.save_state(out, model, opt, step, cfg, last_eval)
        if client is not None and len(metrics) > 1:
            training.log_metrics(
                client, run_id, metrics, step, sample, f"recon/step_{step:06d}.png"
            )
        # Every rank reports on the same steps (a report is a collective in Ray Train).
        if step % cfg.log_every == 0 or step % cfg.eval_every == 0 or step == cfg.steps:
            ray.train.report(metrics)


# ---- the driver ---------------------------------------------------------------------------------
def split_groups(cfg: TokenizerTrainConfig) -> tuple[list[list[Path]], list[Path]]:
    """(training clips per `data` folder, held-out clips); `max_clips` caps the training clips."""
    from amplify.io.ingest import list_inputs
    from amplify.tokenizer.data import split_inputs

    keep = {str(Path(d).resolve()) for d in cfg.no_holdout}
    groups: list[list[Path]] = []
    eval_files: list[Path] = []
    for d in cfg.data:
        if not Path(d).is_dir():
            raise ConfigError("data", d, "not a folder")
        paths = sorted(list_inputs(Path(d)))
        every = 0 if str(Path(d).resolve()) in keep else cfg.holdout_every
        tr, ev = split_inputs(paths, every)
        groups.append(tr)
        eval_files.extend(ev)
    if cfg.max_clips:
        left, capped = cfg.max_clips, []
        for g in groups:
            capped.append(g[:left])
            left -= len(capped[-1])
        groups = capped
    return groups, eval_files


def train(cfg: TokenizerTrainConfig) -> dict:
    """Run (or resume) training; returns the final metrics and the exported checkpoint path."""
    out = Path(cfg.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    # Workers run in other directories: hand them the resolved tracking URI.
    cfg = replace(cfg, mlflow_uri=cfg.tracking_uri)
    # 1. Inputs and the held-out split, one group of training clips per `data` folder.
    groups, eval_files = split_groups(cfg)
    train_files = [p for g in groups for p in g]
    if not train_files:
        raise ConfigError("data", cfg.data, "no training clips found")
    print(f"tokenizer: {len(train_files)} training clips, {len(eval_files)} held out", flush=True)
    (out / "split.json").write_text(
        json.dumps(
            {"train": [str(p) for p in train_files], "heldout": [str(p) for p in eval_files]},
            indent=1,
        )
    )
    run_id = training.mlflow_run(
        cfg, out, json.loads(cfg.tokenizer.to_json()), "tokenizer_config.json"
    )

    # 2. Ray Train.
    loop_cfg = {
        "cfg": training.jsonable(cfg),
        "out": str(out),
        "train_groups": [[str(p) for p in g] for g in groups],
        "eval_files": [str(p) for p in eval_files],
        "run_id": run_id,
    }
    training.fit(train_loop_per_worker, loop_cfg, cfg, out)

    # 3. Export the final weights (fp16 by default) with the config beside them.
    wpath, step, metrics = training.last_checkpoint(out)
    exported = ""
    if cfg.export and step >= cfg.steps:
        from amplify.tokenizer.checkpoint import load_tokenizer

        exported = str(export_model(load_tokenizer(wpath), cfg, step, metrics))
    training.finish_mlflow_run(cfg, run_id, {"final_step": step}, exported)
    return training.result(wpath, step, metrics, exported, run_id)


if __name__ == "__main__":
    # The verb itself: configs/train_tokenizer.yaml through the same loader.
    from amplify.cli import main

    sys.exit(main(["train", "tokenizer", *sys.argv[1:]]))
