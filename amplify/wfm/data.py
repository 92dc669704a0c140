"""Training pairs for the world model: the synthetic corpus pre-encoded once, sampled as pairs.

A synthetic scene is rendered under every condition (`scene_0007_rain_night.mp4` and its twins).
`encode_corpus` decodes each clip through the normal ingest, encodes every window with the
tokenizer (target latents) and extracts its controls once, into a `PairBank` of tensors (saved
with `torch.save` so a rerun or resume skips it). `PairSampler` then draws (scene window, source
condition A, target condition B) with the controls of A and the latents of B (B = A for identity
pairs), random latent-frame and spatial crops, and the dropout masks of every control.

Real footage (the team's own logs: any clip whose name is not a synthetic scene's) has no twin.
`encode_real` banks its windows the same way (one "condition", V = 1), and the sampler draws them
as reconstruction pairs with `p_real`: controls and source latents of the clip, target = the clip
itself, condition null (classifier-free guidance's "keep it as it is"), so the model keeps real
appearance rather than learning only the renderer's.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from amplify.conditions import CONDITION_NAMES, Condition
from amplify.errors import InputError
from amplify.wfm.config import ALL_CONTROLS, CONTROLS, SOURCE
from amplify.wfm.controls import extract_controls

_NAME = re.compile(r"scene_(\d+)_([a-z]+_[a-z]+)$")
TWIN_CONTROLS = ("edges", "blur")  # depend on the condition: stored per (window, condition)
SCENE_CONTROLS = ("layout", "depth")  # the same under every condition: stored per window


def parse_clip_name(path: str | Path) -> tuple[int, Condition] | None:
    """`scene_0007_rain_night.mp4` -> (7, Condition("rain", "night")); None for other names."""
    m = _NAME.match(Path(path).name.split(".")[0])
    if not m or m.group(2) not in CONDITION_NAMES:
        return None
    return int(m.group(1)), Condition.parse(m.group(2))


def group_twins(paths: Sequence[Path]) -> dict[str, dict[str, Path]]:
    """Synthetic clips by scene (`FOLDER/scene_0007`), then by condition name (`rain_night`)."""
    scenes: dict[str, dict[str, Path]] = {}
    for p in paths:
        parsed = parse_clip_name(p)
        if parsed is not None:
            key = f"{Path(p).parent}/scene_{parsed[0]:04d}"
            scenes.setdefault(key, {})[parsed[1].name] = p
    return scenes


def corpus_intensity(folder: Path, default: float = 0.7) -> float:
    """The intensity a synthetic corpus was rendered at (from its `_corpus.json`)."""
    import json

    idx = folder / "_corpus.json"
    if idx.is_file():
        return float(json.loads(idx.read_text())["config"].get("intensity", default))
    return default


def _gt_depth(path: Path, source_indices: np.ndarray) -> np.ndarray | None:
    gt = path.parent / "_gt" / (path.name.split(".")[0] + ".npz")
    if not gt.is_file():
        return None
    with np.load(gt) as z:
        if "depth" not in z.files:
            return None
        depth = z["depth"]
    idx = np.clip(source_indices, 0, depth.shape[0] - 1)
    return depth[idx]


@dataclass
class PairBank:
    """Latents and controls of every (scene window, condition) of a corpus (float16 tensors).

    latents: (S, V, C, n, h, w); edges, blur: (S, V, 4c, n, H/f, W/f); layout, depth:
    (S, 4c, n, H/f, W/f) with has_layout / has_depth (S,) marking real ones.
    conds: (V, 3) float (weather id, time-of-day id, intensity); intensity: (S,) the intensity
    each window's corpus was rendered at (corpora of several intensities mix; None in banks
    written before it existed: then the conds column holds it).
    frames: (S, V, T, H, W, 3) uint8 until `encode_latents` turns them into latents (the
    tokenizer-free part is built first, so a run can prepare it while the tokenizer trains).
    """

    latents: torch.Tensor | None
    edges: torch.Tensor
    blur: torch.Tensor
    layout: torch.Tensor
    depth: torch.Tensor
    has_layout: torch.Tensor
    has_depth: torch.Tensor
    conds: torch.Tensor
    names: list[str]  # "FOLDER/scene_0007/w0" per scene window
    frames: torch.Tensor | None = None
    intensity: torch.Tensor | None = None

    def save(self, path: Path) -> None:
        torch.save(self.__dict__, str(path))

    @classmethod
    def load(cls, path: Path) -> PairBank:
        return cls(**torch.load(str(path), weights_only=False))

    def latent_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel mean and std of the latents (for the model's normalisation)."""
        z = self.latents.float().transpose(0, 2).reshape(self.latents.shape[2], -1)
        return z.mean(1), z.std(1).clamp_min(1e-3)


