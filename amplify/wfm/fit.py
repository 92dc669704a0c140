"""Training of a grade-head world model in plain PyTorch (no Ray, MLflow, Hydra or PyAV needed).

The world model with `head="grade"` (`config.py`, `appearance.py`) is trained by regression on
pixels, not by flow matching: the transform it predicts is applied to the source crop and
compared with the target crop (L1).
- Synthetic twins teach the change of condition: source = scene s under condition A, target =
  the same scene under B (B = A for `p_identity` of the samples), condition = B.
- Real clips teach the real look and what "keep it" means: source = target = the real window,
  condition = its own labelled condition (`train_real` manifest), drawn for `p_real` of samples.
Inputs are a `GradeBank` (frames kept as uint8 beside their tokenizer latents and controls),
built once on CPU by `build_bank` (which does need PyAV, through the ingest) and saved with
`torch.save`, or rendered in memory by `amplify.wfm.renders.bank_from_renders`; `fit` itself
only needs torch, so the same call trains on a GPU machine (`amplify.gpu.train`).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from amplify.wfm.appearance import apply_grade
from amplify.wfm.config import CONTROLS, UNKNOWN_SOURCE, WFMConfig, get_config
from amplify.wfm.data import PairBank
from amplify.wfm.model import WorldModel

BANK_KEYS = ("frames", "latents", "edges", "blur", "layout", "depth", "has_layout", "has_depth")


@dataclass(frozen=True)
class GradeFitConfig:
    """How a grade model is trained (sizes in latent cells; one latent cell = 8x8 pixels)."""

    model: str = "wfm-grade"
    init_from: str = ""  # a world-model checkpoint whose trunk (same dim/depth) warm-starts this
    steps: int = 1200
    batch: int = 8
    lr: float = 3e-4
    min_lr_frac: float = 0.1
    warmup: int = 50
    latent_frames: int = 3
    crop_h: int = 16
    crop_w: int = 16
    p_identity: float = 0.15
    p_real: float = 0.15
    p_drop: float = 0.2
    # Synthetic pairs get one random camera look (per-channel gain, gamma, saturation), the same on
    # source and target, with this probability: the renderer's clean colours are not a camera's.
    p_jitter: float = 0.0
    # Real windows asked for ANOTHER condition, for this share of the real samples: they have no
    # target, so the loss compares the look the grade gave them (per horizontal band: brightness
    # and colour cast reached, contrast and saturation changed, `look_change`) with what the
    # synthetic twins show between the same two conditions on average. Real footage then learns
    # that rain greys a sky and night darkens a road as much as on the renders (0 = off).
    p_real_change: float = 0.0
    change_weight: float = 0.2
    change_bands: int = 4
    # which `look_change` terms the loss compares (brightness, contrast, saturation, cast)
    change_terms: tuple[str, ...] = ("brightness", "contrast", "saturation", "cast")
    # Tell the model the source's own condition (synthetic: A; real: its label) for this share of
    # the samples, "unknown" for the rest (0 = a model without source-condition input;
    # `WFMConfig.source_condition`).
    p_source_known: float = 0.0
    # Learning-rate multiplier for the parameters a warm start (`init_from`) did not provide, such
    # as a new input's zero-initialised embeddings: at the trunk's rate they barely move.
    fresh_lr_mult: float = 1.0
    seed: int = 0
    max_minutes: float = 0.0  # stop (and export) after this much training time; 0 = no limit
    log_every: int = 25
    ckpt_every: int = 100
    grad_clip: float = 1.0
    meta: dict = field(default_factory=dict)  # recorded in the exported JSON (data, licences...)

    def __post_init__(self) -> None:
        from amplify.errors import ConfigError
        from amplify.wfm.config import WFM_CONFIGS

        if self.model not in WFM_CONFIGS:
            raise ConfigError("model", self.model, f"known: {sorted(WFM_CONFIGS)}")
        for k in ("steps", "batch"):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(k, v, "must be a positive integer")
        for k in ("p_identity", "p_real", "p_drop", "p_jitter", "p_real_change", "p_source_known"):
            if not 0.0 <= getattr(self, k) <= 1.0:
                raise ConfigError(k, getattr(self, k), "must lie in [0, 1]")
        if not self.fresh_lr_mult > 0:
            raise ConfigError("fresh_lr_mult", self.fresh_lr_mult, "must be positive")
        object.__setattr__(self, "change_terms", tuple(self.change_terms))
        for t in self.change_terms:
            if t not in LOOK_TERMS:
                raise ConfigError("change_terms", t, f"must be one of {list(LOOK_TERMS)}")


@dataclass
class GradeBank:
    """Synthetic twins (S, V conditions) and real windows (R, one condition each), as tensors.

    synth: a `PairBank` with `frames` kept (S, V, T, H, W, 3) uint8 and `latents`; real: the same
    with V = 1 (or None) and `real_conds` (R, 3) = (weather id, time id, intensity) per window.
    """

    synth: PairBank
    real: PairBank | None = None
    real_conds: torch.Tensor | None = None
    tokenizer: dict = field(default_factory=dict)  # name and sha256 of the encoding tokenizer

    def save(self, path: str | Path) -> None:
        torch.save(
            {
                "synth": self.synth.__dict__,
                "real": None if self.real is None else self.real.__dict__,
                "real_conds": self.real_conds,
                "tokenizer": self.tokenizer,
            },
            str(path),
        )

    @classmethod
    def load(cls, path: str | Path) -> GradeBank:
        d = torch.load(str(path), weights_only=False)
        real = None if d["real"] is None else PairBank(**d["real"])
        return cls(PairBank(**d["synth"]), real, d["real_conds"], d.get("tokenizer", {}))


def look_stats(x: torch.Tensor, bands: int) -> torch.Tensor:
    """(B, 3, T, H, W) in [0, 1] -> (B, bands, 5): per horizontal band (sky at the top, road at
    the bottom), mean luma, luma standard deviation, mean saturation (max - min of RGB) and the
    mean red and blue offsets from luma (the colour cast)."""
    B, _, T, H, W = x.shape
    x = x[:, :, :, : H - H % bands].reshape(B, 3, T, bands, -1, W).transpose(2, 3)
    x = x.reshape(B, 3, bands, -1)  # (B, 3, bands, N)
    luma = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    sat = x.amax(1) - x.amin(1)
    return torch.stack(
        [luma.mean(-1), luma.std(-1), sat.mean(-1),
         (x[:, 0] - luma).mean(-1), (x[:, 2] - luma).mean(-1)], -1,
    )  # fmt: skip


LOOK_TERMS = {"brightness": [0], "contrast": [1], "saturation": [2], "cast": [3, 4]}


def look_change(after: torch.Tensor, before: torch.Tensor, eps: float = 0.02) -> torch.Tensor:
    """What a condition does to a picture's look, from `look_stats` before and after: the
    brightness it ends at (log luma) and its colour cast, and the change in proportion of
    contrast and saturation (log ratios). Brightness and cast are absolute because the renderer's
    clear day is darker than a camera's (mean luma 0.18-0.40 by band against 0.33-0.57 on the
    real training clips): a rendered rain day is as bright as a real clear one, so "as much
    brighter" would wash a real clip out. (..., 5) -> (..., 5)."""
    return torch.cat(
        [torch.log(after[..., :1] + eps), torch.log((after[..., 1:3] + eps) / (before[..., 1:3] + eps)),
         after[..., 3:]], -1,
    )  # fmt: skip


