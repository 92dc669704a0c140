"""Decode the tokenizer's training data into one bundle for a GPU run (`python -m amplify.gpu.prepare
out=DIR`). Runs here, on CPU, with PyAV.

Stages:
1. Real items: the video items of `real`'s manifest, less the fixed validation items of `split`
   (never trained on). Synthetic clips: `synth`'s training scenes (`holdout_every`, as the
   pipeline splits them) and a few held-out windows for the score at the end of the GPU run.
2. Every clip goes through the normal ingest (fps, size, windows of `frames` frames, no overlap);
   each frame is JPEG-encoded at once, so memory holds bytes, not frames.
3. Windows are drawn at random (seeded) until each group has its share of `max_mb`: `real_frac`
   for real footage, the rest for synthetic (1:1 by default), then written by `bundle.py`.
4. HOOK (world model): `wfm_bank=F` copies a world-model bank beside the bundle, which
   `amplify.gpu.train` hands to `amplify.wfm.fit.fit`.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from amplify.errors import ConfigError
from amplify.gpu.bundle import CODECS, WFM_BANK, encode_frame, write_bundle


@dataclass(frozen=True, kw_only=True)
class PrepareConfig:
    """What goes into the bundle and how large it may be."""

    out: str = "out/gpu_data"  # /out/ is git-ignored: name it in the run's `carry`
    synth: str = "data/synth"  # a synthetic corpus (`amplify synth`); "" = none
    real: str = "../shared/data/train_real"  # folder with manifest.json; "" = none
    split: str = "configs/splits/train_real_split.json"  # {"validation": [manifest files]}
    holdout_every: int = 10
    heldout_windows: int = 12  # held-out synthetic windows scored at the end of the run
    frames: int = 17  # frames per stored window (1 + 4k; training crops take `frames` of them)
    fps: float = 10.0
    width: int = 256
    height: int = 128
    # The whole bundle; 0 = what the device tool's 64 MiB leaves beside the repository's tracked
    # files (which travel too: 45.7 MB on 2026-11-30), less 2 MB of margin.
    max_mb: float = 0.0
    real_frac: float = 0.5  # share of max_mb for real footage
    codec: str = "jpeg"
    quality: int = 90  # 41 dB from the decoded frame, 10 KB a real frame (95: 44 dB, 14 KB)
    max_clips: int = 0  # per group, 0 = all (tests)
    seed: int = 0
    # HOOK (world model): a GradeBank file (`amplify.wfm.fit`: `build_bank(...).save(F)`, or the
    # `bank=` cache of `amplify train grade`), copied to DIR/wfm_bank.pt; its bytes count against
    # max_mb (the tokenizer data gets what is left).
    wfm_bank: str = ""

    def __post_init__(self) -> None:
        if self.frames < 1 or (self.frames - 1) % 4:
            raise ConfigError("frames", self.frames, "must be 1 + 4k")
        if self.codec not in CODECS:
            raise ConfigError("codec", self.codec, f"one of {CODECS}")
        if not 0.0 <= self.real_frac <= 1.0:
            raise ConfigError("real_frac", self.real_frac, "must be in [0, 1]")
        if self.max_mb < 0:
            raise ConfigError("max_mb", self.max_mb, "must be >= 0 (0 = what the 64 MiB leave)")
        if not self.synth and not self.real:
            raise ConfigError("synth", self.synth, "need synth or real data")


# ---- 1. items ------------------------------------------------------------------------------------
def real_items(cfg: PrepareConfig) -> list[dict]:
    """The manifest entries of the real training videos (validation items left out)."""
    from amplify.io.ingest import VIDEO_EXTENSIONS

    root = Path(cfg.real)
    manifest = root / "manifest.json"
    if not manifest.is_file():
        raise ConfigError("real", cfg.real, "no manifest.json there")
    val = set(json.loads(Path(cfg.split).read_text())["validation"]) if cfg.split else set()
    items = [
        e
        for e in json.loads(manifest.read_text())
        if e["file"] not in val and Path(e["file"]).suffix.lower() in VIDEO_EXTENSIONS
    ]
    return items[: cfg.max_clips] if cfg.max_clips else items


def synth_split(cfg: PrepareConfig) -> tuple[list[Path], list[Path]]:
    """(training clips, held-out clips) of the synthetic corpus, split as the pipeline splits."""
    from amplify.io.ingest import list_inputs
    from amplify.tokenizer.data import split_inputs

    if not Path(cfg.synth).is_dir():
        raise ConfigError("synth", cfg.synth, "not a folder")
    train, held = split_inputs(sorted(list_inputs(Path(cfg.synth))), cfg.holdout_every)
    return (train[: cfg.max_clips], held) if cfg.max_clips else (train, held)


# ---- 2. decode -----------------------------------------------------------------------------------
def encode_windows(
    paths: list[Path], cfg: PrepareConfig, progress: Callable[[str], None] = print
) -> list[list[bytes]]:
    """Every full window of every clip, as JPEG frames; bad clips are reported and skipped."""
    from amplify.errors import InputError
    from amplify.io.ingest import IngestConfig, read_windows

    icfg = IngestConfig(
        fps=cfg.fps,
        width=cfg.width,
        height=cfg.height,
        window=cfg.frames,
        stride=cfg.frames,
        short_window_min=cfg.frames,
    )
    out: list[list[bytes]] = []
    for p in paths:
        try:
            windows = read_windows(p, icfg)
        except InputError as e:
            progress(f"prepare: skipped {p} ({type(e).__name__}: {e.reason})")
            continue
        out.extend(
            [encode_frame(f, cfg.quality) for f in w.frames]
            for w in windows
            if w.frames.shape[0] == cfg.frames
        )
    return out


# ---- 3. fit the budget ---------------------------------------------------------------------------
def pick(
    windows: list[list[bytes]], budget: float, seed: int, frame_bytes: int = 0
) -> list[list[bytes]]:
    """Random windows (seeded) while they fit `budget` bytes: their JPEG bytes, or `frame_bytes`
    a frame when set (raw frames: zlib gains little on real footage, so they count whole)."""
    order = np.random.default_rng(seed).permutation(len(windows))
    chosen, used = [], 0
    for i in order:
        w = windows[i]
        size = len(w) * frame_bytes if frame_bytes else sum(len(f) for f in w)
        if used + size <= budget:
            chosen.append(w)
            used += size
    return chosen


def _size(windows: list[list[bytes]], frame_bytes: int) -> int:
    return sum(len(w) * frame_bytes if frame_bytes else sum(map(len, w)) for w in windows)


CARRY_LIMIT = 64 * 2**20  # bytes that travel with one device run (the tree included)
REPO = Path(__file__).resolve().parents[2]


def tree_bytes(repo: Path = REPO) -> int:
    """Bytes of the repository's tracked files (they travel with every device run)."""
    import subprocess

    names = subprocess.run(["git", "ls-files", "-z"], cwd=repo, capture_output=True, check=True)
    paths = [repo / n for n in names.stdout.decode().split("\0") if n]
    return sum(p.stat().st_size for p in paths if p.is_file())


