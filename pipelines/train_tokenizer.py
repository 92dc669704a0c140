"""Train the video tokenizer with Ray Train (`amplify train tokenizer key=value ...`).

Stages:
1. List clips (synthetic corpus and any folder of real clips, through ingest) and split them:
   held-out scenes never train.
2. Ray Train `TorchTrainer` (DDP over gloo on CPU, `use_gpu` by config): each worker decodes its
   share of the training clips once and samples random (frames x crop) crops from them.
3. Loss: L1 + SSIM + image-gradient L1 (no downloaded network). AdamW, warmup then cosine.
4. Every `ckpt_every` steps rank 0 writes OUT/ckpt/last.safetensors (+ .json with the config and
   step, + optimizer state in safetensors). A rerun with the same `out` resumes from that step.
5. Rank 0 logs loss curves, held-out PSNR/SSIM and sample reconstructions to MLflow (one run per
   `out`, continued on resume); at the end the weights are exported (fp16 by default) to `export`.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from amplify.errors import ConfigError
from amplify.tokenizer.config import TOKENIZER_CONFIGS, TokenizerConfig, get_config


@dataclass(frozen=True)
class TokenizerTrainConfig:
    """Everything one training run needs; `out` identifies the run (and its resume point)."""

    model: str = "tok-small"  # a TOKENIZER_CONFIGS name
    data: tuple[str, ...] = ("data/synth",)  # folders of clips (read through ingest)
    out: str = "runs/tokenizer"
    export: str = ""  # write the final weights here (PATH.safetensors + PATH.json) if set
    export_dtype: str = "float16"
    steps: int = 1000
    stop_at: int = 0  # stop (as if killed) once this step is checkpointed; 0 = run to `steps`
    batch: int = 8
    frames: int = 9  # training clip length, 1 + 4k
    crop_h: int = 64
    crop_w: int = 96
    lr: float = 8e-4
    min_lr_frac: float = 0.05
    warmup: int = 100
    weight_decay: float = 0.0
    w_ssim: float = 0.2
    w_grad: float = 0.5
    seed: int = 0
    holdout_every: int = 10  # scene k is held out when k % holdout_every == 0
    max_clips: int = 0  # 0 = all training clips
    eval_windows: int = 12  # held-out windows scored at each eval
    ckpt_every: int = 100
    eval_every: int = 250
    log_every: int = 20
    num_workers: int = 1
    use_gpu: bool = False
    threads: int = 0  # torch threads per worker; 0 = CPUs / workers
    fps: float = 10.0
    width: int = 256
    height: int = 128
    window: int = 17
    stride: int = 16
    mlflow_uri: str = ""  # default: sqlite:///<abs cwd>/mlflow.db
    experiment: str = "tokenizer"

    def __post_init__(self) -> None:
        if isinstance(self.data, str):
            object.__setattr__(self, "data", tuple(s for s in self.data.split(",") if s))
        object.__setattr__(self, "data", tuple(str(d) for d in self.data))
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
        for key in ("steps", "batch", "num_workers", "ckpt_every", "eval_every", "log_every"):
            if getattr(self, key) < 1:
                raise ConfigError(key, getattr(self, key), "must be >= 1")
        if self.export_dtype not in ("float16", "float32", "bfloat16"):
            raise ConfigError("export_dtype", self.export_dtype, "float16, bfloat16 or float32")
        if self.lr <= 0:
            raise ConfigError("lr", self.lr, "must be > 0")

    @property
    def tokenizer(self) -> TokenizerConfig:
        return get_config(self.model)

    @property
    def tracking_uri(self) -> str:
        return self.mlflow_uri or f"sqlite:///{Path.cwd().resolve() / 'mlflow.db'}"


# ---- checkpoint state (weights + optimizer, both safetensors) -----------------------------------
def _ckpt_paths(out: Path) -> tuple[Path, Path]:
    return out / "ckpt" / "last.safetensors", out / "ckpt" / "last_optim.safetensors"


def save_state(out: Path, model, opt, step: int, cfg, metrics: dict | None = None) -> None:
    """Atomically replace OUT/ckpt/last.* with the state after `step` steps."""
    import torch
    from safetensors.torch import save_file

    from amplify.tokenizer.checkpoint import save_tokenizer

    wpath, opath = _ckpt_paths(out)
    tmp = out / "ckpt" / "tmp"
    meta = {"step": step, "train": _jsonable(cfg), "metrics": metrics or {}}
    save_tokenizer(model, tmp / "last", meta=meta)
    sd = opt.state_dict()
    tensors = {
        f"{i}.{k}": (v if torch.is_tensor(v) else torch.tensor(v)).detach().cpu().contiguous()
        for i, st in sd["state"].items()
        for k, v in st.items()
    }
    save_file(tensors, str(tmp / "last_optim.safetensors"), metadata={"step": str(step)})
    for src, dst in [
        (tmp / "last_optim.safetensors", opath),
        (tmp / "last.json", wpath.with_suffix(".json")),
        (tmp / "last.safetensors", wpath),  # last: its presence marks a complete checkpoint
    ]:
        os.replace(src, dst)


def load_state(out: Path, model, opt) -> int:
    """Restore weights and optimizer from OUT/ckpt; returns the step (0 when there is none)."""
    from safetensors.torch import load_file

    wpath, opath = _ckpt_paths(out)
    if not wpath.is_file():
        return 0
    meta = json.loads(wpath.with_suffix(".json").read_text())
    model.load_state_dict(load_file(str(wpath)))
    if opath.is_file():
        flat = load_file(str(opath))
        sd = opt.state_dict()
        state: dict[int, dict] = {}
        for key, v in flat.items():
            i, k = key.split(".", 1)
            state.setdefault(int(i), {})[k] = v
        sd["state"] = state
        opt.load_state_dict(sd)
    return int(meta["step"])


def _jsonable(cfg) -> dict:
    return json.loads(json.dumps(asdict(cfg), default=str))


def lr_at(cfg: TokenizerTrainConfig, step: int) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    p = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (cfg.min_lr_frac + (1 - cfg.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * p)))


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
    from amplify.tokenizer.data import CropSampler, load_windows
    from amplify.tokenizer.losses import reconstruction_loss
    from amplify.tokenizer.model import CausalVideoTokenizer

    cfg = TokenizerTrainConfig(**loop_cfg["cfg"])
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    threads = cfg.threads or max(1, (os.cpu_count() or 1) // world)
    torch.set_num_threads(threads)
    torch.manual_seed(cfg.seed)
    out = Path(loop_cfg["out"])

    # 1. Data: this worker's share of the training clips, decoded once; held-out on rank 0.
    icfg = IngestConfig(
        fps=cfg.fps, width=cfg.width, height=cfg.height, window=cfg.window, stride=cfg.stride
    )
    files = [Path(p) for p in loop_cfg["train_files"]][rank::world]
    t0 = time.time()
    windows, errors = load_windows(files, icfg)
    print(
        f"[rank {rank}] {len(windows)} windows from {len(files)} clips "
        f"({len(errors)} bad) in {time.time() - t0:.1f}s",
        flush=True,
    )
    heldout: list = []
    if rank == 0 and loop_cfg["eval_files"]:
        heldout, _ = load_windows([Path(p) for p in loop_cfg["eval_files"]], icfg)
        # Evenly spread over the held-out scenes and conditions, not the first few.
        heldout = heldout[:: max(1, len(heldout) // cfg.eval_windows)][: cfg.eval_windows]

    # 2. Model, optimizer, resume.
    model = CausalVideoTokenizer(cfg.tokenizer)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    start = load_state(out, model, opt)
    print(f"[rank {rank}] starting at step {start}", flush=True)
    dmodel = ray.train.torch.prepare_model(model)
    device = ray.train.torch.get_device()
    sampler = CropSampler(
        windows, cfg.frames, cfg.crop_h, cfg.crop_w, seed=cfg.seed * 1000003 + start * 7 + rank
    )

    client = None
    if rank == 0 and loop_cfg.get("run_id"):
        from mlflow import MlflowClient

        client = MlflowClient(cfg.tracking_uri)
    run_id = loop_cfg.get("run_id")

    # 3. Train.
    step, t_log, agg, last_eval = start, time.time(), {}, {}
    stop = cfg.stop_at if cfg.stop_at and cfg.stop_at > start else cfg.steps
    while step < min(stop, cfg.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(cfg, step)
        x = sampler.batch(cfg.batch).to(device)
        y = dmodel(x)
        loss, parts = reconstruction_loss(y, x, cfg.w_ssim, cfg.w_grad)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        for k, v in {"loss": loss.item(), **parts}.items():
            agg[k] = agg.get(k, 0.0) + v
        metrics: dict = {"step": step}
        if step % cfg.log_every == 0 or step == cfg.steps:
            n = cfg.log_every if step % cfg.log_every == 0 else step % cfg.log_every
            metrics.update({f"train_{k}": v / n for k, v in agg.items()})
            metrics["lr"] = lr_at(cfg, step - 1)
            metrics["steps_per_s"] = n / (time.time() - t_log)
            agg, t_log = {}, time.time()
            if rank == 0:
                print(json.dumps({k: round(v, 5) for k, v in metrics.items()}), flush=True)
        sample = None
        if rank == 0 and heldout and (step % cfg.eval_every == 0 or step == cfg.steps):
            ev, sample = evaluate_windows(model, heldout, device)
            metrics.update(ev)
            last_eval = {"step": step, **ev}
            print(json.dumps({"step": step, **ev}), flush=True)
        if rank == 0 and (step % cfg.ckpt_every == 0 or step == cfg.steps or step == stop):
            save_state(out, model, opt, step, cfg, last_eval)
        if client is not None and len(metrics) > 1:
            for k, v in metrics.items():
                if k != "step":
                    client.log_metric(run_id, k, float(v), step=step)
            if sample is not None:
                client.log_image(run_id, sample, artifact_file=f"recon/step_{step:06d}.png")
        # Every rank reports on the same steps (a report is a collective in Ray Train).
        if step % cfg.log_every == 0 or step % cfg.eval_every == 0 or step == cfg.steps:
            ray.train.report(metrics)


# ---- the driver ---------------------------------------------------------------------------------
def _mlflow_run(cfg: TokenizerTrainConfig, out: Path) -> str:
    """Start (or continue, on resume) the MLflow run of this `out`; returns its id."""
    import mlflow

    mlflow.set_tracking_uri(cfg.tracking_uri)
    if mlflow.get_experiment_by_name(cfg.experiment) is None:
        db = cfg.tracking_uri.removeprefix("sqlite:///")
        art = (
            (Path(db).parent / "mlartifacts").resolve().as_uri()
            if cfg.tracking_uri.startswith("sqlite:///")
            else None
        )
        mlflow.create_experiment(cfg.experiment, artifact_location=art)
    mlflow.set_experiment(cfg.experiment)
    id_file = out / "mlflow_run_id"
    if id_file.is_file():
        return id_file.read_text().strip()
    with mlflow.start_run(run_name=out.name) as run:
        mlflow.log_params({k: str(v) for k, v in asdict(cfg).items()})
        mlflow.log_dict(json.loads(cfg.tokenizer.to_json()), "tokenizer_config.json")
    id_file.write_text(run.info.run_id)
    return run.info.run_id


def train(cfg: TokenizerTrainConfig) -> dict:
    """Run (or resume) training; returns the final metrics and the exported checkpoint path."""
    import ray
    import torch
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from amplify.io.ingest import list_inputs
    from amplify.tokenizer.data import split_inputs

    out = Path(cfg.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    # Workers run in other directories: hand them the resolved tracking URI.
    cfg = replace(cfg, mlflow_uri=cfg.tracking_uri)
    # 1. Inputs and the held-out split.
    paths: list[Path] = []
    for d in cfg.data:
        if not Path(d).is_dir():
            raise ConfigError("data", d, "not a folder")
        paths.extend(list_inputs(Path(d)))
    train_files, eval_files = split_inputs(sorted(paths), cfg.holdout_every)
    if cfg.max_clips:
        train_files = train_files[: cfg.max_clips]
    if not train_files:
        raise ConfigError("data", cfg.data, "no training clips found")
    print(f"tokenizer: {len(train_files)} training clips, {len(eval_files)} held out", flush=True)
    (out / "split.json").write_text(
        json.dumps(
            {"train": [str(p) for p in train_files], "heldout": [str(p) for p in eval_files]},
            indent=1,
        )
    )
    run_id = _mlflow_run(cfg, out)

    # 2. Ray Train.
    if not ray.is_initialized():
        ray.init(num_cpus=max(2, cfg.num_workers), include_dashboard=False, log_to_driver=True)
    loop_cfg = {
        "cfg": _jsonable(cfg),
        "out": str(out),
        "train_files": [str(p) for p in train_files],
        "eval_files": [str(p) for p in eval_files],
        "run_id": run_id,
    }
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=loop_cfg,
        scaling_config=ScalingConfig(
            num_workers=cfg.num_workers, use_gpu=cfg.use_gpu, resources_per_worker={"CPU": 1}
        ),
        run_config=RunConfig(storage_path=str(out / "ray"), name="train"),
    )
    trainer.fit()

    # 3. Export the final weights (fp16 by default) with the config beside them.
    wpath, _ = _ckpt_paths(out)
    meta = json.loads(wpath.with_suffix(".json").read_text()) if wpath.is_file() else {}
    step, metrics = meta.get("step", 0), meta.get("metrics", {})
    exported = ""
    if cfg.export and step >= cfg.steps:
        from amplify.tokenizer.checkpoint import load_tokenizer, save_tokenizer

        model = load_tokenizer(wpath)
        model.cfg = TokenizerConfig.from_dict({**asdict(model.cfg), "name": Path(cfg.export).name})
        meta = {"step": step, "train": _jsonable(cfg), "metrics": metrics}
        exported = str(save_tokenizer(model, cfg.export, getattr(torch, cfg.export_dtype), meta))
    import mlflow

    mlflow.set_tracking_uri(cfg.tracking_uri)
    with mlflow.start_run(run_id=run_id):
        mlflow.log_metric("final_step", step)
        if exported:
            mlflow.log_artifact(exported)
            mlflow.log_artifact(str(Path(exported).with_suffix(".json")))
    return {
        "step": step,
        "checkpoint": str(wpath),
        "exported": exported,
        "run_id": run_id,
        **{k: v for k, v in metrics.items() if k != "step"},
    }


def _parse_argv(argv: list[str]) -> TokenizerTrainConfig:
    """`key=value` pairs (Hydra-like) until the CLI wires this verb."""
    types = {f.name: f.type for f in fields(TokenizerTrainConfig)}
    kw: dict = {}
    for arg in argv:
        key, _, val = arg.partition("=")
        if key not in types:
            raise ConfigError(key, val, "unknown key")
        t = str(types[key])
        if "tuple" in t:
            kw[key] = tuple(v for v in val.strip("[]").split(",") if v)
        elif "bool" in t:
            kw[key] = val.lower() in ("1", "true", "yes")
        elif "int" in t:
            kw[key] = int(val)
        elif "float" in t:
            kw[key] = float(val)
        else:
            kw[key] = val
    return TokenizerTrainConfig(**kw)


if __name__ == "__main__":
    print(json.dumps(train(_parse_argv(sys.argv[1:]))))
