"""Train the conditional world model with Ray Train (`amplify train wfm key=value ...`).

Stages:
1. Wait for the tokenizer checkpoint (`tokenizer_wait_s`), then pre-encode the synthetic corpus
   once: every (scene window, condition) -> target latents + controls, cached as
   OUT/bank_<tokenizer sha>.pt (a rerun or resume reuses it). Held-out scenes (another corpus in
   `eval_data`, else scene k with k % holdout_every == 0) never train; a few of their pairs
   (source frames, target condition, ground-truth twin) go to OUT/eval_<sha>.npz.
   Real clips in `data` (any video whose name is not a synthetic scene's: the team's own logs)
   are banked too (OUT/bank_real_<sha>.pt) and drawn with `p_real` as reconstruction pairs
   (their own controls -> themselves, condition null) so the model keeps real appearance.
2. Ray Train `TorchTrainer` (DDP over gloo on CPU, `use_gpu` by config): each worker samples
   pairs from the bank (controls of condition A, latents of its twin under B, identity pairs,
   real reconstructions, crops, control and condition dropout) and minimises the rectified-flow
   loss (`wfm.flow`).
3. Every `ckpt_every` steps rank 0 writes OUT/ckpt/last.safetensors (+ .json, + optimizer state);
   a rerun with the same `out` resumes from that step (the tokenizer pipeline's `save_state` /
   `load_state`).
4. Rank 0 logs losses, held-out PSNR against the twin (and the source-frames baseline) and sample
   grids (source | generated | twin) to MLflow; at the end the weights are exported (fp16 by
   default) to `export`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch

from amplify.errors import ConfigError
from amplify.wfm.config import WFM_CONFIGS, WFMConfig, get_config
from pipelines.train_tokenizer import _ckpt_paths, _jsonable, load_state, lr_at, save_state


@dataclass(frozen=True)
class WFMTrainConfig:
    """Everything one training run needs; `out` identifies the run (and its resume point)."""

    model: str = "wfm-small"  # a WFM_CONFIGS name
    tokenizer: str = "tok-small"  # tokenizer name (checkpoints/tokenizer) or .safetensors path
    tokenizer_wait_s: float = 0.0  # poll this long for the tokenizer checkpoint to appear
    # Synthetic corpus folders (paired twins) and folders of real clips (own logs, no twins).
    data: tuple[str, ...] = ("data/synth",)
    eval_data: str = ""  # a held-out corpus (other seed); "" = hold out by scene index
    out: str = "runs/wfm"
    # Warm start: weights of another WFM checkpoint (e.g. trained on an earlier snapshot of the
    # tokenizer); the latent statistics are recomputed from this run's bank. "" = from scratch.
    init_from: str = ""
    export: str = ""  # write the final weights here (PATH.safetensors + PATH.json) if set
    export_dtype: str = "float16"
    # Also write the tokenizer beside the export (NAME.tokenizer.safetensors, export_dtype): the
    # Generator decodes with it when the named tokenizer is not the one trained on.
    bundle_tokenizer: bool = False
    steps: int = 2000
    stop_at: int = 0  # stop (as if killed) once this step is checkpointed; 0 = run to `steps`
    # Wall-clock budget of the training loop (0 = none): the schedule runs on whichever of
    # step / steps and train time / budget is further along, and the run ends at either.
    max_minutes: float = 0.0
    deadline: str = ""  # ISO UTC time ("2026-11-25T20:00:00Z") the budget may not pass; "" = none
    batch: int = 8
    latent_frames: int = 3  # latent frames per training sample
    crop_h: int = 16  # latent cells (x 8 pixels)
    crop_w: int = 16
    lr: float = 4e-4
    min_lr_frac: float = 0.1
    warmup: int = 100
    weight_decay: float = 0.0
    p_identity: float = 0.15
    p_uncond: float = 0.1
    p_drop: float = 0.2
    p_context: float = 0.25
    p_real: float = 0.2  # share of samples that are real clips reconstructed (if any are given)
    seed: int = 0
    holdout_every: int = 10
    max_scenes: int = 0  # 0 = every training scene
    max_windows: int = 0  # windows per clip; 0 = all
    eval_pairs: int = 3
    eval_steps: int = 8
    eval_guidance: float = 2.0
    ckpt_every: int = 100
    eval_every: int = 500
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
    experiment: str = "wfm"

    def __post_init__(self) -> None:
        if isinstance(self.data, str):
            object.__setattr__(self, "data", tuple(s for s in self.data.split(",") if s))
        object.__setattr__(self, "data", tuple(str(d) for d in self.data))
        if self.model not in WFM_CONFIGS:
            raise ConfigError("model", self.model, f"known: {sorted(WFM_CONFIGS)}")
        if not self.data:
            raise ConfigError("data", self.data, "need at least one corpus folder")
        p = self.wfm.patch
        for key in ("crop_h", "crop_w"):
            v = getattr(self, key)
            if v < p or v % p:
                raise ConfigError(key, v, f"must be a positive multiple of patch={p}")
        if self.latent_frames < 1 or 1 + 4 * (self.latent_frames - 1) > self.window:
            raise ConfigError(
                "latent_frames", self.latent_frames, f"1..{1 + (self.window - 1) // 4}"
            )
        for key in ("width", "height"):
            if getattr(self, key) % 8:
                raise ConfigError(key, getattr(self, key), "must be a multiple of 8")
        for key in ("steps", "batch", "num_workers", "ckpt_every", "eval_every", "log_every"):
            if getattr(self, key) < 1:
                raise ConfigError(key, getattr(self, key), "must be >= 1")
        for key in ("p_identity", "p_uncond", "p_drop", "p_context", "p_real"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ConfigError(key, getattr(self, key), "must be in [0, 1]")
        if self.export_dtype not in ("float16", "float32", "bfloat16"):
            raise ConfigError("export_dtype", self.export_dtype, "float16, bfloat16 or float32")
        if self.lr <= 0:
            raise ConfigError("lr", self.lr, "must be > 0")

    @property
    def wfm(self) -> WFMConfig:
        return get_config(self.model)

    @property
    def tracking_uri(self) -> str:
        return self.mlflow_uri or f"sqlite:///{Path.cwd().resolve() / 'mlflow.db'}"

    def ingest(self):
        from amplify.io.ingest import IngestConfig

        return IngestConfig(
            fps=self.fps, width=self.width, height=self.height, window=self.window,
            stride=self.stride, max_windows=self.max_windows,
        )  # fmt: skip


# ---- held-out evaluation ------------------------------------------------------------------------
def psnr_u8(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-10)))


@torch.no_grad()
def evaluate_pairs(model, tokenizer, pairs: dict, steps: int, guidance: float):
    """Mean PSNR of generated vs twin and source vs twin over eval pairs; a sample grid (uint8)."""
    from amplify.synth.conditions import Condition
    from amplify.tokenizer.data import to_tensor
    from amplify.wfm.config import SOURCE
    from amplify.wfm.controls import extract_controls
    from amplify.wfm.data import condition_ids
    from amplify.wfm.sampler import SamplerConfig, sample

    model.eval()
    gen_p, src_p, grid = [], [], None
    for i in range(len(pairs["source"])):
        src, twin = pairs["source"][i], pairs["twin"][i]
        T, H, W, _ = src.shape
        ctl = extract_controls(src, layout=pairs["layout"][i], depth=pairs["depth"][i],
                               names=model.cfg.controls)  # fmt: skip
        controls = {k: None if v is None else torch.from_numpy(v)[None] for k, v in ctl.items()}
        if SOURCE in model.cfg.controls:
            controls[SOURCE] = tokenizer.encode(to_tensor(src))
        w, t, inten = condition_ids(Condition(*str(pairs["condition"][i]).split("_")))
        cond = {"weather": torch.tensor([w]), "time_of_day": torch.tensor([t]),
                "intensity": torch.tensor([float(pairs["intensity"][i])]),
                "scenario": torch.zeros(1, dtype=torch.long), "keep": torch.ones(1)}  # fmt: skip
        shape = (model.cfg.latent_channels, 1 + (T - 1) // 4, H // 8, W // 8)
        z = sample(model, shape, cond, controls, seed=i, cfg=SamplerConfig(steps, guidance))
        x = tokenizer.decode(model.denormalize(z)).clamp(-1, 1)
        out = ((x[0] + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 3, 0).numpy()
        gen_p.append(psnr_u8(out, twin))
        src_p.append(psnr_u8(src, twin))
        if grid is None:  # rows: source, generated, twin; columns: frames 0, mid, last
            idx = [0, T // 2, T - 1]
            grid = np.concatenate(
                [np.concatenate([a[j] for j in idx], 1) for a in (src, out, twin)], 0
            )
    model.train()
    return {
        "heldout_psnr": float(np.mean(gen_p)),
        "heldout_psnr_source": float(np.mean(src_p)),
    }, grid


# ---- the per-worker loop ------------------------------------------------------------------------
def train_loop_per_worker(loop_cfg: dict) -> None:
    import ray.train
    import ray.train.torch

    from amplify.wfm.data import PairBank, PairSampler, PairSpec
    from amplify.wfm.flow import flow_loss
    from amplify.wfm.model import WorldModel

    cfg = WFMTrainConfig(**loop_cfg["cfg"])
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    threads = cfg.threads or max(1, (os.cpu_count() or 1) // world)
    torch.set_num_threads(threads)
    torch.manual_seed(cfg.seed + rank)
    out = Path(loop_cfg["out"])

    # 1. Data: the pre-encoded bank (every worker samples its own pairs from it).
    bank = PairBank.load(Path(loop_cfg["bank"]))
    print(f"[rank {rank}] bank {tuple(bank.latents.shape)} ({len(bank.names)} windows)", flush=True)

    # 2. Model (latent statistics from the bank), optimizer, resume.
    # The latent width is the tokenizer's (whatever its config says).
    wcfg = replace(cfg.wfm, latent_channels=int(bank.latents.shape[2]), tokenizer=cfg.tokenizer)
    model = WorldModel(wcfg)
    mean, std = bank.latent_stats()
    model.latent_mean.copy_(mean)
    model.latent_std.copy_(std)
    if cfg.init_from:
        from safetensors.torch import load_file

        init = load_file(str(cfg.init_from))
        res = model.load_state_dict(
            {k: v.float() for k, v in init.items() if not k.startswith("latent_")}, strict=False
        )
        # Controls the earlier model did not have start at zero / their learned absent vector.
        new = {k for k in res.missing_keys if not k.startswith(("latent_", "controls."))}
        if res.unexpected_keys or new:
            raise ConfigError("init_from", cfg.init_from, f"does not fit {wcfg.name}: {res}")
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    start = load_state(out, model, opt)
    print(f"[rank {rank}] starting at step {start}", flush=True)
    dmodel = ray.train.torch.prepare_model(model)
    device = ray.train.torch.get_device()
    spec = PairSpec(
        frames=cfg.latent_frames, crop_h=cfg.crop_h, crop_w=cfg.crop_w, p_identity=cfg.p_identity,
        p_uncond=cfg.p_uncond, p_drop=cfg.p_drop, p_context=cfg.p_context, p_real=cfg.p_real,
        patch=wcfg.patch,
    )  # fmt: skip
    seed = cfg.seed * 1000003 + start * 7 + rank
    real = PairBank.load(Path(loop_cfg["real_bank"])) if loop_cfg.get("real_bank") else None
    if real is not None:
        print(f"[rank {rank}] real clips: {len(real.names)} windows", flush=True)
    sampler = PairSampler(bank, spec, seed=seed, real=real)
    gen = torch.Generator().manual_seed(seed + 1)

    client, run_id, tokenizer, pairs = None, loop_cfg.get("run_id"), None, None
    if rank == 0:
        if run_id:
            from mlflow import MlflowClient

            client = MlflowClient(cfg.tracking_uri)
        if loop_cfg.get("eval_file"):
            from amplify.tokenizer.checkpoint import load_tokenizer

            tokenizer = load_tokenizer(loop_cfg["tokenizer_path"], device)
            with np.load(loop_cfg["eval_file"], allow_pickle=True) as z:
                pairs = {k: z[k] for k in z.files}

    # 3. Train.
    step, t_log, agg, last_eval = start, time.time(), {}, {}
    stop = cfg.stop_at if cfg.stop_at and cfg.stop_at > start else cfg.steps
    meta_file = out / "ckpt" / "last.json"
    train_s0 = 0.0
    if start and meta_file.is_file():
        train_s0 = json.loads(meta_file.read_text()).get("metrics", {}).get("train_seconds", 0.0)
    t_begin = time.time()
    budget_s = _budget_s(cfg, train_s0)

    def progress_step() -> int:
        """The schedule's step: the step count or the share of the time budget, if further."""
        if budget_s is None:
            return step
        frac = (train_s0 + time.time() - t_begin) / max(budget_s, 1e-6)
        return max(step, int(frac * cfg.steps))

    while step < min(stop, cfg.steps):
        if _should_stop(progress_step() >= cfg.steps, world):
            break
        for g in opt.param_groups:
            g["lr"] = lr_at(cfg, min(progress_step(), cfg.steps - 1))
        batch = _to(sampler.batch(cfg.batch), device)
        loss, parts = flow_loss(model, batch, gen, net=dmodel)
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
            metrics["lr"] = opt.param_groups[0]["lr"]
            metrics["steps_per_s"] = n / (time.time() - t_log)
            agg, t_log = {}, time.time()
            if rank == 0:
                print(json.dumps({k: round(v, 5) for k, v in metrics.items()}), flush=True)
        grid = None
        if pairs is not None and (step % cfg.eval_every == 0 or step == cfg.steps):
            ev, grid = evaluate_pairs(model, tokenizer, pairs, cfg.eval_steps, cfg.eval_guidance)
            metrics.update(ev)
            last_eval = {"step": step, **ev}
            print(json.dumps({"step": step, **ev}), flush=True)
            t_log = time.time()
        if rank == 0 and (step % cfg.ckpt_every == 0 or step == cfg.steps or step == stop):
            save_state(out, model, opt, step, cfg, {**last_eval, "train_seconds": train_s0
                                                    + time.time() - t_begin})  # fmt: skip
        if client is not None and len(metrics) > 1:
            for k, v in metrics.items():
                if k != "step":
                    client.log_metric(run_id, k, float(v), step=step)
            if grid is not None:
                client.log_image(run_id, grid, artifact_file=f"samples/step_{step:06d}.png")
        # Every rank reports on the same steps (a report is a collective in Ray Train).
        if step % cfg.log_every == 0 or step % cfg.eval_every == 0 or step == cfg.steps:
            ray.train.report(metrics)
    if rank == 0 and step < cfg.steps and progress_step() >= cfg.steps:
        # Ended by the time budget: final eval, checkpoint, and mark the run finished.
        if pairs is not None:
            ev, grid = evaluate_pairs(model, tokenizer, pairs, cfg.eval_steps, cfg.eval_guidance)
            last_eval = {"step": step, **ev}
            print(json.dumps(last_eval), flush=True)
            if client is not None:
                for k, v in ev.items():
                    client.log_metric(run_id, k, float(v), step=step)
                client.log_image(run_id, grid, artifact_file=f"samples/step_{step:06d}.png")
        save_state(out, model, opt, step, cfg, {**last_eval, "train_seconds": train_s0
                                                + time.time() - t_begin, "budget_done": True})  # fmt: skip