def prepare(cfg: PrepareConfig, progress: Callable[[str], None] = print) -> dict:
    """Build the bundle in cfg.out; returns (and writes into meta.json) what went in."""
    t0 = time.time()
    budget = cfg.max_mb * 1e6 or CARRY_LIMIT - tree_bytes() - 2e6
    if budget <= 1e6:
        raise ConfigError("max_mb", cfg.max_mb, f"the tracked tree leaves {budget / 1e6:.1f} MB")
    progress(f"prepare: bundle budget {budget / 1e6:.1f} MB")
    if cfg.wfm_bank:
        import shutil

        if not Path(cfg.wfm_bank).is_file():
            raise ConfigError("wfm_bank", cfg.wfm_bank, "not a file")
        Path(cfg.out).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cfg.wfm_bank, Path(cfg.out) / WFM_BANK)
        budget -= Path(cfg.wfm_bank).stat().st_size
        if budget <= 0:
            raise ConfigError("wfm_bank", cfg.wfm_bank, f"larger than max_mb={cfg.max_mb}")
    groups: dict[str, list[list[bytes]]] = {}
    meta: dict = {"config": asdict(cfg)}
    # 1.-2. Real footage (its validation items never enter), then the synthetic corpus.
    if cfg.real:
        items = real_items(cfg)
        wins, conds = [], []
        for e in items:  # per item: its windows carry its labelled condition (for the world model)
            w = encode_windows([Path(cfg.real) / e["file"]], cfg, progress)
            wins += w
            if "weather" not in e or "time_of_day" not in e:
                raise ConfigError("real", cfg.real, f"manifest item {e['file']!r} has no "
                                  "weather / time_of_day")  # fmt: skip
            conds += [f"{e['weather']}_{e['time_of_day']}"] * len(w)
        progress(f"prepare: {len(wins)} real windows from {len(items)} items")
        groups["real"] = wins
        meta["real_items"] = [{"file": e["file"], "license": e.get("license", "")} for e in items]
    heldout: list[list[bytes]] = []
    if cfg.synth:
        train, held = synth_split(cfg)
        groups["synth"] = encode_windows(train, cfg, progress)
        progress(f"prepare: {len(groups['synth'])} synthetic windows from {len(train)} clips")
        held_w = encode_windows(held, cfg, progress)
        heldout = held_w[:: max(1, len(held_w) // max(1, cfg.heldout_windows))]
        heldout = heldout[: cfg.heldout_windows]
        meta["synth_train_clips"], meta["synth_heldout_clips"] = len(train), len(held)
    # 3. Real footage gets `real_frac` of the budget, synthetic clips the rest (all of it when
    # only one kind is there).
    fb = cfg.width * cfg.height * 3 if cfg.codec == "raw" else 0
    left = budget - _size(heldout, fb)
    picked: dict[str, list[list[bytes]]] = {}
    if "real" in groups:
        frac = cfg.real_frac if "synth" in groups else 1.0
        picked["real"] = pick(groups["real"], left * frac, cfg.seed, fb)
        left -= _size(picked["real"], fb)
        cond_of = {id(w): c for w, c in zip(groups["real"], conds, strict=True)}
        meta["real_conditions"] = [cond_of[id(w)] for w in picked["real"]]
    if "synth" in groups:
        picked["synth"] = pick(groups["synth"], left, cfg.seed, fb)
    picked["heldout"] = heldout
    meta["windows"] = {k: len(v) for k, v in picked.items()}
    meta["available_windows"] = {k: len(v) for k, v in groups.items()}
    if fb:
        from amplify.gpu.bundle import decode_frame

        arrays = {
            k: np.stack([np.stack([decode_frame(f) for f in w]) for w in v])
            for k, v in picked.items()
            if v
        }
        path = write_bundle(cfg.out, arrays, "raw", meta)
    else:
        path = write_bundle(cfg.out, {k: v for k, v in picked.items() if v}, "jpeg", meta)
    meta["bytes"] = path.stat().st_size
    meta["seconds"] = round(time.time() - t0, 1)
    (Path(cfg.out) / "meta.json").write_text(json.dumps({"codec": cfg.codec, **meta}, indent=1))
    progress(
        f"prepare: wrote {path} ({meta['bytes'] / 1e6:.1f} MB: {meta['windows']} windows of "
        f"{cfg.frames} frames) in {meta['seconds']} s"
    )
    return meta


if __name__ == "__main__":
    from amplify.gpu.args import parse_args

    prepare(parse_args(PrepareConfig, sys.argv[1:]))