def expected_changes(bank: PairBank, bands: int, frame_step: int = 4) -> torch.Tensor:
    """(V, V, bands, 5): the mean `look_change` of the synthetic twins from condition a to b."""
    stats = []
    for s in range(bank.frames.shape[0]):
        x = bank.frames[s, :, ::frame_step].permute(0, 4, 1, 2, 3).float() / 255.0
        stats.append(look_stats(x, bands))  # (V, bands, 5)
    st = torch.stack(stats)  # (S, V, bands, 5)
    after, before = torch.broadcast_tensors(st[:, None], st[:, :, None])  # [s, a, b]
    return look_change(after, before).mean(0)


class GradeSampler:
    """Random (source crop, target crop, latents, controls, condition) batches from a bank."""

    def __init__(self, bank: GradeBank, cfg: GradeFitConfig) -> None:
        self.bank, self.cfg = bank, cfg
        self.g = torch.Generator().manual_seed(cfg.seed)
        for b in (bank.synth, bank.real):
            if b is None:
                continue
            n, h, w = b.latents.shape[-3:]
            if cfg.latent_frames > n or cfg.crop_h > h or cfg.crop_w > w:
                raise ValueError(f"crop ({cfg.latent_frames}, {cfg.crop_h}, {cfg.crop_w}) larger "
                                 f"than the bank's latents {(n, h, w)}")  # fmt: skip
        self.expected = self.real_index = None
        if cfg.p_real_change > 0 and bank.real is not None:
            self.expected = expected_changes(bank.synth, cfg.change_bands)
            # each real window's own condition as a synthetic condition index (-1: none)
            ids = {(int(c[0]), int(c[1])): i for i, c in enumerate(bank.synth.conds.tolist())}
            self.real_index = [
                ids.get((int(c[0]), int(c[1])), -1) for c in bank.real_conds.tolist()
            ]

    def _rand(self, hi: int) -> int:
        return int(torch.randint(hi, (1,), generator=self.g))

    def _u(self) -> float:
        return float(torch.rand((), generator=self.g))

    def _look(self) -> tuple[torch.Tensor, float, float]:
        """A random camera look: per-channel gain in [0.85, 1.15], gamma in [0.8, 1.25],
        saturation in [0.6, 1.3]."""
        gain = 0.85 + 0.3 * torch.rand(3, generator=self.g)
        gamma = float(
            torch.empty(()).uniform_(math.log(0.8), math.log(1.25), generator=self.g).exp()
        )
        return gain, gamma, 0.6 + 0.7 * self._u()

    def batch(self, size: int) -> dict:
        """One batch; the crop's first latent frame is shared by the batch (one frame mapping)."""
        cfg, real = self.cfg, self.bank.real
        n = self.bank.synth.latents.shape[3]
        f0 = self._rand(n - cfg.latent_frames + 1)
        t0 = 0 if f0 == 0 else 4 * f0 - 3
        t1 = 4 * (f0 + cfg.latent_frames - 1) + 1
        src, tgt, lat, conds, is_real, change, own_ids = [], [], [], [], [], [], []
        expect = torch.zeros(size, cfg.change_bands, 5)
        ctl: dict[str, list] = {k: [] for k in CONTROLS}
        keep: dict[str, list] = {k: [] for k in CONTROLS}
        for _ in range(size):
            is_real.append(real is not None and self._u() < cfg.p_real)
            if is_real[-1]:
                b, s, a, tb = real, self._rand(real.latents.shape[0]), 0, 0
                c = self.bank.real_conds[s].tolist()
                source_ids = c[:2]
                own = -1 if self.real_index is None else self.real_index[s]
                if own >= 0 and self._u() < cfg.p_real_change:
                    V = self.bank.synth.conds.shape[0]
                    other = (own + 1 + self._rand(V - 1)) % V
                    c = [*self.bank.synth.conds[other, :2].tolist(), c[2]]
                    expect[len(is_real) - 1] = self.expected[own, other]
                    change.append(len(is_real) - 1)
            else:
                b = self.bank.synth
                S, V = b.latents.shape[:2]
                s, a = self._rand(S), self._rand(V)
                tb = a if self._u() < cfg.p_identity else (a + 1 + self._rand(V - 1)) % V
                c, source_ids = b.conds[tb].tolist(), b.conds[a, :2].tolist()
                if b.intensity is not None:
                    c[2] = float(b.intensity[s])
            h, w = b.latents.shape[-2:]
            y0 = self._rand(h - cfg.crop_h + 1) // 2 * 2
            x0 = self._rand(w - cfg.crop_w + 1) // 2 * 2
            ys, xs = slice(y0 * 8, (y0 + cfg.crop_h) * 8), slice(x0 * 8, (x0 + cfg.crop_w) * 8)
            src.append(b.frames[s, a, t0:t1, ys, xs])
            tgt.append(b.frames[s, tb, t0:t1, ys, xs])
            fs = slice(f0, f0 + cfg.latent_frames)
            lat.append(b.latents[s, a, :, fs, y0 : y0 + cfg.crop_h, x0 : x0 + cfg.crop_w])
            avail = {"layout": bool(b.has_layout[s]), "depth": bool(b.has_depth[s])}
            for k, (_, factor) in CONTROLS.items():
                m = b.__dict__[k][s, a] if k in ("edges", "blur") else b.__dict__[k][s]
                r = 8 // factor
                ctl[k].append(
                    m[:, fs, y0 * r : (y0 + cfg.crop_h) * r, x0 * r : (x0 + cfg.crop_w) * r]
                )
                keep[k].append(float(avail.get(k, True) and self._u() >= cfg.p_drop))
            conds.append(c)
            own_ids.append(source_ids if self._u() < cfg.p_source_known else list(UNKNOWN_SOURCE))
        c = torch.tensor(conds)  # (B, 3)
        own = torch.tensor(own_ids, dtype=torch.long)  # (B, 2); UNKNOWN_SOURCE = not told

        def pixels(xs: list[torch.Tensor]) -> torch.Tensor:
            return torch.stack(xs).permute(0, 4, 1, 2, 3).float() / 255.0  # (B, 3, T, H, W)

        source, target = pixels(src), pixels(tgt)
        for i in range(size):
            if not is_real[i] and self._u() < cfg.p_jitter:
                look = self._look()
                source[i], target[i] = camera_look(source[i], *look), camera_look(target[i], *look)
        return {
            "source": source,
            "target": target,
            "latents": torch.stack(lat).float(),  # (B, C, F, h, w)
            "controls": {k: torch.stack(v).float() for k, v in ctl.items()},
            "keep": {k: torch.tensor(v) for k, v in keep.items()},
            "cond": {
                "weather": c[:, 0].long(),
                "time_of_day": c[:, 1].long(),
                "intensity": c[:, 2],
                "scenario": torch.zeros(size, dtype=torch.long),
                "keep": torch.ones(size),
                "source_weather": own[:, 0],
                "source_time_of_day": own[:, 1],
            },
            "first_latent": f0,
            # samples with no target pixels: scored by `look_change` against `expect`
            "change": torch.tensor([i in change for i in range(size)]),
            "expect": expect,
        }