def _budget_s(cfg: WFMTrainConfig, done_s: float) -> float | None:
    """Seconds of training the whole run may take (None = no budget), capped by `deadline`."""
    from datetime import datetime

    budget = 60 * cfg.max_minutes if cfg.max_minutes > 0 else None
    if cfg.deadline:
        end = datetime.fromisoformat(cfg.deadline.replace("Z", "+00:00")).timestamp()
        left = done_s + max(0.0, end - time.time())
        budget = left if budget is None else min(budget, left)
    return budget


def _should_stop(local: bool, world: int) -> bool:
    """Rank 0's decision, shared with every rank (they must all stop on the same step)."""
    if world == 1:
        return local
    import torch.distributed as dist

    flag = torch.tensor([int(local)])
    dist.broadcast(flag, 0)
    return bool(flag.item())


def _to(batch, device):
    if torch.is_tensor(batch):
        return batch.to(device)
    if isinstance(batch, dict):
        return {k: (None if v is None else _to(v, device)) for k, v in batch.items()}
    return batch


# ---- the driver: data preparation ----------------------------------------------------------------
def wait_for_tokenizer(name: str, wait_s: float, poll_s: float = 30.0) -> Path:
    """The tokenizer checkpoint path, polling up to `wait_s` seconds for it to appear."""
    from amplify.tokenizer.checkpoint import resolve_checkpoint

    deadline = time.time() + wait_s
    while True:
        try:
            return resolve_checkpoint(name)
        except ConfigError:
            if time.time() >= deadline:
                raise
            print(f"wfm: waiting for tokenizer {name!r} ...", flush=True)
            time.sleep(min(poll_s, max(1.0, deadline - time.time())))


