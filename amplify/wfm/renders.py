"""A grade model's training bank made in memory: synthetic twins rendered on the spot, real
windows given as arrays. No PyAV and no files: what a GPU machine builds for itself, since a
bank of decoded frames (GBs) cannot travel with the run (64 MiB) but a renderer seed can.

`bank_from_renders` renders `scenes` scenes (seeds `scene_seed(seed, i)`) under every weather x
time of day with the project's renderer (uncompressed frames, where `build_bank` decodes the
corpus' mp4s), extracts the controls the same way (`amplify.wfm.controls`), adds the real windows
with their condition names and encodes everything with the tokenizer on `device`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from amplify.conditions import Condition, all_conditions
from amplify.wfm.config import CONTROLS
from amplify.wfm.controls import extract_controls
from amplify.wfm.data import SCENE_CONTROLS, TWIN_CONTROLS, PairBank, encode_latents
from amplify.wfm.fit import GradeBank


def _controls(frames: np.ndarray, labels=None, depth=None) -> dict[str, torch.Tensor]:
    """The four controls of one window as float16 tensors, zeros where there is no label/depth."""
    T, H, W, _ = frames.shape
    ctl = extract_controls(
        frames, labels=labels, depth=depth, names=(*TWIN_CONTROLS, *SCENE_CONTROLS)
    )
    out = {}
    for k in (*TWIN_CONTROLS, *SCENE_CONTROLS):
        ch, f = CONTROLS[k]
        shape = (4 * ch, 1 + (T - 1) // 4, H // f, W // f)
        out[k] = (
            torch.zeros(shape, dtype=torch.float16)
            if ctl[k] is None
            else torch.from_numpy(ctl[k]).half()
        )
    return out


def _bank(
    windows: list[list[dict]],
    frames: list[list[np.ndarray]],
    conds: torch.Tensor,
    names: list[str],
    labelled: bool,
) -> PairBank:
    """A `PairBank` from per-window lists (one entry per condition) of controls and frames;
    `labelled`: the windows have boxes and depth (renders) or neither (real footage)."""
    first = [w[0] for w in windows]
    return PairBank(
        latents=None,
        frames=torch.stack(
            [torch.stack([torch.from_numpy(np.ascontiguousarray(f)) for f in fs]) for fs in frames]
        ),
        edges=torch.stack([torch.stack([c["edges"] for c in w]) for w in windows]),
        blur=torch.stack([torch.stack([c["blur"] for c in w]) for w in windows]),
        layout=torch.stack([c["layout"] for c in first]),
        depth=torch.stack([c["depth"] for c in first]),
        has_layout=torch.full((len(first),), labelled),
        has_depth=torch.full((len(first),), labelled),
        conds=conds,
        names=names,
    )


def _render_scene(job: tuple) -> tuple[int, list[dict], list[np.ndarray]]:
    """One scene under every condition: (seed, controls per condition, frames per condition)."""
    from amplify.synth.render import render_twins
    from amplify.synth.scene import sample_scene

    s, conds, frames, width, height, fps = job
    clips = render_twins(
        sample_scene(s, duration_s=frames / fps), conds, frames, width, height, fps
    )
    return s, [_controls(c.rgb, c.labels, c.depth) for c in clips], [c.rgb for c in clips]


class _Serial:
    """`map` in this process (what a pool of one would do, without the fork)."""

    def __enter__(self) -> _Serial:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def map(self, fn, items):  # noqa: ANN001, ANN201
        return map(fn, items)


@torch.no_grad()
def bank_from_renders(
    scenes: int,
    seed: int,
    real: Sequence[tuple[np.ndarray, str]],
    tokenizer: torch.nn.Module,
    tokenizer_meta: dict,
    frames: int = 17,
    width: int = 256,
    height: int = 128,
    fps: float = 10.0,
    intensity: float = 0.7,
    device: str | torch.device = "cpu",
    progress: Callable[[str], None] = print,
    workers: int = 1,
) -> GradeBank:
    """Twins of `scenes` rendered scenes under all 12 conditions + `real` (frames, condition name)
    windows of the same shape, encoded by `tokenizer` (on `device`), frames kept; `workers`
    processes render the scenes."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from amplify.synth.corpus import scene_seed

    conds = sorted(all_conditions(intensity=intensity), key=lambda c: c.name)  # as encode_corpus
    jobs = [(scene_seed(seed, i), conds, frames, width, height, fps) for i in range(scenes)]
    windows, frm, names = [], [], []
    # Scenes render in parallel (one per process; numpy, so processes, not threads), spawned:
    # a fork of a process that already holds a CUDA context and torch's thread pools is unsafe.
    spawn = multiprocessing.get_context("spawn")
    n = max(1, min(workers, scenes))
    with ProcessPoolExecutor(n, mp_context=spawn) if n > 1 else _Serial() as pool:
        for i, (s, ctl, rgb) in enumerate(pool.map(_render_scene, jobs)):
            windows.append(ctl)
            frm.append(rgb)
            names.append(f"render/{s}")
            if (i + 1) % 8 == 0 or i + 1 == scenes:
                progress(f"wfm renders: {i + 1}/{scenes} scenes")
    cond_t = torch.tensor([[*c.ids[:2], intensity] for c in conds])  # (V, 3)
    synth = _bank(windows, frm, cond_t, names, labelled=True)
    synth.intensity = torch.full((scenes,), float(intensity))
    tok = tokenizer.to(device)
    synth = encode_latents(synth, tok, progress=progress, keep_frames=True, device=device)
    real_bank, real_conds = None, None
    if real:
        real_bank = _bank([[_controls(f)] for f, _ in real], [[f] for f, _ in real], torch.zeros(1, 3),
                          [f"real/{j}" for j in range(len(real))], labelled=False)  # fmt: skip
        real_bank = encode_latents(
            real_bank, tok, progress=progress, keep_frames=True, device=device
        )
        real_conds = torch.tensor([[*Condition.parse(name).ids[:2], intensity] for _, name in real])
    return GradeBank(synth, real_bank, real_conds, tokenizer=dict(tokenizer_meta))
