"""What the Ray Train pipelines (`train_tokenizer`, `train_wfm`) share: the run, checkpoint,
schedule, logging and ingest keys of their configs with the checks on them (`TrainRunConfig`),
the resumable checkpoint state under OUT/ckpt, the learning-rate schedule, the MLflow run of an
`out` (continued on resume) and the Ray Train launch.

The values of a run come from `configs/train_<pipeline>.yaml` through `amplify.config.load_config`
(`amplify train <pipeline> key=value ...`, or `python -m pipelines.train_<pipeline>`, which is
the same verb); the defaults here mirror that YAML for code that builds a config directly.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

from amplify.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class TrainRunConfig:
    """The keys every training pipeline has; each pipeline sets the defaults left out here."""

    model: str  # the model config the pipeline trains
    # Folders of clips (read through ingest); `data=[a,b]` (a string splits on commas).
    data: tuple[str, ...] = ("data/synth",)
    out: str  # identifies the run (and its resume point)
    export: str = ""  # write the final weights here (PATH.safetensors + PATH.json) if set
    export_dtype: str = "float16"
    steps: int
    stop_at: int = 0  # stop (as if killed) once this step is checkpointed; 0 = run to `steps`
    batch: int = 8
    lr: float
    min_lr_frac: float
    warmup: int = 100
    weight_decay: float = 0.0
    seed: int = 0
    holdout_every: int = 10  # scene k is held out when k % holdout_every == 0
    ckpt_every: int = 100
    eval_every: int
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
    # The MLflow experiment (not `experiment`: configs/experiment/ is the Hydra group of recipes,
    # and a key named like a group would select from it instead of being set).
    mlflow_experiment: str

    # Keys that must lie in [0, 1] (checked after the counts).
    fractions: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        if isinstance(self.data, str):
            object.__setattr__(self, "data", tuple(s for s in self.data.split(",") if s))
        object.__setattr__(self, "data", tuple(str(d) for d in self.data))
        self._check()
        for key in ("steps", "batch", "num_workers", "ckpt_every", "eval_every", "log_every"):
            if getattr(self, key) < 1:
                raise ConfigError(key, getattr(self, key), "must be >= 1")
        for key in self.fractions:
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ConfigError(key, getattr(self, key), "must be in [0, 1]")
        if self.export_dtype not in ("float16", "float32", "bfloat16"):
            raise ConfigError("export_dtype", self.export_dtype, "float16, bfloat16 or float32")
        if self.lr <= 0:
            raise ConfigError("lr", self.lr, "must be > 0")

    def _check(self) -> None:
        """The pipeline's own keys (model, data, shapes): checked before the shared ones."""

    @property
    def tracking_uri(self) -> str:
        return self.mlflow_uri or f"sqlite:///{Path.cwd().resolve() / 'mlflow.db'}"


def jsonable(cfg) -> dict:
    """A config dataclass as plain JSON values (tuples become lists)."""
    return json.loads(json.dumps(asdict(cfg), default=str))