def prepare_data(cfg: WFMTrainConfig, out: Path) -> dict:
    """Tokenizer-free preparation: split, decoded frames + controls, held-out pairs (cached)."""
    from amplify.io.ingest import list_inputs
    from amplify.tokenizer.data import split_inputs
    from amplify.wfm.data import encode_corpus

    paths: list[Path] = []
    for d in cfg.data:
        if not Path(d).is_dir():
            raise ConfigError("data", d, "not a folder")
        paths.extend(list_inputs(Path(d)))
    from amplify.io.ingest import VIDEO_EXTENSIONS
    from amplify.wfm.data import encode_real, is_synthetic

    real_files = [p for p in paths if not is_synthetic(p) and p.suffix.lower() in VIDEO_EXTENSIONS]
    paths = [p for p in paths if p.suffix == ".mp4" and is_synthetic(p)]
    if cfg.eval_data:
        train_files = sorted(paths)
        eval_files = [p for p in list_inputs(Path(cfg.eval_data)) if p.suffix == ".mp4"]
    else:
        train_files, eval_files = split_inputs(sorted(paths), cfg.holdout_every)
    if cfg.max_scenes:
        from amplify.wfm.data import group_twins

        keep = set(sorted(group_twins(train_files))[: cfg.max_scenes])
        train_files = [p for p in train_files if f"{p.parent}/{p.name[:10]}" in keep]
    if not train_files:
        raise ConfigError(
            "data",
            cfg.data,
            "no synthetic twins found (scene_NNNN_<weather>_<time>"
            ".mp4): conditions are learnt from them; real clips only add to them",
        )
    (out / "split.json").write_text(json.dumps(
        {"train": [str(p) for p in train_files], "heldout": [str(p) for p in eval_files],
         "real": [str(p) for p in real_files]}, indent=1
    ))  # fmt: skip
    torch.set_num_threads(cfg.threads or os.cpu_count() or 1)
    frames_path, eval_path = out / "bank_frames.pt", out / "eval_pairs.npz"
    if not frames_path.is_file():
        t0 = time.time()
        bank = encode_corpus(train_files, None, cfg.ingest())
        bank.save(frames_path.with_suffix(".tmp"))
        os.replace(frames_path.with_suffix(".tmp"), frames_path)
        print(f"wfm: decoded {len(bank.names)} windows in {time.time() - t0:.0f}s", flush=True)
    real_path = out / "bank_real_frames.pt"
    if real_files and not real_path.is_file():
        real = encode_real(real_files, None, cfg.ingest(), cfg.max_windows)
        if real is not None:
            real.save(real_path.with_suffix(".tmp"))
            os.replace(real_path.with_suffix(".tmp"), real_path)
    if eval_files and cfg.eval_pairs and not eval_path.is_file():
        pairs = heldout_pairs(eval_files, cfg)
        np.savez(eval_path.with_suffix(".tmp.npz"), **pairs)
        os.replace(eval_path.with_suffix(".tmp.npz"), eval_path)
    return {
        "frames": str(frames_path),
        "real_frames": str(real_path) if real_path.is_file() else "",
        "eval_file": str(eval_path) if eval_path.is_file() else "",
    }