def camera_look(
    x: torch.Tensor, gain: torch.Tensor, gamma: float, saturation: float
) -> torch.Tensor:
    """(3, T, H, W) in [0, 1] through another camera's colour response (gain, gamma, saturation)."""
    y = (x * gain.view(3, 1, 1, 1)).clamp(0, 1) ** gamma
    grey = (0.299 * y[0] + 0.587 * y[1] + 0.114 * y[2]).unsqueeze(0)
    return (grey + saturation * (y - grey)).clamp(0, 1)


def grade_loss(
    model: WorldModel,
    batch: dict,
    device: torch.device,
    weight: float = 0.2,
    terms: tuple[str, ...] = tuple(LOOK_TERMS),
) -> torch.Tensor:
    """L1 between the graded source crop and the target crop; for the real samples asked for
    another condition (`change`), `weight` x L1 between their `look_change` and the expected
    one."""
    to = {k: v.to(device) for k, v in batch["cond"].items()}
    ctl = {k: v.to(device) for k, v in batch["controls"].items()}
    keep = {k: v.to(device) for k, v in batch["keep"].items()}
    z = model.normalize(batch["latents"].to(device))
    t = torch.zeros(z.shape[0], z.shape[2], device=device)
    coeffs = model(z, t, to, ctl, keep)  # (B, K, F, h, w)
    src = batch["source"].to(device)
    cfg = model.cfg
    out = apply_grade(src, coeffs, cfg.grade_bins, batch["first_latent"], cfg.grade_smooth)
    # per-sample terms summed over the batch / its size: every sample weighs the same
    per = (out - batch["target"].to(device)).abs().flatten(1).mean(1)  # (B,)
    change = batch.get("change", torch.zeros(len(per), dtype=torch.bool)).to(device)
    loss = per.masked_fill(change, 0.0).sum() / len(per)
    if bool(change.any()):
        bands = batch["expect"].shape[1]
        got = look_change(look_stats(out[change], bands), look_stats(src[change], bands))
        cols = [i for t in terms for i in LOOK_TERMS[t]]
        miss = (got - batch["expect"].to(device)[change])[..., cols].abs().flatten(1).mean(1)
        loss = loss + weight * miss.sum() / len(per)
    return loss