@torch.no_grad()
def encode_latents(
    bank: PairBank,
    tokenizer: torch.nn.Module,
    batch: int = 4,
    progress=print,
    keep_frames: bool = False,
    device: str | torch.device = "cpu",
) -> PairBank:
    """Fill `bank.latents` from `bank.frames` with the tokenizer (and drop the frames, unless
    `keep_frames`: a grade model's targets are pixels)."""
    S, V, T, H, W, _ = bank.frames.shape
    flat = bank.frames.view(S * V, T, H, W, 3)
    lat = []
    for i in range(0, S * V, batch):
        x = flat[i : i + batch].to(device).permute(0, 4, 1, 2, 3).float() / 127.5 - 1
        lat.append(tokenizer.encode(x).half().cpu())  # (b, C, n, h, w)
        if (i // batch + 1) % 25 == 0:
            progress(f"wfm data: encoded {i + len(x)}/{S * V} clip windows")
    z = torch.cat(lat)
    bank.latents = z.view(S, V, *z.shape[1:])
    if not keep_frames:
        bank.frames = None
    return bank


@torch.no_grad()
def encode_corpus(
    paths: Sequence[Path],
    tokenizer: torch.nn.Module | None,
    ingest_cfg: object,
    conditions: Sequence[str] | None = None,
    max_windows: int = 0,
    progress=print,
) -> PairBank:
    """Decode, extract controls and encode (unless `tokenizer` is None: then the bank keeps the
    frames for `encode_latents`) every scene whose twins are all present."""
    from amplify.io.ingest import read_windows

    scenes = group_twins(paths)
    conds = sorted(conditions or {c for s in scenes.values() for c in s})
    per_scene = {k: v for k, v in sorted(scenes.items()) if all(c in v for c in conds)}
    if len(per_scene) < len(scenes):
        progress(f"wfm data: {len(scenes) - len(per_scene)} scenes lack a condition; skipped")
    frm, edg, blr, lay, dep, hl, hd, names, inten = [], [], [], [], [], [], [], [], []
    for i, (scene, clips) in enumerate(per_scene.items()):
        try:
            wins = {c: read_windows(clips[c], ingest_cfg) for c in conds}
        except InputError as e:
            progress(f"wfm data: scene {scene} skipped: {e}")
            continue
        n_win = min(len(w) for w in wins.values())
        if max_windows:
            n_win = min(n_win, max_windows)
        for w in range(n_win):
            fs, es, bs = [], [], []
            for c in conds:
                win = wins[c][w]
                T = 1 + (win.frames.shape[0] - 1) // 4 * 4
                frames = win.frames[:T]
                fs.append(torch.from_numpy(np.ascontiguousarray(frames)))
                ctl = extract_controls(frames, names=TWIN_CONTROLS)
                es.append(torch.from_numpy(ctl["edges"]).half())
                bs.append(torch.from_numpy(ctl["blur"]).half())
            first = wins[conds[0]][w]
            depth = _gt_depth(clips[conds[0]], first.source_indices[:T])
            ctl = extract_controls(frames, labels=first.labels, depth=depth, names=SCENE_CONTROLS)
            shape = {
                k: (4 * CONTROLS[k][0], 1 + (T - 1) // 4, *(s // CONTROLS[k][1] for s in frames.shape[1:3]))
                for k in SCENE_CONTROLS
            }  # fmt: skip
            lay.append(_or_zeros(ctl["layout"], shape["layout"]))
            dep.append(_or_zeros(ctl["depth"], shape["depth"]))
            hl.append(ctl["layout"] is not None)
            hd.append(ctl["depth"] is not None)
            frm.append(torch.stack(fs))
            edg.append(torch.stack(es))
            blr.append(torch.stack(bs))
            names.append(f"{scene}/w{w}")
            inten.append(corpus_intensity(Path(clips[conds[0]]).parent))
        progress(f"wfm data: decoded scene {i + 1}/{len(per_scene)} ({len(names)} windows)")
    if not frm:
        raise ValueError("no complete set of twins found to build training pairs from")
    cond_t = torch.tensor(
        [[*Condition.parse(c).ids[:2], inten[0]] for c in conds]
    )  # (V, 3); the intensity column is overridden per window by `intensity`
    bank = PairBank(
        latents=None, frames=torch.stack(frm), edges=torch.stack(edg), blur=torch.stack(blr),
        layout=torch.stack(lay), depth=torch.stack(dep), has_layout=torch.tensor(hl),
        has_depth=torch.tensor(hd), conds=cond_t, names=names, intensity=torch.tensor(inten),
    )  # fmt: skip
    return bank if tokenizer is None else encode_latents(bank, tokenizer, progress=progress)


def is_synthetic(path: str | Path) -> bool:
    return parse_clip_name(path) is not None


@torch.no_grad()
def encode_real(
    paths: Sequence[Path],
    tokenizer: torch.nn.Module | None,
    ingest_cfg: object,
    max_windows: int = 0,
    progress=print,
) -> PairBank | None:
    """Windows of real clips (no twins) as a one-condition `PairBank` (conds: the null row).

    Only full windows are kept (one shape for the bank); labels (sidecars) give the layout
    control; there is no depth. Unreadable clips are reported and skipped. None if no window."""
    from amplify.io.ingest import read_windows

    T = 1 + (ingest_cfg.window - 1) // 4 * 4  # as the twins: the tokenizer's 1 + 4k frames
    frm, edg, blr, lay, dep, hl, hd, names = [], [], [], [], [], [], [], []
    for i, path in enumerate(paths):
        try:
            wins = [w for w in read_windows(path, ingest_cfg) if len(w.frames) >= T]
        except InputError as e:
            progress(f"wfm data: real clip {path} skipped: {e}")
            continue
        if max_windows and len(wins) > max_windows:  # spread over the clip, not its first seconds
            wins = [wins[k] for k in np.linspace(0, len(wins) - 1, max_windows).round().astype(int)]
        for j, win in enumerate(wins):
            frames = win.frames[:T]
            ctl = extract_controls(frames, labels=win.labels, names=(*TWIN_CONTROLS, "layout"))
            n = 1 + (T - 1) // 4
            shape = (4 * CONTROLS["layout"][0], n, *(x // CONTROLS["layout"][1]
                                                     for x in frames.shape[1:3]))  # fmt: skip
            dshape = (4 * CONTROLS["depth"][0], n, *(x // CONTROLS["depth"][1]
                                                     for x in frames.shape[1:3]))  # fmt: skip
            frm.append(torch.from_numpy(np.ascontiguousarray(frames))[None])
            edg.append(torch.from_numpy(ctl["edges"]).half()[None])
            blr.append(torch.from_numpy(ctl["blur"]).half()[None])
            lay.append(_or_zeros(ctl["layout"], shape))
            dep.append(torch.zeros(dshape, dtype=torch.float16))
            hl.append(ctl["layout"] is not None)
            hd.append(False)
            names.append(f"{path}/w{j}")
        progress(f"wfm data: real clip {i + 1}/{len(paths)} ({len(names)} windows)")
    if not frm:
        return None
    bank = PairBank(
        latents=None, frames=torch.stack(frm), edges=torch.stack(edg), blur=torch.stack(blr),
        layout=torch.stack(lay), depth=torch.stack(dep), has_layout=torch.tensor(hl),
        has_depth=torch.tensor(hd), conds=torch.zeros(1, 3), names=names,
    )  # fmt: skip
    return bank if tokenizer is None else encode_latents(bank, tokenizer, progress=progress)


def _or_zeros(x: np.ndarray | None, shape: tuple[int, ...]) -> torch.Tensor:
    return torch.zeros(shape, dtype=torch.float16) if x is None else torch.from_numpy(x).half()


@dataclass(frozen=True)
class PairSpec:
    """How pairs are drawn: crop sizes (latent frames, latent cells), and dropout rates."""

    frames: int = 3  # latent frames per sample (<= the bank's)
    crop_h: int = 16  # latent cells, multiples of the patch
    crop_w: int = 16
    p_identity: float = 0.15  # target condition == source condition
    p_uncond: float = 0.1  # classifier-free guidance: null condition
    p_drop: float = 0.2  # each control, independently
    p_context: float = 0.25  # first k latent frames clean (chunked-generation context)
    p_real: float = 0.2  # a real clip reconstructed from itself (when real clips are banked)
    patch: int = 2


def _crop(t: torch.Tensor, box: tuple[int, int, int], sp: PairSpec, cell: int) -> torch.Tensor:
    """(c, n, h*cell, w*cell) -> the (frames, crop_h, crop_w) latent box at `box`, in cells."""
    f0, y0, x0 = box
    ys, xs = slice(y0 * cell, (y0 + sp.crop_h) * cell), slice(x0 * cell, (x0 + sp.crop_w) * cell)
    return t[:, f0 : f0 + sp.frames, ys, xs]


class PairSampler:
    """Random training batches from a `PairBank` (tensors in float32)."""

    def __init__(
        self, bank: PairBank, spec: PairSpec, seed: int, real: PairBank | None = None
    ) -> None:
        self.bank, self.spec, self.real = bank, spec, real
        self.g = torch.Generator().manual_seed(int(seed))
        for b in (bank, real) if real is not None else (bank,):
            S, V, C, n, h, w = b.latents.shape
            if spec.frames > n or spec.crop_h > h or spec.crop_w > w:
                raise ValueError(f"crop {spec} larger than the bank's latents {(n, h, w)}")

    def _rand(self, hi: int) -> int:
        return int(torch.randint(hi, (1,), generator=self.g))

    def _u(self) -> float:
        return float(torch.rand((), generator=self.g))

    def batch(self, size: int) -> dict:
        sp = self.spec
        out: dict[str, list] = {k: [] for k in ("x0", *ALL_CONTROLS)}
        keep = {k: [] for k in ALL_CONTROLS}
        cond, n_ctx = [], []
        for _ in range(size):
            if self.real is not None and self._u() < sp.p_real:
                # A real clip reconstructed from its own controls, condition null.
                b = self.real
                S, V, C, n, h, w = b.latents.shape
                s, a, tgt, uncond = self._rand(S), 0, 0, True
            else:
                b = self.bank
                S, V, C, n, h, w = b.latents.shape
                s, a = self._rand(S), self._rand(V)
                same = self._u() < sp.p_identity or V == 1
                tgt = a if same else (a + 1 + self._rand(V - 1)) % V
                uncond = self._u() < sp.p_uncond
            f0 = self._rand(n - sp.frames + 1)
            y0 = self._rand((h - sp.crop_h) // sp.patch + 1) * sp.patch
            x0 = self._rand((w - sp.crop_w) // sp.patch + 1) * sp.patch

            box = (f0, y0, x0)
            out["x0"].append(_crop(b.latents[s, tgt], box, sp, 1))
            out[SOURCE].append(_crop(b.latents[s, a], box, sp, 1))  # the twin under A
            out["edges"].append(_crop(b.edges[s, a], box, sp, 8 // CONTROLS["edges"][1]))
            out["blur"].append(_crop(b.blur[s, a], box, sp, 8 // CONTROLS["blur"][1]))
            out["layout"].append(_crop(b.layout[s], box, sp, 8 // CONTROLS["layout"][1]))
            out["depth"].append(_crop(b.depth[s], box, sp, 8 // CONTROLS["depth"][1]))
            avail = {"layout": bool(b.has_layout[s]), "depth": bool(b.has_depth[s])}
            for k in ALL_CONTROLS:
                keep[k].append(float(avail.get(k, True) and self._u() >= sp.p_drop))
            c = b.conds[tgt].tolist()
            if b.intensity is not None:
                c[2] = float(b.intensity[s])
            cond.append([*c, float(not uncond)])
            ctx = 1 + self._rand(sp.frames - 1) if sp.frames > 1 and self._u() < sp.p_context else 0
            n_ctx.append(ctx)
        c = torch.tensor(cond)  # (B, 4)
        return {
            "x0": torch.stack(out["x0"]).float(),  # (B, C, F, ch, cw)
            "controls": {k: torch.stack(out[k]).float() for k in ALL_CONTROLS},
            "keep": {k: torch.tensor(v) for k, v in keep.items()},  # (B,)
            "cond": {
                "weather": c[:, 0].long(),
                "time_of_day": c[:, 1].long(),
                "intensity": c[:, 2],
                "scenario": torch.zeros(size, dtype=torch.long),
                "keep": c[:, 3],
            },
            "context": torch.tensor(n_ctx),  # (B,) clean leading latent frames
        }