def encode_bank(
    out: Path, frames_path: Path, tok_path: Path, tok_sha: str, prefix: str = "bank"
) -> Path:
    """The training bank with latents of this tokenizer (cached by its sha256)."""
    from amplify.tokenizer.checkpoint import load_tokenizer
    from amplify.wfm.data import PairBank, encode_latents

    bank_path = out / f"{prefix}_{tok_sha[:12]}.pt"
    if not bank_path.is_file():
        t0 = time.time()
        # Once, right before training: all the cores this process may use.
        torch.set_num_threads(os.cpu_count() or 1)
        bank = encode_latents(PairBank.load(frames_path), load_tokenizer(tok_path))
        bank.save(bank_path.with_suffix(".tmp"))
        os.replace(bank_path.with_suffix(".tmp"), bank_path)
        print(f"wfm: encoded {len(bank.names)} windows in {time.time() - t0:.0f}s", flush=True)
    return bank_path


def heldout_pairs(files: list[Path], cfg: WFMTrainConfig) -> dict:
    """`eval_pairs` (source under A, condition B, twin under B) from held-out scenes.

    Sources cycle through conditions, targets are a fixed rotation of them (deterministic).
    """
    from amplify.io.ingest import read_windows
    from amplify.wfm.controls import layout_raster
    from amplify.wfm.data import _gt_depth, corpus_intensity, group_twins

    scenes = group_twins(files)
    out: dict[str, list] = {k: [] for k in ("source", "twin", "condition", "intensity", "layout",
                                            "depth", "name")}  # fmt: skip
    for i, (key, clips) in enumerate(sorted(scenes.items())):
        if len(out["source"]) >= cfg.eval_pairs or len(clips) < 2:
            continue
        conds = sorted(clips)
        a, b = conds[i % len(conds)], conds[(i * 5 + 3) % len(conds)]
        if a == b:
            b = conds[(conds.index(a) + 1) % len(conds)]
        wa, wb = read_windows(clips[a], cfg.ingest())[0], read_windows(clips[b], cfg.ingest())[0]
        T = 1 + (min(len(wa.frames), len(wb.frames)) - 1) // 4 * 4
        H, W = wa.frames.shape[1:3]
        out["source"].append(wa.frames[:T])
        out["twin"].append(wb.frames[:T])
        out["condition"].append(b)
        out["intensity"].append(corpus_intensity(clips[b].parent))
        out["layout"].append(layout_raster(wa.labels, T, H, W) if wa.labels else None)
        out["depth"].append(_gt_depth(clips[a], wa.source_indices[:T]))
        out["name"].append(f"{key}: {a} -> {b}")
    arr = {k: np.empty(len(v), dtype=object) for k, v in out.items()}
    for k, v in out.items():
        arr[k][:] = v
    return arr