def build_model(
    cfg: GradeFitConfig, bank: GradeBank, device: torch.device
) -> tuple[WorldModel, set[str]]:
    """A grade model, its latent statistics from the bank, its trunk warm-started if asked;
    and the names of the parameters the warm start did not provide (none without one)."""
    wcfg: WFMConfig = get_config(cfg.model)
    if cfg.p_source_known > 0:
        wcfg = replace(wcfg, source_condition=True)
    if wcfg.head != "grade":
        raise ValueError(f"model {cfg.model!r} has head {wcfg.head!r}, fit trains 'grade' models")
    model, fresh = WorldModel(wcfg), set()
    if cfg.init_from:
        from amplify.wfm.checkpoint import load_wfm

        src = load_wfm(cfg.init_from).state_dict()
        own = model.state_dict()
        taken = {k: v for k, v in src.items() if k in own and own[k].shape == v.shape}
        model.load_state_dict(taken, strict=False)
        fresh = {k for k, _ in model.named_parameters() if k not in taken}
    mean, std = bank.synth.latent_stats()
    model.latent_mean.copy_(mean)
    model.latent_std.copy_(std)
    return model.to(device), fresh


def _lr(cfg: GradeFitConfig, step: int) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    p = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (cfg.min_lr_frac + (1 - cfg.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * p)))


