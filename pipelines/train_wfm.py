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
   a rerun with the same `out` resumes from that step (`pipelines.training`, as for the
   tokenizer).
4. Rank 0 logs losses, held-out PSNR against the twin (and the source-frames baseline) and sample
   grids (source | generated | twin) to MLflow; at the end the weights are exported (fp16 by
   default) to `export`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from amplify.errors import ConfigError
from amplify.wfm.config import WFM_CONFIGS, WFMConfig, get_config
from pipelines import training


@dataclass(frozen=True, kw_only=True)
class WFMTrainConfig(training.TrainRunConfig):
    """Everything one training run needs; `out` identifies the run (and its resume point)."""

    model: str = "wfm-small"  # a WFM_CONFIGS name
    tokenizer: str = "tok-small"  # tokenizer name (checkpoints/tokenizer) or .safetensors path
    tokenizer_wait_s: float = 0.0  # poll this long for the tokenizer checkpoint to appear
    # (`data`: synthetic corpus folders, paired twins, and folders of real clips: own logs.)
    eval_data: str = ""  # a held-out corpus (other seed); "" = hold out by scene index
    # Warm start: weights of another WFM checkpoint (e.g. trained on an earlier snapshot of the
    # tokenizer); the latent statistics are recomputed from this run's bank. "" = from scratch.
    init_from: str = ""
    # Also write the tokenizer beside the export (NAME.tokenizer.safetensors, export_dtype): the
    # Generator decodes with it when the named tokenizer is not the one trained on.
    bundle_tokenizer: bool = False
    # Wall-clock budget of the training loop (0 = none): the schedule runs on whichever of
    # step / steps and train time / budget is further along, and the run ends at either.
    max_minutes: float = 0.0
    deadline: str = ""  # ISO UTC time ("2026-11-25T20:00:00Z") the budget may not pass; "" = none
    latent_frames: int = 3  # latent frames per training sample
    crop_h: int = 16  # latent cells (x 8 pixels)
    crop_w: int = 16
    p_identity: float = 0.15
    p_uncond: float = 0.1
    p_drop: float = 0.2
    p_context: float = 0.25
    p_real: float = 0.2  # share of samples that are real clips reconstructed (if any are given)
    max_scenes: int = 0  # 0 = every training scene
    max_windows: int = 0  # windows per clip; 0 = all
    eval_pairs: int = 2
    eval_steps: int = 6
    eval_guidance: float = 2.0
    # This pipeline's defaults of shared keys (the others: `TrainRunConfig`); the values of a
    # run are configs/train_wfm.yaml's (tests/test_config_defaults.py keeps them equal).
    out: str = "runs/wfm"
    steps: int = 4000
    batch: int = 4
    lr: float = 5e-4
    min_lr_frac: float = 0.1
    warmup: int = 50
    ckpt_every: int = 50
    eval_every: int = 400
    log_every: int = 10
    threads: int = 1
    mlflow_experiment: str = "wfm"

    fractions = ("p_identity", "p_uncond", "p_drop", "p_context", "p_real")

    def _check(self) -> None:
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

    @property
    def wfm(self) -> WFMConfig:
        return get_config(self.model)

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
    from amplify.conditions import Condition
    from amplify.wfm.generate import Generator

    model.eval()
    gen = Generator.from_models(model, tokenizer, steps=steps, guidance=guidance)
    gen_p, src_p, grid = [], [], None
    for i in range(len(pairs["source"])):
        src, twin = pairs["source"][i], pairs["twin"][i]
        T = src.shape[0]
        cond = Condition.parse(str(pairs["condition"][i]), float(pairs["intensity"][i]))
        out = gen.generate(src, cond, seed=i, layout=pairs["layout"][i], depth=pairs["depth"][i])
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
    rank, world = training.worker_setup(cfg)
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
    start = training.load_state(out, model, opt)
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
    step, last_eval, log = start, {}, training.StepLog(cfg, rank)
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
            g["lr"] = training.lr_at(cfg, min(progress_step(), cfg.steps - 1))
        batch = _to(sampler.batch(cfg.batch), device)
        loss, parts = flow_loss(model, batch, gen, net=dmodel)
        training.optimizer_step(model, opt, loss)
        step += 1
        metrics = log.after(step, loss.item(), parts, opt.param_groups[0]["lr"])
        grid = None
        if pairs is not None and (step % cfg.eval_every == 0 or step == cfg.steps):
            ev, grid = evaluate_pairs(model, tokenizer, pairs, cfg.eval_steps, cfg.eval_guidance)
            metrics.update(ev)
            last_eval = {"step": step, **ev}
            print(json.dumps({"step": step, **ev}), flush=True)
            log.restart_clock()
        if rank == 0 and (step % cfg.ckpt_every == 0 or step == cfg.steps or step == stop):
            train_s = train_s0 + time.time() - t_begin
            training.save_state(out, model, opt, step, cfg, {**last_eval, "train_seconds": train_s})
        if client is not None and len(metrics) > 1:
            training.log_metrics(
                client, run_id, metrics, step, grid, f"samples/step_{step:06d}.png"
            )
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
        train_s = train_s0 + time.time() - t_begin
        done = {**last_eval, "train_seconds": train_s, "budget_done": True}
        training.save_state(out, model, opt, step, cfg, done)


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
def train(cfg: WFMTrainConfig) -> dict:
    """Run (or resume) training; returns the final metrics and the exported checkpoint path."""
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
    wfm_json = json.loads(cfg.wfm.to_json())
    run_id = training.mlflow_run(
        cfg, out, wfm_json, "wfm_config.json", {"tokenizer_sha256": tok_sha}
    )

    # 2. Ray Train.
    loop_cfg = {
        "cfg": training.jsonable(cfg),
        "out": str(out),
        "tokenizer_path": str(tok_path),
        "run_id": run_id,
        **data,
    }
    training.fit(train_loop_per_worker, loop_cfg, cfg, out)

    # 3. Export the final weights (fp16 by default) with the config and lineage beside them.
    wpath, step, metrics = training.last_checkpoint(out)
    exported = ""
    if cfg.export and (step >= cfg.steps or metrics.get("budget_done")):
        from amplify.wfm.checkpoint import load_wfm, save_wfm

        model = load_wfm(wpath)
        model.cfg = WFMConfig.from_dict({**asdict(model.cfg), "tokenizer": cfg.tokenizer})
        meta = {
            "step": step,
            "train": training.jsonable(cfg),
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
    training.finish_mlflow_run(
        cfg, run_id, {"final_step": step, "wall_s": time.time() - t_start}, exported
    )
    return training.result(wpath, step, metrics, exported, run_id, tokenizer_sha256=tok_sha)


if __name__ == "__main__":
    # The verb itself: configs/train_wfm.yaml through the same loader.
    from amplify.cli import main

    sys.exit(main(["train", "wfm", *sys.argv[1:]]))
