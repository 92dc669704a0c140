"""Training and evaluation of the scenario painter (`painter.py`) on synthetic twins, plain PyTorch.

    amplify train painter                       # configs/train_painter.yaml
    amplify train painter steps=200 edits=40    # a smoke run

1. Pairs (`render_pair`): a scene (`sample_scene`), a window of it as a `World`, a random template
   (`sample_spec`, skipped on `NothingToEdit`), `render_edit`; a random condition (intensity
   0.3-1.0). source = the scene shaded under it, twin = the edited scene's G-buffer shaded under
   it (same seed: same rain, same lamps), so they differ only where agents changed. With
   probability `p_reverse` the pair is turned round (`reverse_pair`): the twin is the source, the
   agents the edit removed are inserted and the ones it added are painted over - removal training
   for every insertion template and insertion training for `remove_agent`.
2. Bank (`build_bank`): per pair, `frames_per_edit` frames with a non-empty region, each a
   `store` px square crop around the region (packed uint8 / fp16), cached to `out/bank.npz`.
3. Fit (`fit`): random `crop` px sub-crops (and horizontal flips), L1 inside the region plus an L1
   of the image gradients inside it; AdamW, warmup + cosine; progress lines; `out/last.pt` resumes.
4. Export: fp16 weights to `checkpoints/wfm/painter.safetensors`, the command, config, data and
   the held-out figures (`evaluate`: seeds from `eval_seed`, never trained on) in `painter.json`.
Training seeds start at `seed` (30 000); the evaluations use 0-999, 20 000-20 999 and 95 000+.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from amplify.conditions import Condition, all_conditions, scenario_id
from amplify.errors import ConfigError
from amplify.eval.metrics import masked_psnr, masked_ssim
from amplify.labels import ClipLabels
from amplify.scenarios.edit import Edit, EditMaps, NothingToEdit, box_mask, render_edit
from amplify.scenarios.library import TEMPLATES, sample_spec
from amplify.scenarios.world import World
from amplify.synth.classes import AGENT_CATEGORIES
from amplify.synth.raster import GBuffer, rasterize_clip
from amplify.synth.render import clip_boxes
from amplify.synth.scene import sample_scene
from amplify.synth.shade import shade_clip
from amplify.wfm.painter import (
    Painter,
    PainterConfig,
    copy_paste,
    flat_box,
    paint,
    painter_inputs,
)

FORBIDDEN_SEEDS = ((0, 999), (20_000, 20_999))  # the evaluations' scenes


@dataclass(frozen=True)
class PainterTrainConfig:
    """`amplify train painter`: the scenario painter on synthetic twins (plain PyTorch, CPU)."""

    out: str = "out/painter"  # bank.npz, last.pt, train.log
    export: str = "checkpoints/wfm/painter"  # PATH.safetensors (fp16) + PATH.json
    widths: list[int] = field(default_factory=lambda: [24, 48, 96, 128])
    # 1. Pairs
    seed: int = 30_000  # scene seeds seed .. seed + edits - 1
    edits: int = 450
    templates: list[str] = field(default_factory=lambda: list(TEMPLATES))
    conds_per_edit: int = 2
    intensity_min: float = 0.3
    intensity_max: float = 1.0
    p_reverse: float = 0.3
    scene_s: float = 4.0  # scene length; the 2 s window starts in [0, scene_s - 2]
    frames: int = 17
    width: int = 256
    height: int = 128
    fps: float = 8.0
    # 2. Bank
    frames_per_edit: int = 3
    store: int = 80
    # 3. Fit
    crop: int = 64
    steps: int = 2600
    batch: int = 16
    lr: float = 1.5e-3
    warmup: int = 50
    min_lr_frac: float = 0.05
    grad_weight: float = 1.0
    # L1 on each crop's inserted-agent pixels, normalised per crop: a 5 px piece of debris
    # weighs as much as a truck (in the region-wide L1 it is a rounding error). 0 = off.
    insert_weight: float = 0.0
    grad_clip: float = 1.0
    init_from: str = ""  # a painter .safetensors to start from (an older 6-channel head is padded)
    # bank.npz files of earlier runs (other seeds or templates) trained on together with this one
    extra_banks: list[str] = field(default_factory=list)
    bank_only: bool = False  # build and cache out/bank.npz, then stop (a bank for extra_banks)
    max_minutes: float = 22.0  # stop (and export) after this much fitting time; 0 = no limit
    log_every: int = 25
    ckpt_every: int = 100
    threads: int = 1
    # 4. Held-out evaluation
    eval_seed: int = 95_000
    eval_edits: int = 40

    def __post_init__(self) -> None:
        for k in ("edits", "steps", "batch", "frames_per_edit", "conds_per_edit"):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(k, v, "must be a positive integer")
        if self.crop % 8 or self.crop > self.store:
            raise ConfigError(
                "crop", self.crop, f"must be a multiple of 8 and <= store {self.store}"
            )
        for lo, hi in FORBIDDEN_SEEDS:
            if self.seed <= hi and self.seed + self.edits * 8 > lo:
                raise ConfigError("seed", self.seed, f"training scenes may not use {lo}-{hi}")
        unknown = set(self.templates) - set(TEMPLATES)
        if unknown:
            raise ConfigError("templates", sorted(unknown), f"must be in {list(TEMPLATES)}")


# 1. Pairs -----------------------------------------------------------------------------------


@dataclass
class Pair:
    source: np.ndarray  # (T, H, W, 3) uint8
    twin: np.ndarray  # (T, H, W, 3) uint8: the target
    maps: EditMaps
    scenario: int  # scenario_id
    template: str
    condition: Condition
    seed: int
    source_g: GBuffer  # the source's G-buffer (what `reverse_pair` reads)
    world: World
    edit: Edit


def render_pairs(
    seed: int,
    template: str,
    conds: list[Condition],
    frames: int = 17,
    width: int = 256,
    height: int = 128,
    fps: float = 8.0,
    start_s: float = 0.0,
    scene_s: float = 4.0,
) -> list[Pair]:
    """One synthetic edit of scene `seed` by `template` (params drawn with `seed`), shaded under
    each of `conds` (one geometry pass); raises `NothingToEdit` when the window has nothing the
    template needs."""
    scene = sample_scene(seed, scene_s)
    g = rasterize_clip(scene, frames, width, height, fps, start_s)
    labels = ClipLabels(width, height, AGENT_CATEGORIES, clip_boxes(g, scene), fps=float(fps))
    world = World.from_scene(scene, frames, width, height, fps, start_s, labels)
    edit = TEMPLATES[template].build(sample_spec(template, seed).params, world)
    maps = render_edit(world, edit)
    sid = scenario_id(template)
    return [
        Pair(
            shade_clip(g, c, scene.seed),
            shade_clip(maps.gbuffer, c, scene.seed),
            maps,
            sid,
            template,
            c,
            seed,
            g,
            world,
            edit,
        )  # fmt: skip
        for c in conds
    ]


def render_pair(seed: int, template: str, cond: Condition, **kw) -> Pair:
    """`render_pairs` under one condition."""
    return render_pairs(seed, template, [cond], **kw)[0]


def reverse_pair(p: Pair) -> Pair:
    """The edit turned round: the twin is the source; the agents the edit took away (removed or
    replaced) are inserted from the source G-buffer and the ones it placed are painted over."""
    g, m = p.source_g, p.maps
    insert = np.isin(g.instance, np.array(sorted(p.edit.gone_ids), np.int32))
    remove = box_mask(m.labels, set(p.edit.new_ids), *insert.shape)
    lut = np.zeros(int(g.instance.max()) + 1, np.uint8)
    for a in p.world.scene.agents:
        if a.track_id < len(lut):
            lut[a.track_id] = 1 + AGENT_CATEGORIES.index(a.category)
    rev = EditMaps(
        insert=insert,
        remove=remove,
        albedo=np.where(insert[..., None], g.albedo, 0).astype(np.float32),
        normal=np.where(insert[..., None], g.normal, 0).astype(np.float32),
        depth=np.where(insert, g.depth, 0).astype(np.float32),
        category=np.where(insert, lut[g.instance], 0).astype(np.uint8),
        emissive=np.where(insert, g.emissive, 0).astype(np.uint8),
        labels=p.world.labels,
        gbuffer=g,
    )
    sid = scenario_id("add_traffic" if p.template == "remove_agent" else "remove_agent")
    return replace(p, source=p.twin, twin=p.source, maps=rev, scenario=sid, source_g=m.gbuffer)


def random_condition(rng: np.random.Generator, cfg: PainterTrainConfig) -> Condition:
    c = all_conditions()[int(rng.integers(len(all_conditions())))]
    return replace(c, intensity=float(rng.uniform(cfg.intensity_min, cfg.intensity_max)))


# 2. Bank ------------------------------------------------------------------------------------

# Packed per pixel: source 3, twin 3, albedo 3 (x255), normal 3 (x127), inverse depth... as uint8
# / int8, masks as bits: 16 bytes a pixel, 100 KB an 80 px crop.
BANK_KEYS = ("source", "twin", "albedo", "normal", "depth", "insert", "remove", "category", "emit")


def crops_of(p: Pair, n: int, size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Up to `n` crops of `size` px around the region of frames drawn from those that have one."""
    m = p.maps
    T, H, W = m.insert.shape
    region = m.region
    frames = np.flatnonzero(region.reshape(T, -1).sum(1) >= 16)
    out: dict[str, list] = {k: [] for k in BANK_KEYS + ("scenario",)}
    if len(frames) == 0:
        return {k: np.zeros((0,)) for k in out}
    for t in rng.choice(frames, min(n, len(frames)), replace=False):
        ys, xs = np.nonzero(region[t])
        k = int(rng.integers(len(ys)))  # centre on a region pixel: big regions get varied crops
        cy = int(np.clip(ys[k] + rng.integers(-8, 9), size // 2, H - size // 2))
        cx = int(np.clip(xs[k] + rng.integers(-8, 9), size // 2, W - size // 2))
        sl = (t, slice(cy - size // 2, cy + size // 2), slice(cx - size // 2, cx + size // 2))
        out["source"].append(p.source[sl])
        out["twin"].append(p.twin[sl])
        out["albedo"].append(np.round(m.albedo[sl] * 255).astype(np.uint8))
        out["normal"].append(np.round(m.normal[sl] * 127).astype(np.int8))
        out["depth"].append(m.depth[sl].astype(np.float16))
        out["insert"].append(m.insert[sl])
        out["remove"].append(m.remove[sl])
        out["category"].append(m.category[sl])
        out["emit"].append(m.emissive[sl])
        out["scenario"].append(p.scenario)
    return {k: np.stack(v) for k, v in out.items()}


def build_bank(cfg: PainterTrainConfig, progress: Callable[[str], None] = print) -> dict:
    """Render `cfg.edits` edits (each under `conds_per_edit` conditions) and crop them."""
    rng = np.random.default_rng(cfg.seed)
    parts: list[dict] = []
    counts: dict[str, int] = {}
    seed, done, t0 = cfg.seed, 0, time.perf_counter()
    while done < cfg.edits:
        seed += 1
        template = cfg.templates[int(rng.integers(len(cfg.templates)))]
        start = float(rng.uniform(0.0, max(0.0, cfg.scene_s - (cfg.frames - 1) / cfg.fps)))
        conds = [random_condition(rng, cfg) for _ in range(cfg.conds_per_edit)]
        try:
            pairs = render_pairs(
                seed, template, conds, cfg.frames, cfg.width, cfg.height, cfg.fps, start,
                cfg.scene_s,
            )  # fmt: skip
        except NothingToEdit:
            continue
        for p in pairs:
            if rng.random() < cfg.p_reverse:
                p = reverse_pair(p)
            crops = crops_of(p, cfg.frames_per_edit, cfg.store, rng)
            if len(crops["source"]):
                parts.append(crops)
        done += 1
        counts[template] = counts.get(template, 0) + 1
        if done % 50 == 0 and done:
            progress(f"painter bank: {done}/{cfg.edits} edits ({time.perf_counter() - t0:.0f} s)")
    bank = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    bank["seeds"] = np.array([cfg.seed + 1, seed])
    progress(f"painter bank: {len(bank['source'])} crops from {done} edits, seeds {cfg.seed + 1}-"
             f"{seed}, {time.perf_counter() - t0:.0f} s")  # fmt: skip
    bank["template_counts"] = np.array([counts.get(t, 0) for t in TEMPLATES])
    return bank


def bank_inputs(
    bank: dict, idx: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x (B, 21, S, S), twin (B, 3, S, S) in [0, 1], region (B, 1, S, S), insert (B, 1, S, S))
    of bank crops `idx`."""
    t = torch.from_numpy
    ins, rem = t(bank["insert"][idx]), t(bank["remove"][idx])
    x = painter_inputs(
        t(bank["source"][idx]), ins, rem,
        t(bank["albedo"][idx]).float() / 255.0, t(bank["normal"][idx]).float() / 127.0,
        t(bank["depth"][idx]).float(), t(bank["category"][idx]), t(bank["emit"][idx]),
    )  # fmt: skip
    twin = t(bank["twin"][idx]).permute(0, 3, 1, 2).float() / 255.0
    return x, twin, (ins | rem)[:, None].float(), ins[:, None].float()


# 3. Fit -------------------------------------------------------------------------------------


def sample_batch(bank: dict, cfg: PainterTrainConfig, rng: np.random.Generator) -> tuple:
    """A batch of random `crop` px sub-crops, half flipped left-right (normal x negated)."""
    idx = rng.integers(len(bank["source"]), size=cfg.batch)
    x, twin, region, insert = bank_inputs(bank, idx)
    S, c = x.shape[-1], cfg.crop
    oy, ox = (int(v) for v in rng.integers(0, S - c + 1, size=2))
    x, twin, region, insert = (a[..., oy : oy + c, ox : ox + c] for a in (x, twin, region, insert))
    if rng.random() < 0.5:
        x, twin, region, insert = (a.flip(-1) for a in (x, twin, region, insert))
        x[:, 8] = -x[:, 8]  # normal x
    sid = torch.from_numpy(bank["scenario"][idx]).long()
    return x, sid, twin, region, insert


def paint_loss(
    pred: torch.Tensor,
    twin: torch.Tensor,
    region: torch.Tensor,
    grad_w: float,
    insert: torch.Tensor | None = None,
    insert_w: float = 0.0,
):
    """L1 inside the region + L1 of horizontal and vertical differences inside it (+ `insert_w`
    x the L1 on each crop's `insert` pixels, normalised per crop, averaged over the crops that
    have any). Returns (loss, region L1)."""
    n = region.sum().clamp_min(1.0)
    l1 = ((pred - twin).abs() * region).sum() / (3 * n)
    extra = 0.0
    if insert is not None and insert_w > 0:
        per = insert.sum((1, 2, 3))
        has = per > 0
        if bool(has.any()):
            e = ((pred - twin).abs() * insert).sum((1, 2, 3)) / (3 * per.clamp_min(1.0))
            extra = insert_w * e[has].mean()

    def dif(a: torch.Tensor, axis: int) -> torch.Tensor:
        return a.diff(dim=axis)

    g = 0.0
    for axis in (-1, -2):
        m = region.narrow(axis, 0, region.shape[axis] - 1) * region.narrow(
            axis, 1, region.shape[axis] - 1
        )
        g = g + ((dif(pred, axis) - dif(twin, axis)).abs() * m).sum() / (3 * m.sum().clamp_min(1.0))
    return l1 + grad_w * g + extra, l1


def _lr(cfg: PainterTrainConfig, step: int) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    p = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (cfg.min_lr_frac + (1 - cfg.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * p)))


def fit(
    model: Painter,
    bank: dict,
    cfg: PainterTrainConfig,
    progress: Callable[[str], None] = print,
    resume: Path | None = None,
) -> dict:
    """Train `model` on `bank`; checkpoints to `resume` (and resumes from it). Returns history."""
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    step, hist, spent = 0, [], 0.0
    if resume is not None and resume.is_file():
        st = torch.load(resume, weights_only=False)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        step, hist, spent = st["step"], st["hist"], st["spent"]
        progress(f"painter: resumed from {resume} at step {step}")
    rng = np.random.default_rng(cfg.seed + step)
    t0 = time.perf_counter() - spent
    model.train()
    run = []
    while step < cfg.steps:
        if cfg.max_minutes and time.perf_counter() - t0 > cfg.max_minutes * 60:
            progress(f"painter: time limit at step {step}")
            break
        for g in opt.param_groups:
            g["lr"] = _lr(cfg, step)
        x, sid, twin, region, insert = sample_batch(bank, cfg, rng)
        loss, l1 = paint_loss(model(x, sid), twin, region, cfg.grad_weight, insert,
                              cfg.insert_weight)  # fmt: skip
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        step += 1
        run.append((loss.item(), l1.item()))
        if step % cfg.log_every == 0 or step == cfg.steps:
            lo, l1m = np.mean(run, 0)
            run = []
            hist.append({"step": step, "loss": round(float(lo), 5), "l1": round(float(l1m), 5)})
            progress(f"painter step {step}/{cfg.steps} loss {lo:.4f} l1 {l1m:.4f} "
                     f"lr {_lr(cfg, step - 1):.2e} {time.perf_counter() - t0:.0f} s")  # fmt: skip
        if resume is not None and (step % cfg.ckpt_every == 0 or step == cfg.steps):
            resume.parent.mkdir(parents=True, exist_ok=True)
            spent = time.perf_counter() - t0
            st = {"model": model.state_dict(), "opt": opt.state_dict(), "step": step}
            torch.save({**st, "hist": hist, "spent": spent}, resume)
    model.eval()
    return {"steps": step, "history": hist, "fit_s": round(time.perf_counter() - t0, 1)}


# 4. Held-out evaluation ----------------------------------------------------------------------


def held_out_pairs(seed: int, n: int, cfg: PainterTrainConfig = PainterTrainConfig()):
    """`n` edits of scenes `seed`, `seed + 1`, ...: templates and conditions in turn (intensity
    0.7); a scene with nothing to edit for its template moves on to the next scene."""
    conds, names = all_conditions(), list(TEMPLATES)
    k, s = 0, seed
    while k < n:
        try:
            p = render_pairs(
                s, names[k % len(names)], [conds[k % len(conds)]], cfg.frames, cfg.width,
                cfg.height, cfg.fps, 0.0, cfg.scene_s,
            )[0]  # fmt: skip
        except NothingToEdit:
            s += 1
            continue
        yield p
        k, s = k + 1, s + 1


def score_pair(model: Painter, p: Pair) -> dict:
    """In-insert SSIM / PSNR vs the twin (painter, copy-paste, flat box), PSNR over the removed-
    only pixels, blur SSIM outside the region and its bit-identity."""
    from amplify.eval.metrics import blur_ssim

    out = paint(model, p.source, p.maps, p.scenario)
    region = p.maps.region
    rem = p.maps.remove & ~p.maps.insert
    row = {"template": p.template, "condition": p.condition.name, "seed": p.seed}
    for name, img in (
        ("painter", out),
        ("copy_paste", copy_paste(p.source, p.twin, p.maps)),
        ("flat_box", flat_box(p.source, p.twin, p.maps)),
    ):
        row[f"{name}_ssim"] = masked_ssim(img, p.twin, p.maps.insert)
        row[f"{name}_psnr"] = masked_psnr(img, p.twin, p.maps.insert)
        row[f"{name}_remove_psnr"] = masked_psnr(img, p.twin, rem)
    row["outside_identical"] = bool((out[~region] == p.source[~region]).all())
    row["outside_blur_ssim"] = blur_ssim(np.where(region[..., None], p.source, out), p.source)
    return row


def evaluate(model: Painter, cfg: PainterTrainConfig, progress=print) -> dict:
    """Scores on `eval_edits` held-out edits, per template and overall (nan-aware means)."""
    rows = [score_pair(model, p) for p in held_out_pairs(cfg.eval_seed, cfg.eval_edits, cfg)]
    keys = [k for k in rows[0] if k.endswith(("_ssim", "_psnr"))]

    def mean(rs: list[dict]) -> dict:
        out = {}
        for k in keys:
            v = np.array([r[k] for r in rs], float)
            v = v[np.isfinite(v)]
            out[k] = round(float(v.mean()), 4) if len(v) else None
        return out | {"n": len(rs)}

    table = {t: mean([r for r in rows if r["template"] == t]) for t in TEMPLATES}
    res = {
        "seeds": [cfg.eval_seed, max(r["seed"] for r in rows)],
        "edits": len(rows),
        "all": mean(rows),
        "per_template": table,
        "outside_identical": all(r["outside_identical"] for r in rows),
    }
    for t, m in table.items():
        progress(f"  {t:20s} " + " ".join(f"{k} {m[k]}" for k in keys if "ssim" in k))
    return res


def warm_start(model: Painter, path: str) -> None:
    """Load weights from `path`; a head with fewer output channels (the first painter predicted
    gain and bias only) fills the first channels, the rest (the residual) stay zero."""
    from safetensors.torch import load_file

    state = {k: v.float() for k, v in load_file(path).items()}
    own = model.state_dict()
    for k in ("head.weight", "head.bias"):
        if k in state and state[k].shape != own[k].shape:
            w = torch.zeros_like(own[k])
            w[: state[k].shape[0]] = state[k]
            state[k] = w
    model.load_state_dict(state)


# Entry point --------------------------------------------------------------------------------


def join_banks(bank: dict, paths: list[str], cfg: PainterTrainConfig) -> tuple[dict, list[dict]]:
    """`bank` with the crops of the bank files `paths` appended (template counts summed). A bank
    whose scene seeds reach an evaluation's (FORBIDDEN_SEEDS, or the held-out `eval_seed` range)
    is refused."""
    out = {k: [v] for k, v in bank.items() if k not in ("key", "seeds", "template_counts")}
    counts = bank["template_counts"].copy()
    parts = []
    held_out = (cfg.eval_seed, cfg.eval_seed + cfg.eval_edits * 8)
    for p in paths:
        if not Path(p).is_file():
            raise ConfigError("extra_banks", p, "no such bank file")
        z = dict(np.load(p))
        lo, hi = (int(v) for v in z["seeds"])
        for a, b in (*FORBIDDEN_SEEDS, held_out):
            if lo <= b and hi >= a:
                raise ConfigError("extra_banks", p, f"its scene seeds {lo}-{hi} reach {a}-{b}")
        for k in out:
            out[k].append(z[k])
        counts = counts + z["template_counts"]
        parts.append({"bank": str(p), "seeds": [lo, hi], "crops": int(len(z["source"]))})
    joined = {k: np.concatenate(v) for k, v in out.items()}
    joined["seeds"], joined["template_counts"] = bank["seeds"], counts
    return joined, parts


def train(cfg: PainterTrainConfig, progress: Callable[[str], None] = print) -> dict:
    """Bank (cached), fit (resumable), export fp16, evaluate held-out, write the JSON."""
    from amplify.checkpoints import save_checkpoint

    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    # 1-2. Bank, cached under out/ (keyed by the fields that shape it).
    key = repr({k: v for k, v in asdict(cfg).items() if k in BANK_FIELDS})
    cache = out / "bank.npz"
    if cache.is_file() and str(np.load(cache)["key"]) == key:
        bank = dict(np.load(cache))
        progress(f"painter: bank from {cache} ({len(bank['source'])} crops)")
    else:
        bank = build_bank(cfg, progress)
        np.savez(cache, key=key, **bank)
    if cfg.bank_only:
        progress(f"painter: bank only: {cache} ({len(bank['source'])} crops)")
        return {"bank": str(cache), "crops": int(len(bank["source"]))}
    parts = [{"bank": str(cache), "seeds": [int(v) for v in bank["seeds"]],
              "crops": int(len(bank["source"]))}]  # fmt: skip
    if cfg.extra_banks:
        bank, more = join_banks(bank, cfg.extra_banks, cfg)
        parts += more
        progress(f"painter: {len(bank['source'])} crops with {len(more)} extra bank(s)")
    bank_s = time.perf_counter() - t0
    # 3. Fit.
    model = Painter(PainterConfig(widths=tuple(cfg.widths)))
    if cfg.init_from:
        warm_start(model, cfg.init_from)
        progress(f"painter: started from {cfg.init_from}")
    n_params = sum(p.numel() for p in model.parameters())
    progress(f"painter: {n_params / 1e6:.2f} M parameters")
    result = fit(model, bank, cfg, progress, resume=out / "last.pt")
    # 4. Held-out figures and export.
    progress("painter: held-out evaluation")
    t1 = time.perf_counter()
    figures = evaluate(model, cfg, progress)
    counts = dict(zip(TEMPLATES, (int(v) for v in bank["template_counts"]), strict=True))
    meta = {
        "command": "amplify train painter " + " ".join(sys.argv[3:]),
        "train_config": asdict(cfg),
        "parameters": n_params,
        "data": {
            "scene_seeds": [int(v) for v in bank["seeds"]],
            "banks": parts,
            "edits_per_template": counts,
            "crops": int(len(bank["source"])),
            "conditions": "all 12 weather x time of day, intensity uniform "
            f"{cfg.intensity_min}-{cfg.intensity_max}, {cfg.conds_per_edit} per edit",
            "reversed_fraction": cfg.p_reverse,
        },
        "training": {"bank_s": round(bank_s, 1), **result, "threads": cfg.threads},
        "held_out": figures | {"eval_s": round(time.perf_counter() - t1, 1)},
    }
    path = save_checkpoint(model, cfg.export, torch.float16, meta)
    progress(f"painter: wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")
    return meta


BANK_FIELDS = (
    "seed", "edits", "templates", "conds_per_edit", "intensity_min", "intensity_max", "p_reverse",
    "scene_s", "frames", "width", "height", "fps", "frames_per_edit", "store",
)  # fmt: skip