def fit(
    bank: GradeBank,
    cfg: GradeFitConfig,
    out: str | Path,
    export: str | Path = "",
    device: str = "cpu",
    progress: Callable[[str], None] = print,
) -> dict:
    """Train (resuming from `out/last.pt` when present); export fp16 to `export` when given."""
    dev = torch.device(device)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model, fresh = build_model(cfg, bank, dev)
    named = list(model.named_parameters())
    groups = [{"params": [p for k, p in named if k not in fresh], "mult": 1.0},
              {"params": [p for k, p in named if k in fresh], "mult": cfg.fresh_lr_mult}]  # fmt: skip
    opt = torch.optim.AdamW([g for g in groups if g["params"]], lr=cfg.lr, weight_decay=0.0)
    sampler = GradeSampler(bank, cfg)
    step, history = 0, []
    last = out / "last.pt"
    if last.is_file():
        state = torch.load(str(last), weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sampler.g.set_state(state["rng"])
        step, history = state["step"], state["history"]
        progress(f"wfm fit: resumed at step {step}")
    t_start, run_loss, n_loss = time.perf_counter(), 0.0, 0

    def save() -> None:
        tmp = out / "last.pt.tmp"
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                    "rng": sampler.g.get_state(), "history": history}, str(tmp))  # fmt: skip
        tmp.replace(last)

    model.train()
    while step < cfg.steps:
        if cfg.max_minutes and time.perf_counter() - t_start > 60 * cfg.max_minutes:
            progress(f"wfm fit: time budget of {cfg.max_minutes} min reached at step {step}")
            break
        for gr in opt.param_groups:
            gr["lr"] = _lr(cfg, step) * gr["mult"]
        loss = grade_loss(model, sampler.batch(cfg.batch), dev, cfg.change_weight, cfg.change_terms)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        step += 1
        run_loss, n_loss = run_loss + float(loss.detach()), n_loss + 1
        if step % cfg.log_every == 0 or step == cfg.steps:
            el = time.perf_counter() - t_start
            history.append({"step": step, "loss": run_loss / n_loss, "seconds": round(el, 1)})
            progress(f"wfm fit: step {step}/{cfg.steps} loss {run_loss / n_loss:.4f} "
                     f"({el / 60:.1f} min)")  # fmt: skip
            run_loss, n_loss = 0.0, 0
        if step % cfg.ckpt_every == 0:
            save()
    save()
    result = {"steps": step, "history": history[-20:], "out": str(out)}
    if export:
        from amplify.wfm.checkpoint import save_wfm

        meta = {
            "tokenizer": bank.tokenizer,
            "training": {**asdict(cfg), "meta": None, "steps_done": step, "trainer": "amplify.wfm.fit"},
            "loss_history": history,
            **cfg.meta,
        }  # fmt: skip
        path = save_wfm(
            model.eval().cpu(), export, torch.float16, meta=json.loads(json.dumps(meta))
        )
        result["export"] = str(path)
        progress(f"wfm fit: exported {path}")
    return result