# ---- the driver -------------------------------------------------------------------------------
def _mlflow_run(cfg: WFMTrainConfig, out: Path, tok_sha: str) -> str:
    """Start (or continue, on resume) the MLflow run of this `out`; returns its id."""
    import mlflow

    mlflow.set_tracking_uri(cfg.tracking_uri)
    if mlflow.get_experiment_by_name(cfg.experiment) is None:
        art = None
        if cfg.tracking_uri.startswith("sqlite:///"):
            db = cfg.tracking_uri.removeprefix("sqlite:///")
            art = (Path(db).parent / "mlartifacts").resolve().as_uri()
        mlflow.create_experiment(cfg.experiment, artifact_location=art)
    mlflow.set_experiment(cfg.experiment)
    id_file = out / "mlflow_run_id"
    if id_file.is_file():
        return id_file.read_text().strip()
    with mlflow.start_run(run_name=out.name) as run:
        mlflow.log_params({k: str(v) for k, v in asdict(cfg).items()})
        mlflow.log_param("tokenizer_sha256", tok_sha)
        mlflow.log_dict(json.loads(cfg.wfm.to_json()), "wfm_config.json")
    id_file.write_text(run.info.run_id)
    return run.info.run_id


def train(cfg: WFMTrainConfig) -> dict:
    """Run (or resume) training; returns the final metrics and the exported checkpoint path."""
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from amplify.wfm.checkpoint import sha256_file

    out = Path(cfg.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    # 1. Frames, controls and held-out pairs (no tokenizer needed), then the tokenizer's latents.
    data = prepare_data(cfg, out)
    tok_path = wait_for_tokenizer(cfg.tokenizer, cfg.tokenizer_wait_s)
    tok_sha = sha256_file(tok_path)
    print(f"wfm: tokenizer {tok_path} sha256 {tok_sha[:12]}", flush=True)
    data["bank"] = str(encode_bank(out, Path(data.pop("frames")), tok_path, tok_sha))
    real_frames = data.pop("real_frames")
    data["real_bank"] = (
        str(encode_bank(out, Path(real_frames), tok_path, tok_sha, "bank_real")) if real_frames
        else ""
    )  # fmt: skip
    run_id = _mlflow_run(cfg, out, tok_sha)

    # 2. Ray Train.
    if not ray.is_initialized():
        ray.init(num_cpus=max(2, cfg.num_workers), include_dashboard=False, log_to_driver=True)
    loop_cfg = {
        "cfg": _jsonable(cfg),
        "out": str(out),
        "tokenizer_path": str(tok_path),
        "run_id": run_id,
        **data,
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

    # 3. Export the final weights (fp16 by default) with the config and lineage beside them.
    wpath, _ = _ckpt_paths(out)
    meta = json.loads(wpath.with_suffix(".json").read_text()) if wpath.is_file() else {}
    step, metrics = meta.get("step", 0), meta.get("metrics", {})
    exported = ""
    if cfg.export and (step >= cfg.steps or metrics.get("budget_done")):
        from amplify.wfm.checkpoint import load_wfm, save_wfm

        model = load_wfm(wpath)
        model.cfg = WFMConfig.from_dict({**asdict(model.cfg), "tokenizer": cfg.tokenizer})
        meta = {
            "step": step,
            "train": _jsonable(cfg),
            "metrics": metrics,
            "tokenizer": {"name": cfg.tokenizer, "path": str(tok_path), "sha256": tok_sha},
        }
        dtype = getattr(torch, cfg.export_dtype)
        exported = str(save_wfm(model, cfg.export, dtype, meta))
        if cfg.bundle_tokenizer:
            from amplify.tokenizer.checkpoint import load_tokenizer, save_tokenizer
            from amplify.wfm.checkpoint import bundled_tokenizer

            tok_meta = {"source": str(tok_path), "source_sha256": tok_sha}
            save_tokenizer(load_tokenizer(tok_path), bundled_tokenizer(exported), dtype, tok_meta)
    import mlflow

    mlflow.set_tracking_uri(cfg.tracking_uri)
    with mlflow.start_run(run_id=run_id):
        mlflow.log_metric("final_step", step)
        mlflow.log_metric("wall_s", time.time() - t_start)
        if exported:
            mlflow.log_artifact(exported)
            mlflow.log_artifact(str(Path(exported).with_suffix(".json")))
    return {
        "step": step,
        "checkpoint": str(wpath),
        "exported": exported,
        "run_id": run_id,
        "tokenizer_sha256": tok_sha,
        **{k: v for k, v in metrics.items() if k != "step"},
    }


def _parse_argv(argv: list[str]) -> WFMTrainConfig:
    """`key=value` pairs (Hydra-like) until the CLI wires this verb."""
    types = {f.name: str(f.type) for f in fields(WFMTrainConfig)}
    kw: dict = {}
    for arg in argv:
        key, _, val = arg.partition("=")
        if key not in types:
            raise ConfigError(key, val, "unknown key")
        t = types[key]
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
    return WFMTrainConfig(**kw)


if __name__ == "__main__":
    print(json.dumps(train(_parse_argv(sys.argv[1:]))))