def lr_at(cfg: TrainRunConfig, step: int) -> float:
    """Linear warmup to `lr`, then cosine down to `lr * min_lr_frac` at `steps`."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    p = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (cfg.min_lr_frac + (1 - cfg.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * p)))


# ---- checkpoint state (weights + optimizer, both safetensors) -----------------------------------
def ckpt_paths(out: Path) -> tuple[Path, Path]:
    """The weights (with their .json beside them) and the optimizer state of a run."""
    return out / "ckpt" / "last.safetensors", out / "ckpt" / "last_optim.safetensors"


def save_state(out: Path, model, opt, step: int, cfg, metrics: dict | None = None) -> None:
    """Atomically replace OUT/ckpt/last.* with the state after `step` steps."""
    import torch
    from safetensors.torch import save_file

    from amplify.checkpoints import save_checkpoint

    wpath, opath = ckpt_paths(out)
    tmp = out / "ckpt" / "tmp"
    meta = {"step": step, "train": jsonable(cfg), "metrics": metrics or {}}
    save_checkpoint(model, tmp / "last", meta=meta)
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

    wpath, opath = ckpt_paths(out)
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


# ---- MLflow -------------------------------------------------------------------------------------
def mlflow_run(
    cfg: TrainRunConfig, out: Path, config: dict, config_file: str, params: dict | None = None
) -> str:
    """Start (or continue, on resume) the MLflow run of this `out`; returns its id.

    A new run logs every key of `cfg` and `params` as params, and `config` (the model's) as the
    JSON artifact `config_file`. With an SQLite store a new experiment keeps its artifacts in
    `mlartifacts` beside the database.
    """
    import mlflow

    mlflow.set_tracking_uri(cfg.tracking_uri)
    if mlflow.get_experiment_by_name(cfg.mlflow_experiment) is None:
        art = None
        if cfg.tracking_uri.startswith("sqlite:///"):
            db = cfg.tracking_uri.removeprefix("sqlite:///")
            art = (Path(db).parent / "mlartifacts").resolve().as_uri()
        mlflow.create_experiment(cfg.mlflow_experiment, artifact_location=art)
    mlflow.set_experiment(cfg.mlflow_experiment)
    id_file = out / "mlflow_run_id"
    if id_file.is_file():
        return id_file.read_text().strip()
    with mlflow.start_run(run_name=out.name) as run:
        mlflow.log_params({k: str(v) for k, v in asdict(cfg).items()})
        if params:
            mlflow.log_params(params)
        mlflow.log_dict(config, config_file)
    id_file.write_text(run.info.run_id)
    return run.info.run_id


def log_metrics(client, run_id: str, metrics: dict, step: int, image=None, image_file="") -> None:
    """Log `metrics` (all but "step") at `step` to the run, and `image` (if any) as `image_file`."""
    for k, v in metrics.items():
        if k != "step":
            client.log_metric(run_id, k, float(v), step=step)
    if image is not None:
        client.log_image(run_id, image, artifact_file=image_file)


def finish_mlflow_run(cfg: TrainRunConfig, run_id: str, metrics: dict, exported: str) -> None:
    """Log the final `metrics` and the exported checkpoint (with its JSON) to the run."""
    import mlflow

    mlflow.set_tracking_uri(cfg.tracking_uri)
    with mlflow.start_run(run_id=run_id):
        for k, v in metrics.items():
            mlflow.log_metric(k, v)
        if exported:
            mlflow.log_artifact(exported)
            mlflow.log_artifact(str(Path(exported).with_suffix(".json")))


# ---- Ray Train ----------------------------------------------------------------------------------
def worker_setup(cfg: TrainRunConfig) -> tuple[int, int]:
    """This worker's (rank, world size), with its torch threads set (`threads` or a fair share)."""
    import ray.train
    import torch

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.set_num_threads(cfg.threads or max(1, (os.cpu_count() or 1) // world))
    return rank, world


def fit(loop, loop_cfg: dict, cfg: TrainRunConfig, out: Path) -> None:
    """Run `loop(loop_cfg)` on `num_workers` Ray Train workers (one CPU each) to its end; starts a
    local Ray if none is running. Ray Train's own files go to OUT/ray."""
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    if not ray.is_initialized():
        ray.init(num_cpus=max(2, cfg.num_workers), include_dashboard=False, log_to_driver=True)
    trainer = TorchTrainer(
        loop,
        train_loop_config=loop_cfg,
        scaling_config=ScalingConfig(
            num_workers=cfg.num_workers, use_gpu=cfg.use_gpu, resources_per_worker={"CPU": 1}
        ),
        run_config=RunConfig(storage_path=str(out / "ray"), name="train"),
    )
    trainer.fit()


def last_checkpoint(out: Path) -> tuple[Path, int, dict]:
    """The weights of OUT/ckpt with the step and metrics saved beside them (0, {} if none)."""
    wpath, _ = ckpt_paths(out)
    meta = json.loads(wpath.with_suffix(".json").read_text()) if wpath.is_file() else {}
    return wpath, meta.get("step", 0), meta.get("metrics", {})


def result(wpath: Path, step: int, metrics: dict, exported: str, run_id: str, **extra) -> dict:
    """What `train` returns: the final step, checkpoint, export, run id, `extra`, metrics."""
    return {
        "step": step,
        "checkpoint": str(wpath),
        "exported": exported,
        "run_id": run_id,
        **extra,
        **{k: v for k, v in metrics.items() if k != "step"},
    }


# ---- the optimisation step and its log ---------------------------------------------------------
def optimizer_step(model, opt, loss, max_norm: float = 1.0) -> None:
    """Backward, clip the gradient norm to `max_norm`, step."""
    import torch

    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    opt.step()


class StepLog:
    """Running means of the losses between log steps (every `log_every` and the last step).

    `after(step, loss, parts, lr)` returns the step's metrics: {"step"} and, on a log step, the
    means (`train_<name>`), the learning rate and steps per second, printed on rank 0."""

    def __init__(self, cfg: TrainRunConfig, rank: int) -> None:
        self.cfg, self.rank = cfg, rank
        self.agg: dict[str, float] = {}
        self.restart_clock()

    def restart_clock(self) -> None:
        """Steps per second count from now (e.g. after an evaluation that should not count)."""
        self.t = time.time()

    def after(self, step: int, loss: float, parts: dict, lr: float) -> dict:
        for k, v in {"loss": loss, **parts}.items():
            self.agg[k] = self.agg.get(k, 0.0) + v
        metrics: dict = {"step": step}
        every = self.cfg.log_every
        if step % every == 0 or step == self.cfg.steps:
            n = every if step % every == 0 else step % every
            metrics.update({f"train_{k}": v / n for k, v in self.agg.items()})
            metrics["lr"] = lr
            metrics["steps_per_s"] = n / (time.time() - self.t)
            self.agg = {}
            self.restart_clock()
            if self.rank == 0:
                print(json.dumps({k: round(v, 5) for k, v in metrics.items()}), flush=True)
        return metrics