def build_bank(
    corpora: list[str | Path],
    real_items: list[tuple[str | Path, str]],
    tokenizer: str = "tok-small",
    ingest_cfg: object | None = None,
    max_windows: int = 0,
    real_windows: int = 8,
    progress: Callable[[str], None] = print,
) -> GradeBank:
    """Decode synthetic corpora (twins) and real clips (path, condition name), extract their
    controls and encode them with the tokenizer, frames kept. Needs PyAV (the ingest)."""
    from amplify.conditions import Condition
    from amplify.io.ingest import IngestConfig, list_inputs
    from amplify.tokenizer.checkpoint import load_tokenizer
    from amplify.tokenizer.checkpoint import resolve_checkpoint as resolve_tokenizer
    from amplify.wfm.checkpoint import sha256_file
    from amplify.wfm.data import encode_corpus, encode_latents, encode_real

    ing = ingest_cfg or IngestConfig(stride=16)
    tok_path = resolve_tokenizer(tokenizer)
    tok = load_tokenizer(tok_path)
    paths = [p for d in corpora for p in list_inputs(d)]
    synth = encode_corpus(paths, None, ing, max_windows=max_windows, progress=progress)
    synth = encode_latents(synth, tok, progress=progress, keep_frames=True)
    parts, conds = [], []
    for path, name in real_items:
        b = encode_real([Path(path)], None, ing, max_windows=real_windows, progress=progress)
        if b is None:
            continue
        cond = Condition.parse(name)
        parts.append(b)
        conds += [[*cond.ids[:2], 0.7]] * len(b.names)
    real = None
    if parts:
        real = PairBank(
            latents=None, names=[n for b in parts for n in b.names], conds=torch.zeros(1, 3),
            **{k: torch.cat([b.__dict__[k] for b in parts]) for k in BANK_KEYS if k != "latents"},
        )  # fmt: skip
        real = encode_latents(real, tok, progress=progress, keep_frames=True)
    return GradeBank(
        synth, real, torch.tensor(conds) if parts else None,
        tokenizer={"name": str(tokenizer), "sha256": sha256_file(tok_path)},
    )  # fmt: skip


@dataclass(frozen=True)
class GradeTrainConfig(GradeFitConfig):
    """`amplify train grade`: the grade-head world model (the default `wfm-grade`), trained in
    plain PyTorch on synthetic twins (`data`: corpora from `amplify synth`) and real footage
    (`real`: a folder with a train_real-style `manifest.json`; items of `split` are never used).
    The bank (frames, latents, controls) is built once and cached at `bank`; a rerun with the
    same `out` resumes. The export records the data, the real items' licences and this config."""

    tokenizer: str = "tok-small"
    data: tuple[str, ...] = ()
    real: str = ""
    split: str = ""  # validation split file (default: configs/splits/train_real_split.json)
    out: str = "runs/wfm-grade"
    bank: str = ""  # default: OUT/bank.pt
    export: str = ""
    device: str = "cpu"
    threads: int = 1
    max_windows: int = 2  # windows per synthetic scene
    real_windows: int = 8  # windows per real item, spread over the clip

    def __post_init__(self) -> None:
        from amplify.errors import ConfigError

        if isinstance(self.data, str):
            object.__setattr__(self, "data", (self.data,) if self.data else ())
        object.__setattr__(self, "data", tuple(self.data))
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1:
            raise ConfigError("threads", self.threads, "must be a positive integer")
        super().__post_init__()


def train(cfg: GradeTrainConfig, progress: Callable[[str], None] = print) -> dict:
    """Build (or load) the bank, train, export: the `amplify train grade` verb."""
    from amplify.errors import ConfigError

    if not cfg.data:
        raise ConfigError("data", list(cfg.data), "give at least one synthetic corpus folder")
    torch.set_num_threads(cfg.threads)
    real_items: list = []
    lic: list = []
    if cfg.real:
        from amplify.realdata import SPLIT_FILE, licences, train_items

        items = train_items(cfg.real, cfg.split or SPLIT_FILE)
        real_items = [(it.path, it.condition) for it in items]
        lic = licences(items)
    bank_path = Path(cfg.bank or Path(cfg.out) / "bank.pt")
    if bank_path.is_file():
        bank = GradeBank.load(bank_path)
        progress(f"wfm fit: bank loaded from {bank_path}")
    else:
        bank = build_bank(list(cfg.data), real_items, cfg.tokenizer, None, cfg.max_windows,
                          cfg.real_windows, progress)  # fmt: skip
        bank_path.parent.mkdir(parents=True, exist_ok=True)
        bank.save(bank_path)
    fit_keys = set(GradeFitConfig.__dataclass_fields__) - {"meta"}
    # What the bank holds (a cached bank may predate the config): its windows' source clips.
    used = sorted({n.rsplit("/w", 1)[0] for n in bank.real.names}) if bank.real else []
    meta = {
        "data": {"synthetic": list(cfg.data), "real": used,
                 "real_windows_per_item": cfg.real_windows},
        "licences": [x for x in lic if any(x["file"] in u for u in used)],
        "command": {k: v for k, v in asdict(cfg).items() if k != "meta"},
    }  # fmt: skip
    fcfg = GradeFitConfig(**{k: getattr(cfg, k) for k in fit_keys}, meta=meta)
    return fit(bank, fcfg, cfg.out, cfg.export, cfg.device, progress)
